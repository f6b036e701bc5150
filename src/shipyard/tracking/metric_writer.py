"""Metric points written in batches by a background thread, none lost at exit.

``run.log_metric`` only appends a point to a list: a training loop logging a
hundred metrics per step would otherwise wait for one database transaction
per call. A daemon thread writes what piled up every ``interval`` seconds (or
as soon as ``max_pending`` points wait), as one multi-row INSERT per run.

Nothing is lost: :meth:`MetricWriter.flush` writes everything pending and is
called when a run ends (also through an exception leaving its ``with``
block), before anything reads the run back, and at interpreter exit (an
``atexit`` hook, which also runs after an uncaught exception or
``sys.exit``). A write that fails in the background is raised by the next
``log_metric``, ``flush`` or run end, never swallowed.

>>> writer = MetricWriter(store)                     # doctest: +SKIP
>>> writer.add(run_id, Point("loss", 0.3, 1, utc_now()))  # doctest: +SKIP
>>> writer.flush()                                   # doctest: +SKIP
"""

from __future__ import annotations

import atexit
import threading
import weakref
from collections import defaultdict

from shipyard.errors import StoreError
from shipyard.store.run_store import Point, RunStore

__all__ = ["MetricWriter"]


class MetricWriter:
    """Queues metric points per run and writes them from one daemon thread."""

    def __init__(self, store: RunStore, *, interval: float = 0.5, max_pending: int = 20_000):
        self.store = store
        self.interval = interval
        self.max_pending = max_pending
        self._pending: list[tuple[str, Point]] = []
        self._lock = threading.Lock()  # guards _pending
        self._write_lock = threading.Lock()  # one writer at a time keeps points in order
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        # A weak reference: the hook must not keep a closed client's store alive.
        atexit.register(_close_at_exit, weakref.ref(self))

    def add(self, run_id: str, point: Point) -> None:
        self._raise_error()
        with self._lock:
            self._pending.append((run_id, point))
            full = len(self._pending) >= self.max_pending
        self._ensure_thread()
        if full:
            self._wake.set()

    def add_many(self, run_id: str, points: list[Point]) -> None:
        self._raise_error()
        with self._lock:
            self._pending.extend((run_id, p) for p in points)
            full = len(self._pending) >= self.max_pending
        self._ensure_thread()
        if full:
            self._wake.set()

    def flush(self) -> None:
        """Write every point added so far; raise the error of a failed background write."""
        self._drain()
        self._raise_error()

    def close(self) -> None:
        """Flush (at exit nothing is left unwritten) and stop the thread."""
        thread, self._thread = self._thread, None
        self._wake.set()
        if thread is not None:
            thread.join(timeout=5)
        self._drain()

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(
                target=self._loop, name="shipyard-metric-writer", daemon=True
            )
            self._thread.start()

    def _loop(self) -> None:
        me = threading.current_thread()
        while self._thread is me:
            self._wake.wait(self.interval)
            self._wake.clear()
            try:
                self._drain()
            except BaseException as exc:  # kept, and raised in the caller's thread
                self._error = exc

    def _drain(self) -> None:
        with self._write_lock:
            with self._lock:
                batch, self._pending = self._pending, []
            if not batch:
                return
            by_run: dict[str, list[Point]] = defaultdict(list)
            for run_id, point in batch:
                by_run[run_id].append(point)
            for run_id, points in by_run.items():
                self.store.log_points(run_id, points)

    def _raise_error(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            if isinstance(error, StoreError):
                raise error
            raise StoreError(f"Writing metrics in the background failed: {error}") from error


def _close_at_exit(ref: weakref.ref[MetricWriter]) -> None:
    writer = ref()
    if writer is not None:
        writer.close()
