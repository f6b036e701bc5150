"""Model gates with real packaged scikit-learn models: thresholds, changes, slices, budgets."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_regression
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score
from sklearn.svm import LinearSVC

from shipyard.clock import ManualClock
from shipyard.errors import InvalidInputError
from shipyard.validation.gate_results import GateReport
from shipyard.validation.gates import (
    GateSpec,
    MetricThreshold,
    SliceGap,
    build_spec,
    compute_metrics,
    evaluate_gates,
    measure_latency_ms,
)

FEATURES = [f"f{i}" for i in range(6)]


@pytest.fixture(scope="module")
def frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    # The label depends on f0..f3 (most on f0); f4 and f5 are noise.
    rng = np.random.default_rng(3)
    X = rng.normal(size=(800, 6))
    y = (X @ np.array([1.5, 1.0, 0.8, 0.6, 0.0, 0.0]) + rng.normal(0, 0.8, 800) > 0).astype(int)
    frame = pd.DataFrame(X, columns=FEATURES).assign(label=y)
    return frame.iloc[:500].reset_index(drop=True), frame.iloc[500:].reset_index(drop=True)


@pytest.fixture(scope="module")
def models(frames, tmp_path_factory, packager):  # type: ignore[no-untyped-def]
    """A champion on two informative features, a worse one on noise, a better one on all."""
    train, _ = frames
    tmp = tmp_path_factory.mktemp("models")
    out = {}
    for name, cols in {"champion": ["f0", "f1"], "worse": ["f5"], "better": FEATURES}.items():
        est = LogisticRegression(max_iter=1000).fit(train[cols], train["label"])
        out[name] = packager(est, train[cols], tmp, name)
    return out


# -- MLflow MetricThreshold semantics --------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "value", "baseline", "expected"),
    [
        (MetricThreshold(threshold=0.9), 0.9, None, (True, None, None)),  # inclusive
        (MetricThreshold(threshold=0.9), 0.89, None, (False, None, None)),
        (MetricThreshold(threshold=10, greater_is_better=False), 10.5, None, (False, None, None)),
        (MetricThreshold(min_absolute_change=0.05), 0.86, 0.80, (None, True, None)),
        (MetricThreshold(min_absolute_change=0.05), 0.84, 0.80, (None, False, None)),
        (MetricThreshold(min_absolute_change=0.0), 0.80, 0.80, (None, True, None)),
        (
            MetricThreshold(min_absolute_change=1.0, greater_is_better=False),
            9.0,
            10.0,
            (None, True, None),
        ),
        (MetricThreshold(min_relative_change=0.1), 0.89, 0.80, (None, None, True)),
        (MetricThreshold(min_relative_change=0.1), 0.87, 0.80, (None, None, False)),
        (
            MetricThreshold(min_relative_change=0.1, greater_is_better=False),
            8.9,
            10.0,
            (None, None, True),
        ),
        # A zero baseline falls back to "strictly better by 1e-10", as in MLflow.
        (MetricThreshold(min_relative_change=0.5), 0.0, 0.0, (None, None, False)),
        (MetricThreshold(min_relative_change=0.5), 1e-9, 0.0, (None, None, True)),
    ],
)
def test_metric_threshold_matches_mlflow(rule, value, baseline, expected) -> None:  # type: ignore[no-untyped-def]
    assert rule.check(value, baseline=baseline) == expected


def test_metric_threshold_refuses_what_mlflow_refuses() -> None:
    with pytest.raises(InvalidInputError, match="needs a threshold"):
        MetricThreshold()
    with pytest.raises(InvalidInputError, match="between 0 and 1"):
        MetricThreshold(min_relative_change=5)
    with pytest.raises(InvalidInputError, match=">= 0"):
        MetricThreshold(min_absolute_change=-0.1)
    with pytest.raises(InvalidInputError, match="baseline"):
        MetricThreshold(min_absolute_change=0.1).check(0.5)


def test_build_spec_parses_cli_forms() -> None:
    spec = build_spec(
        thresholds=["accuracy>=0.9", "rmse<=3"],
        min_changes=["accuracy:+0.01", "f1_macro:+2%"],
        slice_column="group",
        max_slice_gaps=["accuracy:0.1"],
    )
    assert spec.thresholds["accuracy"] == MetricThreshold(0.9, 0.01, None, True)
    assert spec.thresholds["f1_macro"].min_relative_change == pytest.approx(0.02)
    assert spec.thresholds["rmse"].greater_is_better is False
    assert spec.slices == (SliceGap("group", "accuracy", 0.1),)
    with pytest.raises(InvalidInputError, match="higher accuracy is better"):
        build_spec(thresholds=["accuracy<=0.9"])
    with pytest.raises(InvalidInputError, match="Unknown metric 'precision'"):
        build_spec(thresholds=["precision>=0.9"])
    with pytest.raises(InvalidInputError, match="needs --slice"):
        build_spec(max_slice_gaps=["accuracy:0.1"])
    with pytest.raises(InvalidInputError, match="METRIC:\\+DELTA"):
        build_spec(min_changes=["accuracy 0.1"])


# -- real models ---------------------------------------------------------------------------


def test_metrics_match_sklearn(models, frames) -> None:  # type: ignore[no-untyped-def]
    _, holdout = frames
    model = models["better"]
    X, y = holdout[FEATURES], holdout["label"]
    got = compute_metrics(model, X, y)
    est_pred = model.predict(X)
    assert got["accuracy"] == pytest.approx(accuracy_score(y, est_pred))
    assert got["f1_macro"] == pytest.approx(f1_score(y, est_pred, average="macro"))
    assert got["roc_auc"] == pytest.approx(roc_auc_score(y, model.predict_proba(X)[:, 1]))


def test_worse_candidate_fails_and_better_passes_against_the_champion(models, frames) -> None:  # type: ignore[no-untyped-def]
    _, holdout = frames
    spec = build_spec(thresholds=["accuracy>=0.7"], min_changes=["accuracy:+0.02", "roc_auc:+1%"])
    champion = models["champion"]
    worse = evaluate_gates(models["worse"], holdout, "label", spec, champion=champion)
    better = evaluate_gates(models["better"], holdout, "label", spec, champion=champion)
    # The data decides; check the models really are ordered as constructed.
    acc = {k: r.candidate_metrics["accuracy"] for k, r in (("worse", worse), ("better", better))}
    assert acc["worse"] < worse.champion_metrics["accuracy"] < acc["better"]
    assert not worse.passed
    assert {c.kind for c in worse.failures} >= {"threshold", "min_absolute_change"}
    assert better.passed, better.summary()
    assert better.champion == champion.ref
    assert GateReport.from_dict(better.to_dict()).to_dict() == better.to_dict()


def test_no_checks_means_no_worse_than_the_champion(models, frames) -> None:  # type: ignore[no-untyped-def]
    _, holdout = frames
    report = evaluate_gates(
        models["worse"], holdout, "label", GateSpec(), champion=models["champion"]
    )
    assert [c.requirement for c in report.checks] == ["accuracy no worse than champion"]
    assert not report.passed
    with pytest.raises(InvalidInputError, match="Nothing to check"):
        evaluate_gates(models["worse"], holdout, "label", GateSpec())


def test_bad_gate_inputs_are_named(models, frames) -> None:  # type: ignore[no-untyped-def]
    _, holdout = frames
    spec = build_spec(thresholds=["accuracy>=0.5"])
    with pytest.raises(InvalidInputError, match="no target column 'y'"):
        evaluate_gates(models["better"], holdout, "y", spec)
    with pytest.raises(InvalidInputError, match="--against"):
        evaluate_gates(models["better"], holdout, "label", build_spec(min_changes=["accuracy:+0"]))
    with pytest.raises(InvalidInputError, match="not a classification metric"):
        evaluate_gates(models["better"], holdout, "label", build_spec(thresholds=["rmse<=1"]))
    gappy = holdout.astype({"label": float})
    gappy.loc[4, "label"] = np.nan
    with pytest.raises(InvalidInputError, match="missing values at rows \\[4\\]"):
        evaluate_gates(models["better"], gappy, "label", spec)


def test_roc_auc_needs_probabilities(frames, tmp_path: Path, packager) -> None:  # type: ignore[no-untyped-def]
    train, holdout = frames
    svc = packager(LinearSVC().fit(train[FEATURES], train["label"]), train[FEATURES], tmp_path)
    with pytest.raises(InvalidInputError, match="no predict_proba"):
        evaluate_gates(svc, holdout, "label", build_spec(thresholds=["roc_auc>=0.5"]))


def test_slice_gap_catches_a_model_biased_against_one_group(tmp_path: Path, packager) -> None:  # type: ignore[no-untyped-def]
    # Labels follow x for group "a"; for group "b" 40% of them are flipped, so a model
    # of x alone is right ~100% of the time on "a" and ~60% on "b", by construction.
    rng = np.random.default_rng(7)
    n = 600
    x = rng.uniform(-1, 1, n)
    group = np.where(rng.random(n) < 0.5, "a", "b")
    label = (x > 0).astype(int)
    flip = (group == "b") & (rng.random(n) < 0.4)
    label[flip] = 1 - label[flip]
    frame = pd.DataFrame({"x": x, "group": group, "label": label})
    tiny = pd.DataFrame({"x": [0.5] * 3, "group": ["c"] * 3, "label": [1] * 3})
    holdout = pd.concat([frame, tiny], ignore_index=True)
    model = packager(LogisticRegression().fit(frame[["x"]], frame["label"]), frame[["x"]], tmp_path)
    spec = build_spec(slice_column="group", max_slice_gaps=["accuracy:0.1"])
    report = evaluate_gates(model, holdout, "label", spec)
    [slices] = report.slices
    predictions = model.predict(frame[["x"]])
    for g in ("a", "b"):
        mask = frame["group"] == g
        assert slices.values[g] == pytest.approx(
            accuracy_score(frame["label"][mask], predictions[mask])
        )
    assert slices.values["a"] - slices.values["b"] > 0.25
    assert slices.skipped == {"c": "3 rows < 10"}
    assert not report.passed and report.failures[0].kind == "slice_gap"
    lenient = build_spec(slice_column="group", max_slice_gaps=["accuracy:0.6"])
    assert evaluate_gates(model, holdout, "label", lenient).passed


def test_latency_budget_uses_the_median_of_single_row_calls(models, frames) -> None:  # type: ignore[no-untyped-def]
    _, holdout = frames
    # An injected clock: every prediction "takes" 2 ms except every fifth, which takes 40.
    ticks = itertools.count()
    durations = itertools.cycle([0.002, 0.002, 0.002, 0.002, 0.040])
    now = [0.0]

    class Stopwatch(ManualClock):
        def monotonic(self) -> float:
            if next(ticks) % 2:  # the end of a call
                now[0] += next(durations)
            return now[0]

    clock = Stopwatch()

    model = models["better"]
    assert measure_latency_ms(model, holdout[FEATURES], samples=25, clock=clock) == pytest.approx(2)
    fast = evaluate_gates(model, holdout, "label", GateSpec(latency_budget_ms=3), clock=clock)
    slow = evaluate_gates(model, holdout, "label", GateSpec(latency_budget_ms=1.5), clock=clock)
    assert fast.passed and fast.latency_ms == pytest.approx(2)
    assert not slow.passed and slow.failures[0].kind == "latency"
    real = evaluate_gates(
        model, holdout, "label", GateSpec(latency_budget_ms=10_000, latency_samples=5)
    )
    assert real.passed and real.latency_ms > 0


def test_size_budget(models, frames) -> None:  # type: ignore[no-untyped-def]
    _, holdout = frames
    model = models["better"]
    ok = evaluate_gates(model, holdout, "label", GateSpec(size_budget_mb=1), package_bytes=200_000)
    too_big = evaluate_gates(
        model, holdout, "label", GateSpec(size_budget_mb=1), package_bytes=2_500_000
    )
    assert ok.passed and ok.size_mb == pytest.approx(0.2)
    assert not too_big.passed and "2,500,000 bytes" in too_big.failures[0].message


def test_regression_gates(tmp_path: Path, packager) -> None:  # type: ignore[no-untyped-def]
    X, y = make_regression(n_samples=300, n_features=3, noise=5.0, random_state=0)
    frame = pd.DataFrame(X, columns=["a", "b", "c"]).assign(target=y)
    train, holdout = frame.iloc[:200], frame.iloc[200:]
    good = packager(
        LinearRegression().fit(train[["a", "b", "c"]], train["target"]),
        train[["a", "b", "c"]],
        tmp_path,
        "good",
    )
    weak = packager(
        Ridge(alpha=1e4).fit(train[["a"]], train["target"]), train[["a"]], tmp_path, "weak"
    )
    spec = build_spec(thresholds=["r2>=0.9"], min_changes=["rmse:+1.0"])
    assert evaluate_gates(good, holdout, "target", spec, champion=weak).passed
    report = evaluate_gates(weak, holdout, "target", spec, champion=good)
    assert not report.passed
    assert set(report.candidate_metrics) == {"mae", "rmse", "r2"}
    assert report.candidate_metrics["rmse"] > report.champion_metrics["rmse"]
