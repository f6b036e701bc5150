"""Serving a deployment: per-request routing among variants, shadows, live stats, rollout.

``shipyard serve --deployment NAME`` builds the usual app (see
:mod:`shipyard.serving.app`) with a :class:`DeploymentRuntime` in place of the
single-model runtime, plus two small pieces:

- :class:`DeploymentMiddleware` picks the variant for each prediction request
  (sticky by the deployment's key header when the request has it, weighted
  random otherwise), puts it in a context variable for the request's task,
  answers with ``X-Shipyard-Variant`` (and a ``variant`` field in JSON
  object bodies), and counts requests, 5xx errors and latency per variant;
- :class:`DeploymentObserver` stamps the variant and the deployment's name onto
  every prediction event before the other observers (the prediction log) see it, and sends a copy of
  each request to the shadows in the background, logging their answers as
  ``shadow:<version>`` under the same request id; shadows never answer anyone.

The runtime keeps one :class:`~shipyard.serving.runtime.ModelRuntime` per
version (pinned, so loaded once) and a routing :class:`Table` swapped in one
assignment, like the hot swap. Every ``poll_interval`` seconds each worker
reads the deployment; on a new revision it loads what is new beside what
serves, then swaps the table, so every worker converges within a poll or a
model load. The same loop reports this worker's counters and heartbeat to the
database and runs the rollout controller (compare-and-set: one worker acts).

Example:
    >>> app = create_app(client, "web", options=ServeOptions(deployment="web"))  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import os
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import anyio
import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shipyard.errors import ShipyardError
from shipyard.monitoring.monitor_job import MonitorTarget
from shipyard.monitoring.prediction_log import PredictionLog
from shipyard.registry.service import Registry
from shipyard.rollout.worker import (
    PRIMARY,
    Deployment,
    RolloutWorker,
    Router,
    Variant,
    VariantCounters,
    latency_bucket,
    shadow_variant,
)
from shipyard.serving.errors import ModelNotReadyError, error_response
from shipyard.serving.metrics import ServingMetrics
from shipyard.serving.observer import PredictionEvent, PredictionObserver, notify
from shipyard.serving.runtime import ModelRuntime, ServedModel, SwapOutcome
from shipyard.serving.workers import WorkerBoard

logger = logging.getLogger("shipyard.serving")

VARIANT_HEADER = b"x-shipyard-variant"
#: The header a sticky key is read from when the deployment names none.
DEFAULT_KEY_HEADER = "X-Shipyard-Key"
#: Shadow copies allowed in flight per worker; beyond that they are dropped and counted.
MAX_SHADOWS_IN_FLIGHT = 64
_PREDICTION_PATHS = ("/predict", "/invocations")


def is_prediction_path(path: str) -> bool:
    """``/predict``, ``/invocations`` and ``/v2/models/<name>/infer``."""
    return path in _PREDICTION_PATHS or (path.startswith("/v2/models/") and path.endswith("/infer"))


@dataclass(frozen=True)
class Pick:
    """The variant chosen for one request and the loaded model that answers it."""

    variant: Variant
    served: ServedModel


_current: contextvars.ContextVar[Pick | None] = contextvars.ContextVar(
    "shipyard_deployment_pick", default=None
)


@dataclass(frozen=True)
class Table:
    """One revision's routing: immutable, replaced whole (one assignment) on change."""

    deployment: Deployment
    router: Router
    served: dict[str, ServedModel]
    shadows: tuple[ServedModel, ...]
    key_header: bytes

    def pick(self, key: str | None) -> Pick:
        variant = self.router.pick(key)
        return Pick(variant, self.served[variant.name])


@dataclass
class _Counter:
    version: int
    requests: int = 0
    errors: int = 0
    latency: dict[str, int] = field(default_factory=dict)


