"""One background asyncio task a component starts with its app and stops with it.

The model runtime's poller, the monitor job and the batcher's loop all own
one long-running task: started on the running event loop on first need,
started at most once at a time, and on stop cancelled and awaited so nothing
is left running when the app's lifespan ends.

>>> import asyncio
>>> async def main() -> bool:
...     task = BackgroundTask("shipyard-example")
...     task.start(lambda: asyncio.sleep(3600))
...     running = task.running
...     await task.stop()
...     return running and not task.running
>>> asyncio.run(main())
True
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any

__all__ = ["BackgroundTask"]


class BackgroundTask:
    """A named task: :meth:`start` is idempotent while it runs; :meth:`stop` cancels it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        """Whether the task was started and has not finished (or been stopped)."""
        return self._task is not None and not self._task.done()

    def start(self, run: Callable[[], Coroutine[Any, Any, None]]) -> bool:
        """Start ``run()`` on the running loop unless it already runs; True if started.

        A task that ended by itself (a pinned model loaded, a loop that returned)
        is started again.
        """
        if self.running:
            return False
        self._task = asyncio.get_running_loop().create_task(run(), name=self.name)
        return True

    async def stop(self) -> None:
        """Cancel the task and wait until it has ended; a no-op when it is not running."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
