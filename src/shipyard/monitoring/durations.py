"""Durations and instants as users type them: ``1h``, ``30m``, ``7d``, ``24h`` ago, ISO times.

Every time Shipyard's monitoring stores or compares is an aware UTC
``datetime``; naive input is read as UTC, so a window means the same thing on
every machine.

>>> parse_duration("90m")
datetime.timedelta(seconds=5400)
>>> now = datetime(2024, 5, 1, 12, tzinfo=UTC)
>>> parse_instant("24h", now=now).isoformat()
'2024-04-30T12:00:00+00:00'
>>> parse_instant("2024-04-30T08:00:00", now=now).isoformat()
'2024-04-30T08:00:00+00:00'
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from shipyard.errors import InvalidInputError

__all__ = ["floor_time", "parse_duration", "parse_instant", "to_utc"]

_UNITS = {
    "s": 1,
    "sec": 1,
    "m": 60,
    "min": 60,
    "h": 3600,
    "d": 86400,
    "w": 7 * 86400,
}
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]+)\s*$")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_utc(value: datetime) -> datetime:
    """``value`` in UTC; a naive datetime is taken to be UTC already.

    >>> to_utc(datetime(2024, 1, 1)).tzinfo
    datetime.timezone.utc
    """
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def parse_duration(text: str | timedelta) -> timedelta:
    """``"15m"``, ``"1h"``, ``"7d"``, ``"2w"`` or ``"30s"`` as a positive timedelta.

    >>> parse_duration("1.5h")
    datetime.timedelta(seconds=5400)
    """
    if isinstance(text, timedelta):
        duration = text
    else:
        match = _DURATION_RE.match(str(text).lower())
        if match is None or match.group(2) not in _UNITS:
            raise InvalidInputError(
                f"Cannot read {text!r} as a duration: expected a number and a unit "
                f"(s, m, h, d or w), e.g. '30m', '1h' or '7d'."
            )
        duration = timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])
    if duration <= timedelta(0):
        raise InvalidInputError(f"The duration {text!r} must be positive.")
    return duration


def parse_instant(text: str | datetime | timedelta, *, now: datetime) -> datetime:
    """An absolute time: an ISO timestamp, or a duration meaning that long before ``now``.

    >>> parse_instant("1h", now=datetime(2024, 1, 1, 12, tzinfo=UTC)).hour
    11
    """
    if isinstance(text, datetime):
        return to_utc(text)
    if isinstance(text, timedelta):
        return to_utc(now) - parse_duration(text)
    if _DURATION_RE.match(text.lower()):
        return to_utc(now) - parse_duration(text)
    try:
        return to_utc(datetime.fromisoformat(text.strip().replace("Z", "+00:00")))
    except ValueError as exc:
        raise InvalidInputError(
            f"Cannot read {text!r} as a time: expected an ISO timestamp such as "
            f"'2024-05-01T12:00:00Z' or a duration before now such as '24h'."
        ) from exc


def floor_time(value: datetime, step: timedelta) -> datetime:
    """The start of the ``step``-long bucket holding ``value``, aligned to the Unix epoch.

    Aligning to the epoch makes ``1h`` buckets start on the hour and ``1d``
    buckets at midnight UTC, whatever ``since`` was asked for.

    >>> floor_time(datetime(2024, 1, 1, 12, 34, tzinfo=UTC), timedelta(hours=1)).isoformat()
    '2024-01-01T12:00:00+00:00'
    """
    step_us = step // timedelta(microseconds=1)
    offset_us = (to_utc(value) - _EPOCH) // timedelta(microseconds=1)
    return _EPOCH + timedelta(microseconds=offset_us - offset_us % step_us)
