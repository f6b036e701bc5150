"""Concept drift: sustained drops below the training baseline are flagged, blips are not."""

from __future__ import annotations

from datetime import timedelta

import pytest
from monitoring_support import T0

from shipyard.errors import InvalidInputError
from shipyard.monitoring.concept import detect_degradation
from shipyard.monitoring.performance import (
    CLASSIFICATION_METRICS,
    REGRESSION_METRICS,
    BucketPerformance,
    PerformanceReport,
)

HOUR = timedelta(hours=1)


def _bucket(
    i: int, realized: float | None, estimated: float | None = None, labelled: int = 50
) -> BucketPerformance:
    return BucketPerformance(
        start=T0 + i * HOUR,
        end=T0 + (i + 1) * HOUR,
        n_predictions=100,
        n_labelled=labelled if realized is not None else 0,
        coverage=0.5,
        median_label_delay_seconds=60.0,
        realized={"accuracy": realized, "f1_macro": None, "roc_auc": None},
        estimated={"accuracy": estimated, "f1_macro": None, "roc_auc": None},
    )


def _report(buckets: list[BucketPerformance], baseline: float | None = 0.9) -> PerformanceReport:
    return PerformanceReport(
        model="iris",
        version=3,
        task="classification",
        window=HOUR,
        since=T0,
        until=T0 + len(buckets) * HOUR,
        metrics=CLASSIFICATION_METRICS,
        baseline={} if baseline is None else {"accuracy": baseline},
        buckets=tuple(buckets),
        overall=buckets[0],
        has_probabilities=True,
    )


def _values(*values: float | None) -> PerformanceReport:
    return _report([_bucket(i, v) for i, v in enumerate(values)])


def test_a_sustained_drop_is_flagged() -> None:
    verdict = detect_degradation(
        _values(0.91, 0.84, 0.83, 0.80, 0.82), "accuracy", margin=0.05, sustained=3
    )
    assert verdict.flagged and verdict.ongoing
    assert verdict.threshold == pytest.approx(0.85)
    assert [b.start for b in verdict.buckets] == [T0 + i * HOUR for i in (1, 2, 3, 4)]
    assert "4 consecutive buckets" in verdict.reason
    assert "baseline 0.9 - margin 0.05" in verdict.reason
    assert "still worse" in verdict.reason


def test_short_dips_and_values_within_the_margin_are_not_flagged() -> None:
    dips = detect_degradation(_values(0.84, 0.84, 0.91, 0.80, 0.80, 0.95), sustained=3)
    assert not dips.flagged
    assert "at most 2 consecutive" in dips.reason
    within = detect_degradation(_values(0.86, 0.86, 0.86, 0.86), margin=0.05, sustained=3)
    assert not within.flagged and within.buckets == ()
    assert "stayed better than" in within.reason
    # Exactly at the threshold is not worse.
    assert not detect_degradation(_values(0.85, 0.85, 0.85), margin=0.05).flagged


def test_a_recovered_drop_is_still_flagged_and_says_so() -> None:
    verdict = detect_degradation(_values(0.7, 0.7, 0.7, 0.95), sustained=3)
    assert verdict.flagged and not verdict.ongoing
    assert "recovered since" in verdict.reason


def test_estimates_stand_in_for_unlabelled_buckets() -> None:
    buckets = [_bucket(0, 0.80), _bucket(1, None, 0.81), _bucket(2, None, 0.79)]
    verdict = detect_degradation(_report(buckets), sustained=3)
    assert verdict.flagged
    assert [b.source for b in verdict.buckets] == ["realized", "estimated", "estimated"]
    assert "* estimated" in verdict.reason


def test_too_few_labels_fall_back_to_the_estimate() -> None:
    # Two labels say 0.5; the estimate over all 100 predictions says 0.93.
    buckets = [_bucket(i, 0.5, 0.93, labelled=2) for i in range(4)]
    assert detect_degradation(_report(buckets), sustained=3).flagged
    calm = detect_degradation(_report(buckets), sustained=3, min_labels=10)
    assert not calm.flagged
    assert {b.source for b in calm.evaluated} == {"estimated"}


def test_buckets_without_any_value_neither_extend_nor_break_a_run() -> None:
    buckets = [_bucket(0, 0.8), _bucket(1, None), _bucket(2, 0.8), _bucket(3, 0.8)]
    verdict = detect_degradation(_report(buckets), sustained=3)
    assert verdict.flagged and len(verdict.evaluated) == 3
    nothing = detect_degradation(_report([_bucket(0, None), _bucket(1, None)]))
    assert not nothing.flagged and "No bucket could be judged" in nothing.reason


def test_lower_is_better_for_errors() -> None:
    def bucket(i: int, mae: float) -> BucketPerformance:
        return BucketPerformance(
            T0 + i * HOUR, T0 + (i + 1) * HOUR, 10, 10, 1.0, 1.0, {"mae": mae, "rmse": None}, {}
        )

    report = PerformanceReport(
        "house",
        1,
        "regression",
        HOUR,
        T0,
        T0 + 3 * HOUR,
        REGRESSION_METRICS,
        {"mae": 2.0},
        (bucket(0, 2.6), bucket(1, 2.7), bucket(2, 2.9)),
        bucket(0, 2.6),
        False,
    )
    verdict = detect_degradation(report, margin=0.5, sustained=3)
    assert verdict.metric == "mae" and verdict.threshold == 2.5 and verdict.flagged
    assert "baseline 2 + margin 0.5" in verdict.reason
    assert not detect_degradation(report, margin=1.0, sustained=3).flagged


def test_an_explicit_baseline_overrides_the_recorded_one() -> None:
    report = _values(0.8, 0.8, 0.8)
    assert detect_degradation(report, baseline=0.9).flagged
    assert not detect_degradation(report, baseline=0.82).flagged


def test_bad_requests_are_refused() -> None:
    report = _report([_bucket(0, 0.8)], baseline=None)
    with pytest.raises(InvalidInputError, match="No training baseline for accuracy of iris"):
        detect_degradation(report)
    with pytest.raises(InvalidInputError, match="not reported for a classification"):
        detect_degradation(report, "mae", baseline=1.0)
    with pytest.raises(InvalidInputError, match="sustained"):
        detect_degradation(report, baseline=0.9, sustained=0)
    with pytest.raises(InvalidInputError, match="margin"):
        detect_degradation(report, baseline=0.9, margin=-0.1)
