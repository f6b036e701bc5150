"""Overlap reading, scoring and writing: one reader thread, one writer thread, small queues.

Decoding Parquet/CSV and encoding the output are done by Arrow's C++ code,
which releases the GIL, so on a machine with two cores they run while the
model predicts the next chunk in the main thread. Queues hold at most
``depth`` chunks each, which keeps memory bounded by a handful of chunks.

Errors cross threads: an exception in the reader comes out of the iterator;
one in the writer comes out of the next :meth:`BackgroundWriter.submit` or of
:meth:`BackgroundWriter.close`. Stopping early (a strict-mode error in the main
thread) makes both threads finish without touching the sinks again.

The reader thread is :func:`shipyard.ahead.prefetched`; this module holds the writer.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any

_DONE = object()


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
