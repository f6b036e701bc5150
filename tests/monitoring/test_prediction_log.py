"""The prediction log's writer: real threads, real processes, real Parquet files, real DuckDB."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from monitoring_support import T0, ManualClock, batch_job_rows, record

from shipyard.config import Settings
from shipyard.errors import InvalidInputError, StoreError
from shipyard.monitoring.prediction_log import PredictionLog, open_prediction_log
from shipyard.monitoring.records import PredictionBatch, PredictionRecord
from shipyard.monitoring.segments import SegmentStore


def _segments(root: Path) -> list[Path]:
    return sorted(root.rglob("part-*.parquet"))


def test_submitted_rows_are_written_with_every_column(log: PredictionLog) -> None:
    accepted = log.submit(
        [
            record(
                "a",
                T0,
                prediction="setosa",
                probabilities={"setosa": 0.9, "versicolor": 0.1},
                inputs={"sepal_length": 5.1, "colour": "red"},
            ),
            record("b", T0 + timedelta(seconds=1), prediction="versicolor", inputs={"x": 2}),
        ]
    )
    assert accepted == 2
    assert log.flush(timeout=10)

    frame = log.read("iris", since=T0, until=T0 + timedelta(minutes=1))
    assert frame["request_id"].tolist() == ["a", "b"]
    first = frame.iloc[0]
    assert first["timestamp"] == pd.Timestamp(T0)
    assert (first["model"], first["version"], first["variant"], first["source"]) == (
        "iris",
        1,
        "primary",
        "online",
    )
    assert first["in_sepal_length"] == 5.1 and first["in_colour"] == "red"
    assert first["proba_setosa"] == 0.9 and first["proba_versicolor"] == 0.1
    assert first["latency_seconds"] == 0.001
    # Columns a row did not have are null, not an error (union by name).
    assert pd.isna(frame.iloc[1]["in_sepal_length"]) and frame.iloc[1]["in_x"] == 2
    stats = log.stats()
    assert (stats.accepted_total, stats.written_total, stats.dropped_total) == (2, 2, 0)


def test_observe_takes_a_whole_request_column_wise(log: PredictionLog) -> None:
    # The serving observer seam: one event, three rows, numbered within the request.
    event = PredictionBatch(
        request_id="req-1",
        timestamp=T0.timestamp(),
        model="iris",
        version=4,
        inputs=pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": ["x", "y", "z"]}),
        predictions=np.array([0, 2, 1]),
        probabilities=np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.2, 0.5, 0.3]]),
        classes=(0, 1, 2),
        latency_seconds=0.004,
        variant="canary",
        source="online",
    )
    as_array = PredictionBatch(
        request_id="req-2",
        timestamp=T0 + timedelta(seconds=1),
        model="iris",
        version=4,
        inputs=np.array([[5.0, 6.0]]),
        predictions=np.array([1]),
    )
    log.observe(event)
    log.observe(as_array)
    log.flush(timeout=10)

    frame = log.read("iris", since=T0, until=T0 + timedelta(minutes=1))
    assert frame["request_id"].tolist() == ["req-1"] * 3 + ["req-2"]
    assert frame["row"].tolist() == [0, 1, 2, 0]
    assert frame["prediction"].tolist() == [0, 2, 1, 1]
    assert frame["variant"].tolist()[:3] == ["canary"] * 3
    assert frame["proba_2"].tolist()[:3] == [0.1, 0.8, 0.3]
    assert pd.isna(frame["proba_2"].iloc[3])
    assert frame["in_b"].tolist()[:3] == ["x", "y", "z"]
    # A plain array has no column names: features are numbered.
    assert frame["in_0"].iloc[3] == 5.0 and frame["in_1"].iloc[3] == 6.0
    assert frame["timestamp"].tolist() == [pd.Timestamp(T0)] * 3 + [
        pd.Timestamp(T0 + timedelta(seconds=1))
    ]


def test_the_log_is_the_servers_prediction_observer(log: PredictionLog) -> None:
    from shipyard.serving.observer import PredictionEvent, PredictionObserver, close_all, notify

    assert isinstance(log, PredictionObserver)
    event = PredictionEvent(
        request_id="abc",
        timestamp=T0.timestamp(),
        model="iris",
        version=3,
        variant="primary",
        protocol="predict",
        inputs=pd.DataFrame({"sepal_length": [5.1, 6.7], "sepal_width": [3.5, 3.0]}),
        predictions=np.array(["setosa", "virginica"], dtype=object),
        probabilities=np.array([[0.97, 0.02, 0.01], [0.01, 0.19, 0.80]]),
        classes=("setosa", "versicolor", "virginica"),
        latency_seconds=0.003,
    )
    notify([log], event)
    close_all([log])  # what the app does at shutdown: everything is written

    frame = log.read("iris", since=T0, until=T0 + timedelta(minutes=1))
    assert frame["request_id"].tolist() == ["abc", "abc"] and frame["row"].tolist() == [0, 1]
    assert frame["prediction"].tolist() == ["setosa", "virginica"]
    assert frame["proba_virginica"].tolist() == [0.01, 0.80]
    assert frame["in_sepal_width"].tolist() == [3.5, 3.0]
    assert (frame["version"] == 3).all() and (frame["latency_seconds"] == 0.003).all()


def test_many_threads_submit_concurrently_and_nothing_is_lost(
    store: SegmentStore, clock: ManualClock
) -> None:
    log = PredictionLog(store, flush_interval=0.02, batch_rows=500, clock=clock)
    threads, per_thread = 8, 1_000
    start = threading.Barrier(threads)

    def worker(t: int) -> None:
        start.wait()
        for i in range(0, per_thread, 10):
            batch = [record(f"t{t}-{j}", T0 + timedelta(milliseconds=j)) for j in range(i, i + 10)]
            assert log.submit(batch) == 10

    pool = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    log.close()

    frame = log.read("iris", since=T0, until=T0 + timedelta(hours=1), inputs=False)
    assert len(frame) == threads * per_thread
    assert frame["request_id"].is_unique
    assert log.stats().written_total == threads * per_thread
    assert log.dropped == 0
    # Batched: far fewer files than submit calls.
    assert len(_segments(Path(store.url))) < threads * per_thread / 10


def _child_logs(root: str, tag: str, n: int) -> None:
    # Runs in a forked child: the parent's log object, inherited across fork.
    log = _INHERITED[0]
    for i in range(n):
        log.submit(record(f"{tag}-{i}", T0 + timedelta(milliseconds=i)))
    log.close()


_INHERITED: list[PredictionLog] = []


def test_two_worker_processes_write_their_own_segments(
    store: SegmentStore, clock: ManualClock
) -> None:
    # A log made before the fork, as with uvicorn workers: each child gets its own
    # queue and writer thread, and names its files with its own pid.
    log = PredictionLog(store, flush_interval=0.02, clock=clock)
    log.submit(record("parent-0", T0))
    log.flush(timeout=10)
    _INHERITED[:] = [log]
    context = multiprocessing.get_context("fork")
    children = [
        context.Process(target=_child_logs, args=(store.url, tag, 2_000)) for tag in ("w1", "w2")
    ]
    for child in children:
        child.start()
    for child in children:
        child.join(timeout=60)
        assert child.exitcode == 0
    log.submit(record("parent-1", T0))
    log.close()

    frame = log.read("iris", since=T0, until=T0 + timedelta(hours=1), inputs=False)
    ids = set(frame["request_id"])
    assert len(frame) == 4_002 and len(ids) == 4_002
    assert {f"w1-{i}" for i in range(2_000)} <= ids and {"parent-0", "parent-1"} <= ids
    pids = {p.name.split("-")[2] for p in _segments(Path(store.url))}
    assert {str(child.pid) for child in children} <= pids
    assert str(os.getpid()) in pids


def test_close_flushes_everything_still_queued(store: SegmentStore, clock: ManualClock) -> None:
    # A minute-long interval and huge batches: nothing would be written before close.
    log = PredictionLog(store, flush_interval=60, batch_rows=1_000_000, clock=clock)
    log.submit([record(f"r{i}", T0) for i in range(250)])
    assert log.queue_depth == 250
    assert _segments(Path(store.url)) == []

    log.close()

    assert log.queue_depth == 0
    assert len(log.read("iris", since=T0, until=T0 + timedelta(minutes=1))) == 250
    # After close, rows are dropped and counted, never raised.
    assert log.submit(record("late", T0)) == 0
    assert log.dropped == 1


class GatedSink:
    """Writes to the real store, but only once the test opens the gate."""

    def __init__(self, store: SegmentStore) -> None:
        self.store = store
        self.entered = threading.Event()
        self.gate = threading.Event()

    def write_segment(self, kind, model, day, table, *, stage=None):  # type: ignore[no-untyped-def]
        self.entered.set()
        assert self.gate.wait(timeout=30), "test never opened the gate"
        return self.store.write_segment(kind, model, day, table, stage=stage)


def test_a_full_queue_drops_and_counts_instead_of_blocking(
    store: SegmentStore, clock: ManualClock
) -> None:
    sink = GatedSink(store)
    log = PredictionLog(store, sink=sink, flush_interval=0.01, max_queue_rows=100, clock=clock)
    assert log.submit([record(f"first-{i}", T0) for i in range(10)]) == 10
    assert sink.entered.wait(timeout=10)  # the writer holds these 10 rows, stuck in the sink

    accepted = sum(log.submit(record(f"more-{i}", T0)) for i in range(200))
    # 10 in flight + 90 queued fill the 100-row queue; the other 110 are dropped.
    assert accepted == 90
    stats = log.stats()
    assert (stats.dropped_total, stats.queue_depth) == (110, 100)
    assert stats.metrics()["shipyard_prediction_log_dropped_total"] == 110
    assert stats.metrics()["shipyard_prediction_log_queue_depth"] == 100
    # A list that only partly fits is cut, the rest counted.
    assert log.submit([record(f"x-{i}", T0) for i in range(5)]) == 0
    assert log.dropped == 115

    sink.gate.set()
    log.close()
    frame = log.read("iris", since=T0, until=T0 + timedelta(minutes=1))
    assert len(frame) == 100
    assert log.stats().written_total == 100
    assert set(frame["request_id"]) == {f"first-{i}" for i in range(10)} | {
        f"more-{i}" for i in range(90)
    }


def test_partial_fit_keeps_the_first_rows(store: SegmentStore, clock: ManualClock) -> None:
    log = PredictionLog(store, flush_interval=60, max_queue_rows=7, clock=clock)
    assert log.submit([record(f"r{i}", T0) for i in range(10)]) == 7
    assert log.dropped == 3
    log.close()
    assert sorted(log.read("iris", since=T0, until=T0 + timedelta(minutes=1))["request_id"]) == [
        f"r{i}" for i in range(7)
    ]


class FailingOnceSink:
    def __init__(self, store: SegmentStore) -> None:
        self.store = store
        self.failed = False

    def write_segment(self, kind, model, day, table, *, stage=None):  # type: ignore[no-untyped-def]
        if not self.failed:
            self.failed = True
            raise OSError("disk full")
        return self.store.write_segment(kind, model, day, table, stage=stage)


def test_a_failed_write_is_counted_and_the_writer_goes_on(
    store: SegmentStore, clock: ManualClock
) -> None:
    log = PredictionLog(store, sink=FailingOnceSink(store), flush_interval=0.01, clock=clock)
    log.submit([record(f"lost-{i}", T0) for i in range(3)])
    assert log.flush(timeout=10)
    log.submit([record(f"kept-{i}", T0) for i in range(4)])
    log.close()

    stats = log.stats()
    assert (stats.write_errors_total, stats.dropped_total, stats.written_total) == (1, 3, 4)
    frame = log.read("iris", since=T0, until=T0 + timedelta(minutes=1))
    assert sorted(frame["request_id"]) == [f"kept-{i}" for i in range(4)]


def test_a_malformed_event_does_not_stop_the_writer(log: PredictionLog) -> None:
    bad = PredictionBatch(
        request_id="bad",
        timestamp=T0.timestamp(),
        model="iris",
        version=1,
        inputs=pd.DataFrame({"x": [1.0, 2.0]}),
        predictions=np.array([0, 1]),
        probabilities=np.array([[0.5, 0.5], [0.5, 0.5]]),
        classes=(0, 1, 2),  # three classes, two columns
    )
    log.observe(bad)
    log.flush(timeout=10)
    log.submit(record("good", T0))
    log.flush(timeout=10)

    assert log.stats().write_errors_total == 1
    assert log.dropped == 2
    assert log.read("iris", since=T0, until=T0 + timedelta(minutes=1))["request_id"].tolist() == [
        "good"
    ]


def test_rows_fall_into_the_day_partition_of_their_timestamp(
    log: PredictionLog, store: SegmentStore
) -> None:
    midnight = datetime(2024, 5, 2, tzinfo=UTC)
    log.submit(
        [
            record("before", midnight - timedelta(microseconds=1)),
            record("after", midnight),
            record("other-model", midnight, model="churn"),
        ]
    )
    log.flush(timeout=10)

    days = {
        (p.model, p.day.isoformat())
        for m in ("iris", "churn")
        for p in store.partitions("predictions", m)
    }
    assert days == {("iris", "2024-05-01"), ("iris", "2024-05-02"), ("churn", "2024-05-02")}
    before = pq.read_table(
        store.files("predictions", "iris", last=midnight.date() - timedelta(1))[0]
    )
    assert before.column("request_id").to_pylist() == ["before"]


def test_write_is_synchronous_and_never_drops(store: SegmentStore, clock: ManualClock) -> None:
    log = PredictionLog(store, max_queue_rows=1, clock=clock)
    batch = PredictionBatch(
        request_id="job-1",
        timestamp=T0,
        model="iris",
        version=2,
        inputs=pd.DataFrame({"x": np.arange(5_000, dtype=float)}),
        predictions=np.zeros(5_000, dtype=int),
        source="batch",
    )
    assert log.write(batch) == 5_000
    assert log.write([record("one", T0), record("two", T0, model="churn")]) == 2
    frame = log.read("iris", since=T0, until=T0 + timedelta(minutes=1))
    assert len(frame) == 5_001
    assert set(frame["source"]) == {"batch", "online"}
    assert log.dropped == 0
    log.close()


def test_reads_take_relative_times_from_the_injected_clock(
    log: PredictionLog, clock: ManualClock
) -> None:
    log.submit([record("old", T0), record("new", T0 + timedelta(hours=2))])
    log.flush(timeout=10)
    clock.advance(hours=2, minutes=30)

    assert log.read("iris", since="1h")["request_id"].tolist() == ["new"]
    assert log.read("iris", since="3h", until="1h")["request_id"].tolist() == ["old"]
    inputs = log.read_inputs("iris", since="3h")
    assert list(inputs.columns) == ["x"] and len(inputs) == 2


def test_bad_settings_and_records_are_refused(store: SegmentStore) -> None:
    with pytest.raises(InvalidInputError, match="flush_interval"):
        PredictionLog(store, flush_interval=0)
    with pytest.raises(InvalidInputError, match="max_queue_rows"):
        PredictionLog(store, max_queue_rows=0)
    with pytest.raises(InvalidInputError, match="time zone"):
        PredictionRecord("r", datetime(2024, 1, 1), "iris", 1, {}, 0)


def test_open_prediction_log_follows_the_settings(tmp_path: Path) -> None:
    local = open_prediction_log(Settings(home=tmp_path / "home"))
    assert local.store.is_local and local.store.url == str(tmp_path / "home")
    remote = open_prediction_log(
        Settings(home=tmp_path, artifacts="s3://bucket/prefix", s3_endpoint_url="http://x:1")
    )
    assert remote.store.url == "s3://bucket/prefix"
    assert remote.store.storage_options == {"client_kwargs": {"endpoint_url": "http://x:1"}}
    assert open_prediction_log(Settings(home=tmp_path), retention=timedelta(days=7)).retention == (
        timedelta(days=7)
    )


# --- crash: kill -9 while logging ------------------------------------------

_CRASH_CHILD = """
import sys, time
from datetime import UTC, datetime
from shipyard.monitoring.prediction_log import PredictionLog
from shipyard.monitoring.records import PredictionRecord
from shipyard.monitoring.segments import SegmentStore

