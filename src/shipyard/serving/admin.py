"""Admin routes, behind the admin bearer token (``SHIPYARD_ADMIN_TOKEN``).

- ``GET /admin/status``: what is served (and which runtime answers: ``onnxruntime`` or
  the flavor's own), what the reference follows, the last error,
  and the options the server runs with (every ``shipyard serve`` flag; passwords in
  URLs masked).
- ``POST /admin/reload``: check the registry now (instead of at the next poll) and
  swap if the reference moved; retries a version that failed to load before.
- ``POST /admin/swap {"version": 4, "reason": "..."}``: move the served alias to
  another version *in the registry* (audit-logged, like ``shipyard models alias``),
  then reload. The registry stays the single source of truth: every other server
  following the alias converges to the same version.

With no admin token configured every admin route answers 403 saying how to
enable them.

Example:
    >>> router = build_router(runtime, AdminGuard(None))  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import anyio
import orjson
from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from shipyard.errors import ConflictError
from shipyard.serving.media import JsonBodyRoute
from shipyard.serving.options import ServeOptions
from shipyard.serving.runtime import ModelRuntime, SwapOutcome
from shipyard.serving.security import AdminGuard


class SwapRequest(BaseModel):
    """Move the served alias to ``version``."""

    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=1)
    reason: str | None = Field(default=None, max_length=500)


def _outcome(outcome: SwapOutcome, runtime: ModelRuntime) -> Response:
    if outcome.error is not None and not outcome.changed:
        raise ConflictError(
            f"Could not switch {runtime.ref}: {outcome.error}. Still serving version "
            f"{outcome.previous}."
        )
    body: dict[str, Any] = {
        "changed": outcome.changed,
        "version": outcome.version,
        "previous": outcome.previous,
    }
    return Response(orjson.dumps(body), media_type="application/json")


def build_router(
    runtime: ModelRuntime, guard: AdminGuard, *, options: ServeOptions | None = None
) -> APIRouter:
    router = APIRouter(
        prefix="/admin",
        tags=["admin"],
        dependencies=[Depends(guard)],
        route_class=JsonBodyRoute,
    )
    settings = (options or ServeOptions()).public()
    responses: dict[int | str, dict[str, Any]] = {
        401: {"description": "Missing or wrong admin token"},
        403: {"description": "Admin routes disabled (no SHIPYARD_ADMIN_TOKEN)"},
        409: {"description": "The new version could not be loaded; the old one serves on"},
    }

    @router.get("/status", summary="What this server serves", responses=responses)
    async def status() -> Response:
        served = runtime.current
        body = {
            "ref": str(runtime.ref),
            "follows_alias": runtime.follows_alias,
            "poll_interval": runtime.poll_interval,
            "model": runtime.name,
            "version": served.version if served else None,
            "flavor": served.model.flavor if served else None,
            "runtime": served.runtime if served else None,
            "load_seconds": served.load_seconds if served else None,
            "last_error": runtime.last_error,
            "options": settings,
        }
        return Response(orjson.dumps(body), media_type="application/json")

    @router.post(
        "/reload", summary="Check the registry now and swap if needed", responses=responses
    )
    async def reload() -> Response:
        return _outcome(await runtime.refresh(force=True), runtime)

    @router.post("/swap", summary="Move the served alias, then reload", responses=responses)
    async def swap(request: SwapRequest) -> Response:
        alias = runtime.ref.alias
        if alias is None:
            raise ConflictError(
                f"This server is pinned to {runtime.ref}; there is no alias to move. Serve an "
                f"alias (e.g. {runtime.name}@production) to swap versions at run time."
            )
        registry = runtime.registry
        await anyio.to_thread.run_sync(
            lambda: registry.set_alias(
                runtime.name,
                alias,
                request.version,
                reason=request.reason or "swapped through the admin API",
            )
        )
        return _outcome(await runtime.refresh(force=True), runtime)

    return router
