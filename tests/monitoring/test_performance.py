"""Performance over time, end to end: log -> labels -> report, checked against sklearn."""

from __future__ import annotations

import json
from datetime import timedelta

import numpy as np
import pytest
from monitoring_support import T0, ManualClock, classifier_records, record
from sklearn import metrics as skm

from shipyard.errors import InvalidInputError
from shipyard.monitoring import cbpe
from shipyard.monitoring.feedback import record_feedback
from shipyard.monitoring.performance import baseline_metrics, performance
from shipyard.monitoring.prediction_log import PredictionLog

CLASSES = ["setosa", "versicolor", "virginica"]
HOUR = timedelta(hours=1)


def _calibrated(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    logits = rng.normal(scale=2.0, size=(n, 3))
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = np.array([rng.choice(3, p=p) for p in proba])
    return proba, labels


@pytest.fixture
def three_hours(log: PredictionLog, clock: ManualClock) -> dict[str, np.ndarray]:
    """500 predictions over 09:00-12:00; hour 9 fully labelled, hour 10 half, hour 11 not."""
    rng = np.random.default_rng(7)
    sizes = [200, 200, 100]
    proba, labels = _calibrated(rng, sum(sizes))
    stamps = [
        T0 + h * HOUR + timedelta(seconds=int(s))
        for h, size in enumerate(sizes)
        for s in np.sort(rng.integers(0, 3600, size))
    ]
    log.write(classifier_records(proba, stamps, classes=CLASSES))
    clock.advance(hours=4)
    feedback = [
        {
            "request_id": f"r{i}",
            "label": CLASSES[labels[i]],
            "timestamp": stamps[i] + timedelta(minutes=30 if i < 200 else 120),
        }
        for i in list(range(200)) + list(range(200, 400, 2))
    ]
    assert record_feedback(log, feedback).unknown_ids == []
    return {"proba": proba, "labels": labels, "pred": proba.argmax(axis=1)}


def _realized(data: dict[str, np.ndarray], rows: np.ndarray) -> dict[str, float]:
    y, p, proba = data["labels"][rows], data["pred"][rows], data["proba"][rows]
    return {
        "accuracy": skm.accuracy_score(y, p),
        "f1_macro": skm.f1_score(y, p, average="macro"),
        "roc_auc": skm.roc_auc_score(y, proba, multi_class="ovr"),
    }


def test_buckets_report_counts_coverage_delay_and_sklearn_metrics(
    log: PredictionLog, three_hours: dict[str, np.ndarray]
) -> None:
    report = performance(
        log,
        "iris",
        window="1h",
        since=T0,
        until=T0 + 3 * HOUR,
        baseline={"accuracy": 0.9, "f1": 0.85, "loss": 0.3},
    )
    assert report.task == "classification" and report.has_probabilities
    assert [b.start for b in report.buckets] == [T0, T0 + HOUR, T0 + 2 * HOUR]
    assert [b.n_predictions for b in report.buckets] == [200, 200, 100]
    assert [b.n_labelled for b in report.buckets] == [200, 100, 0]
    assert [b.coverage for b in report.buckets] == [1.0, 0.5, 0.0]
    assert [b.median_label_delay_seconds for b in report.buckets] == [1800.0, 7200.0, None]
    assert report.baseline == {"accuracy": 0.9, "f1_macro": 0.85}

    labelled = [np.arange(200), np.arange(200, 400, 2)]
    for bucket, rows in zip(report.buckets, labelled, strict=False):
        for metric, value in _realized(three_hours, rows).items():
            assert bucket.realized[metric] == pytest.approx(value, abs=1e-12), metric
    assert report.buckets[2].realized == {"accuracy": None, "f1_macro": None, "roc_auc": None}

    # Estimates cover every prediction of a bucket, labelled or not.
    for bucket, rows in zip(
        report.buckets, [np.arange(200), np.arange(200, 400), np.arange(400, 500)], strict=True
    ):
        proba = three_hours["proba"][rows]
        assert bucket.estimated["accuracy"] == pytest.approx(proba.max(axis=1).mean())
        assert bucket.estimated["f1_macro"] == pytest.approx(
            cbpe.expected_f1_macro(proba, proba.argmax(axis=1))
        )
        assert bucket.estimated["roc_auc"] == pytest.approx(cbpe.expected_roc_auc(proba))

    everything = np.r_[np.arange(200), np.arange(200, 400, 2)]
    assert report.overall.n_predictions == 500 and report.overall.n_labelled == 300
    assert report.overall.realized["accuracy"] == pytest.approx(
        _realized(three_hours, everything)["accuracy"]
    )
    json.dumps(report.to_dict())  # the CLI's --json output


def test_estimated_accuracy_tracks_realized_end_to_end(
    log: PredictionLog, clock: ManualClock
) -> None:
    rng = np.random.default_rng(11)
    n = 4_000
    proba, labels = _calibrated(rng, n)
    stamps = [T0 + timedelta(seconds=i % 3600) for i in range(n)]
    log.write(classifier_records(proba, stamps, classes=CLASSES))
    record_feedback(log, [{"request_id": f"r{i}", "label": CLASSES[labels[i]]} for i in range(n)])

    (bucket,) = performance(log, "iris", window="1h", since=T0, until=T0 + HOUR).buckets
    q = proba.max(axis=1)
    sd = np.sqrt(np.sum(q * (1 - q))) / n
    assert bucket.realized["accuracy"] == pytest.approx(np.mean(proba.argmax(1) == labels))
    assert abs(bucket.estimated["accuracy"] - bucket.realized["accuracy"]) < 4 * sd


def test_regression_reports_mae_and_rmse(log: PredictionLog, clock: ManualClock) -> None:
    rng = np.random.default_rng(3)
    truth = rng.normal(10, 2, size=50)
    predicted = truth + rng.normal(0, 0.5, size=50)
    log.write(
        [
            record(f"r{i}", T0 + timedelta(minutes=i), prediction=float(predicted[i]))
            for i in range(50)
        ]
    )
    record_feedback(log, [{"request_id": f"r{i}", "label": float(truth[i])} for i in range(50)])

    report = performance(
        log, "iris", window="1d", since=T0, until=T0 + 2 * HOUR, baseline={"rmse": 0.4}
    )
    assert report.task == "regression" and report.metrics == ("mae", "rmse")
    (bucket,) = report.buckets
    assert bucket.realized["mae"] == pytest.approx(skm.mean_absolute_error(truth, predicted))
    assert bucket.realized["rmse"] == pytest.approx(
        np.sqrt(skm.mean_squared_error(truth, predicted))
    )
    assert bucket.estimated == {"mae": None, "rmse": None}
    assert report.baseline == {"rmse": 0.4}
    assert any("classifiers only" in note for note in report.notes)


def test_without_probabilities_there_is_no_estimate_and_the_report_says_so(
    log: PredictionLog,
) -> None:
    log.write([record(f"r{i}", T0, prediction=i % 2) for i in range(10)])
    report = performance(log, "iris", since=T0, until=T0 + HOUR, task="classification")
    (bucket,) = report.buckets
    assert bucket.estimated == {"accuracy": None, "f1_macro": None, "roc_auc": None}
    assert not report.has_probabilities
    assert any("CBPE needs probabilities" in note for note in report.notes)


def test_an_empty_window_is_reported_not_a_crash(log: PredictionLog) -> None:
    report = performance(log, "iris", window="1h", since=T0, until=T0 + 3 * HOUR)
    assert report.empty
    assert [b.n_predictions for b in report.buckets] == [0, 0, 0]
    assert all(b.coverage is None for b in report.buckets)
    assert any("No predictions of iris" in note for note in report.notes)


def test_versions_are_reported_separately(log: PredictionLog) -> None:
    log.write([record("v1", T0, version=1), record("v2", T0, version=2, prediction=1)])
    record_feedback(log, [{"request_id": "v1", "label": 1}, {"request_id": "v2", "label": 1}])
    v2 = performance(log, "iris", 2, since=T0, until=T0 + HOUR, task="classification")
    both = performance(log, "iris", since=T0, until=T0 + HOUR, task="classification")
    assert v2.overall.n_predictions == 1 and v2.overall.realized["accuracy"] == 1.0
    assert both.overall.n_predictions == 2 and both.overall.realized["accuracy"] == 0.5


def test_buckets_align_to_the_window_and_relative_times_use_the_clock(
    log: PredictionLog, clock: ManualClock
) -> None:
    log.write([record("a", T0 + timedelta(minutes=50)), record("b", T0 + timedelta(minutes=70))])
    clock.set(T0 + timedelta(hours=2, minutes=17))
    report = performance(log, "iris", window="1h", since="2h")  # 00:17 -> 09:00 bucket start
    assert report.since == T0
    assert [b.n_predictions for b in report.buckets] == [1, 1, 0]
    assert report.buckets[-1].end == T0 + 3 * HOUR


def test_bad_ranges_are_refused(log: PredictionLog) -> None:
    with pytest.raises(InvalidInputError, match="not before"):
        performance(log, "iris", since=T0, until=T0)
    with pytest.raises(InvalidInputError, match="at most 10000"):
        performance(log, "iris", window="1s", since=T0, until=T0 + timedelta(days=1))
    with pytest.raises(InvalidInputError, match="duration"):
        performance(log, "iris", window="hourly")


def test_baseline_metrics_are_found_under_common_names() -> None:
    recorded = {"test_accuracy": 0.9, "auc": 0.95, "val_mae": 1.0}
    assert baseline_metrics(recorded, "classification") == {"accuracy": 0.9, "roc_auc": 0.95}
    assert baseline_metrics(recorded, "regression") == {"mae": 1.0}


def test_without_probabilities_duckdb_counts_the_window_and_no_row_is_read(
    log: PredictionLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Counts, coverage, delay, accuracy and macro F1 per bucket and per variant come from
    DuckDB's aggregates (memory bounded by buckets x classes), equal to sklearn's."""
    import dataclasses
    import sys

    module = sys.modules["shipyard.monitoring.performance"]  # the package re-exports a function

    rng = np.random.default_rng(11)
    n = 600
    stamps = [T0 + timedelta(seconds=int(s)) for s in np.sort(rng.integers(0, 3 * 3600, n))]
    truth = rng.integers(0, 3, n)
    predicted = np.where(rng.random(n) < 0.7, truth, rng.integers(0, 3, n))
    labelled = rng.random(n) < 0.6
    delays = rng.integers(60, 7200, n)
    records = [
        record(f"r{i}", stamps[i], prediction=CLASSES[predicted[i]], version=1 + i % 2)
        for i in range(n)
    ]
    records = [
        dataclasses.replace(r, variant="canary") if i % 2 else r for i, r in enumerate(records)
    ]
    log.write(records)
    feedback = [
        {
            "request_id": f"r{i}",
            "label": CLASSES[truth[i]],
            "timestamp": stamps[i] + timedelta(seconds=int(delays[i])),
        }
        for i in range(n)
        if labelled[i]
    ]
    assert record_feedback(log, feedback).unknown_ids == []

    def no_rows(*args: object, **kwargs: object) -> None:
        raise AssertionError("performance() read the window's rows")

    monkeypatch.setattr(module, "read_labelled", no_rows)
    report = performance(log, "iris", window="1h", since=T0, until=T0 + 3 * HOUR)
    assert report.task == "classification" and not report.has_probabilities
    hours = np.array([(s - T0) // HOUR for s in stamps])
    for h, bucket in enumerate(report.buckets):
        rows = np.flatnonzero((hours == h) & labelled)
        assert bucket.n_predictions == int((hours == h).sum())
        assert bucket.n_labelled == len(rows)
        assert bucket.realized["accuracy"] == pytest.approx(
            skm.accuracy_score(truth[rows], predicted[rows])
        )
        assert bucket.realized["f1_macro"] == pytest.approx(
            skm.f1_score(truth[rows], predicted[rows], average="macro")
        )
        assert bucket.median_label_delay_seconds == pytest.approx(np.median(delays[rows]))
    every = np.flatnonzero(labelled)
    assert report.overall.n_predictions == n
    assert report.overall.realized["f1_macro"] == pytest.approx(
        skm.f1_score(truth[every], predicted[every], average="macro")
    )
    assert [(v.variant, v.version) for v in report.variants] == [("primary", 1), ("canary", 2)]
    canary = np.flatnonzero(labelled & (np.arange(n) % 2 == 1))
    assert report.variants[1].figures.realized["accuracy"] == pytest.approx(
        skm.accuracy_score(truth[canary], predicted[canary])
    )
    assert report.variants[1].figures.median_label_delay_seconds == pytest.approx(
        np.median(delays[canary])
    )
