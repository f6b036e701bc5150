"""Concept drift: a sustained drop of performance below the training baseline.

Data drift says the inputs changed; concept drift says the model stopped
being right. It shows as performance falling below what the model achieved
at training time. One bad bucket is noise, so the flag needs ``sustained``
consecutive buckets beyond ``baseline - margin`` (or ``baseline + margin`` for
errors such as MAE, where lower is better).

Each bucket is judged on its realized metric when it has at least
``min_labels`` labels, else on CBPE's estimate, else not at all: a bucket with
neither (no traffic, no labels and no probabilities) neither extends nor
breaks a run.

>>> verdict = detect_degradation(report, "accuracy", margin=0.05, sustained=3)  # doctest: +SKIP
>>> verdict.flagged, verdict.reason                                             # doctest: +SKIP
(True, 'accuracy worse than 0.85 (baseline 0.9 - margin 0.05) for 4 consecutive ...')
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from shipyard.errors import InvalidInputError
from shipyard.monitoring.performance import HIGHER_IS_BETTER, PerformanceReport

__all__ = ["BucketVerdict", "Degradation", "detect_degradation"]


@dataclass(frozen=True)
class BucketVerdict:
    """The value one bucket was judged on, where it came from, and whether it was worse."""

    start: datetime
    end: datetime
    value: float
    source: Literal["realized", "estimated"]
    worse: bool


@dataclass(frozen=True)
class Degradation:
    """The verdict: ``flagged`` when some run of worse buckets reached ``sustained``.

    ``buckets`` are the buckets of every such run, oldest first; ``ongoing``
    says the latest judged bucket is still worse; ``evaluated`` lists every
    bucket that could be judged.
    """

    flagged: bool
    metric: str
    baseline: float
    margin: float
    threshold: float
    sustained: int
    buckets: tuple[BucketVerdict, ...]
    evaluated: tuple[BucketVerdict, ...]
    ongoing: bool
    reason: str


def detect_degradation(
    report: PerformanceReport,
    metric: str | None = None,
    baseline: float | None = None,
    margin: float = 0.05,
    sustained: int = 3,
    *,
    min_labels: int = 1,
) -> Degradation:
    """Flag ``metric`` worse than ``baseline`` by more than ``margin`` in ``sustained`` buckets.

    ``metric`` defaults to accuracy (classification) or MAE (regression);
    ``baseline`` to the value recorded at training time in the report. The
    margin is absolute, in the metric's own units.
    """
    metric = metric or ("accuracy" if report.task == "classification" else "mae")
    if metric not in report.metrics:
        raise InvalidInputError(
            f"Metric {metric!r} is not reported for a {report.task} model; "
            f"choose one of {list(report.metrics)}."
        )
    if sustained < 1:
        raise InvalidInputError(f"sustained must be at least 1 bucket, got {sustained}.")
    if margin < 0:
        raise InvalidInputError(f"margin must not be negative, got {margin}.")
    if baseline is None:
        if metric not in report.baseline:
            raise InvalidInputError(
                f"No training baseline for {metric} of {report.model}: the version recorded "
                f"{sorted(report.baseline) or 'no comparable metrics'}. Pass a baseline, "
                f"or log the model with metrics={{'{metric}': ...}}."
            )
        baseline = report.baseline[metric]
    higher = HIGHER_IS_BETTER[metric]
    threshold = baseline - margin if higher else baseline + margin

    evaluated = []
    for bucket in report.buckets:
        realized = bucket.realized.get(metric)
        estimated = bucket.estimated.get(metric)
        value: float
        source: Literal["realized", "estimated"]
        if realized is not None and bucket.n_labelled >= min_labels:
            value, source = realized, "realized"
        elif estimated is not None:
            value, source = estimated, "estimated"
        else:
            continue
        worse = value < threshold if higher else value > threshold
        evaluated.append(BucketVerdict(bucket.start, bucket.end, value, source, worse))

    runs: list[list[BucketVerdict]] = []
    current: list[BucketVerdict] = []
    for verdict in evaluated:
        if verdict.worse:
            current.append(verdict)
            continue
        if current:
            runs.append(current)
        current = []
    if current:
        runs.append(current)
    long_runs = [run for run in runs if len(run) >= sustained]
    ongoing = bool(evaluated) and evaluated[-1].worse
    flagged_buckets = tuple(v for run in long_runs for v in run)
    side = "-" if higher else "+"
    rule = f"{threshold:.4g} (baseline {baseline:.4g} {side} margin {margin:.4g})"
    reason = _reason(metric, rule, sustained, evaluated, runs, long_runs, ongoing)
    return Degradation(
        flagged=bool(long_runs),
        metric=metric,
        baseline=baseline,
        margin=margin,
        threshold=threshold,
        sustained=sustained,
        buckets=flagged_buckets,
        evaluated=tuple(evaluated),
        ongoing=ongoing,
        reason=reason,
    )


def _when(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M")


def _reason(
    metric: str,
    rule: str,
    sustained: int,
    evaluated: list[BucketVerdict],
    runs: list[list[BucketVerdict]],
    long_runs: list[list[BucketVerdict]],
    ongoing: bool,
) -> str:
    if not evaluated:
        return (
            f"No bucket could be judged: none had labels or a confidence-based estimate "
            f"of {metric}."
        )
    if not long_runs:
        longest = max((len(run) for run in runs), default=0)
        if longest == 0:
            return f"{metric} stayed better than {rule} in all {len(evaluated)} judged buckets."
        return (
            f"{metric} was worse than {rule} for at most {longest} consecutive bucket(s); "
            f"{sustained} are needed to flag a sustained drop."
        )
    run = long_runs[-1]
    values = ", ".join(f"{v.value:.4g}{'*' if v.source == 'estimated' else ''}" for v in run)
    text = (
        f"{metric} worse than {rule} for {len(run)} consecutive buckets from "
        f"{_when(run[0].start)} to {_when(run[-1].end)} UTC ({values}"
        f"{'; * estimated' if '*' in values else ''})"
    )
    if len(long_runs) > 1:
        text += f"; {len(long_runs)} such runs in the range"
    return text + ("; still worse in the latest bucket." if ongoing else "; recovered since.")
