"""A/B and shadow reports: per-variant evidence with intervals and tests, and shadow agreement.

Both read what the servers logged for the deployment in a window (the
prediction log, with labels joined by request id: only the deployment's own
rows, per variant and version, see :mod:`shipyard.rollout.log_rows`; by
default since its current traffic configuration began) and, for error rates,
the counters the servers reported for the current traffic epoch.

A/B report, per answering variant: requests and 5xx error rate (Wilson 95 %
interval), mean latency (Student-t interval), and where labels arrived,
accuracy (Wilson interval). Each arm is compared with the primary: a
two-proportion z test on accuracy and on error rate, Mann-Whitney U on
latency. A winner is declared only on evidence: the arm whose accuracy is
significantly higher than the primary's (or, without labels, whose error rate
is significantly lower) at ``alpha``, and never one significantly worse on the
other rate.

Shadow report, per shadow version: rows compared with the answer actually
returned for the same request and row, the agreement rate (with its Wilson
interval), the most common disagreements, for numeric answers the
distribution of ``shadow - primary``, and for classifiers the distribution of
the largest per-row gap between their class probabilities.

Example:
    >>> [round(x, 4) for x in wilson(45, 50)]
    [0.7864, 0.9565]
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from shipyard.monitoring.durations import parse_instant
from shipyard.monitoring.prediction_log import PredictionLog
from shipyard.monitoring.queries import read_labelled
from shipyard.monitoring.records import PROBA_PREFIX, class_key
from shipyard.rollout.log_rows import deployment_rows
from shipyard.rollout.policy import VariantStats, merge_stats
from shipyard.rollout.records import PRIMARY, SHADOW_PREFIX, Deployment
from shipyard.rollout.service import Deployments

Z95 = 1.959963984540054


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion (sane at 0 and n, unlike the normal one).

    >>> wilson(0, 0)
    (nan, nan)
    """
    if n == 0:
        return math.nan, math.nan
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def two_proportion_p(x1: int, n1: int, x2: int, n2: int) -> float:
    """Two-sided p value of the pooled two-proportion z test (nan if undefined).

    >>> round(two_proportion_p(90, 100, 70, 100), 4)
    0.0004
    """
    if n1 == 0 or n2 == 0:
        return math.nan
    pooled = (x1 + x2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 1.0 if x1 / n1 == x2 / n2 else 0.0
    z = (x1 / n1 - x2 / n2) / se
    return float(2 * stats.norm.sf(abs(z)))


def mean_interval(values: np.ndarray) -> tuple[float, float, float]:
    """Mean and its Student-t 95 % interval."""
    n = len(values)
    if n == 0:
        return math.nan, math.nan, math.nan
    mean = float(np.mean(values))
    if n == 1:
        return mean, math.nan, math.nan
    half = float(stats.t.ppf(0.975, n - 1) * np.std(values, ddof=1) / math.sqrt(n))
    return mean, mean - half, mean + half


@dataclass(frozen=True)
class ArmReport:
    """Evidence about one answering variant; ``p_*`` compare it with the primary."""

    variant: str
    version: int
    requests: int
    errors: int
    error_rate: float
    error_rate_ci: tuple[float, float]
    rows: int
    latency_mean: float
    latency_ci: tuple[float, float]
    latency_p95: float
    labelled: int
    correct: int
    accuracy: float
    accuracy_ci: tuple[float, float]
    p_accuracy: float | None = None
    p_error_rate: float | None = None
    p_latency: float | None = None


@dataclass(frozen=True)
class ABReport:
    deployment: str
    model: str
    since: str
    alpha: float
    arms: tuple[ArmReport, ...]
    winner: str | None
    verdict: str


def ab_report(
    d: Deployment,
    log_rows: pd.DataFrame,
    counters: dict[str, VariantStats],
    *,
    since: str,
    alpha: float = 0.05,
) -> ABReport:
    """Compare the answering variants of ``d`` (see the module doc).

    ``log_rows``: labelled prediction-log rows of the window (columns deployment,
    variant, version, latency_seconds, prediction, label), of which only ``d``'s
    own count; ``counters``: per-variant requests and errors of the epoch.
    """
    own = deployment_rows(d, log_rows)
    rows = own[~own["variant"].astype(str).str.startswith(SHADOW_PREFIX)]
    arms: list[ArmReport] = []
    latencies: dict[str, np.ndarray] = {}
    for v in d.variants():
        mine = rows[rows["variant"] == v.name]
        latency = mine["latency_seconds"].to_numpy(dtype=float)
        latencies[v.name] = latency
        mean, lo, hi = mean_interval(latency)
        labelled = mine[mine["label"].notna()] if "label" in mine else mine.iloc[0:0]
        correct = sum(
            class_key(p) == str(t)
            for p, t in zip(
                labelled["prediction"].tolist(), labelled["label"].tolist(), strict=True
            )
        )
        c = counters.get(v.name) or VariantStats(v.name, v.version)
        arms.append(
            ArmReport(
                variant=v.name,
                version=v.version,
                requests=c.requests,
                errors=c.errors,
                error_rate=c.error_rate if c.requests else math.nan,
                error_rate_ci=wilson(c.errors, c.requests),
                rows=len(mine),
                latency_mean=mean,
                latency_ci=(lo, hi),
                latency_p95=float(np.quantile(latency, 0.95)) if len(latency) else math.nan,
                labelled=len(labelled),
                correct=int(correct),
                accuracy=correct / len(labelled) if len(labelled) else math.nan,
                accuracy_ci=wilson(int(correct), len(labelled)),
            )
        )
    base = next((a for a in arms if a.variant == PRIMARY), None)
    compared = []
    for arm in arms:
        if base is None or arm is base:
            compared.append(arm)
            continue
        p_latency = None
        a, b = latencies[arm.variant], latencies[PRIMARY]
        if len(a) and len(b):
            p_latency = float(stats.mannwhitneyu(a, b, alternative="two-sided").pvalue)
        compared.append(
            ArmReport(
                **{
                    **arm.__dict__,
                    "p_accuracy": two_proportion_p(
                        arm.correct, arm.labelled, base.correct, base.labelled
                    ),
                    "p_error_rate": two_proportion_p(
                        arm.errors, arm.requests, base.errors, base.requests
                    ),
                    "p_latency": p_latency,
                }
            )
        )
    winner, verdict = _winner(compared, alpha)
    return ABReport(d.name, d.model, since, alpha, tuple(compared), winner, verdict)


def _significant(p: float | None, alpha: float) -> bool:
    return p is not None and not math.isnan(p) and p < alpha


def _winner(arms: list[ArmReport], alpha: float) -> tuple[str | None, str]:
    base = next((a for a in arms if a.variant == PRIMARY), None)
    if base is None or len(arms) < 2:
        return None, "nothing to compare: the deployment has a single answering variant"
    better, worse = [], []
    for arm in arms:
        if arm is base:
            continue
        acc_sig = _significant(arm.p_accuracy, alpha)
        err_sig = _significant(arm.p_error_rate, alpha)
        acc_up = acc_sig and arm.accuracy > base.accuracy
        acc_down = acc_sig and arm.accuracy < base.accuracy
        err_up = err_sig and arm.error_rate > base.error_rate
        err_down = err_sig and arm.error_rate < base.error_rate
        if (acc_down or err_up) and not (acc_up or err_down):
            worse.append(arm.variant)
        elif (acc_up and not err_up) or (err_down and not acc_down and not acc_sig):
            better.append(arm)
    if len(better) == 1:
        arm = better[0]
        on = "accuracy" if _significant(arm.p_accuracy, alpha) else "error rate"
        p = arm.p_accuracy if on == "accuracy" else arm.p_error_rate
        return (
            arm.variant,
            f"{arm.variant} (version {arm.version}) beats the primary on {on} "
            f"(p = {p:.3g} < {alpha})",
        )
    if len(better) > 1:
        best = max(better, key=lambda a: a.accuracy if not math.isnan(a.accuracy) else -1)
        return best.variant, (
            f"{len(better)} arms beat the primary; {best.variant} has the highest accuracy"
        )
    if worse:
        return PRIMARY, f"the primary wins: {', '.join(worse)} significantly worse (alpha {alpha})"
    labelled = sum(a.labelled for a in arms)
    hint = "" if labelled else "; no labels yet (send them with `shipyard monitor feedback`)"
    return None, f"no significant difference at alpha {alpha}: keep collecting{hint}"


@dataclass(frozen=True)
class ShadowReport:
    """How one shadow's answers compare with the answers actually returned."""

    deployment: str
    model: str
    version: int
    since: str
    compared: int
    agreed: int
    agreement: float
    agreement_ci: tuple[float, float]
    disagreements: tuple[tuple[str, str, int], ...] = ()
    difference: dict[str, float] = field(default_factory=dict)
    shadow_latency_mean: float = math.nan
    primary_latency_mean: float = math.nan
    proba_difference: dict[str, float] = field(default_factory=dict)


def shadow_reports(d: Deployment, log_rows: pd.DataFrame, *, since: str) -> list[ShadowReport]:
    """One report per shadow of ``d``, from ``d``'s own rows of ``log_rows``."""
    log_rows = deployment_rows(d, log_rows)
    variants = log_rows["variant"].astype(str)
    answered = log_rows[~variants.str.startswith(SHADOW_PREFIX)]
    keys = ["request_id", "row"]
    seen = {int(v[len(SHADOW_PREFIX) :]) for v in set(variants) if v.startswith(SHADOW_PREFIX)}
    out = []
    for version in sorted(seen | set(d.shadows)):
        shadow = log_rows[variants == f"{SHADOW_PREFIX}{version}"]
        pairs = shadow.merge(answered, on=keys, suffixes=("_shadow", "_primary"))
        mine = [class_key(v) for v in pairs["prediction_shadow"].tolist()]
        theirs = [class_key(v) for v in pairs["prediction_primary"].tolist()]
        agreed = sum(a == b for a, b in zip(mine, theirs, strict=True))
        n = len(pairs)
        disagreements = Counter(
            (b or "", a or "") for a, b in zip(mine, theirs, strict=True) if a != b
        )
        difference: dict[str, float] = {}
        numeric_a = pd.to_numeric(pairs["prediction_shadow"], errors="coerce")
        numeric_b = pd.to_numeric(pairs["prediction_primary"], errors="coerce")
        delta = (numeric_a - numeric_b).dropna().to_numpy(dtype=float)
        if len(delta) and len(delta) == n:
            difference = {
                "mean": float(delta.mean()),
                "std": float(delta.std(ddof=1)) if n > 1 else 0.0,
                "p05": float(np.quantile(delta, 0.05)),
                "p50": float(np.quantile(delta, 0.5)),
                "p95": float(np.quantile(delta, 0.95)),
                "max_abs": float(np.abs(delta).max()),
            }
        proba = _proba_difference(pairs)
        out.append(
            ShadowReport(
                deployment=d.name,
                model=d.model,
                version=version,
                since=since,
                compared=n,
                agreed=int(agreed),
                agreement=agreed / n if n else math.nan,
                agreement_ci=wilson(int(agreed), n),
                disagreements=tuple((p, s, c) for (p, s), c in disagreements.most_common(10)),
                difference=difference,
                proba_difference=proba,
                shadow_latency_mean=float(pairs["latency_seconds_shadow"].mean())
                if n
                else math.nan,
                primary_latency_mean=float(pairs["latency_seconds_primary"].mean())
                if n
                else math.nan,
            )
        )
    return out


def _window(
    deployments: Deployments, log: PredictionLog, name: str, since: str | None
) -> tuple[Deployment, pd.DataFrame, str]:
    d = deployments.get(name)
    now = log.clock.now()
    if since is None:  # the current traffic configuration (epoch) started then
        start = d.step_started_at or now - timedelta(days=1)
        label = f"revision {d.revision} configuration, since {start:%Y-%m-%d %H:%M:%S} UTC"
    else:
        start = parse_instant(since, now=now)
        label = f"since {since}"
    log.flush(timeout=10)
    rows = read_labelled(log.store, d.model, since=start, until=now)
    return d, rows, label


def load_ab_report(
    deployments: Deployments,
    log: PredictionLog,
    name: str,
    *,
    since: str | None = None,
    alpha: float = 0.05,
) -> ABReport:
    """The A/B report of deployment ``name`` from its prediction log and live counters.

    By default the window is the current traffic configuration (its epoch);
    ``since`` (``"24h"``, an ISO time) widens or narrows it.
    """
    d, rows, label = _window(deployments, log, name, since)
    counters = merge_stats(deployments.store.counters(name, d.epoch))
    return ab_report(d, rows, counters, since=label, alpha=alpha)


def load_shadow_reports(
    deployments: Deployments, log: PredictionLog, name: str, *, since: str | None = None
) -> list[ShadowReport]:
    """Shadow reports of deployment ``name`` (window as in :func:`load_ab_report`)."""
    d, rows, label = _window(deployments, log, name, since)
    return shadow_reports(d, rows, since=label)


def _proba_difference(pairs: pd.DataFrame) -> dict[str, float]:
    """Distribution over rows of the largest |shadow - answered| class probability gap."""
    classes = [
        c[: -len("_shadow")]
        for c in pairs.columns
        if c.startswith(PROBA_PREFIX) and c.endswith("_shadow")
        and f"{c[: -len('_shadow')]}_primary" in pairs.columns
    ]  # fmt: skip
    if not classes or pairs.empty:
        return {}
    shadow = pairs[[f"{c}_shadow" for c in classes]].to_numpy(dtype=float)
    answered = pairs[[f"{c}_primary" for c in classes]].to_numpy(dtype=float)
    gap = np.nanmax(np.abs(shadow - answered), axis=1)
    gap = gap[~np.isnan(gap)]
    if not len(gap):
        return {}
    return {
        "mean": float(gap.mean()),
        "p50": float(np.quantile(gap, 0.5)),
        "p95": float(np.quantile(gap, 0.95)),
        "max": float(gap.max()),
    }


def report_to_dict(report: Any) -> dict[str, Any]:
    """A report as JSON-ready data (NaN becomes None)."""

    def clean(value: Any) -> Any:
        if isinstance(value, float) and math.isnan(value):
            return None
        if isinstance(value, tuple | list):
            return [clean(v) for v in value]
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if hasattr(value, "__dataclass_fields__"):
            return {k: clean(getattr(value, k)) for k in value.__dataclass_fields__}
        return value

    result: dict[str, Any] = clean(report)
    return result


__all__ = [
    "ABReport",
    "ArmReport",
    "ShadowReport",
    "ab_report",
    "load_ab_report",
    "load_shadow_reports",
    "mean_interval",
    "report_to_dict",
    "shadow_reports",
    "two_proportion_p",
    "wilson",
]
