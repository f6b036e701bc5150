"""Operational routes: ``/health`` (liveness), ``/ready`` (readiness), ``/metrics``.

``/health`` answers 200 as long as the process serves HTTP. ``/ready`` answers
200 only once a model version is loaded *and* a warm-up prediction ran -- in
every worker, when there are several -- and 503 before (with the reason, e.g.
the first load failing, or "1 of 2 workers are warm"). ``/metrics``
is the Prometheus text exposition.

Example:
    >>> router = build_router(runtime, metrics)  # doctest: +SKIP
"""

from __future__ import annotations

import orjson
from fastapi import APIRouter
from starlette.responses import Response

from shipyard.serving.metrics import ServingMetrics
from shipyard.serving.runtime import ModelRuntime


def build_router(runtime: ModelRuntime, metrics: ServingMetrics) -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get("/health", summary="Liveness: 200 while the process serves HTTP")
    async def health() -> Response:
        return Response(b'{"status":"ok"}', media_type="application/json")

    @router.get(
        "/ready",
        summary="Readiness: 200 once the model is loaded and warmed up, else 503",
        responses={503: {"description": "Not ready yet"}},
    )
    async def ready() -> Response:
        served = runtime.require_all_ready()
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
