"""The uvicorn server every Shipyard server process runs: a drain answers SIGTERM.

Its own module so that the single-process runner (:mod:`.server`) and the
pre-fork workers (:mod:`.prefork`) share it without importing each other.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Generator

import uvicorn

__all__ = ["DrainingServer"]


class DrainingServer(uvicorn.Server):
    """A uvicorn server whose SIGTERM/SIGINT drain ends in a clean exit (status 0).

    Stock uvicorn re-raises the signal after its graceful shutdown, so the process
    dies "killed by SIGTERM" even though it drained every request. Here the drain
    is the whole answer to the signal.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        handled = (signal.SIGINT, signal.SIGTERM)
        original = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)
