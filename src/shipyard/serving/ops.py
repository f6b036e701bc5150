"""Operational routes: ``/health`` (liveness), ``/ready`` (readiness), ``/metrics``.

``/health`` answers 200 as long as the process serves HTTP. ``/ready`` answers
200 only once a model version is loaded *and* a warm-up prediction ran -- in
every worker, when there are several -- and, for a feature-backed model, while
its online store answers; 503 otherwise, with the reason (the first load failing,
"1 of 2 workers are warm", the online store that cannot be reached: see
:mod:`shipyard.serving.readiness`). ``/metrics`` is the Prometheus text exposition.

Example:
    >>> router = build_router(readiness, metrics)  # doctest: +SKIP
"""

from __future__ import annotations

import orjson
from fastapi import APIRouter
from starlette.responses import Response

from shipyard.serving.metrics import ServingMetrics
from shipyard.serving.readiness import Readiness


def build_router(readiness: Readiness, metrics: ServingMetrics) -> APIRouter:
    runtime = readiness.runtime
    router = APIRouter(tags=["operations"])

    @router.get("/health", summary="Liveness: 200 while the process serves HTTP")
    async def health() -> Response:
        return Response(b'{"status":"ok"}', media_type="application/json")

    @router.get(
        "/ready",
        summary=(
            "Readiness: 200 once the model is loaded and warmed up (and a feature-backed "
            "model's online store answers), else 503"
        ),
        responses={503: {"description": "Not ready: the reason is in the body"}},
    )
    async def ready() -> Response:
        served = await readiness.require()
        body = {
            "ready": True,
            "model": served.name,
            "version": served.version,
            "ref": str(runtime.ref),
            "load_seconds": round(served.load_seconds, 4),
        }
        return Response(orjson.dumps(body), media_type="application/json")

    @router.get(
        "/metrics",
        summary="Prometheus metrics",
        response_class=Response,
        responses={200: {"content": {"text/plain": {}}}},
    )
    async def metrics_route() -> Response:
        content, content_type = metrics.render()
        return Response(content, media_type=content_type)

    return router
