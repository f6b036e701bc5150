"""A/B and shadow report statistics, checked against scipy and by construction."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from prometheus_client import CollectorRegistry
from scipy import stats

from shipyard.rollout.metrics import RolloutMetrics
from shipyard.rollout.policy import VariantStats
from shipyard.rollout.records import Deployment
from shipyard.rollout.reports import (
    ab_report,
    mean_interval,
    shadow_reports,
    two_proportion_p,
    wilson,
)

ROOT = Path(__file__).resolve().parents[2]


def test_wilson_matches_its_closed_form_and_stays_in_bounds() -> None:
    lo, hi = wilson(0, 20)
    assert lo == 0 and 0.15 < hi < 0.17  # the textbook 0.161
    lo, hi = wilson(20, 20)
    assert hi == 1 and 0.83 < lo < 0.85
    assert all(math.isnan(x) for x in wilson(0, 0))


def test_two_proportion_z_equals_uncorrected_chi_square() -> None:
    for x1, n1, x2, n2 in [(45, 100, 30, 100), (5, 40, 9, 60), (300, 1000, 320, 1000)]:
        table = [[x1, n1 - x1], [x2, n2 - x2]]
        chi2 = stats.chi2_contingency(table, correction=False)
        assert two_proportion_p(x1, n1, x2, n2) == pytest.approx(chi2.pvalue, rel=1e-9)


def test_mean_interval_is_student_t() -> None:
    values = np.array([1.0, 2.0, 3.0, 4.0, 10.0])
    mean, lo, hi = mean_interval(values)
    expected = stats.t.interval(0.95, 4, loc=values.mean(), scale=stats.sem(values))
    assert mean == 4.0 and (lo, hi) == pytest.approx(expected)


def frame(variant: str, n: int, correct: int, latency: float, version: int = 1) -> pd.DataFrame:
    labels = ["a"] * n
    predictions = ["a"] * correct + ["b"] * (n - correct)
    return pd.DataFrame(
        {
            "request_id": [f"{variant}-{i}" for i in range(n)],
            "row": 0,
            "deployment": "web",
            "variant": variant,
            "version": version,
            "latency_seconds": latency + np.linspace(0, 0.001, n),
            "prediction": predictions,
            "label": labels,
        }
    )


def test_no_winner_without_evidence_and_primary_wins_when_the_arm_errs() -> None:
    d = Deployment("web", "m", 1, split=((1, 50.0), (2, 50.0)))
    rows = pd.concat([frame("primary", 50, 40, 0.002), frame("ab:2", 50, 41, 0.002, 2)])
    report = ab_report(d, rows, {}, since="test")
    assert report.winner is None and "no significant difference" in report.verdict
    counters = {
        "primary": VariantStats("primary", 1, 1000, 2),
        "ab:2": VariantStats("ab:2", 2, 1000, 60),
    }
    report = ab_report(d, rows, counters, since="test")
    arm = next(a for a in report.arms if a.variant == "ab:2")
    assert arm.p_error_rate is not None and arm.p_error_rate < 1e-6
    assert report.winner == "primary"
    slow = pd.concat([frame("primary", 50, 40, 0.002), frame("ab:2", 50, 41, 0.02, 2)])
    arm = next(a for a in ab_report(d, slow, {}, since="t").arms if a.variant == "ab:2")
    assert arm.p_latency is not None and arm.p_latency < 1e-6


def test_shadow_report_numeric_differences() -> None:
    d = Deployment("web", "m", 1, shadows=(3,))
    answered = pd.DataFrame(
        {"request_id": ["a", "b", "c", "d"], "row": 0, "variant": "primary", "version": 1,
         "prediction": [1.0, 2.0, 3.0, 4.0], "latency_seconds": 0.001, "deployment": "web"}
    )  # fmt: skip
    shadow = answered.assign(variant="shadow:3", version=3, prediction=[1.0, 2.5, 3.0, 3.0])
    (report,) = shadow_reports(d, pd.concat([answered, shadow]), since="t")
    assert (report.compared, report.agreed, report.agreement) == (4, 2, 0.5)
    assert report.difference["max_abs"] == 1.0 and report.difference["p50"] == 0.0
    assert report.proba_difference == {}  # a regressor has no probabilities


def test_shadow_report_probability_gaps() -> None:
    d = Deployment("web", "m", 1, shadows=(3,))
    answered = pd.DataFrame(
        {"request_id": ["a", "b"], "row": 0, "variant": "primary", "version": 1,
         "prediction": ["x", "y"], "proba_x": [0.9, 0.2], "proba_y": [0.1, 0.8],
         "latency_seconds": 0.001, "deployment": "web"}
    )  # fmt: skip
    shadow = answered.assign(
        variant="shadow:3", version=3, prediction=["x", "x"], proba_x=[0.8, 0.6], proba_y=[0.2, 0.4]
    )
    (report,) = shadow_reports(d, pd.concat([answered, shadow]), since="t")
    assert report.disagreements == (("y", "x", 1),)
    assert report.proba_difference["max"] == pytest.approx(0.4)
    assert report.proba_difference["p50"] == pytest.approx(0.25)


def test_alert_rules_watch_metrics_that_exist() -> None:
    rules = yaml.safe_load((ROOT / "deploy/prometheus/rollout-alerts.yml").read_text())
    exprs = " ".join(r["expr"] for g in rules["groups"] for r in g["rules"])
    registry = CollectorRegistry()
    RolloutMetrics(registry)
    # Labelled metrics have no samples before first use: derive the series names.
    exported = {m.name + ("_total" if m.type == "counter" else "") for m in registry.collect()}
    used = set(re.findall(r"shipyard_[a-z_]+", exprs))
    assert "shipyard_rollout_rollbacks_total" in used
    missing = used - exported
    assert not missing, missing
