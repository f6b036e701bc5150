"""summarize_window: the monitor's bounded summary agrees with the full reads it replaces."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from monitoring_support import T0, ManualClock, classifier_records, record

from shipyard.monitoring.bucket_figures import bucket_accuracy, variant_accuracy
from shipyard.monitoring.calibration import fit_calibration
from shipyard.monitoring.compaction import COMPACTED, compact_partition
from shipyard.monitoring.feedback import record_feedback
from shipyard.monitoring.performance import performance
from shipyard.monitoring.prediction_log import PredictionLog
from shipyard.monitoring.segments import SegmentStore
from shipyard.monitoring.window import WindowLimits, summarize_window

CLASSES = ["setosa", "versicolor", "virginica"]
HOUR = timedelta(hours=1)


@pytest.fixture
def labelled_log(log: PredictionLog, clock: ManualClock) -> PredictionLog:
    """400 classifier rows over an hour in 8 segments, 150 of them labelled."""
    rng = np.random.default_rng(3)
    proba = rng.dirichlet([3, 2, 1], 400)
    proba[::37, 1] = np.nan  # some rows without usable probabilities
    stamps = [T0 + timedelta(seconds=9 * i) for i in range(400)]
    records = classifier_records(proba, stamps, classes=CLASSES)
    for start in range(0, 400, 50):
        log.write(records[start : start + 50])
    clock.advance(hours=2)
    truth = rng.choice(CLASSES, 150)
    record_feedback(log, [{"request_id": f"r{i}", "label": truth[i]} for i in range(150)])
    return log


def _summary(log: PredictionLog, **options: object) -> object:
    return summarize_window(
        log.store, "iris", since=T0, until=T0 + HOUR, version=1, classifier=True, **options
    )


def test_the_summary_matches_the_performance_report_and_the_window(
    labelled_log: PredictionLog,
) -> None:
    summary = _summary(labelled_log)
    report = performance(labelled_log, "iris", 1, window="1h", since=T0, until=T0 + HOUR)
    assert summary.n_rows == report.overall.n_predictions == 400
    assert summary.n_labelled == report.overall.n_labelled == 150
    assert summary.coverage == report.overall.coverage
    assert summary.realized_accuracy == pytest.approx(report.overall.realized["accuracy"])
    assert summary.estimated_accuracy == pytest.approx(report.overall.estimated["accuracy"])
    window = labelled_log.read("iris", since=T0, until=T0 + HOUR)
    # The window is smaller than the sample: the sample is every row.
    assert sorted(summary.inputs["x"]) == sorted(window["in_x"])
    assert sorted(summary.predictions) == sorted(window["prediction"])


def test_a_window_larger_than_the_sample_is_sampled_uniformly(
    labelled_log: PredictionLog,
) -> None:
    summary = _summary(labelled_log, limits=WindowLimits(sample_rows=100, seed=5))
    assert summary.n_rows == 400 and len(summary.inputs) == len(summary.predictions) == 100
    xs = summary.inputs["x"].to_numpy()
    assert len(set(xs)) == 100 and set(xs) <= set(np.arange(400.0))
    assert 0.35 < np.mean(xs < 200) < 0.65  # from the whole hour, not its first rows
    again = _summary(labelled_log, limits=WindowLimits(sample_rows=100, seed=5))
    assert again.inputs.equals(summary.inputs)  # repeatable: figures do not flicker
    assert summary.n_labelled == 150  # counts never come from the sample


def test_rows_seen_twice_during_a_compaction_count_once(
    labelled_log: PredictionLog, store: SegmentStore
) -> None:
    day = Path(store.files("predictions", "iris")[0]).parent
    keep = day.parent / "kept"
    keep.mkdir()
    for source in sorted(day.glob("part-*.parquet"))[:3]:
        shutil.copy(source, keep / source.name)
    compact_partition(store, "predictions", "iris", T0.date())
    for copy in keep.iterdir():  # sources a reader still sees beside the merged file
        shutil.copy(copy, day / copy.name)
    assert any(COMPACTED in f for f in store.files("predictions", "iris"))
    summary = _summary(labelled_log)
    assert (summary.n_rows, summary.n_labelled, len(summary.inputs)) == (400, 150, 400)


def test_one_label_judges_one_of_the_rows_sharing_an_id(
    log: PredictionLog, clock: ManualClock
) -> None:
    log.write([record("same", T0 + timedelta(seconds=i), prediction="a") for i in range(50)])
    clock.advance(hours=2)
    record_feedback(log, [{"request_id": "same", "label": "a"}])
    summary = _summary(log)
    assert (summary.n_rows, summary.n_labelled, summary.realized_accuracy) == (50, 1, 1.0)


def test_a_regressor_counts_labels_but_no_accuracy(log: PredictionLog, clock: ManualClock) -> None:
    log.write([record(f"v{i}", T0, prediction=i * 0.37) for i in range(60)])
    clock.advance(hours=2)
    record_feedback(log, [{"request_id": f"v{i}", "label": i * 0.3} for i in range(20)])
    summary = summarize_window(
        log.store, "iris", since=T0, until=T0 + HOUR, version=1, classifier=False
    )
    assert (summary.n_rows, summary.n_labelled, summary.coverage) == (60, 20, 20 / 60)
    assert summary.realized_accuracy is None and summary.estimated_accuracy is None
    assert pd.api.types.is_float_dtype(summary.predictions)


def test_an_empty_window_is_empty(log: PredictionLog) -> None:
    summary = _summary(log)
    assert (summary.n_rows, summary.coverage, summary.realized_accuracy) == (0, None, None)
    log.write([record("old", T0 - 2 * HOUR)])
    assert _summary(log).n_rows == 0


def test_a_calibrated_summary_streams_the_same_estimate_as_the_performance_report(
    labelled_log: PredictionLog,
) -> None:
    """The window (streamed in batches) and the report (in memory) map the same rows
    through the same calibration; one fitted for other classes is not applied."""
    rng = np.random.default_rng(5)
    proba = rng.dirichlet([1, 1, 1], 300)
    calibration = fit_calibration(proba, rng.integers(0, 3, 300), classes=CLASSES[::-1])
    assert not calibration.identity  # labels unrelated to the probabilities: maps flatten
    summary = _summary(labelled_log, calibration=calibration)
    report = performance(
        labelled_log, "iris", 1, window="1h", since=T0, until=T0 + HOUR,
        calibration=lambda model, version: calibration,
    )  # fmt: skip
    assert summary.calibrated and report.calibrated is True
    assert summary.estimated_accuracy == pytest.approx(report.overall.estimated["accuracy"])
    assert summary.estimated_accuracy != pytest.approx(_summary(labelled_log).estimated_accuracy)
    other = fit_calibration(proba[:, :2] / proba[:, :2].sum(1, keepdims=True),
                            rng.integers(0, 2, 300), classes=["a", "b"])  # fmt: skip
    unfit = _summary(labelled_log, calibration=other)
    assert not unfit.calibrated
    assert unfit.estimated_accuracy == pytest.approx(_summary(labelled_log).estimated_accuracy)


def test_sample_inputs_counts_the_window_and_bounds_the_sample(
    labelled_log: PredictionLog,
) -> None:
    """What `shipyard drift --window` reads: every row of a small window, a uniform
    sample of a large one, never more than asked."""
    n, everything = labelled_log.sample_inputs("iris", since=T0, until=T0 + HOUR)
    window = labelled_log.read_inputs("iris", since=T0, until=T0 + HOUR)
    assert n == 400 and sorted(everything["x"]) == sorted(window["x"])
    assert list(everything.columns) == list(window.columns)
    n, sample = labelled_log.sample_inputs("iris", since=T0, until=T0 + HOUR, rows=100)
    assert n == 400 and len(sample) == 100 and sample["x"].is_unique
    assert 0.35 < np.mean(sample["x"].to_numpy() < 200) < 0.65
    assert labelled_log.sample_inputs("iris", since=T0 + 2 * HOUR, until=T0 + 3 * HOUR)[0] == 0


def _rows(prefix: str, n: int, **fields: object) -> list:
    return [
        dataclasses.replace(record(f"{prefix}{i}", T0 + timedelta(seconds=i)), **fields)
        for i in range(n)
    ]


@pytest.fixture(params=["local", "s3"])
def either_log(
    request: pytest.FixtureRequest, log: PredictionLog, clock: ManualClock
) -> Iterator[PredictionLog]:
    """The test's log in a local folder, or on (moto's) S3."""
    if request.param == "local":
        yield log
        return
    s3_log = PredictionLog(request.getfixturevalue("s3_store"), clock=clock)
    yield s3_log
    s3_log.close()


def test_a_deployments_window_holds_only_the_rows_its_servers_stamped(
    either_log: PredictionLog, clock: ManualClock
) -> None:
    """A batch job logs ``primary`` rows with no deployment (segments without the
    column): they, direct traffic and another deployment's rows are not ``web``'s."""
    log = either_log
    log.write(_rows("job-", 70, source="batch"))  # a segment with no deployment column
    assert _summary(log, variant="primary", deployment="web").n_rows == 0
    log.write(_rows("web-", 30, deployment="web"))
    log.write(_rows("can-", 5, deployment="web", variant="canary"))
    log.write(_rows("api-", 11, deployment="api"))
    clock.advance(hours=2)
    labelled = ["job-0", "job-1", "web-0", "api-0"]
    record_feedback(log, [{"request_id": r, "label": 0} for r in labelled])
    web = _summary(log, variant="primary", deployment="web")
    assert (web.n_rows, web.n_labelled, len(web.inputs)) == (30, 1, 30)
    assert _summary(log, variant="canary", deployment="web").n_rows == 5
    assert _summary(log, variant="primary", deployment="api").n_rows == 11
    # The version's own view (a plain server's) keeps every row, the batch job's too.
    everything = _summary(log)
    assert (everything.n_rows, everything.n_labelled) == (116, 4)
    # `monitor performance --deployment` and the UI's figures read the same rows.
    span = {"since": T0, "until": T0 + HOUR}
    report = performance(log, "iris", 1, window="1h", deployment="web", **span)
    assert (report.overall.n_predictions, report.overall.n_labelled) == (35, 1)
    assert {(v.variant, v.figures.n_predictions) for v in report.variants} == {
        ("primary", 30),
        ("canary", 5),
    }
    assert performance(log, "iris", 1, window="1h", **span).overall.n_predictions == 116
    by_variant = variant_accuracy(log.store, "iris", version=1, deployment="api", **span)
    assert [(v.variant, v.n_predictions) for v in by_variant] == [("primary", 11)]
    buckets = bucket_accuracy(
        log.store, "iris", since=T0, step=HOUR, count=1, version=1, deployment="web"
    )
    assert [(b.n_predictions, b.n_labelled) for b in buckets] == [(35, 1)]
