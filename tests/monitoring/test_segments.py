"""Segment storage and DuckDB reads: windows, partition pruning, retention, S3 through moto."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from monitoring_support import T0, ManualClock, batch_job_rows, record

from shipyard.errors import StoreError
from shipyard.monitoring.feedback import record_feedback
from shipyard.monitoring.performance import performance
from shipyard.monitoring.prediction_log import PredictionLog
from shipyard.monitoring.queries import read_labelled, read_window
from shipyard.monitoring.segments import SegmentStore

DAY1 = datetime(2024, 5, 1, tzinfo=UTC)


def _three_days(log: PredictionLog) -> None:
    rows = []
    for day in range(3):
        for hour in (0, 6, 12, 18):
            when = DAY1 + timedelta(days=day, hours=hour)
            rows.append(record(f"d{day}h{hour}", when, version=1 + day % 2))
    log.write(rows)


def test_a_window_returns_exactly_its_rows(log: PredictionLog, store: SegmentStore) -> None:
    _three_days(log)
    since = DAY1 + timedelta(hours=6)
    until = DAY1 + timedelta(days=1, hours=12)

    frame = read_window(store, "iris", since=since, until=until)

    # since is inclusive, until exclusive, across a day boundary.
    assert frame["request_id"].tolist() == ["d0h6", "d0h12", "d0h18", "d1h0", "d1h6"]
    assert frame["timestamp"].is_monotonic_increasing
    assert str(frame["timestamp"].dt.tz) == "UTC"
    only_v2 = read_window(store, "iris", since=since, until=until, version=2)
    assert only_v2["request_id"].tolist() == ["d1h0", "d1h6"]
    assert "in_x" not in read_window(store, "iris", since=since, until=until, inputs=False)


def test_windows_never_open_files_of_other_days(log: PredictionLog, store: SegmentStore) -> None:
    _three_days(log)
    # A corrupt segment in day 1's partition: any read that opens it fails.
    (Path(store.url) / "predictions/iris/date=2024-05-01/part-corrupt.parquet").write_bytes(
        b"not parquet"
    )
    day2 = read_window(
        store, "iris", since=DAY1 + timedelta(days=1), until=DAY1 + timedelta(days=2)
    )
    assert len(day2) == 4  # pruned: the bad file was never read

    with pytest.raises(StoreError, match=store.url):
        read_window(store, "iris", since=DAY1, until=DAY1 + timedelta(days=2))
    assert len(store.files("predictions", "iris", first=date(2024, 5, 2))) == 2


def test_models_and_versions_with_different_columns_read_together(
    log: PredictionLog, store: SegmentStore
) -> None:
    log.write([record("v1", T0, version=1, inputs={"a": 1.0})])
    log.write([record("v2", T0 + timedelta(seconds=1), version=2, inputs={"a": 2.0, "b": "new"})])
    log.write([record("other", T0, model="churn", inputs={"z": 0})])

    frame = read_window(store, "iris", since=T0, until=T0 + timedelta(minutes=1))
    assert frame["request_id"].tolist() == ["v1", "v2"]
    assert frame["in_a"].tolist() == [1.0, 2.0]
    assert pd.isna(frame["in_b"].iloc[0]) and frame["in_b"].iloc[1] == "new"
    assert "in_z" not in frame
    assert store.models("predictions") == ["churn", "iris"]


def test_an_empty_window_is_an_empty_frame(log: PredictionLog, store: SegmentStore) -> None:
    assert read_window(store, "nobody", since=T0, until=T0 + timedelta(hours=1)).empty
    _three_days(log)
    empty = read_window(store, "iris", since=T0 + timedelta(days=30), until=T0 + timedelta(days=31))
    assert empty.empty and "request_id" in empty
    labelled = read_labelled(store, "iris", since=T0 - timedelta(days=9), until=T0 - timedelta(8))
    assert labelled.empty and {"label", "labelled_at"} <= set(labelled.columns)


def test_prune_deletes_whole_days_past_retention(store: SegmentStore, tmp_path: Path) -> None:
    clock = ManualClock(DAY1 + timedelta(days=2, hours=6))  # 2024-05-03 06:00
    log = PredictionLog(store, retention=timedelta(days=1), clock=clock)
    _three_days(log)
    record_feedback(log, [{"request_id": "d0h0", "label": 0}])  # received 05-03
    clock.set(DAY1 + timedelta(hours=1))
    record_feedback(log, [{"request_id": "d0h6", "label": 0}])  # received 05-01
    clock.set(DAY1 + timedelta(days=2, hours=6))

    removed = log.prune()

    # Cut-off 05-02 06:00: only 05-01 is wholly older; 05-02 keeps its early rows.
    assert sorted((p.kind, p.day.isoformat()) for p in removed) == [
        ("feedback", "2024-05-01"),
        ("predictions", "2024-05-01"),
    ]
    left = read_window(store, "iris", since=DAY1 - timedelta(days=5), until=clock.now())
    assert left["request_id"].str[:2].unique().tolist() == ["d1", "d2"]
    assert [p.day for p in store.partitions("feedback", "iris")] == [date(2024, 5, 3)]
    assert log.prune() == []  # idempotent
    assert log.prune(older_than="1h")[0].day == date(2024, 5, 2)
    log.close()


def test_no_temporary_files_are_left_behind(log: PredictionLog, store: SegmentStore) -> None:
    _three_days(log)
    leftovers = [p for p in Path(store.url).rglob("*") if p.is_file() and "part-" not in p.name]
    assert leftovers == []


def test_s3_round_trip_through_moto(s3_store: SegmentStore, clock: ManualClock) -> None:
    log = PredictionLog(s3_store, flush_interval=0.05, clock=clock)
    proba = {0: 0.8, 1: 0.2}
    log.submit([record(f"r{i}", T0 + timedelta(minutes=i), probabilities=proba) for i in range(6)])
    log.write([record("old", T0 - timedelta(days=40))])
    log.flush(timeout=30)

    files = s3_store.files("predictions", "iris")
    assert all(f.startswith(s3_store.url + "/predictions/iris/date=") for f in files)
    frame = log.read("iris", since=T0, until=T0 + timedelta(hours=1))
    assert frame["request_id"].tolist() == [f"r{i}" for i in range(6)]

    clock.advance(hours=1)
    result = record_feedback(
        log, [{"request_id": "r0", "label": 0}, {"request_id": "zz", "label": 1}]
    )
    assert (result.accepted, result.unknown_ids) == (2, ["zz"])
    labelled = read_labelled(s3_store, "iris", since=T0, until=T0 + timedelta(hours=1))
    assert labelled.set_index("request_id").loc["r0", "label"] == "0"
    report = performance(log, "iris", window="1h", since=T0, until=T0 + timedelta(hours=1))
    assert report.overall.n_labelled == 1 and report.overall.realized["accuracy"] == 1.0

    removed = log.prune(older_than="30d")
    assert [p.day for p in removed] == [date(2024, 3, 22)]
    assert len(s3_store.files("predictions", "iris")) == len(files) - 1
    log.close()


def test_an_unreachable_store_is_a_store_error() -> None:
    store = SegmentStore(
        "s3://bucket/x",
        {
            "key": "k",
            "secret": "s",
            "client_kwargs": {"endpoint_url": "http://127.0.0.1:9"},
            "config_kwargs": {"retries": {"max_attempts": 1}, "connect_timeout": 1},
        },
    )
    with pytest.raises(StoreError, match="s3://bucket/x"):
        store.files("predictions", "iris")


def test_staged_segments_are_published_and_discarded_on_s3(
    s3_store: SegmentStore, clock: ManualClock
) -> None:
    """On S3 publishing a staged segment is a copy and a delete: afterwards only the
    ``part-`` object is listed and read; a discarded job leaves no object."""
    log = PredictionLog(s3_store, clock=clock)

    log.write(batch_job_rows("batch-ok", 30), stage="batch-ok")
    log.write(batch_job_rows("batch-bad", 20), stage="batch-bad")
    window = {"since": T0, "until": T0 + timedelta(minutes=1)}
    assert len(log.read("iris", **window)) == 0
    assert log.settle_job("iris", "batch-bad", publish=False) == 1
    assert log.settle_job("iris", "batch-ok", publish=True) == 1
    frame = log.read("iris", **window)
    assert set(frame["request_id"]) == {"batch-ok"} and len(frame) == 30
    (day,) = s3_store.partitions("predictions", "iris")
    names = [p.rsplit("/", 1)[-1] for p in s3_store.fs.ls(day.path)]
    assert len(names) == 1 and names[0].startswith("part-"), names
    log.close()


def test_a_dead_attempts_staged_rows_are_deleted_on_s3(
    s3_store: SegmentStore, clock: ManualClock
) -> None:
    """Publishing a parallel job on S3 keeps only the attempts it used."""
    log = PredictionLog(s3_store, clock=clock)
    log.write(batch_job_rows("batch-j", 30), stage="batch-j.p00000.dead")
    log.write(batch_job_rows("batch-j", 30), stage="batch-j.p00000.live")
    assert log.settle_job("iris", "batch-j", publish=True, keep={"p00000.live"}) == 2
    frame = log.read("iris", since=T0, until=T0 + timedelta(minutes=1))
    assert len(frame) == 30
    (day,) = s3_store.partitions("predictions", "iris")
    names = [p.rsplit("/", 1)[-1] for p in s3_store.fs.ls(day.path)]
    assert len(names) == 1 and names[0].startswith("part-"), names
    log.close()
