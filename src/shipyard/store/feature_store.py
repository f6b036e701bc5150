"""Repository of the feature store's metadata: definition versions, consumers, watermarks.

Definitions are kept as JSON specs, one row per version; :meth:`apply` writes
every changed one in a single transaction with one audit entry per change, so
a half-applied file never exists. What the specs mean is the features stage's
business (:mod:`shipyard.features.definitions`); this store only versions them.

>>> store = FeatureStore(Database("sqlite:///:memory:"))              # doctest: +SKIP
>>> change = SpecChange("view", "driver_stats", {...}, "ab12...")       # doctest: +SKIP
>>> store.apply([change], actor="ann")                                # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shipyard.clock import utc_now
from shipyard.store.database import Database
from shipyard.store.schema_features import (
    FeatureConsumerRow,
    FeatureDefinitionRow,
    MaterializationRow,
)

__all__ = ["Consumer", "DefinitionVersion", "FeatureStore", "SpecChange", "Watermark"]


@dataclass(frozen=True)
class DefinitionVersion:
    """One stored version of one definition."""

    kind: str
    name: str
    version: int
    spec: dict[str, Any]
    digest: str
    created_at: datetime
    created_by: str


@dataclass(frozen=True)
class SpecChange:
    """A definition to store as a new version (``reason`` goes to the audit log)."""

    kind: str
    name: str
    spec: dict[str, Any]
    digest: str
    reason: str | None = None
    details: dict[str, Any] | None = None


@dataclass(frozen=True)
class Consumer:
    """A model version trained on ``view`` at ``view_version``."""

    model: str
    model_version: int
    view: str
    view_version: int


@dataclass(frozen=True)
class Watermark:
    view: str
    target: str
    view_version: int
    watermark: datetime
    rows: int
    materialized_at: datetime


def _record(row: FeatureDefinitionRow) -> DefinitionVersion:
    return DefinitionVersion(
        row.kind, row.name, row.version, dict(row.spec), row.digest, row.created_at, row.created_by
    )


class FeatureStore:
    """Feature definitions and their versions, on one :class:`Database`."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def apply(self, changes: list[SpecChange], *, actor: str) -> list[DefinitionVersion]:
        """Store each change as the next version of its definition; audit-logged."""

        def work(session: Session) -> list[DefinitionVersion]:
            written = []
            for change in changes:
                latest = session.scalar(
                    select(func.max(FeatureDefinitionRow.version)).where(
                        FeatureDefinitionRow.kind == change.kind,
                        FeatureDefinitionRow.name == change.name,
                    )
                )
                row = FeatureDefinitionRow(
                    kind=change.kind,
                    name=change.name,
                    version=(latest or 0) + 1,
                    spec=change.spec,
                    digest=change.digest,
                    created_at=utc_now(),
                    created_by=actor,
                )
                session.add(row)
                session.flush()
                Database.audit(
                    session,
                    actor=actor,
                    action=f"features.apply_{change.kind}",
                    subject=change.name,
                    from_value=str(latest) if latest else None,
                    to_value=str(row.version),
                    reason=change.reason,
                    details=change.details,
                )
                written.append(_record(row))
            return written

        return self.db.write(work)

    def latest(self, kind: str | None = None) -> list[DefinitionVersion]:
        """The newest version of every definition (of one ``kind``), sorted by kind and name."""
        with self.db.read() as session:
            newest = (
                select(
                    FeatureDefinitionRow.kind,
                    FeatureDefinitionRow.name,
                    func.max(FeatureDefinitionRow.version).label("version"),
                )
                .group_by(FeatureDefinitionRow.kind, FeatureDefinitionRow.name)
                .subquery()
            )
            query = select(FeatureDefinitionRow).join(
                newest,
                (FeatureDefinitionRow.kind == newest.c.kind)
                & (FeatureDefinitionRow.name == newest.c.name)
                & (FeatureDefinitionRow.version == newest.c.version),
            )
            if kind is not None:
                query = query.where(FeatureDefinitionRow.kind == kind)
            rows = session.scalars(
                query.order_by(FeatureDefinitionRow.kind, FeatureDefinitionRow.name)
            )
            return [_record(r) for r in rows]

    def versions(self, kind: str, name: str) -> list[DefinitionVersion]:
        """Every version of one definition, oldest first (empty if unknown)."""
        with self.db.read() as session:
            rows = session.scalars(
                select(FeatureDefinitionRow)
                .where(FeatureDefinitionRow.kind == kind, FeatureDefinitionRow.name == name)
                .order_by(FeatureDefinitionRow.version)
            )
            return [_record(r) for r in rows]

    # -- consumers ---------------------------------------------------------------------

    def add_consumers(self, model: str, model_version: int, views: dict[str, int]) -> None:
        def work(session: Session) -> None:
            for view, view_version in views.items():
                session.merge(
                    FeatureConsumerRow(
                        model=model,
                        model_version=model_version,
                        view=view,
                        view_version=view_version,
                    )
                )

        self.db.write(work)

    def consumers(self, view: str) -> list[Consumer]:
        with self.db.read() as session:
            rows = session.scalars(
                select(FeatureConsumerRow)
                .where(FeatureConsumerRow.view == view)
                .order_by(FeatureConsumerRow.model, FeatureConsumerRow.model_version)
            )
            return [Consumer(r.model, r.model_version, r.view, r.view_version) for r in rows]

    # -- materialization ---------------------------------------------------------------

    def watermark(self, view: str, target: str) -> Watermark | None:
        with self.db.read() as session:
            row = session.get(MaterializationRow, (view, target))
            if row is None:
                return None
            return Watermark(
                row.view,
                row.target,
                row.view_version,
                row.watermark,
                row.rows,
                row.materialized_at,
            )

    def set_watermark(
        self, view: str, target: str, *, view_version: int, watermark: datetime, rows: int
    ) -> None:
        def work(session: Session) -> None:
            session.merge(
                MaterializationRow(
                    view=view,
                    target=target,
                    view_version=view_version,
                    watermark=watermark,
                    rows=rows,
                    materialized_at=utc_now(),
                )
            )

        self.db.write(work)