log = PredictionLog(SegmentStore(sys.argv[1]), flush_interval=float(sys.argv[2]))
print("ready", flush=True)
i = 0
while True:
    # The timestamp is the wall-clock time of submission: what a crash may lose.
    log.submit(PredictionRecord(f"r{i}", datetime.now(UTC), "iris", 1, {"i": i}, 0))
    i += 1
    time.sleep(0.002)
"""


@pytest.mark.slow
def test_a_crash_loses_at_most_the_last_flush_interval(tmp_path: Path) -> None:
    root = tmp_path / "crash"
    interval = 1.0
    child = subprocess.Popen(
        [sys.executable, "-c", _CRASH_CHILD, str(root), str(interval)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 30
        while len(_segments(root)) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(_segments(root)) >= 3, "the child never wrote segments"
        killed_at = datetime.now(UTC)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait(timeout=10)
    assert child.returncode == -signal.SIGKILL

    log = PredictionLog(SegmentStore(root))
    frame = log.read("iris", since=killed_at - timedelta(hours=1), until=killed_at)
    numbers = sorted(int(r[1:]) for r in frame["request_id"])
    # Nothing lost in the middle: the rows written are exactly the first N.
    assert numbers == list(range(len(numbers)))
    newest = frame["timestamp"].max().to_pydatetime()
    lost_window = (killed_at - newest).total_seconds()
    # At most one interval, plus the time one small write takes (generous for
    # a loaded 2-core machine); without periodic flushing it would be everything.
    assert lost_window <= interval + 0.75, json.dumps({"lost_seconds": lost_window})
    assert not list(root.rglob("*.tmp")), "a crash must not leave half-written segments"


def test_stats_metric_names_follow_prometheus_conventions(log: PredictionLog) -> None:
    names = log.stats().metrics()
    assert set(names) == {
        "shipyard_prediction_log_accepted_total",
        "shipyard_prediction_log_written_total",
        "shipyard_prediction_log_dropped_total",
        "shipyard_prediction_log_write_errors_total",
        "shipyard_prediction_log_queue_depth",
        "shipyard_feedback_labels_written_total",
        "shipyard_feedback_labels_dropped_total",
    }
    assert all(":" not in n for n in names)


def test_segments_are_valid_parquet_with_utc_timestamps(
    log: PredictionLog, store: SegmentStore
) -> None:
    log.submit(record("r", T0))
    log.flush(timeout=10)
    (path,) = store.files("predictions", "iris")
    table = pq.read_table(path)
    assert table.schema.field("timestamp").type == pa.timestamp("us", tz="UTC")
    assert Path(path).parent.name == "date=2024-05-01"
    assert Path(path).name.startswith("part-") and f"-{os.getpid()}-" in Path(path).name


def test_daily_counts_per_utc_day_and_version_counted_once_after_compaction(
    log: PredictionLog,
) -> None:
    times = [T0 - timedelta(hours=10), T0, T0 + timedelta(hours=1), T0 + timedelta(days=1)]
    log.write([record(f"r{i}", t, version=1 + (i == 2)) for i, t in enumerate(times)])
    log.flush(timeout=10)
    log.write([record("r1", T0)])  # the same row logged twice (a retried write)
    log.flush(timeout=10)
    log.compact(min_files=2)
    since, until = T0 - timedelta(days=2), T0 + timedelta(days=2)
    days = log.daily_counts("iris", since, until, version=1)
    assert [(d, n) for d, n, _, _ in days] == [
        ((T0 - timedelta(hours=10)).date(), 1),
        (T0.date(), 1),
        ((T0 + timedelta(days=1)).date(), 1),
    ]
    assert days[1][2] == days[1][3] == T0
    assert sum(n for _, n, _, _ in log.daily_counts("iris", since, until)) == 4
    assert log.daily_counts("iris", since, T0 - timedelta(hours=11)) == []


def test_staged_rows_are_read_only_once_their_job_is_published(
    store: SegmentStore, clock: ManualClock, tmp_path: Path
) -> None:
    """A batch job's segments stay invisible until the job succeeds; a failed job's
    segments are deleted, leaving the log exactly as it was."""
    log = PredictionLog(store, clock=clock)

    def visible() -> int:
        return len(log.read("iris", since=T0, until=T0 + timedelta(minutes=1)))

    assert log.write(batch_job_rows("batch-ok", 300), stage="batch-ok") == 300
    assert log.write(batch_job_rows("batch-bad", 200), stage="batch-bad") == 200
    assert visible() == 0
    assert log.daily_counts("iris", since=T0, until=T0 + timedelta(minutes=1)) == []
    assert log.settle_job("iris", "batch-bad", publish=False) == 1
    assert log.settle_job("iris", "batch-ok", publish=True) == 1
    assert visible() == 300
    root = Path(store.url)
    assert [p.name.startswith("part-") for p in root.rglob("*.parquet")] == [True]
    with pytest.raises(InvalidInputError):
        log.write([record("one", T0)], stage="batch-x")
    log.close()


def test_only_the_attempts_a_parallel_job_used_are_published(
    store: SegmentStore, clock: ManualClock
) -> None:
    """A worker killed mid-partition logged rows that the partition's retry logs again:
    each attempt stages under ``<job>.<attempt>``, and publishing keeps only the
    attempts the job used. Another job's staged rows are left alone."""
    log = PredictionLog(store, clock=clock)
    for stage, n in [
        ("batch-j.p00000.dead", 40),  # the killed attempt: rows the retry logs again
        ("batch-j.p00000.live", 100),
        ("batch-j.p00001.live", 50),
        ("batch-other.p00000.live", 7),
    ]:
        assert log.write(batch_job_rows("batch-j", n), stage=stage) == n

    settled = log.settle_job("iris", "batch-j", publish=True, keep={"p00000.live", "p00001.live"})
    assert settled == 3  # two published, the dead attempt's deleted
    frame = log.read("iris", since=T0, until=T0 + timedelta(minutes=1))
    assert len(frame) == 150
    names = sorted(p.name for p in Path(store.url).rglob("*.parquet"))
    assert sum(n.startswith("part-") for n in names) == 2
    assert [n for n in names if not n.startswith("part-")] == [
        n for n in names if n.startswith("staged-batch-other.p00000.live-part-")
    ]
    assert log.settle_job("iris", "batch-other", publish=False) == 1
    assert len(list(Path(store.url).rglob("staged-*"))) == 0
    with pytest.raises(StoreError, match="-part-"):
        log.settle_job("iris", "batch-x-part-1", publish=True)
    log.close()


def test_settling_a_job_lists_only_the_days_since_it_started(
    store: SegmentStore, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A month of day partitions: settling a job that started today lists today and the
    day before (the margin for workers' clocks), not the whole month."""
    log = PredictionLog(store, clock=clock)
    for days_ago in range(30, 0, -1):
        log.write([record(f"old-{days_ago}", T0 - timedelta(days=days_ago))])
    log.flush()
    log.write(batch_job_rows("batch-j", 10), stage="batch-j")
    listed: list[str] = []
    children = store._children

    def counting(path: str, *, dirs: bool = True) -> list[tuple[str, str]]:
        listed.append(path)
        return children(path, dirs=dirs)

    monkeypatch.setattr(store, "_children", counting)
    assert log.settle_job("iris", "batch-j", publish=True, started=T0) == 1
    day_listings = [p for p in listed if "date=" in p]
    assert len(day_listings) == 2, day_listings
    monkeypatch.undo()
    assert len(log.read("iris", since=T0, until=T0 + timedelta(minutes=1))) == 10
    log.close()
