"""The dashboard's accuracy sums in DuckDB equal what ``performance`` computes in pandas."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from monitoring_support import T0

from shipyard.monitoring.bucket_figures import bucket_accuracy, variant_accuracy
from shipyard.monitoring.calibration import Calibration, ClassMap
from shipyard.monitoring.feedback import record_feedback
from shipyard.monitoring.performance import performance
from shipyard.monitoring.prediction_log import PredictionLog
from shipyard.monitoring.records import PredictionBatch

STEP = timedelta(minutes=30)


def _fill(log: PredictionLog, classes: tuple, predicted_as: str) -> None:  # type: ignore[type-arg]
    rng = np.random.default_rng(3)
    labels = []
    for i in range(24):
        proba = rng.dirichlet(np.ones(len(classes)), 10)
        if i % 5 == 0:
            proba[0, 1] = np.nan  # a row CBPE leaves out
        chosen = proba.argmax(axis=1) if predicted_as == "argmax" else rng.integers(0, 3, 10)
        predictions = np.asarray(classes, dtype=object)[chosen]
        if classes[0] == 0.0:
            predictions = predictions.astype(np.float64)
        log.write(
            PredictionBatch(
                request_id=f"r{i}",
                timestamp=T0 + timedelta(minutes=7 * i),
                model="m",
                version=1,
                inputs=pd.DataFrame({"x": rng.random(10)}),
                predictions=predictions,
                probabilities=proba,
                classes=classes,
                source="online",
            )
        )
        for row in range(0, 10, 3):
            labels.append({"request_id": f"r{i}", "row": row, "label": classes[row % 3]})
    labels.append({"request_id": "r0", "row": 0, "label": classes[2]})  # newest wins
    record_feedback(log, labels, model="m")
    log.flush(timeout=10)


@pytest.mark.parametrize(
    ("classes", "predicted_as"),
    [(("a", "b", "c"), "argmax"), (("a", "b", "c"), "any"), ((0.0, 1.0, 2.0), "argmax")],
)
def test_bucket_accuracy_equals_performance(
    log: PredictionLog,
    classes: tuple,
    predicted_as: str,  # type: ignore[type-arg]
) -> None:
    _fill(log, classes, predicted_as)
    count = 6
    sums = {b.index: b for b in bucket_accuracy(log.store, "m", since=T0, step=STEP, count=count)}
    report = performance(
        log, "m", None, window=STEP, since=T0, until=T0 + count * STEP, task="classification"
    )
    assert len(sums) == count
    for i, bucket in enumerate(report.buckets):
        mine = sums[i]
        assert mine.n_predictions == bucket.n_predictions
        assert mine.n_labelled == bucket.n_labelled
        assert mine.coverage == pytest.approx(bucket.coverage)
        assert mine.realized_accuracy == pytest.approx(bucket.realized["accuracy"])
        assert mine.estimated_accuracy == pytest.approx(bucket.estimated["accuracy"])


@pytest.mark.parametrize("predicted_as", ["argmax", "any"])
def test_calibrated_estimates_equal_performance(log: PredictionLog, predicted_as: str) -> None:
    """With a version's stored calibration, the sums go through it as ``performance`` does."""
    _fill(log, ("a", "b", "c"), predicted_as)
    # Overconfident about "a", unsure of "c": the maps move both.
    calibration = Calibration(
        ("c", "a", "b"),  # not the logged order: the columns are matched by name
        (ClassMap((0.0, 1.0), (0.2, 0.9)), ClassMap((0.0, 0.5, 1.0), (0.0, 0.2, 0.6)), None),
        rows=100,
    )
    count = 6
    raw = {b.index: b for b in bucket_accuracy(log.store, "m", since=T0, step=STEP, count=count)}
    sums = {
        b.index: b
        for b in bucket_accuracy(
            log.store,
            "m",
            since=T0,
            step=STEP,
            count=count,
            calibration=lambda model, version: calibration if version == 1 else None,
        )
    }
    report = performance(
        log,
        "m",
        None,
        window=STEP,
        since=T0,
        until=T0 + count * STEP,
        task="classification",
        calibration=lambda model, version: calibration,
    )
    assert report.calibrated is True
    for i, bucket in enumerate(report.buckets):
        mine = sums[i]
        assert mine.n_calibrated == mine.n_estimated == raw[i].n_estimated > 0
        assert mine.estimated_accuracy == pytest.approx(bucket.estimated["accuracy"])
        assert mine.estimated_accuracy != pytest.approx(raw[i].estimated_accuracy)
        assert mine.realized_accuracy == pytest.approx(bucket.realized["accuracy"])
    # A version without a calibration keeps the raw figures.
    none = bucket_accuracy(
        log.store, "m", since=T0, step=STEP, count=count, calibration=lambda m, v: None
    )
    assert len(none) == count
    for b in none:
        assert b.n_calibrated == 0
        assert b.expected_correct == pytest.approx(raw[b.index].expected_correct)


