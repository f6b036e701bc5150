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


def prefetched(items: Iterator[T], depth: int = 2) -> Iterator[T]:
    """Yield ``items`` in order while a thread reads up to ``depth`` of them ahead.

    At most ``depth`` items wait in memory. An error in ``items`` is raised here,
    at the position it happened. If the consumer stops early (an error of its own,
    or ``close()``), the reader thread stops at its next item.
    """
    if depth < 1:
        raise ValueError("depth must be at least 1")
    ready: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        """Hand ``item`` over; False once the consumer has gone."""
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
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

    reader = threading.Thread(target=read, name="shipyard-prefetch", daemon=True)
    reader.start()
    try:
        while True:
            item = ready.get()
            if item is _DONE:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        reader.join()


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
