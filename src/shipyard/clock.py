"""Time, from one place: the :class:`Clock` every time-dependent part of Shipyard takes.

Code that records or decides on time takes ``clock: Clock`` (default
:data:`SYSTEM_CLOCK`) rather than calling ``datetime.now`` or ``time.monotonic``
itself, so a test moves time by hand instead of sleeping. A clock has two
readings: ``now()``, the wall time as an aware UTC ``datetime`` (what is stored
and shown), and ``monotonic()``, seconds on a timer that never goes back (what
deadlines and durations are measured on).

>>> clock = ManualClock(datetime(2024, 5, 1, 12, tzinfo=UTC))
>>> start = clock.monotonic()
>>> clock.advance(minutes=90).isoformat()
'2024-05-01T13:30:00+00:00'
>>> clock.monotonic() - start
5400.0
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Protocol

from shipyard.errors import InvalidInputError

__all__ = ["SYSTEM_CLOCK", "Clock", "ManualClock", "SystemClock", "utc_now"]


def utc_now() -> datetime:
    """The current wall time as an aware UTC datetime (the system clock's ``now``)."""
    return datetime.now(UTC)


class Clock(Protocol):
    """A source of time: wall time for records, a monotonic timer for intervals."""

    def now(self) -> datetime:
        """The wall time, an aware UTC datetime."""
        ...

    def monotonic(self) -> float:
        """Seconds on a timer that never goes back; only differences mean anything."""
        ...


class SystemClock:
    """The machine's clocks: ``datetime.now(UTC)`` and ``time.monotonic()``."""

    def now(self) -> datetime:
        return utc_now()

    def monotonic(self) -> float:
        return time.monotonic()

    def __repr__(self) -> str:
        return "SystemClock()"


SYSTEM_CLOCK: Clock = SystemClock()
"""The default clock of every component that takes ``clock=``."""


class ManualClock:
    """A clock that only moves when told to: for tests and replays.

    ``advance`` moves both readings together; ``set`` moves the wall time only
    (a wall clock may jump, a monotonic timer never goes back).

    >>> clock = ManualClock(datetime(2024, 1, 1, tzinfo=UTC))
    >>> clock.set(datetime(2024, 1, 2, tzinfo=UTC)).day
    2
    """

    def __init__(self, start: datetime | None = None, *, monotonic: float = 0.0) -> None:
        start = start if start is not None else datetime(2024, 1, 1, tzinfo=UTC)
        if start.tzinfo is None:
            raise InvalidInputError(f"ManualClock needs an aware start time, got naive {start}.")
        self._now = start.astimezone(UTC)
        self._monotonic = monotonic

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._monotonic

    def advance(self, seconds: float = 0.0, **delta: float) -> datetime:
        """Move time forward by ``seconds`` plus any ``timedelta`` keywords; returns now."""
        step = timedelta(seconds=seconds, **delta)
        if step < timedelta(0):
            raise InvalidInputError(f"A clock only moves forward; got a step of {step}.")
        self._now += step
        self._monotonic += step.total_seconds()
        return self._now

    def set(self, when: datetime) -> datetime:
        """Jump the wall time to ``when`` (aware); the monotonic timer stays put."""
        if when.tzinfo is None:
            raise InvalidInputError(f"ManualClock.set needs an aware datetime, got naive {when}.")
        self._now = when.astimezone(UTC)
        return self._now

    def __repr__(self) -> str:
        return f"ManualClock({self._now.isoformat()}, monotonic={self._monotonic})"
