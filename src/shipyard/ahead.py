"""Run an iterator ahead on its own thread; map a function over one on a thread pool.

Used by batch scoring (read and check the next chunk while the model predicts) and by
data snapshots (decode the next batch while this one is hashed).

A snapshot reads a table (Parquet decoding, a SQL fetch: both release the GIL)
and hashes its rows (NumPy, which releases it too): with the reading on a
thread of its own, the next batch is decoded while this one is hashed, so on
two cores the two overlap instead of taking turns.

>>> list(prefetched(iter(range(5))))
[0, 1, 2, 3, 4]
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")
_DONE = object()


class _Failed:
    """What the reader thread raised, to raise again on the consumer's thread."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


def _read_into(items: Iterator[object], ready: queue.Queue[object], stop: threading.Event) -> None:
    """The reader thread: ``items`` into ``ready`` until they end or ``stop`` is set."""

    def put(item: object) -> bool:
        """Hand ``item`` over; False once the consumer has gone."""
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    try:
        for item in items:
            if not put(item):
                return
        put(_DONE)
    except BaseException as exc:  # handed to the consumer, which raises it
        put(_Failed(exc))
    finally:
        close = getattr(items, "close", None)
        if close is not None:
            close()  # a generator's finally blocks (open files) run on this thread


class _Prefetch(Iterator[T]):
    """``items`` read by a thread of its own from the moment this is made. The thread
    holds the queue and the stop flag, not this object, so dropping it stops the thread."""

    def __init__(self, items: Iterator[T], depth: int) -> None:
        self._ready: queue.Queue[object] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._done = False
        self._reader = threading.Thread(
            target=_read_into,
            args=(items, self._ready, self._stop),
            name="shipyard-prefetch",
            daemon=True,
        )
        self._reader.start()

    def __next__(self) -> T:
        if self._done:
            raise StopIteration
        item = self._ready.get()
        if item is _DONE or isinstance(item, _Failed):
            self.close()
            if isinstance(item, _Failed):
                raise item.error
            raise StopIteration
        return item  # type: ignore[return-value]

    def close(self) -> None:
        """Stop the reader at its next item and wait for it to finish."""
        self._done = True
        self._stop.set()
        self._reader.join()

    def __del__(self) -> None:
        self._stop.set()  # a consumer that walked away lets the reader end


def prefetched(items: Iterator[T], depth: int = 2) -> Iterator[T]:
    """``items`` in order, read by a thread up to ``depth`` of them ahead.

    The thread starts reading at once, before the first item is asked for: a
    command can start reading its table while it still opens its store. At most
    ``depth`` items wait in memory. An error in ``items`` is raised here, at the
    position it happened. If the consumer stops early (``close()``, or drops the
    iterator), the reader thread stops at its next item.
    """
    if depth < 1:
        raise ValueError("depth must be at least 1")
    return _Prefetch(items, depth)


def mapped_ahead(
    pool: Executor, fn: Callable[[T], R], items: Iterable[T], ahead: int = 2
) -> Iterator[R]:
    """``fn`` of each item, in order, computed on ``pool`` up to ``ahead`` items ahead
    of the consumer (so at most ``ahead`` results wait in memory).

    >>> from concurrent.futures import ThreadPoolExecutor
    >>> with ThreadPoolExecutor(2) as pool:
    ...     list(mapped_ahead(pool, lambda x: x * x, range(5)))
    [0, 1, 4, 9, 16]
    """
    if ahead < 1:
        raise ValueError("ahead must be at least 1")
    waiting: deque[Future[R]] = deque()
    try:
        for item in items:
            waiting.append(pool.submit(fn, item))
            if len(waiting) > ahead:
                yield waiting.popleft().result()
        while waiting:
            yield waiting.popleft().result()
    finally:
        for future in waiting:
            future.cancel()


__all__ = ["mapped_ahead", "prefetched"]
