"""The ASGI app factory: one registered model behind HTTP, from a registry reference.

``create_app`` does no I/O: it wires the routes, middleware and metrics. The
model is loaded and warmed up by a background task once the server starts
(``/health`` answers at once, ``/ready`` once the model can answer), and the
same task follows the reference's alias for hot swaps.

Middleware, outermost first: request id + HTTP metrics, per-request timeout,
body-size limit, then direct dispatch of ``/predict`` and ``/invocations``
(:mod:`shipyard.serving.direct`); everything else goes through FastAPI.
Errors of every kind are rendered by :mod:`shipyard.serving.errors`.

Example:
    >>> from shipyard import Shipyard
    >>> app = create_app(Shipyard(), "iris")         # doctest: +SKIP
    >>> import uvicorn; uvicorn.run(app)              # doctest: +SKIP
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi_offline import FastAPIOffline

from shipyard._client import Shipyard
from shipyard._version import __version__
from shipyard.config import Settings
from shipyard.errors import ConfigError
from shipyard.features.serving import OnlineJoin
from shipyard.monitoring.monitor_job import MonitorJob
from shipyard.registry.refs import parse_ref
from shipyard.rollout.worker import RolloutWorker
from shipyard.serving import admin, feedback, ops
from shipyard.serving.contract_guard import ContractGuard
from shipyard.serving.deployment import (
    DeploymentMiddleware,
    DeploymentRuntime,
    deployment_observers,
)
from shipyard.serving.direct import DirectRoute, DirectRoutesMiddleware, direct_routes
from shipyard.serving.errors import install_error_handlers
from shipyard.serving.fastpath import FastPath
from shipyard.serving.feature_batch import FeatureBatcher
from shipyard.serving.inference import Inference
from shipyard.serving.metrics import ServingMetrics
from shipyard.serving.middleware import RequestMiddleware
from shipyard.serving.observer import PredictionObserver, close_all
from shipyard.serving.options import ServeOptions
from shipyard.serving.protocols import mlflow, native, v2
from shipyard.serving.readiness import OnlineStoreHealth, Readiness
from shipyard.serving.runtime import ModelRuntime, ServedModel, load_served_model
from shipyard.serving.security import (
    AdminGuard,
    ApiKeyGuard,
    BodyLimitMiddleware,
    TimeoutMiddleware,
)
from shipyard.serving.workers import WorkerBoard

#: Where the Swagger UI files for /docs are served from.
DOCS_ASSETS = "/docs-assets"
_DESCRIPTION = """\
Serves **{ref}** from the Shipyard registry.

- `POST /predict`: a record, a list of records, or `{{"instances": [...]}}`.
- `POST /invocations`: MLflow's scoring protocol (JSON or CSV).
- `/v2/...`: the Open Inference Protocol (KServe V2).
- `GET /health`, `GET /ready`, `GET /metrics` (Prometheus).

Request bodies are `application/json` (`/invocations` also reads `text/csv`; `/v2` also
reads the binary tensor extension, and a V2 request without a Content-Type is JSON);
other content types answer 415.

