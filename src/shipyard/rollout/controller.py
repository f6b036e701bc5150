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

import pandas as pd

from shipyard.clock import Clock
from shipyard.errors import ConflictError, ShipyardError
from shipyard.monitoring.prediction_log import PredictionLog
from shipyard.monitoring.queries import read_labelled
from shipyard.monitoring.records import class_key
from shipyard.rollout.log_rows import deployment_rows
from shipyard.rollout.metrics import RolloutMetrics
from shipyard.rollout.policy import Accuracy, Verdict, decide, merge_stats
from shipyard.rollout.records import Deployment
from shipyard.rollout.service import Deployments

logger = logging.getLogger("shipyard.rollout")

AccuracySource = Callable[[Deployment, datetime], Mapping[str, Accuracy]]


def accuracy_by_variant(frame: pd.DataFrame) -> dict[str, Accuracy]:
    """Correct / labelled rows per variant of a labelled prediction-log frame.

    >>> frame = pd.DataFrame({"variant": ["primary", "canary"], "prediction": ["a", "b"],
    ...                       "label": ["a", "a"]})
    >>> accuracy_by_variant(frame)["canary"]
    Accuracy(correct=0, labelled=1)
    """
    out: dict[str, Accuracy] = {}
    if frame.empty or "label" not in frame:
        return out
    labelled = frame[frame["label"].notna()]
    for variant, group in labelled.groupby("variant"):
        predicted = [class_key(v) for v in group["prediction"].tolist()]
        truth = group["label"].astype(str).tolist()
        correct = sum(p == t for p, t in zip(predicted, truth, strict=True))
        out[str(variant)] = Accuracy(correct, len(group))
    return out


def log_accuracy(log: PredictionLog) -> AccuracySource:
    """An accuracy source reading labelled rows of the current step from ``log``."""

    def source(d: Deployment, now: datetime) -> Mapping[str, Accuracy]:
        since = d.step_started_at or now
        frame = read_labelled(log.store, d.model, since=since, until=now)
        return accuracy_by_variant(deployment_rows(d, frame))

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


__all__ = ["AccuracySource", "RolloutController", "accuracy_by_variant", "log_accuracy"]
