"""A clock tests move by hand, for code that takes ``now`` as a parameter."""

from __future__ import annotations

from datetime import datetime, timedelta


class Clock:
    """``clock()`` is now, ``clock.advance(...)`` moves it (``timedelta`` keywords)."""

    def __init__(self, start: datetime) -> None:
        self.value = start

    def __call__(self) -> datetime:
        return self.value

    def advance(self, **delta: float) -> datetime:
        self.value += timedelta(**delta)
        return self.value
