"""Ground-truth feedback: stored as segments, joined by request id, unknown ids reported."""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest
from monitoring_support import T0, ManualClock, record

from shipyard.errors import InvalidInputError, StoreError
from shipyard.monitoring.feedback import (
    FeedbackIn,
    FeedbackOut,
    queue_feedback,
    read_feedback_file,
    record_feedback,
)
from shipyard.monitoring.performance import performance
from shipyard.monitoring.prediction_log import PredictionLog
from shipyard.monitoring.queries import read_labelled
from shipyard.monitoring.records import FeedbackItem
from shipyard.monitoring.segments import UNASSIGNED, SegmentStore

HOUR = timedelta(hours=1)


def _labels(store: SegmentStore, model: str = "iris") -> dict[tuple[str, int], str | None]:
    frame = read_labelled(store, model, since=T0 - HOUR, until=T0 + 5 * HOUR)
    return {
        (r.request_id, r.row): (None if pd.isna(r.label) else r.label) for r in frame.itertuples()
    }


def test_labels_join_their_predictions(
    log: PredictionLog, store: SegmentStore, clock: ManualClock
) -> None:
    log.submit([record("a", T0, prediction=1), record("b", T0, prediction=0)])
    clock.advance(minutes=30)

    result = record_feedback(log, [{"request_id": "a", "label": 1}, FeedbackItem("b", 1)])

    assert (result.accepted, result.unknown_ids, result.duplicates) == (2, [], 0)
    assert _labels(store) == {("a", 0): "1", ("b", 0): "1"}
    frame = read_labelled(store, "iris", since=T0, until=T0 + HOUR)
    # Without a label timestamp the delay runs to when the label was received.
    assert (frame["labelled_at"] - frame["timestamp"]).dt.total_seconds().tolist() == [1800] * 2


def test_a_single_mapping_and_rows_of_a_multi_row_request(
    log: PredictionLog, store: SegmentStore
) -> None:
    log.submit([record("req", T0, row=i) for i in range(3)])
    record_feedback(log, {"request_id": "req", "row": 2, "label": "virginica"})
    record_feedback(log, [{"request_id": "req", "row": 0, "label": "setosa"}])
    assert _labels(store) == {("req", 0): "setosa", ("req", 1): None, ("req", 2): "virginica"}


def test_unknown_ids_are_reported_and_stored(log: PredictionLog, store: SegmentStore) -> None:
    log.submit(record("known", T0))
    result = record_feedback(
        log,
        [
            {"request_id": "known", "label": 0},
            {"request_id": "typo-1", "label": 1},
            {"request_id": "typo-2", "label": 1},
            {"request_id": "typo-1", "label": 0, "row": 1},
        ],
        model="iris",
    )
    assert result.accepted == 4
    assert result.unknown_ids == ["typo-1", "typo-2"]
    assert result.n_unknown == 2
    stored = pd.concat(pd.read_parquet(f) for f in store.files("feedback", "iris"))
    assert sorted(stored["request_id"]) == ["known", "typo-1", "typo-1", "typo-2"]
    assert stored.set_index("request_id")["known"].to_dict()["known"]


def test_labels_sent_before_the_prediction_is_flushed_join_later(
    store: SegmentStore, clock: ManualClock
) -> None:
    # Two workers: the prediction sits in worker A's queue while worker B takes
    # its label. B cannot see it yet, says so, keeps the label, and it joins later.
    worker_a = PredictionLog(store, flush_interval=60, clock=clock)
    worker_b = PredictionLog(store, flush_interval=0.05, clock=clock)
    worker_a.submit(record("slow", T0, prediction=2))

    result = record_feedback(worker_b, [{"request_id": "slow", "label": 2}])
    assert result.unknown_ids == ["slow"]
    assert store.models("feedback") == [UNASSIGNED]  # no model known yet for it

    worker_a.close()
    assert _labels(store) == {("slow", 0): "2"}
    worker_b.close()


def test_duplicates_are_counted_and_the_newest_label_wins(
    log: PredictionLog, store: SegmentStore, clock: ManualClock
) -> None:
    log.submit([record("a", T0), record("b", T0)])
    first = record_feedback(
        log, [{"request_id": "a", "label": "x"}, {"request_id": "a", "label": "y"}]
    )
    assert first.duplicates == 1
    assert _labels(store)[("a", 0)] == "y"  # later in the same batch wins

    clock.advance(minutes=1)
    second = record_feedback(
        log, [{"request_id": "a", "label": "z"}, {"request_id": "b", "label": "q"}]
    )
    assert (second.accepted, second.duplicates) == (2, 1)
    assert _labels(store) == {("a", 0): "z", ("b", 0): "q"}

    # Same clock reading, later call: still the newest call wins.
    record_feedback(log, [{"request_id": "a", "label": "last"}])
    assert _labels(store)[("a", 0)] == "last"


