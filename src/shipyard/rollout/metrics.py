"""Prometheus metrics of deployments: per-variant traffic, and automatic rollbacks.

Registered in a registry the caller passes (the serving app's, so ``/metrics``
shows them; ``shipyard deploy watch`` uses its own). The alert rule in
``deploy/prometheus/rollout-alerts.yml`` fires on
``increase(shipyard_rollout_rollbacks_total[10m]) > 0``.

Example:
    >>> from prometheus_client import CollectorRegistry
    >>> m = RolloutMetrics(CollectorRegistry())
    >>> m.rollbacks.labels(deployment="web", guard="error_rate").inc()
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from shipyard.rollout.policy import LATENCY_BOUNDS


class RolloutMetrics:
    """Deployment metrics; every series carries the deployment and the variant."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "shipyard_deployment_requests",
            "Prediction requests by deployment, variant, version and outcome (ok/error).",
            ["deployment", "variant", "version", "outcome"],
            registry=registry,
        )
        self.latency = Histogram(
            "shipyard_deployment_request_duration_seconds",
            "Prediction request latency by deployment, variant and version.",
            ["deployment", "variant", "version"],
            buckets=LATENCY_BOUNDS,
            registry=registry,
        )
        self.weight = Gauge(
            "shipyard_deployment_weight_percent",
            "Share of requests (%) a variant is routed, as this worker routes them.",
            ["deployment", "variant", "version"],
            registry=registry,
            multiprocess_mode="max",
        )
        self.revision = Gauge(
            "shipyard_deployment_revision",
            "The deployment revision this worker routes by (min over workers: the laggard).",
            ["deployment"],
            registry=registry,
            multiprocess_mode="min",
        )
        self.shadow = Counter(
            "shipyard_deployment_shadow_requests",
            "Shadow copies by deployment, shadow version and outcome (ok/error/dropped).",
            ["deployment", "version", "outcome"],
            registry=registry,
        )
        self.rollbacks = Counter(
            "shipyard_rollout_rollbacks",
            "Automatic rollbacks of a canary, by deployment and breached guard.",
            ["deployment", "guard"],
            registry=registry,
        )
        self.advances = Counter(
            "shipyard_rollout_advances",
            "Progressive rollout steps taken (including the final promotion).",
            ["deployment"],
            registry=registry,
        )


__all__ = ["RolloutMetrics"]