The request schema below is the served version's signature; it follows hot swaps.
"""


def app_for_settings(settings: Settings, ref: str, *, options: ServeOptions) -> FastAPI:
    """:func:`create_app` on a client of ``settings``: what each server process builds.

    The server runners (:mod:`.server`, :mod:`.prefork`) start from settings; this
    is the one place in ``serving`` that opens the Shipyard client to wire the app.
    """
    return create_app(Shipyard(settings), ref, options=options)


def preload_model(
    settings: Settings, ref: str, *, trusted_pickle: bool = False, onnx: bool = True
) -> ServedModel:
    """Load and warm up the version ``ref`` resolves to, then close every connection
    (a pre-fork parent: no database connection may cross the fork)."""
    client = Shipyard(settings)
    try:
        record = client.registry.resolve(ref)
        return load_served_model(client.registry, record, trusted_pickle=trusted_pickle, onnx=onnx)
    finally:
        client.close()


def create_app(
    client: Shipyard,
    ref: str,
    *,
    options: ServeOptions | None = None,
    observers: Sequence[PredictionObserver] = (),
) -> FastAPI:
    """A FastAPI app serving ``ref`` (``iris``, ``iris@staging``, ``iris:3``).

    ``client.settings`` supplies the admin token and API keys; ``options`` the
    serving knobs; each of ``observers`` sees every prediction (see
    :class:`~shipyard.serving.observer.PredictionObserver`). The app exposes its
    runtime and metrics as ``app.state.runtime`` and ``app.state.metrics`` (and its
    readiness check as ``app.state.readiness``).
    """
    options = options or ServeOptions()
    parsed = parse_ref(ref)  # a bad reference fails here, before any server starts
    if options.workers > 1 and options.worker_dir is None:
        raise ConfigError("Several workers need a shared worker_dir (run_server sets it).")
    settings = client.settings
    metrics = ServingMetrics(multiprocess_dir=options.metrics_dir)
    board = WorkerBoard(options.ready_dir, expected=options.workers)
    if options.prediction_log:  # created here, in the worker: never shared across a fork
        observers = (*observers, client.prediction_log)
    runtime: ModelRuntime
    if options.deployment is not None:  # per-request variants, shadows, rollout
        rollout = RolloutWorker(
            client.deployments,
            log=client.prediction_log,
            registry=metrics.registry,
            actor=f"rollout@{socket.gethostname()}",
            calibration=client.calibrations.latest,
        )
        runtime = DeploymentRuntime(
            client.registry,
            options.deployment,
            rollout=rollout,
            metrics=metrics,
            poll_interval=options.poll_interval,
            trusted_pickle=options.trusted_pickle,
            onnx=options.onnx,
            board=board,
        )
        observers = deployment_observers(runtime, client.prediction_log, observers)
    else:
        runtime = ModelRuntime(
            client.registry,
            str(parsed),
            metrics=metrics,
            poll_interval=options.poll_interval,
            trusted_pickle=options.trusted_pickle,
            onnx=options.onnx,
            board=board,
        )
    fast = FastPath.from_options(options, metrics.registry, parsed.name)
    guard = None
    if options.contract_check != "off":
        guard = ContractGuard(client.validation, options.contract_check, metrics.registry)
    join = OnlineJoin(client.features, on_lookup=_count_lookups(metrics))
    # Whether a feature-backed model's online store answers, for /ready: told by every
    # real read, pinged (at most once a second) only when no read told it lately.
    online = OnlineStoreHealth(join, on_change=_store_changed(metrics, runtime))
    join.on_read = online.saw
    readiness = Readiness(runtime, metrics, online)
    inference = Inference(
        runtime,
        metrics,
        observers=observers,
        variant=options.variant,
        fast=fast,
        contract=guard,
        features=FeatureBatcher(join, on_read=metrics.feature_read_requests.observe),
    )
    monitor = MonitorJob(
        runtime,
        store=client.monitors,
        log=client.prediction_log,  # opened lazily: only its metric objects exist yet
        profiles=client.references,
        registry=metrics.registry,
        calibrations=client.calibrations,
        variant=options.variant,
        multiprocess=metrics.multiprocess_dir is not None,
        interval=options.monitor_interval,
        window=options.monitor_window,
    )
    metrics.series_filter = monitor.is_current
    api_key = ApiKeyGuard(settings.api_keys)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # In each worker (after a fork): open files fixed from the start.
        client.database.open_pool()
        runtime.start()
        monitor.start()
        try:
            yield
        finally:
            await runtime.stop()
            if fast is not None:
                await fast.close()
            await monitor.stop()
            board.mark_gone()
            close_all(inference.observers)
            metrics.mark_process_dead()

    # /docs with Swagger UI's files served from the installed package, not a CDN: the
    # page works on a machine without internet access. No /redoc: ReDoc's bundle
    # fetches its logo from its makers' site.
    app = FastAPIOffline(
        title=f"Shipyard: {parsed}",
        version=__version__,
        description=_DESCRIPTION.format(ref=parsed),
        lifespan=lifespan,
        static_url=DOCS_ASSETS,
        redoc_url=None,
    )
    app.state.runtime = runtime
    app.state.metrics = metrics
    app.state.inference = inference
    app.state.monitor = monitor
    app.state.readiness = readiness
    install_error_handlers(app)
    routers = [
        native.build_router(
            inference, api_key=api_key, reject_unknown_fields=options.reject_unknown_fields
        ),
        mlflow.build_router(inference, api_key=api_key),
        v2.build_router(inference, api_key=api_key, readiness=readiness),
        ops.build_router(readiness, metrics),
        admin.build_router(runtime, AdminGuard(settings.admin_token), options=options),
    ]
    if options.prediction_log:
        # Labels are filed under the model whose predictions they join: for a deployment,
        # its model, not the deployment's name.
        labelled = (
            runtime.rollout.get(runtime.deployment_name).model
            if isinstance(runtime, DeploymentRuntime)
            else parsed.name
        )
        routers.append(
            feedback.build_router(
                client.prediction_log,
                labelled,
                api_key=api_key,
                classes=lambda: _served_classes(runtime),
            )
        )
    else:
        routers.append(feedback.build_disabled_router(api_key=api_key))
    direct: dict[tuple[str, str], DirectRoute] = {}
    for router in routers:
        direct.update(direct_routes(router.routes))
        app.include_router(router)
    # Starlette wraps the last added outermost.
    app.add_middleware(DirectRoutesMiddleware, routes=direct)
    app.add_middleware(BodyLimitMiddleware, max_bytes=options.max_body_bytes)
    app.add_middleware(TimeoutMiddleware, seconds=options.request_timeout)
    if isinstance(runtime, DeploymentRuntime):  # inside the request id, outside the timeout
        app.add_middleware(DeploymentMiddleware, runtime=runtime)
    # Every route by its template, for counting requests answered before routing (413).
    templates = [r for r in app.routes if hasattr(r, "path")]
    templates += [route for router in routers for route in router.routes]
    app.add_middleware(RequestMiddleware, metrics=metrics, routes=templates)
    _follow_served_schema(app, runtime)
    return app


def _count_lookups(metrics: ServingMetrics) -> Callable[[str, str, int], None]:
    def count(view: str, outcome: str, n: int) -> None:
        if n:
            metrics.feature_lookups.labels(view, outcome).inc(n)

    return count


def _store_changed(metrics: ServingMetrics, runtime: ModelRuntime) -> Callable[[str, bool], None]:
    """The gauges of an online store that stopped (or started again) answering."""

    def changed(target: str, up: bool) -> None:
        metrics.online_store_up.labels(target).set(1 if up else 0)
        # Reads and pings happen only for a feature-backed model: its readiness is the store's.
        metrics.model_ready.set(1 if up and runtime.current is not None else 0)

    return changed


def _served_classes(runtime: ModelRuntime) -> list[Any] | None:
    """The classes of the model being served (its primary, for a deployment); None
    for a regressor or before the first load."""
    served = runtime.current
    if served is None or served.classes is None:
        return None
    return list(served.classes)


def _follow_served_schema(app: FastAPI, runtime: ModelRuntime) -> None:
    """Make ``/openapi.json`` describe the version being served right now."""
    cache: dict[str, Any] = {}

    def openapi() -> dict[str, Any]:
        served = runtime.current
        key = None if served is None else (served.version, served.record.manifest_digest)
        if "spec" not in cache or cache["key"] != key:
            spec = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            native.document(spec, served)
            mlflow.document(spec, served)
            v2.document(spec)
            cache.update(key=key, spec=spec)
        spec_now: dict[str, Any] = cache["spec"]
        return spec_now

    app.openapi = openapi  # type: ignore[method-assign]
