"""Adaptive micro-batching: concurrent requests for one model share one ``predict`` call.

Per-call overhead (thread hop, input checks inside the estimator, tree
traversal setup) dominates the cost of scoring one iris row; scoring 64 rows
costs little more than scoring one. The :class:`Batcher` keeps a FIFO of
validated requests and one loop that runs the model on as many queued rows
as fit in ``max_batch_size``, in a worker thread so the event loop keeps
accepting requests meanwhile. Batches form by themselves under load: while
one batch runs, the next requests queue up, and they leave together. When the
model is idle and nobody is queued, a request skips the queue and runs at
once in its own task (no queue, no loop wake-up: at one client at a time the
batcher costs next to nothing); only when recent batches held several requests does a
batch wait up to ``max_wait_ms`` for more company. A compiled (ONNX) model measured to answer a
batch in under ``INLINE_SECONDS`` runs on the event loop itself: for it the
thread hop costs more than the model.

Guarantees:

- a batch never holds more than ``max_batch_size`` rows (a single request
  larger than that is not merged: :meth:`Batcher.accepts` says so and the
  caller predicts it alone);
- answers are split back in queue order, by row offsets, so each request gets
  exactly its own rows' predictions; a batch only mixes requests for the same
  loaded version (a hot swap starts a new batch);
- if the model rejects a merged batch (a row it cannot score), each request is
  retried alone, so one bad request cannot fail its neighbours;
- more than ``max_queue_size`` queued rows answer 503 with ``Retry-After``
  (:class:`OverloadedError`) instead of letting latency grow without bound;
- a request still queued past its deadline answers 504 without being run.

Exported: ``shipyard_batch_queue_rows`` (gauge), ``shipyard_batch_queue_wait_seconds``
and ``shipyard_batch_rows`` (histograms).

Example:
    >>> batcher = Batcher(BatchSettings(max_batch_size=32), metrics=None)   # doctest: +SKIP
    >>> deadline = batcher.clock.monotonic() + 5                             # doctest: +SKIP
    >>> prediction = await batcher.submit(served, X, deadline=deadline)       # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import anyio
import numpy as np
import pandas as pd
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from shipyard.background import BackgroundTask
from shipyard.clock import SYSTEM_CLOCK, Clock
from shipyard.errors import ConfigError, SchemaError
from shipyard.registry.signature import ColumnBatch
from shipyard.serving.errors import ModelNotReadyError, RequestTimeoutError
from shipyard.serving.runtime import SCORING_ERRORS, Prediction, ServedModel

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
WAIT_BUCKETS = (0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0)
# A compiled model whose batch calls take less than this runs on the event loop.
INLINE_SECONDS = 0.001


class OverloadedError(ModelNotReadyError):
    """The batch queue is full: answered 503 with ``Retry-After`` (try again shortly)."""


class DeadlineExceededError(RequestTimeoutError):
    """A request waited in the batch queue past its deadline (504)."""


@dataclass(frozen=True)
class BatchSettings:
    """Knobs of the batcher.

    ``max_batch_size``: rows per model call, never exceeded. ``max_wait_ms``: how
    long a batch may wait for more requests when load is high (never at low
    load). ``max_queue_size``: queued rows beyond which requests answer 503.

    >>> BatchSettings(max_batch_size=16).max_batch_size
    16
    """

    max_batch_size: int = 64
    max_wait_ms: float = 2.0
    max_queue_size: int = 1024

    def __post_init__(self) -> None:
        if self.max_batch_size < 1:
            raise ConfigError(f"max_batch_size must be at least 1 row, got {self.max_batch_size}.")
        if self.max_wait_ms < 0:
            raise ConfigError(f"max_wait_ms must be >= 0, got {self.max_wait_ms}.")
        if self.max_queue_size < self.max_batch_size:
            raise ConfigError(
                f"max_queue_size ({self.max_queue_size}) must be at least max_batch_size "
                f"({self.max_batch_size}) rows."
            )


class BatchMetrics:
    """The batcher's Prometheus series, registered in the app's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.queue_rows = Gauge(
            "shipyard_batch_queue_rows",
            "Rows waiting in the batch queue right now.",
            ["model"],
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.queue_wait = Histogram(
            "shipyard_batch_queue_wait_seconds",
            "Time a request waited in the batch queue before its batch started.",
            ["model"],
            buckets=WAIT_BUCKETS,
            registry=registry,
        )
        self.batch_rows = Histogram(
            "shipyard_batch_rows",
            "Rows per model call made by the batcher.",
            ["model"],
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self.rejected = Counter(
            "shipyard_batch_rejected",
            "Requests refused with 503 because the batch queue was full.",
            ["model"],
            registry=registry,
        )


class _Item:
    __slots__ = ("X", "deadline", "enqueued", "future", "rows", "served")

    def __init__(
        self,
        served: ServedModel,
        X: Any,
        rows: int,
        future: asyncio.Future[Prediction],
        deadline: float,
        enqueued: float,
    ) -> None:
        self.served = served
        self.X = X
        self.rows = rows
        self.future = future
        self.enqueued = enqueued
        self.deadline = deadline


def _timed(served: ServedModel, X: Any, clock: Clock) -> tuple[Prediction, float]:
    start = clock.monotonic()
    result = served.score(X)
    return result, clock.monotonic() - start


def _concat(parts: list[Any]) -> Any:
    if len(parts) == 1:
        return parts[0]
    if isinstance(parts[0], np.ndarray):
        return np.concatenate(parts, axis=0)
    if isinstance(parts[0], ColumnBatch):
        return ColumnBatch.concat(parts)
    # No copy= (pandas 3 copies lazily anyway): its deprecation warning, raised as an error
    # while another thread checks a model under warnings.simplefilter("error") (the
    # filters are per process), stopped the batch loop.
    return pd.concat(parts, axis=0, ignore_index=True)


def _slice(result: Prediction, start: int, stop: int) -> Prediction:
    proba = None if result.probabilities is None else result.probabilities[start:stop]
    return Prediction(result.labels[start:stop], proba)


class Batcher:
    """Gathers queued requests into model calls; one loop per app, started on first use.

    ``clock`` times queue waits, deadlines and model calls (deadlines passed to
    :meth:`submit` are on its ``monotonic`` timer); tests inject a manual one.
    """

    def __init__(
        self,
        settings: BatchSettings,
        *,
        metrics: BatchMetrics | None,
        model: str = "",
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.model = model
        self.clock = clock
        self._queue: collections.deque[_Item] = collections.deque()
        self._queued_rows = 0
        self._wake: asyncio.Event | None = None
        self._task = BackgroundTask(f"shipyard-batcher-{model}")
        # A model call (a batch, or a request that skipped the idle queue) is running.
        self._busy = False
        # Exponential average of requests per batch: the "is there load?" signal
        # that decides whether a batch waits for company.
        self._load = 1.0
        # (model, seconds per batch call), measured: decides thread or event loop.
        self._cost: tuple[ServedModel, float] | None = None
        if metrics is not None:
            self._m_queue = metrics.queue_rows.labels(model)
            self._m_wait = metrics.queue_wait.labels(model)
            self._m_rows = metrics.batch_rows.labels(model)
            self._m_rejected = metrics.rejected.labels(model)

    def accepts(self, rows: int) -> bool:
        """Whether a request of ``rows`` rows may be merged (it fits in one batch)."""
        return 0 < rows <= self.settings.max_batch_size

    @property
    def queued_rows(self) -> int:
        return self._queued_rows

    async def submit(self, served: ServedModel, X: Any, *, deadline: float) -> Prediction:
        """Queue validated ``X`` (``len(X)`` rows) and wait for its own predictions.

        ``deadline`` is on the batcher's ``clock.monotonic()`` timer. Raises
        :class:`OverloadedError` at once when the queue is full.
        """
        rows = len(X)
        if self._queued_rows + rows > self.settings.max_queue_size:
            if self.metrics is not None:
                self._m_rejected.inc()
            raise OverloadedError(
                f"The batch queue for {served.ref} is full ({self._queued_rows} rows waiting, "
                f"limit {self.settings.max_queue_size}). Retry after a second, or add workers."
            )
        if not self._busy and not self._queue and not self._runs_inline(served):
            return await self._run_now(served, X, rows)
        if not self._task.running:
            self._wake = asyncio.Event()
            self._task.start(self._loop)
        future: asyncio.Future[Prediction] = asyncio.get_running_loop().create_future()
        self._queue.append(_Item(served, X, rows, future, deadline, self.clock.monotonic()))
        self._add_rows(rows)
        assert self._wake is not None
        self._wake.set()
        return await future

    async def close(self) -> None:
        """Stop the loop; requests still queued get a 503."""
        await self._task.stop()
        while self._queue:
            item = self._queue.popleft()
            if not item.future.done():
                item.future.set_exception(OverloadedError("The server is shutting down."))
        self._add_rows(-self._queued_rows)

    # -- the loop ---------------------------------------------------------------------

    def _add_rows(self, rows: int) -> None:
        self._queued_rows += rows
        if self.metrics is not None:
            self._m_queue.set(self._queued_rows)

    async def _loop(self) -> None:
        assert self._wake is not None
        while True:
            if not self._queue or self._busy:  # a request that skipped the queue wakes us
                self._wake.clear()
                await self._wake.wait()
                continue
            self._busy = True
            try:
                batch = self._take()
                if batch and self._load > 1.5 and self.settings.max_wait_ms > 0:
                    batch = await self._wait_for_company(batch)
                if batch:
                    await self._run(batch)
            finally:
                self._busy = False

    async def _run_now(self, served: ServedModel, X: Any, rows: int) -> Prediction:
        """Score one request at once, in a thread: the model is idle and nobody is queued.

        Requests arriving meanwhile queue up and leave together once this call ends.
        (An inline model always queues: its batches form among the requests parsed
        in one turn of the event loop, and there is no thread hop to save.)
        """
        self._busy = True
        self._record(requests=1, rows=rows, waits=(0.0,))
        try:
            result, seconds = await anyio.to_thread.run_sync(
                _timed, served, X, self.clock, abandon_on_cancel=True
            )
        except SCORING_ERRORS as exc:
            raise served._unscorable(X, exc) from exc
        finally:
            self._busy = False
            if self._queue and self._wake is not None:
                self._wake.set()
        self._note_cost(served, seconds)
        _check_length(served, result, rows)
        return result

    def _record(self, *, requests: int, rows: int, waits: Iterable[float]) -> None:
        """One model call of ``requests`` requests: the load signal and the histograms."""
        self._load = 0.8 * self._load + 0.2 * requests
        if self.metrics is not None:
            self._m_rows.observe(rows)
            for wait in waits:
                self._m_wait.observe(wait)

    def _take(self, batch: list[_Item] | None = None) -> list[_Item]:
        """Pop queued requests of one version while their rows fit in a batch."""
        batch = batch if batch is not None else []
        rows = sum(item.rows for item in batch)
        now = self.clock.monotonic()
        while self._queue:
            item = self._queue[0]
            if item.future.done():  # the client gave up (timeout, disconnect)
                self._queue.popleft()
                self._add_rows(-item.rows)
                continue
            if item.deadline <= now:
                self._queue.popleft()
                self._add_rows(-item.rows)
                item.future.set_exception(
                    DeadlineExceededError(
                        f"The request waited {now - item.enqueued:.3f} s in the batch queue, "
                        "past its deadline. The server is overloaded; retry later."
                    )
                )
                continue
            if batch and (
                item.served is not batch[0].served
                or rows + item.rows > self.settings.max_batch_size
            ):
                break
            self._queue.popleft()
            self._add_rows(-item.rows)
            batch.append(item)
            rows += item.rows
        return batch

    async def _wait_for_company(self, batch: list[_Item]) -> list[_Item]:
        assert self._wake is not None
        until = self.clock.monotonic() + self.settings.max_wait_ms / 1000
        while sum(item.rows for item in batch) < self.settings.max_batch_size:
            remaining = until - self.clock.monotonic()
            if remaining <= 0:
                break
            self._wake.clear()
            timed_out = False
            try:
                await asyncio.wait_for(self._wake.wait(), remaining)
            except TimeoutError:
                # The wait itself is real time: once it ran out, the window is over,
                # whatever an injected clock says (a manual one may never move).
                timed_out = True
            before = len(batch)
            batch = self._take(batch)
            if timed_out or (len(batch) == before and self._queue):
                break  # out of time, or the next request is another version / does not fit
        return batch

    async def _run(self, batch: list[_Item]) -> None:
        started = self.clock.monotonic()
        rows = sum(item.rows for item in batch)
        self._record(
            requests=len(batch), rows=rows, waits=(started - item.enqueued for item in batch)
        )
        served = batch[0].served
        X = _concat([item.X for item in batch])
        call: asyncio.Future[tuple[Prediction, float]]
        if self._runs_inline(served):
            # A compiled graph that answers in well under a millisecond: the hop to a
            # thread (and the GIL hand-back) would cost more than the model itself.
            call = asyncio.get_running_loop().create_future()
            try:
                call.set_result(_timed(served, X, self.clock))
            except Exception as exc:
                call.set_exception(exc)
        else:
            call = asyncio.ensure_future(
                anyio.to_thread.run_sync(_timed, served, X, self.clock, abandon_on_cancel=True)
            )
            if not await self._finished_or_abandoned(call, batch):
                return
        try:
            result, seconds = call.result()
            self._note_cost(served, seconds)
        except (SchemaError, *SCORING_ERRORS):
            # One request's rows broke the merged call (or gave no finite answer):
            # score each alone so every request gets its own answer or its own 422.
            for item in batch:
                await self._run_alone(item)
            return
        except Exception as exc:  # anything else fails the whole batch, loudly
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(exc)
            return
        try:
            _check_length(served, result, rows)
        except RuntimeError as error:
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(error)
            return
        offset = 0
        for item in batch:
            if not item.future.done():
                item.future.set_result(_slice(result, offset, offset + item.rows))
            offset += item.rows

    def _runs_inline(self, served: ServedModel) -> bool:
        """Whether a batch for ``served`` runs on the event loop instead of a thread.

        Only compiled (ONNX) predictors qualify, whose cost per call is bounded and
        steady, and only once their calls were measured below ``INLINE_SECONDS``.
        Arbitrary Python models always run in a thread: one slow call must never
        stall the loop that answers health checks and timeouts.
        """
        cost = self._cost
        return (
            cost is not None
            and cost[0] is served
            and cost[1] < INLINE_SECONDS
            # Not "has predict_both": scikit-learn classifiers have it too.
            and served.runtime == "onnxruntime"
        )

    def _note_cost(self, served: ServedModel, seconds: float) -> None:
        cost = self._cost
        if cost is None or cost[0] is not served:
            self._cost = (served, seconds)
        else:  # a slow outlier moves the average fast; back inline only once it settles
            self._cost = (served, max(seconds, 0.7 * cost[1] + 0.3 * seconds))

    @staticmethod
    async def _finished_or_abandoned(call: asyncio.Future[Any], batch: list[_Item]) -> bool:
        """Wait for the model call, unless every request of the batch gives up first.

        A request that times out answers 504 at once; when all of a batch's requests
        have, the queue moves on and the call finishes in the background (as the
        unbatched path does), so one slow batch cannot hold up the requests behind it.
        """
        futures = [item.future for item in batch]
        while not call.done():
            waiting = [f for f in futures if not f.done()]
            if not waiting:
                call.add_done_callback(_swallow)
                return False
            await asyncio.wait([call, *waiting], return_when=asyncio.FIRST_COMPLETED)
        return True

    async def _run_alone(self, item: _Item) -> None:
        try:
            result = await anyio.to_thread.run_sync(item.served.score_checked, item.X)
        except Exception as exc:
            if not item.future.done():
                item.future.set_exception(exc)
            return
        if not item.future.done():
            item.future.set_result(result)


def _check_length(served: ServedModel, result: Prediction, rows: int) -> None:
    if len(result.labels) != rows:
        raise RuntimeError(
            f"{served.ref} returned {len(result.labels)} predictions for {rows} rows."
        )


def _swallow(call: asyncio.Future[Any]) -> None:
    """Retrieve an abandoned call's outcome so asyncio does not log it as unhandled."""
    if not call.cancelled():
        call.exception()


__all__ = [
    "BatchMetrics",
    "BatchSettings",
    "Batcher",
    "DeadlineExceededError",
    "OverloadedError",
]
