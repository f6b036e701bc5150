"""Performance over time: realized and estimated metrics per time bucket, against training.

Predictions are bucketed by their *original* timestamps (``1h`` buckets start
on the hour, UTC), and each bucket reports how many predictions it holds, how
many have a label so far (coverage) and how late those labels came (median
delay), the realized metrics on the labelled rows (:mod:`.scores`) and, for
classifiers that log probabilities, CBPE's estimates on all rows
(:mod:`.cbpe`). As labels fill in, realized figures appear beside the
estimates. The baseline is what the model version recorded at training time.

>>> report = performance(log, "iris", version=3, window="1h", since="24h")  # doctest: +SKIP
>>> first = report.buckets[0]                                               # doctest: +SKIP
>>> first.start.hour, first.coverage, first.realized["accuracy"]            # doctest: +SKIP
(9, 0.5, 0.93)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

import numpy as np
import pandas as pd

from shipyard.errors import InvalidInputError
from shipyard.monitoring import cbpe, scores
from shipyard.monitoring.calibration import Calibration
from shipyard.monitoring.durations import floor_time, parse_duration, parse_instant
from shipyard.monitoring.prediction_log import PredictionLog
from shipyard.monitoring.queries import (
    count_labelled,
    has_fractional_prediction,
    labelled_columns,
    read_labelled,
)
from shipyard.monitoring.records import PROBA_PREFIX, class_key
from shipyard.registry.refs import check_model_name

__all__ = [
    "CLASSIFICATION_METRICS",
    "HIGHER_IS_BETTER",
    "REGRESSION_METRICS",
    "BucketPerformance",
    "PerformanceReport",
    "VariantPerformance",
    "baseline_metrics",
    "performance",
]

Task = Literal["classification", "regression"]
CLASSIFICATION_METRICS = ("accuracy", "f1_macro", "roc_auc")
REGRESSION_METRICS = ("mae", "rmse")
HIGHER_IS_BETTER = {
    "accuracy": True,
    "f1_macro": True,
    "roc_auc": True,
    "mae": False,
    "rmse": False,
}
# Names under which training code commonly records each metric, best match first.
_BASELINE_NAMES = {
    "accuracy": ("accuracy", "acc", "test_accuracy", "val_accuracy"),
    "f1_macro": ("f1_macro", "macro_f1", "f1", "test_f1_macro", "val_f1_macro"),
    "roc_auc": ("roc_auc", "auc", "roc_auc_ovr", "test_roc_auc", "val_roc_auc"),
    "mae": ("mae", "mean_absolute_error", "test_mae", "val_mae"),
    "rmse": ("rmse", "root_mean_squared_error", "test_rmse", "val_rmse"),
}
_MAX_BUCKETS = 10_000


@dataclass(frozen=True)
class BucketPerformance:
    """One time bucket: counts, label coverage and delay, realized and estimated metrics.

    Metric values are ``None`` where they cannot be computed (no labels, a
    single class for ROC AUC, no probabilities for an estimate).
    """

    start: datetime
    end: datetime
    n_predictions: int
    n_labelled: int
    coverage: float | None
    median_label_delay_seconds: float | None
    realized: dict[str, float | None]
    estimated: dict[str, float | None]


@dataclass(frozen=True)
class VariantPerformance:
    """The whole range's figures of one variant (primary, canary, ``ab:N``, ``shadow:N``)
    serving one version."""

    variant: str
    version: int | None
    figures: BucketPerformance


@dataclass(frozen=True)
class PerformanceReport:
    """Per-bucket performance of one model (optionally one version) over a time range."""

    model: str
    version: int | None
    task: Task
    window: timedelta
    since: datetime
    until: datetime
    metrics: tuple[str, ...]
    baseline: dict[str, float]
    buckets: tuple[BucketPerformance, ...]
    overall: BucketPerformance
    has_probabilities: bool
    notes: tuple[str, ...] = field(default=())
    variants: tuple[VariantPerformance, ...] = field(default=())
    #: True when every estimate went through a stored calibration, False when none
    #: did, None when some did (versions with and without one) or nothing was estimated.
    calibrated: bool | None = None

    @property
    def empty(self) -> bool:
        """True when no prediction was logged in the range."""
        return self.overall.n_predictions == 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view (times ISO 8601, the window in seconds)."""

        def bucket(b: BucketPerformance) -> dict[str, Any]:
            return {**b.__dict__, "start": b.start.isoformat(), "end": b.end.isoformat()}

        return {
            "model": self.model,
            "version": self.version,
            "task": self.task,
            "window_seconds": self.window.total_seconds(),
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "metrics": list(self.metrics),
            "baseline": self.baseline,
            "has_probabilities": self.has_probabilities,
            "notes": list(self.notes),
            "overall": bucket(self.overall),
            "buckets": [bucket(b) for b in self.buckets],
            "calibrated": self.calibrated,
            "variants": [
                {"variant": v.variant, "version": v.version, **bucket(v.figures)}
                for v in self.variants
            ],
        }


