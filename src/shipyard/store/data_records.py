"""Frozen records of data and pipeline versions (ORM rows never leave ``store/``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class DatasetVersion:
    """One immutable version of a named dataset (``ref`` reads ``name:3``)."""

    dataset: str
    version: int
    manifest_digest: str | None
    n_rows: int
    schema: dict[str, str]
    content_hash: str
    source: str | None
    message: str | None
    total_bytes: int
    new_bytes: int
    details: dict[str, Any]
    created_at: datetime
    created_by: str

    @property
    def ref(self) -> str:
        return f"{self.dataset}:{self.version}"

    @property
    def delta(self) -> dict[str, Any] | None:
        """For a Delta Lake reference: ``{"uri": ..., "version": n}``; None for stored chunks."""
        value = self.details.get("delta")
        return value if isinstance(value, dict) else None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ref": self.ref}


@dataclass(frozen=True)
class DatasetUse:
    """A run read ``dataset:version`` in ``context``."""

    dataset: str
    version: int
    run_id: str
    context: str


@dataclass(frozen=True)
class PipelineRecord:
    """What a run's pipeline was: enough to run it again and to tell what changed."""

    run_id: str
    entry_point: str
    code_hash: str
    record: dict[str, Any] = field(default_factory=dict)

    @property
    def snapshots(self) -> dict[str, str]:
        """context -> ``name:version`` of the data snapshots the run read."""
        return dict(self.record.get("snapshots", {}))
