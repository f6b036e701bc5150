"""Compaction: fewer files, the same rows, never a row lost or counted twice."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import pyarrow.parquet as pq
from monitoring_support import T0, ManualClock, record

from shipyard.monitoring.compaction import COMPACTED, compact, compact_partition
from shipyard.monitoring.feedback import record_feedback
from shipyard.monitoring.performance import performance
from shipyard.monitoring.prediction_log import PredictionLog
from shipyard.monitoring.queries import read_labelled, read_window
from shipyard.monitoring.segments import SegmentStore

HOUR = timedelta(hours=1)


def _many_segments(log: PredictionLog, clock: ManualClock) -> None:
    # Ten flushes on day one, three on day two, and labels in two calls.
    for i in range(10):
        log.write([record(f"a{i}-{j}", T0 + timedelta(minutes=i, seconds=j)) for j in range(5)])
    for i in range(3):
        log.write([record(f"b{i}", T0 + timedelta(days=1, minutes=i))])
    record_feedback(log, [{"request_id": "a0-0", "label": 0}])
    clock.advance(minutes=1)
    record_feedback(log, [{"request_id": "a0-0", "label": 1}, {"request_id": "a1-1", "label": 0}])


def _everything(store: SegmentStore) -> list[str]:
    frame = read_window(store, "iris", since=T0 - HOUR, until=T0 + timedelta(days=2))
    return frame["request_id"].tolist()


def test_compaction_merges_each_day_into_one_sorted_file(
    log: PredictionLog, store: SegmentStore, clock: ManualClock
) -> None:
    _many_segments(log, clock)
    before = _everything(store)
    labelled_before = read_labelled(store, "iris", since=T0, until=T0 + HOUR)

    done = log.compact()

    summary = sorted((c.kind, c.day.isoformat(), c.files, c.rows) for c in done)
    assert summary == [
        ("feedback", "2024-05-01", 2, 3),
        ("predictions", "2024-05-01", 10, 50),
        ("predictions", "2024-05-02", 3, 3),
    ]
    files = store.files("predictions", "iris")
    assert len(files) == 2 and all(COMPACTED in f for f in files)
    assert _everything(store) == before
    merged = pq.read_table(files[0])
    stamps = merged.column("timestamp").to_pylist()
    assert stamps == sorted(stamps) and "date" not in merged.column_names
    labelled = read_labelled(store, "iris", since=T0, until=T0 + HOUR)
    assert labelled["label"].tolist() == labelled_before["label"].tolist()
    assert labelled.set_index("request_id").loc["a0-0", "label"] == "1"  # newest still wins
    assert log.compact() == []  # one file per partition: nothing to do


def test_rows_seen_twice_during_a_race_are_counted_once(
    log: PredictionLog, store: SegmentStore, clock: ManualClock
) -> None:
    _many_segments(log, clock)
    before = _everything(store)
    day_one = Path(store.files("predictions", "iris")[0]).parent
    sources = sorted(day_one.glob("part-*.parquet"))
    keep = Path(store.url) / "kept"
    keep.mkdir()
    for source in sources[:4]:
        shutil.copy(source, keep / source.name)

    compact_partition(store, "predictions", "iris", T0.date())
    # A reader listing between publish and delete sees the merged file *and* sources;
    # a second compactor racing the first publishes a second merged copy.
    for copy in keep.iterdir():
        shutil.copy(copy, day_one / copy.name)
    (merged,) = day_one.glob(f"part-*{COMPACTED}*")
    shutil.copy(merged, day_one / merged.name.replace(COMPACTED, f"{COMPACTED}x"))

    assert _everything(store) == before
    report = performance(log, "iris", window="1d", since=T0, until=T0 + HOUR)
    assert report.overall.n_predictions == 50 and report.overall.n_labelled == 2

    (again,) = [c for c in compact(store) if c.kind == "predictions" and c.day == T0.date()]
    assert again.files == 6 and again.rows == 50  # the duplicates are gone for good
    assert _everything(store) == before


def test_compaction_works_on_s3(s3_store: SegmentStore, clock: ManualClock) -> None:
    log = PredictionLog(s3_store, clock=clock)
    for i in range(4):
        log.write([record(f"r{i}", T0 + timedelta(minutes=i))])
    (done,) = log.compact()
    assert (done.files, done.rows) == (4, 4) and done.merged.startswith(s3_store.url)
    assert s3_store.files("predictions", "iris") == [done.merged]
    assert read_window(s3_store, "iris", since=T0, until=T0 + HOUR)["request_id"].tolist() == [
        f"r{i}" for i in range(4)
    ]
    log.close()