class DeploymentRuntime(ModelRuntime):
    """Routes each request of deployment ``name`` to a variant; converges to the database.

    Drop-in for :class:`ModelRuntime`: :meth:`require` answers the model picked
    for the current request (the primary outside one), ``current`` is the
    primary, :meth:`refresh` re-reads the deployment.
    """

    def __init__(
        self,
        registry: Registry,
        name: str,
        *,
        rollout: RolloutWorker,
        metrics: ServingMetrics,
        poll_interval: float,
        trusted_pickle: bool = False,
        onnx: bool = True,
        board: WorkerBoard | None = None,
    ) -> None:
        super().__init__(
            registry,
            name,
            metrics=metrics,
            poll_interval=poll_interval,
            trusted_pickle=trusted_pickle,
            onnx=onnx,
            board=board,
        )
        self.deployment_name = name
        self.rollout = rollout
        self.rollout_metrics = rollout.metrics
        self.worker = f"{socket.gethostname()}:{os.getpid()}"
        self.table: Table | None = None
        self._versions: dict[int, ModelRuntime] = {}
        self._counters: dict[str, _Counter] = {}
        self._epoch: int | None = None
        self._shadow_tasks: set[asyncio.Task[None]] = set()

    # -- per request ---------------------------------------------------------------------

    def pick(self, key: str | None) -> Pick:
        table = self.table
        if table is None:
            raise ModelNotReadyError(
                f"Deployment {self.deployment_name!r} is not loaded yet"
                f"{': ' + self.last_error if self.last_error else ''}. Retry shortly."
            )
        return table.pick(key)

    def require(self) -> ServedModel:
        pick = _current.get()
        if pick is not None:
            return pick.served
        return super().require()

    def require_all_ready(self) -> ServedModel:
        if self.table is None:
            raise ModelNotReadyError(f"Deployment {self.deployment_name!r} is not loaded yet.")
        return super().require_all_ready()

    def answering(self) -> list[ServedModel]:
        """The variants routed to now (shadows answer nobody: a shadow's failure is its own)."""
        table = self.table
        if table is None:
            return super().answering()
        return list({id(m): m for m in table.served.values()}.values())

    def monitor_targets(self) -> list[MonitorTarget]:
        """Every variant serving now, shadows included, for the monitor job."""
        table = self.table
        if table is None:
            return []
        name = self.deployment_name
        targets = [MonitorTarget(table.served[v.name], name, v.name) for v in table.router.variants]
        targets += [MonitorTarget(s, name, shadow_variant(s.version)) for s in table.shadows]
        return targets

    # -- the poll loop -------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            try:
                await self.refresh()
                await self._report_and_control()
            except Exception:  # the loop must survive anything; the old table serves on
                logger.exception("Deployment %s: poll failed", self.deployment_name)
            await asyncio.sleep(self.poll_interval)

    async def stop(self) -> None:
        await super().stop()
        for task in list(self._shadow_tasks):
            task.cancel()
        with contextlib.suppress(ShipyardError):
            await anyio.to_thread.run_sync(self.rollout.forget, self.deployment_name, self.worker)

    async def refresh(self, *, force: bool = False) -> SwapOutcome:
        """Read the deployment; on a new revision, load what is new and swap the table."""
        async with self._lock:
            previous = self.current.version if self.current is not None else None
            try:
                d = await anyio.to_thread.run_sync(self.rollout.get, self.deployment_name)
            except ShipyardError as exc:
                self.metrics.poll_errors.labels(self.deployment_name).inc()
                self.last_error = f"cannot read deployment {self.deployment_name!r}: {exc}"
                logger.error("%s", self.last_error)
                return SwapOutcome(False, previous, previous, error=str(exc))
            table = self.table
            if table is not None and table.deployment.revision == d.revision and not force:
                return SwapOutcome(False, previous, previous)
            new = await self._build(d)
            if new is None:
                return SwapOutcome(False, previous, previous, error=self.last_error)
            self._install(new)
            return SwapOutcome(previous != d.primary, d.primary, previous)

    async def _load_version(self, version: int, model: str) -> ServedModel | None:
        runtime = self._versions.get(version)
        if runtime is None:
            runtime = ModelRuntime(
                self.registry,
                f"{model}:{version}",
                metrics=self.metrics,
                trusted_pickle=self.trusted_pickle,
                onnx=self.onnx,
            )
            self._versions[version] = runtime
        if runtime.current is None:
            await runtime.refresh(force=True)
        if runtime.current is None:
            logger.error("Deployment %s: %s", self.deployment_name, runtime.last_error)
        return runtime.current

    async def _build(self, d: Deployment) -> Table | None:
        primary = await self._load_version(d.primary, d.model)
        if primary is None:
            self.last_error = (
                f"the primary {d.model}:{d.primary} failed to load "
                f"({self._versions[d.primary].last_error}); still routing by revision "
                f"{self.table.deployment.revision if self.table else 'none'}"
            )
            return None
        served: dict[str, ServedModel] = {}
        variants: list[Variant] = []
        moved = 0.0  # weight of variants that failed to load: the primary takes it
        for v in d.variants():
            model = (
                primary if v.version == d.primary else await self._load_version(v.version, d.model)
            )
            if model is None:
                moved += v.weight
                continue
            served[v.name] = model
            variants.append(v)
        if moved:
            if PRIMARY in served:
                variants = [
                    replace(v, weight=v.weight + moved) if v.name == PRIMARY else v
                    for v in variants
                ]
            else:
                variants.insert(0, Variant(PRIMARY, d.primary, moved))
                served[PRIMARY] = primary
        shadows = []
        for version in d.shadows:
            model = await self._load_version(version, d.model)
            if model is not None:
                shadows.append(model)
        header = (d.sticky_header or DEFAULT_KEY_HEADER).lower().encode("latin-1")
        router = Router(variants, salt=d.name)
        return Table(d, router, served, tuple(shadows), header)

    def _install(self, new: Table) -> None:
        old = self.table
        self.table = new  # the swap: in-flight requests keep the Pick they made
        primary = new.served.get(PRIMARY) or self._versions[new.deployment.primary].current
        first = self.current is None
        self.current = primary
        if first:
            self.board.mark_ready()
        self.last_error = None
        needed = new.deployment.versions()
        for version in [v for v in self._versions if v not in needed]:
            del self._versions[version]  # in-flight requests hold their ServedModel
        m = self.rollout_metrics
        name = self.deployment_name
        if old is not None:
            for v in old.router.variants:
                m.weight.labels(name, v.name, str(v.version)).set(0)
        for v in new.router.variants:
            m.weight.labels(name, v.name, str(v.version)).set(v.weight)
        m.revision.labels(name).set(new.deployment.revision)
        logger.info(
            "Deployment %s at revision %d: %s%s",
            name,
            new.deployment.revision,
            ", ".join(f"{v.name}={v.version} {v.weight:g}%" for v in new.router.variants),
            f"; shadows {[s.version for s in new.shadows]}" if new.shadows else "",
        )

    # -- live numbers --------------------------------------------------------------------

    def count(self, pick: Pick, *, status: int, seconds: float) -> None:
        """Record one answered prediction request of ``pick``'s variant (event loop only)."""
        variant = pick.variant
        counter = self._counters.get(variant.name)
        if counter is None or counter.version != variant.version:
            counter = self._counters[variant.name] = _Counter(variant.version)
        counter.requests += 1
        error = status >= 500
        counter.errors += error
        key = latency_bucket(seconds)
        counter.latency[key] = counter.latency.get(key, 0) + 1
        labels = (self.deployment_name, variant.name, str(variant.version))
        self.rollout_metrics.requests.labels(*labels, "error" if error else "ok").inc()
        self.rollout_metrics.latency.labels(*labels).observe(seconds)

    async def _report_and_control(self) -> None:
        table = self.table
        if table is None:
            return
        d = table.deployment
        if self._epoch is not None and self._epoch != d.epoch:
            await self._report(d.revision, self._epoch)  # the last numbers of the old epoch
            self._counters = {}
        self._epoch = d.epoch
        await self._report(d.revision, d.epoch)
        if d.canary is not None and d.policy is not None:
            verdict = await anyio.to_thread.run_sync(self.rollout.evaluate, self.deployment_name, d)
            if verdict is not None and verdict.action != "hold":
                await self.refresh()  # act on our own change at once

    async def _report(self, revision: int, epoch: int) -> None:
        snapshot = [
            VariantCounters(name, c.version, c.requests, c.errors, dict(c.latency))
            for name, c in self._counters.items()
        ]
        await anyio.to_thread.run_sync(
            lambda: self.rollout.report(
                self.deployment_name,
                worker=self.worker,
                revision=revision,
                epoch=epoch,
                counters=snapshot,
            )
        )

    # -- shadows -------------------------------------------------------------------------

    def shadow(self, event: PredictionEvent, observers: Sequence[PredictionObserver]) -> None:
        """Send ``event``'s inputs to every shadow in the background (never blocks)."""
        table = self.table
        if table is None or not table.shadows:
            return
        loop = asyncio.get_running_loop()
        for served in table.shadows:
            if len(self._shadow_tasks) >= MAX_SHADOWS_IN_FLIGHT:
                self.rollout_metrics.shadow.labels(
                    self.deployment_name, str(served.version), "dropped"
                ).inc()
                continue
            task = loop.create_task(self._run_shadow(served, event, observers))
            self._shadow_tasks.add(task)
            task.add_done_callback(self._shadow_tasks.discard)

    async def _run_shadow(
        self, served: ServedModel, event: PredictionEvent, observers: Sequence[PredictionObserver]
    ) -> None:
        started = time.perf_counter()
        outcome = "ok"
        try:
            _, result = await anyio.to_thread.run_sync(served.predict, event.inputs)
        except Exception as exc:  # a shadow's failure is logged and counted, never seen
            outcome = "error"
            logger.warning("Shadow %s failed on request %s: %s", served.ref, event.request_id, exc)
            return
        finally:
            self.rollout_metrics.shadow.labels(
                self.deployment_name, str(served.version), outcome
            ).inc()
        notify(
            observers,
            replace(
                event,
                version=served.version,
                variant=shadow_variant(served.version),
                predictions=result.labels,
                probabilities=result.probabilities,
                classes=None if served.classes is None else tuple(served.classes.tolist()),
                latency_seconds=time.perf_counter() - started,
            ),
        )


