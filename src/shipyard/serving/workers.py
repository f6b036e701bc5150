"""Readiness across worker processes: ``/ready`` says 200 only when every worker is warm.

With ``--workers N`` a load balancer may send the next request to any worker,
so one warm worker is not enough. Each worker drops a marker file named after
its pid into a folder the parent made (``<worker_dir>/ready``) once its model is
loaded and warmed up, and removes it at shutdown; ``/ready`` counts the
markers of processes still alive. A single-process server has no folder and
is ready when its own model is.

Example:
    >>> board = WorkerBoard(None, expected=1)
    >>> board.mark_ready(); board.all_ready()
    (True, '')
"""

from __future__ import annotations

import os
from pathlib import Path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class WorkerBoard:
    """Ready markers shared by the workers of one server."""

    def __init__(self, folder: Path | None, *, expected: int = 1) -> None:
        self.folder = folder
        self.expected = expected
        self._ready = False

    def _marker(self) -> Path:
        assert self.folder is not None
        return self.folder / f"ready-{os.getpid()}"

    def mark_ready(self) -> None:
        self._ready = True
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._marker().touch()

    def mark_gone(self) -> None:
        self._ready = False
        if self.folder is not None:
            self._marker().unlink(missing_ok=True)

    def all_ready(self) -> tuple[bool, str]:
        """Whether every expected worker is warm, and if not, how many are."""
        if not self._ready:
            return False, "this worker has not loaded its model yet"
        if self.folder is None:
            return True, ""
        warm = 0
        for marker in self.folder.glob("ready-*"):
            pid = marker.name.removeprefix("ready-")
            if pid.isdigit() and _alive(int(pid)):
                warm += 1
        if warm < self.expected:
            return False, f"{warm} of {self.expected} workers are warm"
        return True, ""