def baseline_metrics(recorded: Mapping[str, float], task: Task) -> dict[str, float]:
    """The training-time values of this task's metrics, found under their usual names.

    >>> baseline_metrics({"accuracy": 0.95, "f1": 0.9, "loss": 0.2}, "classification")
    {'accuracy': 0.95, 'f1_macro': 0.9}
    """
    wanted = CLASSIFICATION_METRICS if task == "classification" else REGRESSION_METRICS
    out = {}
    for metric in wanted:
        for name in _BASELINE_NAMES[metric]:
            if name in recorded and recorded[name] is not None:
                out[metric] = float(recorded[name])
                break
    return out


def performance(
    log: PredictionLog,
    model: str,
    version: int | None = None,
    window: str | timedelta = "1h",
    since: str | datetime | timedelta | None = None,
    until: str | datetime | timedelta | None = None,
    *,
    task: Task | None = None,
    baseline: Mapping[str, float] | None = None,
    calibration: Callable[[str, int], Calibration | None] | None = None,
    deployment: str | None = None,
) -> PerformanceReport:
    """Realized and estimated performance of ``model`` per ``window`` bucket.

    ``since`` defaults to 24 hours before ``until`` (default: now, from the
    log's clock); relative times such as ``"24h"`` count back from now.
    ``task`` defaults to what the log shows (probability columns mean a
    classifier). ``baseline`` holds the training-time metrics, e.g. a model
    version's ``metrics`` (found under common names by :func:`baseline_metrics`).
    ``calibration`` gives each version's stored CBPE calibration (rows of a
    version without one are estimated from their raw probabilities).
    ``deployment`` keeps only the rows its servers logged: not a batch job's, not
    direct traffic, not another deployment's (by default every row of the model).
    """
    check_model_name(model)
    step = parse_duration(window)
    now = log.clock.now()
    end = now if until is None else parse_instant(until, now=now)
    start = end - timedelta(hours=24) if since is None else parse_instant(since, now=now)
    if start >= end:
        raise InvalidInputError(
            f"The time range is empty: since ({start.isoformat()}) is not before "
            f"until ({end.isoformat()})."
        )
    first = floor_time(start, step)
    n_buckets = int(np.ceil((end - first) / step))
    if n_buckets > _MAX_BUCKETS:
        raise InvalidInputError(
            f"A {window} window over {end - start} makes {n_buckets} buckets; at most "
            f"{_MAX_BUCKETS} are allowed. Use a wider --window or a shorter --since."
        )
    edges = [first + i * step for i in range(n_buckets + 1)]
    names = labelled_columns(log.store, model, since=first, until=end)
    if not any(n.startswith(PROBA_PREFIX) for n in names):
        # Nothing to estimate from (no probabilities): every figure is a count or a sum,
        # so DuckDB aggregates the window and no row comes into memory.
        return _counted_report(
            log,
            model,
            version,
            names,
            edges,
            end,
            step,
            task=task,
            baseline=baseline,
            deployment=deployment,
        )
    frame = read_labelled(
        log.store, model, since=first, until=end, version=version, deployment=deployment
    )
    classes = [c[len(PROBA_PREFIX) :] for c in frame.columns if c.startswith(PROBA_PREFIX)]
    notes: list[str] = []
    if task is None:
        task = _infer_task(frame, classes, baseline)
        if not frame.empty:
            notes.append(f"Task inferred from the log: {task}.")
    metrics = CLASSIFICATION_METRICS if task == "classification" else REGRESSION_METRICS
    data = _Prepared(frame, task, classes, notes)
    calibrated = data.calibrate(frame, model, calibration) if task == "classification" else None
    note = _range_note(model, version, first, end, frame.empty, task, bool(classes), deployment)
    if note is not None:
        notes.append(note)

    bounds = np.searchsorted(data.stamps, np.array([_us(e) for e in edges]), side="left")
    buckets = tuple(
        data.bucket(edges[i], edges[i + 1], slice(int(bounds[i]), int(bounds[i + 1])), metrics)
        for i in range(n_buckets)
    )
    overall = data.bucket(first, end, slice(0, len(frame)), metrics)
    return PerformanceReport(
        variants=_by_variant(frame, data, first, end, metrics),
        calibrated=calibrated,
        model=model,
        version=version,
        task=task,
        window=step,
        since=first,
        until=end,
        metrics=metrics,
        baseline=baseline_metrics(baseline or {}, task),
        buckets=buckets,
        overall=overall,
        has_probabilities=bool(classes),
        notes=tuple(notes),
    )


