"""What one monitor run found, as plain figures: computed once, stored, shown by every worker.

:func:`compute_figures` turns a bounded :class:`~shipyard.monitoring.window.WindowSummary`
into :class:`MonitorFigures`: per-feature drift of the window's sample against
the version's reference profile, quantiles of a regressor's predicted values,
label coverage, realized and CBPE-estimated accuracy, and the training
baseline. The figures travel as JSON (``None`` for unknown values) through the
metadata database, and :func:`show_figures` sets the gauges of
:class:`~shipyard.monitoring.monitor_metrics.MonitorMetrics` from them, the same
way in the worker that computed them and in every other.

Example:
    >>> figures = MonitorFigures(window_predictions=0)
    >>> MonitorFigures.from_dict(figures.to_dict()) == figures
    True
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from shipyard.drift import DriftDetector
from shipyard.monitoring.monitor_metrics import MonitorMetrics
from shipyard.monitoring.window import WindowSummary

__all__ = [
    "PREDICTION_QUANTILES",
    "FeatureDrift",
    "MonitorFigures",
    "compute_figures",
    "show_figures",
]

PREDICTION_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


@dataclass(frozen=True)
class FeatureDrift:
    """One input feature's drift test over the window."""

    feature: str
    stattest: str
    score: float
    detected: bool


@dataclass(frozen=True)
class MonitorFigures:
    """The gauges' values for one model version over one window (None: unknown).

    ``drifted_share`` and ``dataset_drift`` are None when drift was not scored
    (no reference profile, too few rows, or the test failed).
    """

    window_predictions: int
    prediction_quantiles: dict[str, float] = field(default_factory=dict)
    features: tuple[FeatureDrift, ...] = ()
    drifted_share: float | None = None
    dataset_drift: bool | None = None
    label_coverage: float | None = None
    realized_accuracy: float | None = None
    estimated_accuracy: float | None = None
    estimate_calibrated: bool | None = None
    baseline_accuracy: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: a score that is not finite (a divergence can be infinite) is text."""
        data = asdict(self)
        for f in data["features"]:
            f["score"] = f["score"] if math.isfinite(f["score"]) else repr(f["score"])
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MonitorFigures:
        """The figures :meth:`to_dict` stored."""
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        known["features"] = tuple(
            FeatureDrift(f["feature"], f["stattest"], float(f["score"]), bool(f["detected"]))
            for f in data.get("features", ())
        )
        return cls(**known)


def compute_figures(
    summary: WindowSummary,
    detector: DriftDetector | None,
    *,
    min_rows: int,
    baseline_accuracy: float | None,
) -> MonitorFigures:
    """The figures of one window; drift is scored on the summary's sample when the
    version has a reference profile (``detector``) and the window ``min_rows`` rows.

    A failing drift test raises, after nothing was half-set: the caller counts it.
    """
    drift: dict[str, Any] = {}
    if detector is not None and summary.n_rows >= min_rows and len(summary.inputs) >= 2:
        result = detector.score(summary.inputs)
        drift = {
            "features": tuple(
                FeatureDrift(c.column, c.stattest, float(c.score), bool(c.drift_detected))
                for c in result.columns
            ),
            "drifted_share": float(result.share),
            "dataset_drift": bool(result.dataset_drift),
        }
    return MonitorFigures(
        window_predictions=summary.n_rows,
        prediction_quantiles=_quantiles(summary.predictions),
        label_coverage=summary.coverage,
        realized_accuracy=summary.realized_accuracy,
        estimated_accuracy=summary.estimated_accuracy,
        estimate_calibrated=summary.calibrated if summary.n_scored else None,
        baseline_accuracy=baseline_accuracy,
        **drift,
    )


def _quantiles(predictions: pd.Series) -> dict[str, float]:
    """A regressor's predicted values: quantiles over the window's sample (classes are
    counted per request by ``shipyard_predictions_total``)."""
    if not pd.api.types.is_float_dtype(predictions):
        return {}
    values = predictions.to_numpy(np.float64)
    values = values[np.isfinite(values)]
    if not len(values):
        return {}
    found = np.quantile(values, PREDICTION_QUANTILES)
    return {str(q): float(v) for q, v in zip(PREDICTION_QUANTILES, found, strict=True)}


def show_figures(
    figures: MonitorFigures,
    gauges: MonitorMetrics,
    model: str,
    version: int,
    *,
    deployment: str = "",
    variant: str = "default",
) -> None:
    """Set the gauges of ``model`` ``version`` as served by ``deployment``'s ``variant``.

    Drift gauges keep their last values when this window was not scored.
    """
    labels = {
        "model": model,
        "version": str(version),
        "deployment": deployment,
        "variant": variant,
    }
    gauges.window_predictions.labels(**labels).set(figures.window_predictions)
    for q, v in figures.prediction_quantiles.items():
        gauges.prediction_quantile.labels(**labels, quantile=q).set(v)
    for f in figures.features:
        tags = {**labels, "feature": f.feature, "stattest": f.stattest}
        gauges.feature_drift_score.labels(**tags).set(f.score)
        gauges.feature_drift_detected.labels(**tags).set(int(f.detected))
    if figures.dataset_drift is not None:
        gauges.drifted_features.labels(**labels).set(_number(figures.drifted_share))
        gauges.dataset_drift_detected.labels(**labels).set(int(figures.dataset_drift))
    gauges.label_coverage.labels(**labels).set(_number(figures.label_coverage))
    gauges.realized_accuracy.labels(**labels).set(_number(figures.realized_accuracy))
    gauges.estimated_accuracy.labels(**labels).set(_number(figures.estimated_accuracy))
    calibrated = figures.estimate_calibrated
    gauges.estimate_calibrated.labels(**labels).set(math.nan if calibrated is None else calibrated)
    gauges.baseline_accuracy.labels(**labels).set(_number(figures.baseline_accuracy))


def _number(value: float | None) -> float:
    return math.nan if value is None else float(value)
