"""Durations and instants as users type them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from shipyard.errors import InvalidInputError
from shipyard.monitoring.durations import floor_time, parse_duration, parse_instant, to_utc

NOW = datetime(2024, 5, 1, 12, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("15m", 900), ("1h", 3600), ("1.5h", 5400), ("7d", 604800), ("2w", 1209600)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "h", "10", "1y", "-1h", "0m", "one hour"])
def test_bad_durations_say_what_is_expected(text: str) -> None:
    with pytest.raises(InvalidInputError, match="duration"):
        parse_duration(text)


def test_instants_are_absolute_or_relative_to_now() -> None:
    assert parse_instant("24h", now=NOW) == NOW - timedelta(hours=24)
    assert parse_instant("2024-05-01T08:00:00Z", now=NOW) == datetime(2024, 5, 1, 8, tzinfo=UTC)
    assert parse_instant("2024-05-01T10:00:00+02:00", now=NOW) == datetime(
        2024, 5, 1, 8, tzinfo=UTC
    )
    assert parse_instant("2024-05-01 08:00", now=NOW) == datetime(2024, 5, 1, 8, tzinfo=UTC)
    assert parse_instant(timedelta(minutes=30), now=NOW) == datetime(2024, 5, 1, 12, tzinfo=UTC)
    with pytest.raises(InvalidInputError, match="ISO timestamp"):
        parse_instant("last tuesday", now=NOW)


def test_naive_times_are_utc_and_aware_ones_are_converted() -> None:
    assert to_utc(datetime(2024, 1, 1)) == datetime(2024, 1, 1, tzinfo=UTC)
    cet = timezone(timedelta(hours=1))
    assert to_utc(datetime(2024, 1, 1, 1, tzinfo=cet)) == datetime(2024, 1, 1, tzinfo=UTC)


def test_buckets_align_to_the_epoch() -> None:
    assert floor_time(NOW, timedelta(hours=1)) == datetime(2024, 5, 1, 12, tzinfo=UTC)
    assert floor_time(NOW, timedelta(days=1)) == datetime(2024, 5, 1, tzinfo=UTC)
    assert floor_time(NOW, timedelta(minutes=15)) == NOW
    assert (
        floor_time(datetime(2024, 5, 1, 12, 44, 59, 999999, tzinfo=UTC), timedelta(minutes=15))
        == NOW
    )
