"""Records the rollout store hands out: deployments as stored, their changes, live counters."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shipyard.errors import NotFoundError


class DeploymentNotFoundError(NotFoundError):
    """No deployment has that name."""


@dataclass(frozen=True)
class DeploymentRecord:
    """A deployment as stored: its spec (JSON) at ``revision``."""

    name: str
    model: str
    spec: dict[str, Any]
    revision: int
    created_at: datetime
    updated_at: datetime
    updated_by: str


@dataclass(frozen=True)
class DeploymentChange:
    """One applied change: the spec after it, who, what, why."""

    revision: int
    action: str
    actor: str
    reason: str | None
    spec: dict[str, Any]
    at: datetime


@dataclass(frozen=True)
class VariantCounters:
    """What one worker saw of one variant in one epoch (``latency``: bucket -> count)."""

    variant: str
    version: int
    requests: int
    errors: int
    latency: dict[str, int] = field(default_factory=dict)
    worker: str = ""


@dataclass(frozen=True)
class EpochCounts:
    """One variant's requests and errors in one traffic epoch, summed over workers.

    ``started_at`` is when the change that began the epoch was made (None when
    that change is no longer in the history); ``reported_at`` is the last time a
    worker reported the epoch's counters, so the counts cover that span.
    """

    epoch: int
    variant: str
    version: int
    requests: int
    errors: int
    started_at: datetime | None
    reported_at: datetime


@dataclass(frozen=True)
class WorkerHeartbeat:
    """The revision a server worker routes by, and when it last said so."""

    worker: str
    revision: int
    seen_at: datetime


__all__ = [
    "DeploymentChange",
    "DeploymentNotFoundError",
    "DeploymentRecord",
    "EpochCounts",
    "VariantCounters",
    "WorkerHeartbeat",
]
