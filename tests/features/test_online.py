"""Materialize and read online, on SQLite (embedded) and on PostgreSQL + Redis."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from driver_data import driver_stats, write_definitions

from shipyard.config import Settings
from shipyard.errors import InvalidInputError
from shipyard.features.online import (
    OnlineStoreUnavailable,
    Record,
    RedisOnlineStore,
    SqliteOnlineStore,
    encode_key,
)
from shipyard.features.service import FeatureService

END = datetime(2026, 1, 2, 12, tzinfo=UTC)


@pytest.fixture
def service(feature_settings: Settings, tmp_path: Path) -> FeatureService:
    svc = FeatureService.from_settings(feature_settings)
    svc.stats = driver_stats(n_drivers=6, hours=48)  # type: ignore[attr-defined]
    svc.apply(write_definitions(tmp_path / "repo", svc.stats, ttl="2h"))  # type: ignore[attr-defined]
    yield svc
    svc.close()


def _latest(stats: pd.DataFrame, end: datetime) -> pd.DataFrame:
    upto = stats[stats["event_timestamp"] <= end]
    return upto.sort_values(["event_timestamp", "created"]).groupby("driver_id").tail(1)


def test_materialize_writes_each_keys_latest_row_and_is_idempotent(
    service: FeatureService,
) -> None:
    stats = service.stats  # type: ignore[attr-defined]
    [first] = service.materialize(end=END)
    assert (first.read, first.written) == (6, 6)
    [again] = service.materialize(end=END)
    assert (again.read, again.written) == (6, 0)  # nothing newer: nothing written
    older = service.materialize(end=END - timedelta(hours=5))[0]
    assert older.written == 0  # an older window never overwrites newer values
    latest = _latest(stats, END)
    rows = [{"driver_id": int(d)} for d in latest["driver_id"]] + [{"driver_id": 77}]
    got = service.online("driver_stats", rows, now=END)
    assert got["avg_daily_trips"].tolist()[:6] == latest["avg_daily_trips"].tolist()
    assert got["conv_rate"].tolist()[:6] == latest["conv_rate"].tolist()  # float32 both sides
    assert got.iloc[6].isna()[["conv_rate", "avg_daily_trips"]].all()
    assert service.counters.missing == 1


def test_values_older_than_the_ttl_are_null_online_as_offline(service: FeatureService) -> None:
    stats = service.stats  # type: ignore[attr-defined]
    # Everything materialized: offline, too, no row comes after each driver's latest.
    end = stats["event_timestamp"].max().to_pydatetime()
    service.materialize(end=end)
    latest = _latest(stats, end).iloc[0]
    row = [{"driver_id": int(latest["driver_id"])}]
    at_ttl = latest["event_timestamp"].to_pydatetime() + timedelta(hours=2)
    assert service.online(["driver_stats:acc_rate"], row, now=at_ttl)["acc_rate"].notna().all()
    stale = service.online(["driver_stats:acc_rate"], row, now=at_ttl + timedelta(seconds=1))
    assert stale["acc_rate"].isna().all()
    assert service.counters.stale == 1
    offline = service.training_set(
        pd.DataFrame({**row[0], "event_timestamp": [at_ttl, at_ttl + timedelta(seconds=1)]}),
        ["driver_stats:acc_rate"],
    )
    assert offline["acc_rate"].isna().tolist() == [False, True]


def test_incremental_reads_only_newer_rows(service: FeatureService) -> None:
    [first] = service.materialize(incremental=True, end=END - timedelta(hours=10))
    assert first.start is None and first.read == 6
    [second] = service.materialize(incremental=True, end=END)
    assert second.start == END - timedelta(hours=10)
    assert second.written == 6
    [third] = service.materialize(incremental=True, end=END)
    assert third.read == 0  # no source row after the watermark
    with pytest.raises(InvalidInputError, match="not before"):
        service.materialize(start=END, end=END)


def test_a_missing_key_column_is_named(service: FeatureService) -> None:
    with pytest.raises(InvalidInputError, match="no 'driver_id'"):
        service.online("driver_stats", [{"driver": 1}])


def test_sqlite_store_keys_are_text_so_int_and_str_agree(tmp_path: Path) -> None:
    store = SqliteOnlineStore(tmp_path / "o.db")
    store.write("v", [Record(("1001",), 5.0, None, {"x": 1})])
    assert store.read("v", [("1001",)])[0].values == {"x": 1}  # type: ignore[union-attr]
    store.close()


# Values json writes that a quicker reader could get wrong: NaN and infinities (not JSON),
# integers at and beyond 64 bits, digits in text, the extremes of floats, non-ASCII text.
AWKWARD: list[dict[str, Any]] = [
    {"nan": math.nan, "inf": math.inf, "minus_inf": -math.inf},
    {"int64": 2**63 - 1, "min_int64": -(2**63), "uint64": 2**64 - 1},
    {"beyond": 2**64, "below": -(2**63) - 1, "huge": 10**30, "negative_19": -(10**19) + 1},
    {"digits": "12345678901234567890", "text": 'café \u2028 "quoted"', "none": None},
    {"tiny": 5e-324, "big": 1.7976931348623157e308, "zero": -0.0, "third": 0.1 + 0.2},
    {"large_float": 9.3e18, "flag": True, "small": -5},
]


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and (a == b or (a != a and b != b)) and repr(a) == repr(b)


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_stored_records_read_back_as_json_wrote_them(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Every value comes back as ``json.loads`` of what was written gives it (same type,
    same value), whichever decoder reads it; keys of any text are found again."""
    if backend == "sqlite":
        store: Any = SqliteOnlineStore(tmp_path / "o.db")
    else:
        store = RedisOnlineStore(request.getfixturevalue("redis_online_url"))
    keys = [(str(i), "é" if i % 2 else "1001") for i in range(len(AWKWARD))]
    records = [
        Record(k, 1e9 + i, None, v) for i, (k, v) in enumerate(zip(keys, AWKWARD, strict=True))
    ]
    assert store.write("v", records) == len(records)
    got = store.read("v", [*keys, ("missing", "x")])
    assert got[-1] is None
    for record, back in zip(records, got, strict=False):
        assert back is not None and back.key == record.key
        assert (back.event_ts, back.created_ts) == (record.event_ts, None)
        expected = json.loads(json.dumps(record.values))
        assert list(back.values) == list(expected)
        for name, value in expected.items():
            assert _same(back.values[name], value), (name, back.values[name], value)
    store.close()