def test_labels_find_their_model_when_none_is_given(
    log: PredictionLog, store: SegmentStore
) -> None:
    log.submit([record("i1", T0, model="iris"), record("c1", T0, model="churn")])
    result = record_feedback(
        log, [{"request_id": "i1", "label": 0}, {"request_id": "c1", "label": 1}]
    )
    assert result.unknown_ids == []
    assert store.models("feedback") == ["churn", "iris"]
    assert _labels(store, "churn") == {("c1", 0): "1"}
    assert _labels(store, "iris") == {("i1", 0): "0"}


def test_one_label_joins_one_row_even_when_ids_repeat(
    log: PredictionLog, store: SegmentStore, clock: ManualClock
) -> None:
    """Fifty rows logged under one (request_id, row) by a client of the Python API:
    one label for them judges one prediction (the newest), not fifty; a shadow's
    copy of the newest is judged by it too."""
    rows = [
        record("same", T0 + timedelta(seconds=i), prediction="a" if i < 49 else "b")
        for i in range(50)
    ]
    shadow = dataclasses.replace(rows[-1], variant="shadow:2", version=2, prediction="a")
    log.submit([*rows, shadow])
    clock.advance(hours=1)
    record_feedback(log, [{"request_id": "same", "label": "b"}])

    frame = read_labelled(store, "iris", since=T0 - HOUR, until=T0 + HOUR)
    labelled = frame[frame["label"].notna()]
    assert sorted(zip(labelled["variant"], labelled["prediction"], strict=True)) == [
        ("primary", "b"),
        ("shadow:2", "a"),
    ]
    report = performance(log, "iris", version=1, window="1h", since=T0, until=T0 + HOUR)
    assert (report.overall.n_predictions, report.overall.n_labelled) == (50, 1)
    assert report.overall.realized["accuracy"] == 1.0


def test_label_timestamps_set_the_delay(log: PredictionLog, store: SegmentStore) -> None:
    log.submit(record("a", T0))
    record_feedback(log, [{"request_id": "a", "label": 1, "timestamp": "2024-05-01T11:00:00Z"}])
    frame = read_labelled(store, "iris", since=T0, until=T0 + HOUR)
    assert (frame["labelled_at"] - frame["timestamp"]).dt.total_seconds().tolist() == [7200]


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ([{"label": 1}], "missing column"),
        ([{"request_id": "a", "label": 1, "extra": 2}], "unexpected column"),
        ([{"request_id": "a", "label": None}], "feedback item 0: label is missing"),
        ([{"request_id": "a", "label": 1}, {"request_id": " ", "label": 1}], "item 1: request_id"),
        ([{"request_id": "a", "label": 1, "row": -1}], "row must be a whole number"),
        ([{"request_id": "a", "label": 1, "timestamp": "yesterday"}], "timestamp is not a time"),
        (["a"], "expected an object"),
    ],
)
def test_malformed_labels_are_refused_and_nothing_is_stored(
    log: PredictionLog, store: SegmentStore, items: list, message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message):
        record_feedback(log, items)
    assert store.models("feedback") == []


def test_an_empty_batch_accepts_nothing(log: PredictionLog) -> None:
    assert record_feedback(log, []).accepted == 0


# --- files ---------------------------------------------------------------------


def _write(path: Path, frame: pd.DataFrame) -> Path:
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    elif path.suffix == ".parquet":
        frame.to_parquet(path)
    else:
        path.write_text("\n".join(json.dumps(r) for r in frame.to_dict("records")) + "\n")
    return path


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".jsonl"])
def test_label_files_in_every_format(
    log: PredictionLog, store: SegmentStore, tmp_path: Path, suffix: str
) -> None:
    log.submit([record("007", T0), record("42", T0)])
    frame = pd.DataFrame(
        {
            "request_id": ["007", "42", "nope"],
            "label": [1, 0, 1],
            "timestamp": ["2024-05-01T10:00:00Z"] * 3,
        }
    )
    labels = read_feedback_file(_write(tmp_path / f"labels{suffix}", frame))
    assert labels["request_id"].tolist() == ["007", "42", "nope"]  # ids stay text

    result = record_feedback(log, labels)
    assert (result.accepted, result.unknown_ids) == (3, ["nope"])
    assert _labels(store) == {("007", 0): "1", ("42", 0): "0"}


def test_file_errors_name_the_file_column_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "labels.csv"
    bad.write_text("request_id,label\na,1\nb,\n")
    with pytest.raises(InvalidInputError, match=r"labels.csv line 3: label is missing"):
        read_feedback_file(bad)

    no_label = tmp_path / "ids.csv"
    no_label.write_text("request_id,truth\na,1\n")
    with pytest.raises(InvalidInputError, match=r"ids.csv: missing column\(s\) \['label'\]"):
        read_feedback_file(no_label)

    bad_type = r"labels\.xlsx'.*extension '\.xlsx'.*Shipyard reads CSV"
    with pytest.raises(InvalidInputError, match=bad_type):
        read_feedback_file(tmp_path / "labels.xlsx")
    with pytest.raises(InvalidInputError, match="no such file"):
        read_feedback_file(tmp_path / "missing.csv")
    garbage = tmp_path / "labels.parquet"
    garbage.write_bytes(b"not parquet")
    with pytest.raises(InvalidInputError, match=r"labels\.parquet"):
        read_feedback_file(garbage)


