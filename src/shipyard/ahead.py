"""Run an iterator ahead on its own thread.

Used by batch scoring (read and check the next chunk while the model predicts) and by
data snapshots (decode the next batch while this one is hashed, see
:mod:`shipyard.data.reading`).

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
from collections.abc import Iterator
from typing import TypeVar

T = TypeVar("T")
_DONE = object()


class _Failed:
    """What the reader thread raised, to raise again on the consumer's thread."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


class ReadAhead(Iterator[T]):
    """``items`` read on a thread of their own from the moment this is made, up to
    ``depth`` ahead of the consumer; iterate it, and :meth:`close` it when done.

    Unlike :func:`prefetched` the reading starts before the first item is asked for:
    a snapshot starts reading its table while the command is still opening the store.
    At most ``depth`` items wait in memory. An error in ``items`` is raised by
    ``next()`` at the position it happened. :meth:`close` stops the reader thread at
    its next item and runs ``items``' own clean-up (an open file) on that thread.

    >>> with ReadAhead(iter(range(3))) as ahead:
    ...     list(ahead)
    [0, 1, 2]
    """

    def __init__(self, items: Iterator[T], depth: int = 2) -> None:
        if depth < 1:
            raise ValueError("depth must be at least 1")
        self._items = items
        self._ready: queue.Queue[object] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._finished = False
        self._reader = threading.Thread(target=self._read, name="shipyard-prefetch", daemon=True)
        self._reader.start()

    def _put(self, item: object) -> bool:
        """Hand ``item`` over; False once the consumer has gone."""
        while not self._stop.is_set():
            try:
                self._ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _read(self) -> None:
        try:
            for item in self._items:
                if not self._put(item):
                    return
            self._put(_DONE)
        except BaseException as exc:  # handed to the consumer, which raises it
            self._put(_Failed(exc))
        finally:
            close = getattr(self._items, "close", None)
            if close is not None:
                close()  # a generator's finally blocks (open files) run on this thread

    def __next__(self) -> T:
        if self._finished:
            raise StopIteration
        item = self._ready.get()
        if item is _DONE:
            self._finished = True
            raise StopIteration
        if isinstance(item, _Failed):
            self._finished = True
            raise item.error
        return item  # type: ignore[return-value]

    def close(self) -> None:
        self._finished = True
        self._stop.set()
        self._reader.join()

    def __enter__(self) -> ReadAhead[T]:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def prefetched(items: Iterator[T], depth: int = 2) -> Iterator[T]:
    """Yield ``items`` in order while a thread reads up to ``depth`` of them ahead
    (from the first ``next()`` on).

    At most ``depth`` items wait in memory. An error in ``items`` is raised here,
    at the position it happened. If the consumer stops early (an error of its own,
    or ``close()``), the reader thread stops at its next item.
    """
    if depth < 1:
        raise ValueError("depth must be at least 1")
    with ReadAhead(items, depth) as ahead:
        yield from ahead


__all__ = ["ReadAhead", "prefetched"]
