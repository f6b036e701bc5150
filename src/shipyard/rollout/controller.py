"""The rollout controller: reads live numbers, asks the policy, applies its verdict.

It runs inside every server worker's poll loop (see
:mod:`shipyard.serving.deployment`) or on its own as ``shipyard deploy watch
NAME``. Several controllers may watch one deployment at once: each applies its
verdict with a compare-and-set on the revision it evaluated, so exactly one
wins and the others see a :class:`ConflictError`, which here just means
"someone already acted": the next evaluation starts from the new state.

A rollback records the policy's reason in the audit log (action
``auto_rollback``) and counts ``shipyard_rollout_rollbacks_total``.

Example:
    >>> controller = RolloutController(client.deployments.acting_as("rollout"))  # doctest: +SKIP
    >>> controller.evaluate("web").action                                    # doctest: +SKIP
    'hold'
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime

import numpy as np
import pandas as pd

from shipyard.clock import Clock
from shipyard.errors import ConflictError, ShipyardError
from shipyard.monitoring.calibration import Calibration
from shipyard.monitoring.cbpe import expected_accuracy
from shipyard.monitoring.prediction_log import PredictionLog
from shipyard.monitoring.queries import read_labelled
from shipyard.monitoring.records import PROBA_PREFIX, class_key
from shipyard.rollout.log_rows import deployment_rows
from shipyard.rollout.metrics import RolloutMetrics
from shipyard.rollout.policy import Accuracy, Verdict, decide, merge_stats
from shipyard.rollout.records import Deployment
from shipyard.rollout.service import Deployments

logger = logging.getLogger("shipyard.rollout")

AccuracySource = Callable[[Deployment, datetime], Mapping[str, Accuracy]]
#: The calibration of ``model`` ``version`` (None: the raw probabilities are used).
CalibrationSource = Callable[[str, int], Calibration | None]


def accuracy_by_variant(
    frame: pd.DataFrame, calibration: CalibrationSource | None = None, model: str = ""
) -> dict[str, Accuracy]:
    """Correct / labelled rows per variant of a labelled prediction-log frame, and
    the CBPE estimate of each variant's accuracy over all its rows.

    >>> frame = pd.DataFrame({"variant": ["primary", "canary"], "prediction": ["a", "b"],
    ...                       "label": ["a", "a"]})
    >>> accuracy_by_variant(frame)["canary"]
    Accuracy(correct=0, labelled=1, estimated=None, scored=0, calibrated=False)
    """
    out: dict[str, Accuracy] = {}
    if frame.empty or "label" not in frame:
        return out
    proba_columns = [c for c in frame.columns if c.startswith(PROBA_PREFIX)]
    for variant, group in frame.groupby("variant"):
        labelled = group[group["label"].notna()]
        predicted = [class_key(v) for v in labelled["prediction"].tolist()]
        truth = labelled["label"].astype(str).tolist()
        correct = sum(p == t for p, t in zip(predicted, truth, strict=True))
        estimated, scored, calibrated = _estimate(group, proba_columns, calibration, model)
        out[str(variant)] = Accuracy(correct, len(labelled), estimated, scored, calibrated)
    return out


def _estimate(
    rows: pd.DataFrame,
    proba_columns: list[str],
    calibration: CalibrationSource | None,
    model: str,
) -> tuple[float | None, int, bool]:
    """CBPE over ``rows`` of one variant (one version): estimate, rows scored, calibrated."""
    if not proba_columns or rows.empty:
        return None, 0, False
    classes = [c[len(PROBA_PREFIX) :] for c in proba_columns]
    proba = rows[proba_columns].to_numpy(dtype=np.float64, na_value=np.nan)
    complete = ~np.isnan(proba).any(axis=1)
    proba, rows = proba[complete], rows[complete]
    if not len(proba):
        return None, 0, False
    fitted = None
    if calibration is not None and "version" in rows:
        fitted = calibration(model, int(rows["version"].iloc[0]))
    if fitted is not None and sorted(fitted.classes) == sorted(classes):
        order = [classes.index(c) for c in fitted.classes]
        proba, classes = fitted.transform(proba[:, order]), list(fitted.classes)
    else:
        fitted = None
    index = {c: j for j, c in enumerate(classes)}
    predicted = np.array([index.get(class_key(v) or "", -1) for v in rows["prediction"].tolist()])
    return expected_accuracy(proba, predicted), len(proba), fitted is not None


def log_accuracy(
    log: PredictionLog, calibration: CalibrationSource | None = None
) -> AccuracySource:
    """An accuracy source reading the current step's rows from ``log``: realized on
    labelled rows, estimated (CBPE, through ``calibration``) on all of them."""

    def source(d: Deployment, now: datetime) -> Mapping[str, Accuracy]:
        since = d.step_started_at or now
        frame = read_labelled(log.store, d.model, since=since, until=now)
        return accuracy_by_variant(deployment_rows(d, frame), calibration, d.model)

    return source


class RolloutController:
    """Evaluates a deployment's rollout policy and applies the verdict."""

    def __init__(
        self,
        deployments: Deployments,
        *,
        clock: Clock | None = None,
        accuracy: AccuracySource | None = None,
        metrics: RolloutMetrics | None = None,
    ) -> None:
        self.deployments = deployments
        # One clock for the decision and the step it records: the deployments' own.
        self.clock = clock if clock is not None else deployments.clock
        self.accuracy = accuracy
        self.metrics = metrics

    def evaluate(self, name: str, deployment: Deployment | None = None) -> Verdict:
        """One look: hold, advance (or promote), or roll back ``name``'s canary."""
        d = deployment if deployment is not None else self.deployments.get(name)
        if d.canary is None or d.policy is None or d.paused or d.killed:
            return Verdict("hold", "no active progressive rollout")
        now = self.clock.now()
        stats = merge_stats(self.deployments.store.counters(name, d.epoch))
        accuracy = None
        if self.accuracy is not None and d.policy.max_accuracy_drop is not None:
            try:
                accuracy = self.accuracy(d, now)
            except ShipyardError as exc:  # labels are optional evidence; say so and go on
                logger.warning("Cannot read labelled predictions for %s: %s", name, exc)
        verdict = decide(d, stats, now=now, accuracy=accuracy)
        try:
            if verdict.action == "rollback":
                self.deployments.abort_canary(
                    name,
                    reason=f"automatic rollback: {verdict.reason}",
                    automatic=True,
                    details={"guard": verdict.guard, **verdict.details},
                    expected_revision=d.revision,
                )
                logger.error("Rolled back the canary of %s: %s", name, verdict.reason)
                if self.metrics is not None:
                    self.metrics.rollbacks.labels(name, verdict.guard or "unknown").inc()
            elif verdict.action == "advance":
                self.deployments.advance(
                    name,
                    reason=verdict.reason,
                    details=verdict.details,
                    expected_revision=d.revision,
                )
                logger.info("Advanced the rollout of %s: %s", name, verdict.reason)
                if self.metrics is not None:
                    self.metrics.advances.labels(name).inc()
        except ConflictError:
            return Verdict("hold", "another controller or a person acted first")
        return verdict


__all__ = [
    "AccuracySource",
    "CalibrationSource",
    "RolloutController",
    "accuracy_by_variant",
    "log_accuracy",
]