class DeploymentObserver:
    """Stamps the answering variant on each event, passes it on, and feeds the shadows."""

    def __init__(self, runtime: DeploymentRuntime, observers: Sequence[PredictionObserver]):
        self.runtime = runtime
        self.observers = tuple(observers)

    def observe(self, event: PredictionEvent) -> None:
        pick = _current.get()
        variant = event.variant if pick is None else pick.variant.name
        event = replace(event, variant=variant, deployment=self.runtime.deployment_name)
        notify(self.observers, event)
        self.runtime.shadow(event, self.observers)

    def close(self) -> None:
        for observer in self.observers:
            observer.close()


class DeploymentMiddleware:
    """Picks each prediction request's variant, labels the answer, counts the outcome."""

    def __init__(self, app: ASGIApp, runtime: DeploymentRuntime) -> None:
        self.app = app
        self.runtime = runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_prediction_path(scope["path"]):
            await self.app(scope, receive, send)
            return
        table = self.runtime.table
        if table is None:  # not loaded yet: the runtime answers 503 as usual
            await self.app(scope, receive, send)
            return
        key = None
        for name, value in scope["headers"]:
            if name == table.key_header:
                key = value.decode("latin-1")
                break
        pick = table.pick(key)
        token = _current.set(pick)
        header = (VARIANT_HEADER, pick.variant.name.encode("ascii"))
        status = 500
        began = False
        start: Message | None = None
        started = time.perf_counter()

        async def send_labelled(message: Message) -> None:
            nonlocal status, start, began
            if message["type"] == "http.response.start":
                began = True
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
                if status == 200 and _is_json(message):
                    start = message  # held back: the body gets a "variant" field
                    return
                await send(message)
                return
            if start is not None and message["type"] == "http.response.body":
                if message.get("more_body"):  # streamed: leave it alone
                    await send(start)
                    start = None
                    await send(message)
                    return
                body = _with_variant(message.get("body", b""), pick.variant.name)
                start["headers"] = [
                    (k, str(len(body)).encode() if k == b"content-length" else v)
                    for k, v in start["headers"]
                ]
                await send(start)
                start = None
                await send({**message, "body": body})
                return
            await send(message)

        try:
            try:
                await self.app(scope, receive, send_labelled)
            except Exception as exc:
                if began:
                    raise  # the answer had begun: nothing sane left to send
                # Rendered here, not by Starlette's outermost handler, so that even an
                # unexpected 500 says which variant failed.
                await error_response(exc, scope)(scope, receive, send_labelled)
        finally:
            _current.reset(token)
            self.runtime.count(pick, status=status, seconds=time.perf_counter() - started)


def _is_json(message: Message) -> bool:
    for key, value in message.get("headers", ()):
        if key == b"content-type":
            return bool(value.startswith(b"application/json"))
    return False


def _with_variant(body: bytes, variant: str) -> bytes:
    try:
        payload: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body
    if not isinstance(payload, dict):
        return body
    payload["variant"] = variant
    return orjson.dumps(payload)


def deployment_observers(
    runtime: DeploymentRuntime, log: PredictionLog, observers: Sequence[PredictionObserver]
) -> tuple[PredictionObserver, ...]:
    """``observers`` plus this process's prediction log, behind the variant-stamping observer.

    The log is what the A/B and shadow reports and the accuracy guard read.
    """
    inner = tuple(observers) if any(o is log for o in observers) else (*observers, log)
    return (DeploymentObserver(runtime, inner),)


__all__ = [
    "DEFAULT_KEY_HEADER",
    "DeploymentMiddleware",
    "DeploymentObserver",
    "DeploymentRuntime",
    "Pick",
    "Table",
    "deployment_observers",
    "is_prediction_path",
]