def test_a_key_is_the_json_text_of_its_values() -> None:
    for key in [("1001",), (1001,), ("a", 2, 3.5), ("café", "\u2028", '"'), (None, True), ()]:
        assert encode_key(key) == json.dumps([str(v) for v in key], separators=(",", ":"))


def test_redis_down_is_a_clear_unavailable_error() -> None:
    store = RedisOnlineStore("redis://127.0.0.1:1/0")  # nothing listens on port 1
    with pytest.raises(OnlineStoreUnavailable, match=r"cannot be reached.*Check that Redis") as e:
        store.read("v", [("1",)])
    # redis-py's text ends in a period ("... Connection refused."): one, not two.
    assert ".." not in str(e.value), str(e.value)


def test_ping_answers_when_the_store_does_and_says_so_when_not(
    tmp_path: Path, redis_online_url: str
) -> None:
    """``ping`` (a readiness check) passes on a reachable store and raises the same clear
    error a read does on one that is not; no password of the URL is in the message."""
    SqliteOnlineStore(tmp_path / "o.db").ping()
    up = RedisOnlineStore(redis_online_url)
    up.ping()
    up.close()
    down = RedisOnlineStore("redis://reader:s3cret@127.0.0.1:1/0")
    with pytest.raises(OnlineStoreUnavailable, match=r"127\.0\.0\.1:1/0.*cannot be reached") as e:
        down.ping()
    assert "s3cret" not in str(e.value) and "reader" not in str(e.value)
    (tmp_path / "dir.db").mkdir()  # a folder where the SQLite file should be
    with pytest.raises(OnlineStoreUnavailable, match=r"dir\.db"):
        SqliteOnlineStore(tmp_path / "dir.db").ping()


def test_get_online_records_equal_the_dataframe(service: FeatureService) -> None:
    service.materialize(end=END)
    rows = [{"driver_id": 1001}, {"driver_id": 1003}, {"driver_id": 5}]
    records = service.get_online("driver_stats", rows, now=END)
    frame = service.online("driver_stats", rows, now=END)
    for record, (_, row) in zip(records, frame.iterrows(), strict=True):
        for feature in ("acc_rate", "avg_daily_trips"):
            if record[feature] is None:
                assert pd.isna(row[feature])
            else:
                assert record[feature] == row[feature]
    assert records[2]["acc_rate"] is None


def test_groups_of_rows_share_one_read_and_each_equals_its_own_call(
    service: FeatureService,
) -> None:
    """A server's micro-batch: one read per view for all the groups, and each group's
    answer exactly what reading it alone gives (records and DataFrames)."""
    service.materialize(end=END)
    groups = [
        [{"driver_id": 1001}],
        [{"driver_id": 5}, {"driver_id": 1003}],  # an unknown key among known ones
        [{"driver_id": 1001, "note": "x"}],  # a field only this group has
    ]
    store = service.online_store
    reads: list[int] = []
    real_read = store.read

    def counted(view: str, keys: list[tuple[str, ...]]) -> list[object]:
        reads.append(len(keys))
        return real_read(view, keys)

    store.read = counted  # type: ignore[method-assign]
    records = service.get_online_many("driver_stats", groups, now=END)
    frames = service.online_many("driver_stats", groups, now=END)
    assert reads == [4, 4]  # one read per call, for the four rows of the three groups
    for group, got_records, got_frame in zip(groups, records, frames, strict=True):
        assert got_records == service.get_online("driver_stats", group, now=END)
        pd.testing.assert_frame_equal(got_frame, service.online("driver_stats", group, now=END))
    assert list(frames[0].columns) == list(service.online("driver_stats", groups[0]).columns)
    assert "note" in frames[2].columns and "note" not in frames[0].columns
    assert records[1][0]["acc_rate"] is None and records[1][1]["acc_rate"] is not None
