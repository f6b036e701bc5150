"""Rollout as a serving worker sees it: the one module ``serving`` imports from ``rollout``.

A server that serves a deployment reads it on every poll, routes each request
to a variant, reports its live counters, and lets the rollout policy act on
them (advance, promote, roll back). :class:`RolloutWorker` does the reading,
reporting and acting against the metadata database; the routing types
(:class:`Deployment`, :class:`Variant`, :class:`Router`) are re-exported here
so the server needs nothing else from this package.

Example:
    >>> rollout = RolloutWorker(metadata, log=log, registry=metrics.registry,   # doctest: +SKIP
    ...                         actor="rollout@host")
    >>> d = rollout.get("web")                                                   # doctest: +SKIP
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from shipyard.monitoring.prediction_log import PredictionLog
from shipyard.rollout.controller import CalibrationSource, RolloutController, log_accuracy
from shipyard.rollout.metrics import RolloutMetrics
from shipyard.rollout.policy import LATENCY_BOUNDS, Verdict, bucket_key
from shipyard.rollout.records import PRIMARY, Deployment, Variant, shadow_variant
from shipyard.rollout.router import Router
from shipyard.rollout.service import Deployments
from shipyard.store.rollout_store import VariantCounters

__all__ = [
    "PRIMARY",
    "Deployment",
    "RolloutMetrics",
    "RolloutWorker",
    "Router",
    "Variant",
    "VariantCounters",
    "Verdict",
    "latency_bucket",
    "shadow_variant",
]


def latency_bucket(seconds: float) -> str:
    """The key of the latency bucket ``seconds`` falls in (what a worker counts by)."""
    return bucket_key(next(b for b in LATENCY_BOUNDS if seconds <= b))


class RolloutWorker:
    """Read a deployment, report a worker's counters, let the policy act.

    ``controller=False`` leaves the policy to others (the worker only reports).
    ``calibration`` gives a version's CBPE calibration for the accuracy guard.
    The Prometheus series of the rollout are registered in ``registry``.
    """

    def __init__(
        self,
        deployments: Deployments,
        *,
        log: PredictionLog,
        registry: CollectorRegistry,
        actor: str,
        controller: bool = True,
        calibration: CalibrationSource | None = None,
    ) -> None:
        self.deployments = deployments.acting_as(actor)
        self.metrics = RolloutMetrics(registry)
        self.controller = (
            RolloutController(
                self.deployments, accuracy=log_accuracy(log, calibration), metrics=self.metrics
            )
            if controller
            else None
        )

    def get(self, name: str) -> Deployment:
        """The deployment ``name`` as stored now."""
        return self.deployments.get(name)

    def evaluate(self, name: str, deployment: Deployment) -> Verdict | None:
        """One look of the rollout policy at ``deployment`` (None without a controller)."""
        if self.controller is None:
            return None
        return self.controller.evaluate(name, deployment)

    def report(
        self,
        name: str,
        *,
        worker: str,
        revision: int,
        epoch: int,
        counters: list[VariantCounters],
    ) -> None:
        """Store this worker's counters of ``epoch`` (and that it serves ``revision``)."""
        self.deployments.store.report_worker(
            name, worker=worker, revision=revision, epoch=epoch, counters=counters
        )

    def forget(self, name: str, worker: str) -> None:
        """This worker stopped serving ``name``."""
        self.deployments.store.forget_worker(name, worker)
