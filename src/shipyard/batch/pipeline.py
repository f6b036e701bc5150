"""Overlap reading, scoring and writing: one reader thread, one writer thread, small queues.

Decoding Parquet/CSV and encoding the output are done by Arrow's C++ code,
which releases the GIL, so on a machine with two cores they run while the
model predicts the next chunk in the main thread. Queues hold at most
``depth`` chunks each, which keeps memory bounded by a handful of chunks.

Errors cross threads: an exception in the reader comes out of the iterator;
one in the writer comes out of the next :meth:`BackgroundWriter.submit` or of
:meth:`BackgroundWriter.close`. Stopping early (a strict-mode error in the main
thread) makes both threads finish without touching the sinks again.

Example:
    >>> list(prefetch(iter([1, 2, 3])))
    [1, 2, 3]
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import Any, TypeVar

T = TypeVar("T")

_DONE = object()
_POLL_SECONDS = 0.1


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def prefetch(items: Iterable[T], depth: int = 2) -> Iterator[T]:
    """Iterate ``items`` in a background thread, ``depth`` items ahead of the consumer.

    Closing the returned generator early (``break``, an exception in the
    consumer) stops the thread after at most one more item.
    """
    buffer: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                buffer.put(item, timeout=_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def run() -> None:
        iterator = iter(items)
        try:
            for item in iterator:
                if not put(item):
                    break
            else:
                put(_DONE)
        except BaseException as exc:
            put(_Failure(exc))
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()  # lets a generator's finally blocks close its files

    thread = threading.Thread(target=run, name="shipyard-batch-reader", daemon=True)
    thread.start()
    try:
        while True:
            item = buffer.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.exc
            yield item
    finally:
        stop.set()
        thread.join()


class BackgroundWriter:
    """Runs ``write`` calls in order on one background thread (or inline).

    Example:
        >>> seen = []
        >>> with BackgroundWriter() as writer:
        ...     writer.submit(seen.append, 1)
        >>> seen
        [1]
    """

    def __init__(self, depth: int = 2, *, background: bool = True) -> None:
        self.background = background
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._abandoned = threading.Event()
        self._thread: threading.Thread | None = None
        if background:
            self._thread = threading.Thread(
                target=self._run, name="shipyard-batch-writer", daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job is _DONE:
                return
            if self._error is not None or self._abandoned.is_set():
                continue  # drain without writing: the job already failed
            fn, arg = job
            try:
                fn(arg)
            except BaseException as exc:
                self._error = exc

    def _raise_pending(self) -> None:
        if self._error is not None:
            raise self._error

    def submit(self, fn: Callable[[Any], Any], arg: Any) -> None:
        """Queue ``fn(arg)``; blocks while the queue is full; raises a previous failure."""
        self._raise_pending()
        if self._thread is None:
            fn(arg)  # foreground mode: write now, in the caller's thread
            return
        self._queue.put((fn, arg))

    def close(self) -> None:
        """Wait for every queued write; raise the first failure, if any."""
        if self._thread is not None:
            self._queue.put(_DONE)
            self._thread.join()
            self._thread = None
        self._raise_pending()

    def abandon(self) -> None:
        """Drop queued writes and stop; used when the job fails in the main thread."""
        self._abandoned.set()
        if self._thread is not None:
            self._queue.put(_DONE)
            self._thread.join()
            self._thread = None

    def __enter__(self) -> BackgroundWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abandon()
