"""Frozen records the metadata store hands out; ORM rows stay inside ``store/``."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Experiment:
    id: int
    name: str
    created_at: datetime


@dataclass(frozen=True)
class MetricPoint:
    key: str
    value: float
    step: int
    timestamp: datetime


@dataclass(frozen=True)
class Run:
    id: str
    experiment: str
    name: str
    status: str
    start_time: datetime
    end_time: datetime | None
    created_by: str
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    datasets: dict[str, dict[str, Any]] = field(default_factory=dict)
    parent_id: str | None = None


@dataclass(frozen=True)
class RunArtifact:
    """A file a run kept: its path in the run, the blob holding its bytes, what it is."""

    path: str
    digest: str
    size: int
    kind: str  # file, image, table, text, json, model
    created_at: datetime


@dataclass(frozen=True)
class MetricSummary:
    """One metric of one run: its latest value and the range of its history."""

    key: str
    last: float
    last_step: int
    minimum: float
    maximum: float
    steps: int


@dataclass(frozen=True)
class Model:
    name: str
    description: str | None
    archived: bool
    created_at: datetime
    updated_at: datetime
    latest_version: int
    aliases: dict[str, int] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelVersion:
    model: str
    version: int
    manifest_digest: str
    flavor: str
    run_id: str | None
    status: str
    description: str | None
    metrics: dict[str, float]
    data_fingerprint: dict[str, Any] | None
    created_by: str
    created_at: datetime
    aliases: tuple[str, ...] = ()
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def ref(self) -> str:
        return f"{self.model}:{self.version}"


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: datetime
    actor: str
    action: str
    model: str | None
    subject: str | None
    from_value: str | None
    to_value: str | None
    reason: str | None
    details: dict[str, Any] = field(default_factory=dict)