def _range_note(
    model: str,
    version: int | None,
    first: datetime,
    end: datetime,
    empty: bool,
    task: Task,
    probabilities: bool,
    deployment: str | None = None,
) -> str | None:
    """What the report cannot show over the range: no predictions, or no estimate."""
    if empty:
        where = f"{model}" if version is None else f"{model}:{version}"
        if deployment is not None:
            where += f" by deployment {deployment!r}"
        return (
            f"No predictions of {where} were logged between {first.isoformat()} and "
            f"{end.isoformat()}."
        )
    if task == "classification" and not probabilities:
        return (
            "No class probabilities were logged for this model, so performance cannot be "
            "estimated before labels arrive (CBPE needs probabilities)."
        )
    if task == "regression":
        return "Estimation without labels (CBPE) covers classifiers only."
    return None


def _by_variant(
    frame: pd.DataFrame, data: _Prepared, start: datetime, end: datetime, metrics: Sequence[str]
) -> tuple[VariantPerformance, ...]:
    """The range's figures per (variant, version) pair, in order of first appearance."""
    if frame.empty or "variant" not in frame:
        return ()
    variants = frame["variant"].astype(str).to_numpy()
    versions = frame["version"].to_numpy() if "version" in frame else np.full(len(frame), None)
    out = []
    for variant, version in dict.fromkeys(zip(variants, versions, strict=True)):
        rows = np.flatnonzero((variants == variant) & (versions == version))
        number = None if version is None or pd.isna(version) else int(version)
        out.append(VariantPerformance(variant, number, data.bucket(start, end, rows, metrics)))
    return tuple(out)