def test_the_route_models_parse_a_json_body_and_queue_it(
    log: PredictionLog, store: SegmentStore
) -> None:
    from pydantic import TypeAdapter, ValidationError

    body = TypeAdapter(FeedbackIn | list[FeedbackIn])
    log.submit([record("a", T0), record("b", T0)])
    items = body.validate_json(
        '[{"request_id": "a", "label": 1}, {"request_id": "b", "label": "1", "row": 0},'
        ' {"request_id": "c", "label": true, "timestamp": "2024-05-01T10:00:00Z"}]'
    )
    answer = FeedbackOut(accepted=queue_feedback(log, items, model="iris"))
    assert answer.model_dump() == {"accepted": 3}
    log.flush()
    assert _labels(store) == {("a", 0): "1", ("b", 0): "1"}
    single = body.validate_json('{"request_id": "b", "label": 0}')
    assert record_feedback(log, single).duplicates == 1
    for bad in (
        '{"label": 1}',
        '{"request_id": "", "label": 1}',
        '{"request_id": "a"}',
        '{"request_id": "a", "label": 1, "row": -1}',
        '{"request_id": "a", "label": 1, "row": 2147483648}',
        '[{"request_id": "a", "label": 1, "row": 4294967296}]',
        '{"request_id": "a", "label": 1, "x": 1}',
    ):
        with pytest.raises(ValidationError):
            body.validate_json(bad)


def test_queued_labels_make_one_segment_per_flush_and_join_like_stored_ones(
    store: SegmentStore, clock: ManualClock
) -> None:
    """Many small posts: one feedback file per flush of the writer, not one per post."""
    log = PredictionLog(store, flush_interval=3600, clock=clock)
    log.submit([record(f"r{i}", T0, prediction=i % 2) for i in range(300)])
    for i in range(300):
        assert queue_feedback(log, {"request_id": f"r{i}", "label": 1}, model="iris") == 1
    assert store.files("feedback", "iris") == []  # nothing written in the callers' threads
    log.flush()
    assert len(store.files("feedback", "iris")) == 1
    assert _labels(store) == {(f"r{i}", 0): "1" for i in range(300)}
    stats = log.stats()
    assert (stats.accepted_total, stats.written_total) == (300, 300)
    assert (stats.labels_written_total, stats.labels_dropped_total) == (300, 0)
    log.close()


def test_a_full_queue_refuses_labels_whole_and_a_closed_log_writes_them_at_once(
    store: SegmentStore, clock: ManualClock
) -> None:
    log = PredictionLog(store, flush_interval=3600, max_queue_rows=10, clock=clock)
    log.submit([record(f"r{i}", T0) for i in range(8)])
    three = [{"request_id": f"r{i}", "label": 0} for i in range(3)]
    with pytest.raises(StoreError, match=r"full .* retry the 3 label"):
        queue_feedback(log, three, model="iris")
    assert queue_feedback(log, three[:2], model="iris") == 2
    log.close()  # a server draining at shutdown: labels still arriving are kept
    assert queue_feedback(log, three[2:], model="iris") == 1
    assert _labels(store) == {
        **{(f"r{i}", 0): "0" for i in range(3)},
        **{(f"r{i}", 0): None for i in range(3, 8)},
    }
    stats = log.stats()
    assert stats.dropped_total == 0  # refused, not lost: the caller was told
    assert (stats.labels_written_total, stats.labels_dropped_total) == (3, 0)


def test_labels_are_counted_per_row_unknown_ids_apart_from_missing_rows(
    log: PredictionLog, store: SegmentStore
) -> None:
    """A logged request without the labelled row is not an unknown id: each label is
    counted as matched, for an unknown id, or for a row its request does not have."""
    log.submit([record("job", T0, row=i) for i in (0, 1, 3)])  # row 2 was never logged
    result = record_feedback(
        log,
        [
            {"request_id": "job", "row": 0, "label": 0},
            {"request_id": "job", "row": 2, "label": 1},
            {"request_id": "job", "row": 3, "label": 1},
            {"request_id": "typo", "row": 0, "label": 1},
            {"request_id": "typo", "row": 1, "label": 1},
        ],
    )
    assert (result.accepted, result.matched) == (5, 2)
    assert result.unknown_ids == ["typo"] and result.unknown_id_labels == 2
    assert result.unknown_rows == [("job", 2)]
