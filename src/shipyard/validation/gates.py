"""Model gates: what a candidate version must show on holdout data before production.

Four kinds of check, all optional, all evaluated on the same holdout frame:

- **Metric thresholds**, with the semantics of MLflow's ``MetricThreshold``
  (see :class:`MetricThreshold`): an absolute threshold, and a minimum absolute
  or relative change over the champion (the *baseline*).
- **Slice gaps**: the metric per value of a named column (say ``gender``); the
  largest gap between two slices must stay within a bound. Amazon's hiring
  model scored well overall and was still biased against one group: overall
  metrics hide what a slice check shows.
- **Latency**: the median time of single-row predictions, in milliseconds.
- **Size**: the model package in MB (10^6 bytes).

Metrics: ``accuracy``, ``f1_macro``, ``roc_auc`` (classification) and ``mae``,
``rmse``, ``r2`` (regression). Higher is better except for ``mae`` and ``rmse``.

Example:
    >>> spec = build_spec(thresholds=["accuracy>=0.9"], min_changes=["accuracy:+0.01"])
    >>> spec.thresholds["accuracy"]
    MetricThreshold(threshold=0.9, min_absolute_change=0.01, min_relative_change=None, \
greater_is_better=True)
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd

from shipyard.clock import SYSTEM_CLOCK, Clock
from shipyard.errors import InvalidInputError
from shipyard.validation.gate_results import GateCheck, GateReport, SliceReport

CLASSIFICATION_METRICS = ("accuracy", "f1_macro", "roc_auc")
REGRESSION_METRICS = ("mae", "rmse", "r2")
METRICS = CLASSIFICATION_METRICS + REGRESSION_METRICS
GREATER_IS_BETTER: dict[str, bool] = {
    "accuracy": True,
    "f1_macro": True,
    "roc_auc": True,
    "mae": False,
    "rmse": False,
    "r2": True,
}
#: The metric a gate with no checks of its own compares against the champion.
PRIMARY_METRIC = {"classification": "accuracy", "regression": "rmse"}
DEFAULT_LATENCY_SAMPLES = 50
DEFAULT_MIN_SLICE_ROWS = 10
_WARMUP_CALLS = 3
_BYTES_PER_MB = 1_000_000


class Scorable(Protocol):
    """What the gates need of a model: :class:`~shipyard.registry.model.LoadedModel` fits."""

    @property
    def ref(self) -> str: ...

    @property
    def classes(self) -> np.ndarray | None: ...

    @property
    def has_proba(self) -> bool: ...

    def predict(self, data: Any) -> np.ndarray: ...

    def predict_proba(self, data: Any) -> np.ndarray: ...


@dataclass(frozen=True)
class MetricThreshold:
    """MLflow's ``MetricThreshold``, with the same rules (``mlflow.models.MetricThreshold``).

    With ``greater_is_better`` the candidate value ``c`` and the baseline
    (champion) value ``b`` pass when:

    - ``threshold``: ``c >= threshold`` (``c <= threshold`` when lower is better);
    - ``min_absolute_change``: ``c >= b + min_absolute_change``
      (``c <= b - min_absolute_change`` when lower is better): the candidate must
      *beat* the champion by at least that much;
    - ``min_relative_change`` (between 0 and 1): ``(c - b) / b >= min_relative_change``
      (``(b - c) / b >= ...`` when lower is better). When ``b == 0`` it falls back
      to ``c >= b + 1e-10`` (``c <= b - 1e-10``), as MLflow does. Like MLflow, the
      ratio divides by ``b`` as is, so a negative baseline (an R² below zero)
      flips the sign: prefer an absolute change for such metrics.

    Comparisons are inclusive. One deliberate difference: MLflow requires
    ``min_absolute_change > 0``; here ``0`` is allowed and means "no worse than
    the champion", which MLflow cannot say.

    Example:
        >>> MetricThreshold(min_absolute_change=0.01).check(0.95, baseline=0.93)[1]
        True
    """

    threshold: float | None = None
    min_absolute_change: float | None = None
    min_relative_change: float | None = None
    greater_is_better: bool = True

    def __post_init__(self) -> None:
        if self.threshold is not None and not _is_number(self.threshold):
            raise InvalidInputError(f"threshold must be a number, got {self.threshold!r}.")
        if self.min_absolute_change is not None and (
            not _is_number(self.min_absolute_change) or self.min_absolute_change < 0
        ):
            raise InvalidInputError(
                f"min_absolute_change must be a number >= 0, got {self.min_absolute_change!r}."
            )
        if self.min_relative_change is not None and (
            not _is_number(self.min_relative_change) or not 0 <= self.min_relative_change <= 1
        ):
            raise InvalidInputError(
                "min_relative_change must be a number between 0 and 1 (0.05 means 5%), "
                f"got {self.min_relative_change!r}."
            )
        if not isinstance(self.greater_is_better, bool):
            raise InvalidInputError("greater_is_better must be True or False.")
        if (
            self.threshold is None
            and self.min_absolute_change is None
            and self.min_relative_change is None
        ):
            raise InvalidInputError(
                "A MetricThreshold needs a threshold, a min_absolute_change or a "
                "min_relative_change."
            )

    @property
    def needs_baseline(self) -> bool:
        return self.min_absolute_change is not None or self.min_relative_change is not None

    def check(
        self, value: float, *, baseline: float | None = None
    ) -> tuple[bool | None, bool | None, bool | None]:
        """(threshold passed, absolute change passed, relative change passed); None = unset."""
        better_or_equal = (lambda a, b: a >= b) if self.greater_is_better else (lambda a, b: a <= b)
        sign = 1.0 if self.greater_is_better else -1.0
        threshold = None if self.threshold is None else better_or_equal(value, self.threshold)
        absolute = relative = None
        if self.needs_baseline and baseline is None:
            raise InvalidInputError(
                "A minimum change needs a baseline: gate the candidate --against a champion."
            )
        if self.min_absolute_change is not None:
            assert baseline is not None
            absolute = better_or_equal(value, baseline + sign * self.min_absolute_change)
        if self.min_relative_change is not None:
            assert baseline is not None
            if baseline == 0:
                relative = better_or_equal(value, baseline + sign * 1e-10)
            else:
                change = sign * (value - baseline) / baseline
                relative = change >= self.min_relative_change
        return threshold, absolute, relative


@dataclass(frozen=True)
class SliceGap:
    """The largest gap in ``metric`` between values of ``column`` must be at most ``max_gap``."""

    column: str
    metric: str
    max_gap: float
    min_rows: int = DEFAULT_MIN_SLICE_ROWS

    def __post_init__(self) -> None:
        _check_metric(self.metric)
        if not _is_number(self.max_gap) or self.max_gap < 0:
            raise InvalidInputError(f"max_gap for {self.metric} must be >= 0, got {self.max_gap}.")
        if self.min_rows < 1:
            raise InvalidInputError(f"min_rows must be at least 1, got {self.min_rows}.")


@dataclass(frozen=True)
class GateSpec:
    """Every check one gate run makes."""

    thresholds: Mapping[str, MetricThreshold] = field(default_factory=dict)
    slices: tuple[SliceGap, ...] = ()
    latency_budget_ms: float | None = None
    size_budget_mb: float | None = None
    latency_samples: int = DEFAULT_LATENCY_SAMPLES

    def __post_init__(self) -> None:
        for metric in self.thresholds:
            _check_metric(metric)
        for name, budget in (("latency", self.latency_budget_ms), ("size", self.size_budget_mb)):
            if budget is not None and (not _is_number(budget) or budget <= 0):
                raise InvalidInputError(
                    f"The {name} budget must be a positive number, got {budget}."
                )
        if self.latency_samples < 1:
            raise InvalidInputError("latency_samples must be at least 1.")

    @property
    def is_empty(self) -> bool:
        return not (self.thresholds or self.slices or self.latency_budget_ms or self.size_budget_mb)

    @property
    def needs_baseline(self) -> bool:
        return any(t.needs_baseline for t in self.thresholds.values())


# -- parsing the CLI's compact forms ------------------------------------------------------

_THRESHOLD = re.compile(r"^\s*([a-z0-9_]+)\s*(>=|<=)\s*([-+]?[0-9.eE+-]+)\s*$")
_CHANGE = re.compile(r"^\s*([a-z0-9_]+)\s*:\s*\+?\s*([0-9.eE+-]+)\s*(%?)\s*$")
_GAP = re.compile(r"^\s*([a-z0-9_]+)\s*:\s*([0-9.eE+-]+)\s*$")


def build_spec(
    *,
    thresholds: Sequence[str] = (),
    min_changes: Sequence[str] = (),
    slice_column: str | None = None,
    max_slice_gaps: Sequence[str] = (),
    min_slice_rows: int = DEFAULT_MIN_SLICE_ROWS,
    latency_budget_ms: float | None = None,
    size_budget_mb: float | None = None,
    latency_samples: int = DEFAULT_LATENCY_SAMPLES,
) -> GateSpec:
    """A :class:`GateSpec` from the CLI's forms.

    ``thresholds``: ``"accuracy>=0.9"``, ``"rmse<=12.5"`` (the operator must agree
    with the metric's direction). ``min_changes``: ``"accuracy:+0.01"`` (absolute)
    or ``"accuracy:+2%"`` (relative). ``max_slice_gaps``: ``"accuracy:0.1"`` with
    ``slice_column``.
    """
    parts: dict[str, dict[str, float]] = {}
    for text in thresholds:
        match = _THRESHOLD.match(text)
        if not match:
            raise InvalidInputError(
                f"Threshold {text!r} is not METRIC>=VALUE or METRIC<=VALUE (e.g. accuracy>=0.9)."
            )
        metric, op, value = match.group(1), match.group(2), _parse_float(match.group(3), text)
        _check_metric(metric)
        expected = ">=" if GREATER_IS_BETTER[metric] else "<="
        if op != expected:
            raise InvalidInputError(
                f"Threshold {text!r}: {'higher' if expected == '>=' else 'lower'} {metric} is "
                f"better, so write {metric}{expected}{value}."
            )
        parts.setdefault(metric, {})["threshold"] = value
    for text in min_changes:
        match = _CHANGE.match(text)
        if not match:
            raise InvalidInputError(
                f"Minimum change {text!r} is not METRIC:+DELTA or METRIC:+PERCENT% "
                "(e.g. accuracy:+0.01 or accuracy:+2%)."
            )
        metric, value, percent = match.group(1), _parse_float(match.group(2), text), match.group(3)
        _check_metric(metric)
        key = "min_relative_change" if percent else "min_absolute_change"
        parts.setdefault(metric, {})[key] = value / 100 if percent else value
    specs = {
        metric: MetricThreshold(greater_is_better=GREATER_IS_BETTER[metric], **values)
        for metric, values in parts.items()
    }
    gaps = []
    for text in max_slice_gaps:
        match = _GAP.match(text)
        if not match:
            raise InvalidInputError(
                f"Slice gap {text!r} is not METRIC:MAX_GAP (e.g. accuracy:0.1)."
            )
        if slice_column is None:
            raise InvalidInputError("--max-slice-gap needs --slice COLUMN to say what to slice by.")
        gaps.append(
            SliceGap(
                slice_column, match.group(1), _parse_float(match.group(2), text), min_slice_rows
            )
        )
    if slice_column is not None and not gaps:
        raise InvalidInputError(
            f"--slice {slice_column} needs --max-slice-gap METRIC:MAX_GAP (e.g. accuracy:0.1)."
        )
    return GateSpec(
        thresholds=specs,
        slices=tuple(gaps),
        latency_budget_ms=latency_budget_ms,
        size_budget_mb=size_budget_mb,
        latency_samples=latency_samples,
    )


# -- metrics ------------------------------------------------------------------------------


def task_of(model: Scorable) -> str:
    """``classification`` when the model has classes, else ``regression``."""
    return "classification" if model.classes is not None else "regression"


def metrics_for(task: str, model: Scorable) -> tuple[str, ...]:
    if task == "classification":
        return CLASSIFICATION_METRICS if model.has_proba else CLASSIFICATION_METRICS[:2]
    return REGRESSION_METRICS


def compute_metrics(
    model: Scorable,
    X: pd.DataFrame,
    y: pd.Series | np.ndarray,
    metrics: Sequence[str] | None = None,
) -> dict[str, float]:
    """Each metric of ``model`` on ``(X, y)``; NaN where undefined (ROC AUC on one class).

    Example:
        >>> compute_metrics(model, X, y, ["accuracy"])  # doctest: +SKIP
        {'accuracy': 0.96}
    """
    task = task_of(model)
    wanted = tuple(metrics) if metrics is not None else metrics_for(task, model)
    allowed = metrics_for(task, model)
    for metric in wanted:
        _check_metric(metric)
        if metric not in allowed:
            why = (
                "the model has no predict_proba"
                if metric == "roc_auc" and task == "classification"
                else f"it is not a {task} metric"
            )
            raise InvalidInputError(
                f"Cannot compute {metric} for {model.ref}: {why}. Metrics for this model: "
                f"{', '.join(allowed)}."
            )
    y_true = np.asarray(y)
    predictions = model.predict(X)
    proba = model.predict_proba(X) if "roc_auc" in wanted else None
    return {m: _metric(m, y_true, predictions, proba, model.classes) for m in wanted}


def _metric(
    name: str,
    y: np.ndarray,
    pred: np.ndarray,
    proba: np.ndarray | None,
    classes: np.ndarray | None,
) -> float:
    # Imported here: scikit-learn takes seconds to import, and every CLI command
    # (even --help) imports this module through the loop's configuration.
    from sklearn.metrics import (
        accuracy_score,
        f1_score,
        mean_absolute_error,
        mean_squared_error,
        r2_score,
        roc_auc_score,
    )

    if len(y) == 0:
        return math.nan
    if name == "accuracy":
        return float(accuracy_score(y, pred))
    if name == "f1_macro":
        return float(f1_score(y, pred, average="macro", zero_division=0))
    if name == "roc_auc":
        assert proba is not None and classes is not None
        present = np.unique(y)
        if len(present) < 2:
            return math.nan
        if len(classes) == 2:
            return float(roc_auc_score(y == classes[1], proba[:, 1]))
        if len(present) < len(classes):
            return math.nan  # one-vs-rest AUC needs every class in the data
        return float(roc_auc_score(y, proba, multi_class="ovr", labels=list(classes)))
    y_f = y.astype(np.float64)
    p_f = np.asarray(pred, dtype=np.float64)
    if name == "mae":
        return float(mean_absolute_error(y_f, p_f))
    if name == "rmse":
        return float(math.sqrt(mean_squared_error(y_f, p_f)))
    if len(y) < 2:
        return math.nan
    return float(r2_score(y_f, p_f))


# -- the gate run -------------------------------------------------------------------------


def evaluate_gates(
    candidate: Scorable,
    data: pd.DataFrame,
    target: str,
    spec: GateSpec,
    *,
    champion: Scorable | None = None,
    package_bytes: int | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> GateReport:
    """Run every check of ``spec`` on ``data`` (features plus the ``target`` column).

    With no checks at all and a champion, the candidate's primary metric
    (accuracy, or RMSE for regression) must be no worse than the champion's.
    ``clock`` times the latency check; tests inject one to make it exact.
    """
    if target not in data.columns:
        raise InvalidInputError(
            f"The holdout data has no target column {target!r}; its columns are "
            f"{', '.join(map(str, data.columns[:20]))}."
        )
    if len(data) == 0:
        raise InvalidInputError("The holdout data has no rows.")
    y = data[target]
    if y.isna().any():
        rows = np.flatnonzero(y.isna().to_numpy())[:10].tolist()
        raise InvalidInputError(
            f"Target column {target!r} has missing values at rows {rows} (0-based); "
            "gate on labelled rows only."
        )
    X = data.drop(columns=[target])
    task = task_of(candidate)
    if champion is not None and task_of(champion) != task:
        raise InvalidInputError(
            f"{candidate.ref} is a {task} model but {champion.ref} is a {task_of(champion)} "
            "model; gate a candidate against a champion of the same kind."
        )
    if spec.is_empty:
        if champion is None:
            raise InvalidInputError(
                "Nothing to check: give --threshold, --min-change (with --against), "
                "--max-slice-gap, --latency-budget-ms or --size-budget-mb."
            )
        primary = PRIMARY_METRIC[task]
        spec = GateSpec(
            thresholds={
                primary: MetricThreshold(
                    min_absolute_change=0.0, greater_is_better=GREATER_IS_BETTER[primary]
                )
            }
        )
    if spec.needs_baseline and champion is None:
        raise InvalidInputError("A minimum change over the champion needs --against CHAMPION.")
    wanted = set(spec.thresholds) | {s.metric for s in spec.slices}
    for slice_gap in spec.slices:
        if slice_gap.column not in data.columns:
            raise InvalidInputError(
                f"Slice column {slice_gap.column!r} is not in the holdout data; its columns are "
                f"{', '.join(map(str, data.columns[:20]))}."
            )
    available = metrics_for(task, candidate)
    names = tuple(m for m in available) + tuple(sorted(wanted - set(available)))
    cand_metrics = compute_metrics(candidate, X, y, names)
    champ_metrics: dict[str, float] = {}
    if champion is not None:
        champ_names = tuple(m for m in names if m in metrics_for(task, champion))
        champ_metrics = compute_metrics(champion, X, y, champ_names)

    checks: list[GateCheck] = []
    for metric, rule in spec.thresholds.items():
        checks.extend(_threshold_checks(metric, rule, cand_metrics, champ_metrics, champion))
    slices = []
    for slice_gap in spec.slices:
        report = _slice_report(candidate, X, y, data[slice_gap.column], slice_gap)
        slices.append(report)
        checks.append(_slice_check(report))
    latency = None
    if spec.latency_budget_ms is not None:
        latency = measure_latency_ms(candidate, X, samples=spec.latency_samples, clock=clock)
        checks.append(
            GateCheck(
                "latency",
                None,
                f"median latency <= {spec.latency_budget_ms:g} ms",
                latency <= spec.latency_budget_ms,
                latency,
                spec.latency_budget_ms,
                f"median single-row prediction took {latency:.3f} ms over "
                f"{spec.latency_samples} calls (budget {spec.latency_budget_ms:g} ms)",
            )
        )
    size = None
    if spec.size_budget_mb is not None:
        if package_bytes is None:
            raise InvalidInputError("A size budget needs the package size (package_bytes).")
        size = package_bytes / _BYTES_PER_MB
        checks.append(
            GateCheck(
                "size",
                None,
                f"package size <= {spec.size_budget_mb:g} MB",
                size <= spec.size_budget_mb,
                size,
                spec.size_budget_mb,
                f"the package holds {package_bytes:,} bytes ({size:.3f} MB; "
                f"budget {spec.size_budget_mb:g} MB)",
            )
        )
    return GateReport(
        candidate=candidate.ref,
        champion=None if champion is None else champion.ref,
        target=target,
        n_rows=len(data),
        candidate_metrics=cand_metrics,
        champion_metrics=champ_metrics,
        checks=tuple(checks),
        slices=tuple(slices),
        latency_ms=latency,
        size_mb=size,
    )


def _threshold_checks(
    metric: str,
    rule: MetricThreshold,
    cand: Mapping[str, float],
    champ: Mapping[str, float],
    champion: Scorable | None,
) -> list[GateCheck]:
    value = cand[metric]
    base = champ.get(metric) if champion is not None else None
    op = ">=" if rule.greater_is_better else "<="
    if math.isnan(value) or (rule.needs_baseline and (base is None or math.isnan(base))):
        who = "candidate" if math.isnan(value) else "champion"
        return [
            GateCheck(
                "threshold",
                metric,
                f"{metric} is defined",
                False,
                None,
                None,
                f"{metric} is undefined for the {who} on this data (e.g. one class only)",
            )
        ]
    threshold_ok, absolute_ok, relative_ok = rule.check(value, baseline=base)
    out = []
    if threshold_ok is not None:
        out.append(
            GateCheck(
                "threshold",
                metric,
                f"{metric} {op} {rule.threshold:g}",
                threshold_ok,
                value,
                rule.threshold,
                f"candidate {metric} = {value:.6g}, threshold {op} {rule.threshold:g}",
            )
        )
    better = "higher" if rule.greater_is_better else "lower"
    if absolute_ok is not None:
        assert base is not None and rule.min_absolute_change is not None
        sign = 1 if rule.greater_is_better else -1
        limit = base + sign * rule.min_absolute_change
        requirement = (
            f"{metric} no worse than champion"
            if rule.min_absolute_change == 0
            else f"{metric} {better} than champion by >= {rule.min_absolute_change:g}"
        )
        out.append(
            GateCheck(
                "min_absolute_change",
                metric,
                requirement,
                absolute_ok,
                value,
                limit,
                f"candidate {metric} = {value:.6g}, champion = {base:.6g}; needs {op} {limit:.6g}",
            )
        )
    if relative_ok is not None:
        assert base is not None and rule.min_relative_change is not None
        change = (
            math.nan if base == 0 else (value - base) / base * (1 if rule.greater_is_better else -1)
        )
        out.append(
            GateCheck(
                "min_relative_change",
                metric,
                f"{metric} {better} than champion by >= {rule.min_relative_change:.2%}",
                relative_ok,
                value,
                base,
                f"candidate {metric} = {value:.6g}, champion = {base:.6g}, relative change "
                f"{'n/a (champion is 0)' if base == 0 else f'{change:+.2%}'}",
            )
        )
    return out


def _slice_report(
    model: Scorable, X: pd.DataFrame, y: pd.Series, by: pd.Series, rule: SliceGap
) -> SliceReport:
    allowed = metrics_for(task_of(model), model)
    if rule.metric not in allowed:
        raise InvalidInputError(
            f"Cannot slice {rule.metric} for {model.ref}; metrics for it: {', '.join(allowed)}."
        )
    # One prediction pass over all rows, then per-slice metrics on the arrays.
    predictions = model.predict(X)
    proba = model.predict_proba(X) if rule.metric == "roc_auc" else None
    y_all = np.asarray(y)
    keys = by.astype(object).where(by.notna(), "<missing>").astype(str).to_numpy()
    values: dict[str, float] = {}
    rows: dict[str, int] = {}
    skipped: dict[str, str] = {}
    for key in sorted(set(keys)):
        mask = keys == key
        rows[key] = int(mask.sum())
        if rows[key] < rule.min_rows:
            skipped[key] = f"{rows[key]} rows < {rule.min_rows}"
            continue
        value = _metric(
            rule.metric,
            y_all[mask],
            predictions[mask],
            None if proba is None else proba[mask],
            model.classes,
        )
        if math.isnan(value):
            skipped[key] = f"{rule.metric} undefined on this slice"
            continue
        values[key] = value
    gap = max(values.values()) - min(values.values()) if len(values) >= 2 else None
    return SliceReport(
        rule.column, rule.metric, values, rows, gap, rule.max_gap, rule.min_rows, skipped
    )


def _slice_check(report: SliceReport) -> GateCheck:
    requirement = f"{report.metric} gap across {report.column} <= {report.max_gap:g}"
    if report.gap is None:
        return GateCheck(
            "slice_gap",
            report.metric,
            requirement,
            False,
            None,
            report.max_gap,
            f"fewer than two slices of {report.column!r} have {report.min_rows}+ rows and a "
            f"defined {report.metric}; nothing to compare (lower --min-slice-rows or add data)",
        )
    worst = min(report.values, key=report.values.__getitem__)
    best = max(report.values, key=report.values.__getitem__)
    return GateCheck(
        "slice_gap",
        report.metric,
        requirement,
        report.gap <= report.max_gap,
        report.gap,
        report.max_gap,
        f"{report.metric} ranges from {report.values[worst]:.4g} ({report.column}={worst}) "
        f"to {report.values[best]:.4g} ({report.column}={best}): gap {report.gap:.4g}",
    )


def measure_latency_ms(
    model: Scorable,
    X: pd.DataFrame,
    *,
    samples: int = DEFAULT_LATENCY_SAMPLES,
    clock: Clock = SYSTEM_CLOCK,
) -> float:
    """Median milliseconds of ``samples`` single-record predictions (after a warm-up).

    Records are the holdout's rows in turn, sent as plain dicts: what a client
    of ``/predict`` sends.
    """
    records = X.head(max(samples, 1)).to_dict(orient="records")
    for record in records[:_WARMUP_CALLS]:
        model.predict(record)
    times = []
    for i in range(samples):
        record = records[i % len(records)]
        start = clock.monotonic()
        model.predict(record)
        times.append((clock.monotonic() - start) * 1000.0)
    return float(statistics.median(times))


# -- helpers ------------------------------------------------------------------------------


def _check_metric(metric: str) -> None:
    if metric not in METRICS:
        raise InvalidInputError(f"Unknown metric {metric!r}; known metrics: {', '.join(METRICS)}.")


def _parse_float(text: str, whole: str) -> float:
    try:
        return float(text)
    except ValueError as exc:
        raise InvalidInputError(f"{whole!r}: {text!r} is not a number.") from exc


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    )


__all__ = [
    "CLASSIFICATION_METRICS",
    "GREATER_IS_BETTER",
    "METRICS",
    "REGRESSION_METRICS",
    "GateSpec",
    "MetricThreshold",
    "Scorable",
    "SliceGap",
    "build_spec",
    "compute_metrics",
    "evaluate_gates",
    "measure_latency_ms",
]