def _us(value: datetime) -> np.int64:
    return np.int64(pd.Timestamp(value).value // 1000)


def _infer_task(frame: pd.DataFrame, classes: Sequence[str], baseline: Any) -> Task:
    if classes:
        return "classification"
    recorded = set(baseline or {})
    if recorded & {n for m in CLASSIFICATION_METRICS for n in _BASELINE_NAMES[m]}:
        return "classification"
    if recorded & {n for m in REGRESSION_METRICS for n in _BASELINE_NAMES[m]}:
        return "regression"
    predictions = frame.get("prediction")
    if predictions is not None and pd.api.types.is_float_dtype(predictions):
        values = predictions.dropna().to_numpy()
        if len(values) and not np.all(np.mod(values, 1) == 0):
            return "regression"
    return "classification"


class _Prepared:
    """The window's rows as arrays, ready to be sliced per bucket."""

    def __init__(self, frame: pd.DataFrame, task: Task, classes: list[str], notes: list[str]):
        self.notes = notes
        self.task = task
        self.classes = classes
        stamps = pd.to_datetime(frame["timestamp"], utc=True)
        # Microseconds since the epoch, whatever unit pandas chose for the column.
        epoch = pd.Timestamp(0, tz="UTC")
        self.stamps = ((stamps - epoch) // pd.Timedelta(microseconds=1)).to_numpy(np.int64)
        label = frame["label"]
        self.labelled = label.notna().to_numpy()
        labelled_at = pd.to_datetime(frame["labelled_at"], utc=True)
        self.delay = (labelled_at - stamps).dt.total_seconds().to_numpy()
        predictions = frame["prediction"] if "prediction" in frame else pd.Series(dtype=object)
        self.proba = (
            frame[[PROBA_PREFIX + c for c in classes]].to_numpy(dtype=np.float64, na_value=np.nan)
            if classes
            else None
        )
        if task == "classification":
            self.y_pred = np.array([class_key(v) for v in predictions.tolist()], dtype=object)
            self.y_true = np.array([class_key(v) for v in label.tolist()], dtype=object)
            index = {c: j for j, c in enumerate(classes)}
            self.pred_index = np.array([index.get(p, -1) for p in self.y_pred], dtype=np.int64)
            unknown = self.labelled & ~np.isin(self.y_true, classes) if classes else None
            if unknown is not None and unknown.any():
                notes.append(
                    f"{int(unknown.sum())} labels are not among the model's classes "
                    f"{classes}; they count as wrong predictions."
                )
        else:
            self.y_pred = pd.to_numeric(predictions, errors="coerce").to_numpy(np.float64)
            self.y_true = pd.to_numeric(label, errors="coerce").to_numpy(np.float64)
            unreadable = self.labelled & np.isnan(self.y_true)
            if unreadable.any():
                notes.append(f"{int(unreadable.sum())} labels are not numbers and were left out.")
                self.labelled = self.labelled & ~unreadable

    def calibrate(
        self,
        frame: pd.DataFrame,
        model: str,
        calibration: Callable[[str, int], Calibration | None] | None,
    ) -> bool | None:
        """Map each version's probabilities through its calibration; True if all were."""
        if self.proba is None or not len(self.proba):
            return None
        if calibration is None or "version" not in frame:
            return False
        versions = frame["version"].to_numpy()
        done = np.zeros(len(versions), dtype=bool)
        self.proba = self.proba.copy()  # pandas may hand out a read-only view
        for version in pd.unique(versions):
            if pd.isna(version):
                continue
            fitted = calibration(model, int(version))
            if fitted is None or sorted(fitted.classes) != sorted(self.classes):
                continue
            rows = versions == version
            order = [self.classes.index(c) for c in fitted.classes]
            mapped = fitted.transform(self.proba[rows][:, order])
            back = [list(fitted.classes).index(c) for c in self.classes]
            self.proba[rows] = mapped[:, back]
            done |= rows
        if done.all():
            return True
        self.notes.append(
            "Estimates read the raw probabilities of versions with no stored calibration "
            "(fit one with `shipyard monitor estimate REF --reference FILE --target COL`)."
        )
        return False if not done.any() else None

    def bucket(
        self, start: datetime, end: datetime, rows: slice | np.ndarray, metrics: Sequence[str]
    ) -> BucketPerformance:
        n = len(self.labelled[rows])
        labelled = self.labelled[rows]
        n_labelled = int(labelled.sum())
        delays = self.delay[rows][labelled]
        realized: dict[str, float | None] = dict.fromkeys(metrics)
        estimated: dict[str, float | None] = dict.fromkeys(metrics)
        if n_labelled:
            y_true, y_pred = self.y_true[rows][labelled], self.y_pred[rows][labelled]
            if self.task == "classification":
                realized["accuracy"] = scores.accuracy(y_true, y_pred)
                realized["f1_macro"] = scores.f1_macro(y_true, y_pred)
                if self.proba is not None:
                    proba = self.proba[rows][labelled]
                    realized["roc_auc"] = scores.roc_auc(y_true, proba, self.classes)
            else:
                realized["mae"] = scores.mae(y_true, y_pred)
                realized["rmse"] = scores.rmse(y_true, y_pred)
        if n and self.task == "classification" and self.proba is not None:
            proba, predicted = self.proba[rows], self.pred_index[rows]
            estimated["accuracy"] = cbpe.expected_accuracy(proba, predicted)
            estimated["f1_macro"] = cbpe.expected_f1_macro(proba, predicted)
            estimated["roc_auc"] = cbpe.expected_roc_auc(proba)
        return BucketPerformance(
            start=start,
            end=end,
            n_predictions=n,
            n_labelled=n_labelled,
            coverage=n_labelled / n if n else None,
            median_label_delay_seconds=float(np.median(delays)) if len(delays) else None,
            realized=realized,
            estimated=estimated,
        )


# -- without probabilities: counts and sums from DuckDB ------------------------------------


def _counted_report(
    log: PredictionLog,
    model: str,
    version: int | None,
    names: Mapping[str, str],
    edges: list[datetime],
    end: datetime,
    step: timedelta,
    *,
    task: Task | None,
    baseline: Mapping[str, float] | None,
    deployment: str | None = None,
) -> PerformanceReport:
    """:func:`performance` for a log without probabilities, from DuckDB's aggregates.

    The same figures as the row-by-row path (accuracy and macro F1 from the
    confusion counts, MAE and RMSE from sums of errors, the median label delay),
    in memory bounded by the number of buckets, variants and classes.
    """
    first = edges[0]
    notes: list[str] = []
    inferred = task is None
    if task is None:
        task = _infer_counted_task(log, model, names, first, end, version, baseline)
    metrics = CLASSIFICATION_METRICS if task == "classification" else REGRESSION_METRICS
    counts, delays = count_labelled(
        log.store,
        model,
        since=first,
        until=end,
        origin=first,
        step=step,
        version=version,
        regression=task == "regression",
        deployment=deployment,
    )
    empty = counts.empty or int(counts["n"].sum()) == 0
    if inferred and not empty:
        notes.append(f"Task inferred from the log: {task}.")
    if task == "regression" and not empty and int(counts["unreadable"].sum()):
        notes.append(f"{int(counts['unreadable'].sum())} labels are not numbers and were left out.")
    note = _range_note(model, version, first, end, empty, task, False, deployment)
    if note is not None:
        notes.append(note)
    delay = {
        (row.level, None if row.level != "bucket" else int(row.bucket)): float(row.delay)
        for row in delays.itertuples()
        if row.level != "variant"
    }
    variant_delay = {
        (str(row.variant), _version(row.version)): float(row.delay)
        for row in delays.itertuples()
        if row.level == "variant"
    }
    buckets = []
    for i in range(len(edges) - 1):
        part = counts[counts["bucket"] == i] if not counts.empty else counts
        buckets.append(
            _counted_bucket(part, task, edges[i], edges[i + 1], delay.get(("bucket", i)), metrics)
        )
    overall = _counted_bucket(counts, task, first, end, delay.get(("all", None)), metrics)
    variants: list[VariantPerformance] = []
    if not empty:
        keys = (
            counts.assign(version=counts["version"].map(_version))
            .groupby(["variant", "version"], dropna=False, sort=False)["first_seen"]
            .min()
            .sort_values(kind="stable")
        )
        for variant, number in keys.index:
            rows = counts[
                (counts["variant"] == variant) & (counts["version"].map(_version) == number)
            ]
            figures = _counted_bucket(
                rows, task, first, end, variant_delay.get((str(variant), number)), metrics
            )
            variants.append(VariantPerformance(str(variant), number, figures))
    return PerformanceReport(
        variants=tuple(variants),
        calibrated=None,
        model=model,
        version=version,
        task=task,
        window=step,
        since=first,
        until=end,
        metrics=metrics,
        baseline=baseline_metrics(baseline or {}, task),
        buckets=tuple(buckets),
        overall=overall,
        has_probabilities=False,
        notes=tuple(notes),
    )


def _version(value: Any) -> int | None:
    return None if value is None or pd.isna(value) else int(value)


def _infer_counted_task(
    log: PredictionLog,
    model: str,
    names: Mapping[str, str],
    first: datetime,
    end: datetime,
    version: int | None,
    baseline: Any,
) -> Task:
    """As :func:`_infer_task` decides, reading only whether a float prediction is fractional."""
    recorded = set(baseline or {})
    if recorded & {n for m in CLASSIFICATION_METRICS for n in _BASELINE_NAMES[m]}:
        return "classification"
    if recorded & {n for m in REGRESSION_METRICS for n in _BASELINE_NAMES[m]}:
        return "regression"
    kind = names.get("prediction", "").upper()
    if kind not in ("DOUBLE", "FLOAT", "REAL"):
        return "classification"
    fractional = has_fractional_prediction(
        log.store, model, since=first, until=end, version=version
    )
    return "regression" if fractional else "classification"


def _counted_bucket(
    counts: pd.DataFrame,
    task: Task,
    start: datetime,
    end: datetime,
    delay: float | None,
    metrics: Sequence[str],
) -> BucketPerformance:
    """One bucket's (or variant's, or the whole range's) figures from its count rows."""
    realized: dict[str, float | None] = dict.fromkeys(metrics)
    estimated: dict[str, float | None] = dict.fromkeys(metrics)
    if counts.empty:
        n = n_labelled = 0
    elif task == "regression":
        n = int(counts["n"].sum())
        n_labelled = int(counts["n_labelled"].sum())
        if n_labelled:
            realized["mae"] = float(counts["sae"].sum()) / n_labelled
            realized["rmse"] = float(np.sqrt(float(counts["sse"].sum()) / n_labelled))
    else:
        n = int(counts["n"].sum())
        labelled = counts[counts["label"].notna()]
        n_labelled = int(labelled["n"].sum())
        if n_labelled:
            y_true = [class_key(v) for v in labelled["label"].tolist()]
            y_pred = [class_key(v) for v in labelled["prediction"].tolist()]
            weights = labelled["n"].to_numpy(np.int64)
            realized["accuracy"] = _weighted_accuracy(y_true, y_pred, weights)
            realized["f1_macro"] = _weighted_f1_macro(y_true, y_pred, weights)
    return BucketPerformance(
        start=start,
        end=end,
        n_predictions=n,
        n_labelled=n_labelled,
        coverage=n_labelled / n if n else None,
        median_label_delay_seconds=delay if n_labelled else None,
        realized=realized,
        estimated=estimated,
    )


def _weighted_accuracy(y_true: list[Any], y_pred: list[Any], weights: np.ndarray) -> float:
    hits = np.array([t == p for t, p in zip(y_true, y_pred, strict=True)])
    return float(weights[hits].sum() / weights.sum())


def _weighted_f1_macro(y_true: list[Any], y_pred: list[Any], weights: np.ndarray) -> float:
    """:func:`scores.f1_macro` over rows given as (label, prediction, count) groups."""
    f1 = []
    for cls in sorted({*y_true, *y_pred}, key=str):
        tp = fp = fn = 0
        for t, p, w in zip(y_true, y_pred, weights.tolist(), strict=True):
            tp += w if t == cls and p == cls else 0
            fp += w if t != cls and p == cls else 0
            fn += w if t == cls and p != cls else 0
        f1.append(2 * tp / (2 * tp + fp + fn))
    return float(np.mean(f1))