def _fill_variants(log: PredictionLog) -> None:
    """A primary (version 1), a canary (version 2) and a shadow (version 3) answering the
    same requests (a label joins each variant's prediction); the shadow's predictions are
    not the argmax, and some rows miss a probability."""
    rng = np.random.default_rng(5)
    classes = ("a", "b", "c")
    labels = []
    for i in range(30):
        for variant, version in (("primary", 1), ("canary", 2), ("shadow:0", 3)):
            if variant == "canary" and i % 3:
                continue  # a canary takes a third of the traffic
            proba = rng.dirichlet(np.ones(3), 8)
            if i % 7 == 0:
                proba[1, 2] = np.nan
            chosen = proba.argmax(axis=1) if variant != "shadow:0" else rng.integers(0, 3, 8)
            log.write(
                PredictionBatch(
                    request_id=f"r{i}",
                    timestamp=T0 + timedelta(minutes=5 * i, seconds=version),
                    model="m",
                    version=version,
                    inputs=pd.DataFrame({"x": rng.random(8)}),
                    predictions=np.asarray(classes, dtype=object)[chosen],
                    probabilities=proba,
                    classes=classes,
                    variant=variant,
                    source="online",
                )
            )
        for row in range(0, 8, 2):
            labels.append({"request_id": f"r{i}", "row": row, "label": classes[(i + row) % 3]})
    record_feedback(log, labels, model="m")
    log.flush(timeout=10)


@pytest.mark.parametrize("calibrated", [(), (1,), (1, 2, 3)])
def test_variant_accuracy_equals_performance_variants(
    log: PredictionLog, calibrated: tuple[int, ...]
) -> None:
    """Per (variant, version): the sums give performance()'s counts, coverage, realized and
    estimated accuracy and label delay, in its order, with and without calibrations."""
    _fill_variants(log)
    fitted = Calibration(
        ("c", "a", "b"),
        (ClassMap((0.0, 1.0), (0.2, 0.9)), ClassMap((0.0, 0.5, 1.0), (0.0, 0.2, 0.6)), None),
        rows=100,
    )

    def calibration(model: str, version: int) -> Calibration | None:
        return fitted if version in calibrated else None

    until = T0 + timedelta(hours=3)
    sums = variant_accuracy(log.store, "m", since=T0, until=until, calibration=calibration)
    report = performance(
        log,
        "m",
        None,
        window=timedelta(hours=1),
        since=T0,
        until=until,
        task="classification",
        calibration=calibration,
    )
    assert [(s.variant, s.version) for s in sums] == [
        (v.variant, v.version) for v in report.variants
    ]
    assert len(sums) == 3
    for mine, theirs in zip(sums, report.variants, strict=True):
        figures = theirs.figures
        assert mine.n_predictions == figures.n_predictions > 0
        assert mine.n_labelled == figures.n_labelled > 0
        assert mine.coverage == figures.coverage
        assert mine.realized_accuracy == figures.realized["accuracy"]
        assert mine.estimated_accuracy == pytest.approx(figures.estimated["accuracy"], rel=1e-12)
        assert mine.median_label_delay_seconds == pytest.approx(
            figures.median_label_delay_seconds, rel=1e-9
        )
        assert mine.version_calibrated == (mine.version in calibrated)
        assert mine.n_calibrated == (mine.n_estimated if mine.version in calibrated else 0)
    # performance()'s flag follows from the versions: all, none, or some calibrated.
    assert report.calibrated == {(): False, (1,): None, (1, 2, 3): True}[calibrated]
    # One version only, as `--version` gives it.
    only = variant_accuracy(log.store, "m", since=T0, until=until, version=2)
    assert [(s.variant, s.version) for s in only] == [("canary", 2)]
    assert only[0].n_predictions == sums[1].n_predictions
