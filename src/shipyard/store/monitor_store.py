"""Repository for the serving monitor: leases, and the snapshots of figures it shares.

:meth:`MonitorStore.acquire` is a compare-and-set in one write transaction:
the row of the lease is read for update (a row lock on PostgreSQL; on SQLite
the write lock ``BEGIN IMMEDIATE`` takes) and taken only when it is free,
expired or already ours. Two processes inserting the first row at once
collide on the primary key, and the loser is told no. Leases expire, so a
holder that died (``kill -9``, a lost replica) is replaced once its lease
runs out; a holder that stops cleanly releases it at once.

>>> store = MonitorStore(Database("sqlite:///:memory:"))              # doctest: +SKIP
>>> store.acquire("monitor:iris:3", "host:12", ttl=timedelta(seconds=30), now=now)  # doctest: +SKIP
True
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError as SAIntegrityError
from sqlalchemy.orm import Session

from shipyard.errors import InvalidInputError, StoreError
from shipyard.store.database import Database
from shipyard.store.loop_records import json_safe
from shipyard.store.schema_monitor import LeaseRow, MonitorSnapshotRow

__all__ = ["Lease", "MonitorSnapshot", "MonitorStore"]


@dataclass(frozen=True)
class Lease:
    """Who holds the lease ``name``, since when and until when."""

    name: str
    holder: str
    acquired_at: datetime
    expires_at: datetime


@dataclass(frozen=True)
class MonitorSnapshot:
    """Figures one monitor run computed (JSON: no NaN, unknowns are ``None``)."""

    key: str
    model: str
    version: int
    window_seconds: float
    computed_at: datetime
    computed_by: str
    figures: dict[str, Any]


class MonitorStore:
    """Leases and monitor snapshots, on the metadata database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- leases ----------------------------------------------------------------------

    def acquire(self, name: str, holder: str, *, ttl: timedelta, now: datetime) -> bool:
        """Take or renew lease ``name`` for ``holder`` until ``now + ttl``; False if
        someone else holds it and it has not expired."""
        if not name or len(name) > 255 or not holder or len(holder) > 255:
            raise InvalidInputError(
                f"A lease name and holder must be 1-255 characters, got {name!r} and {holder!r}."
            )
        if ttl <= timedelta(0):
            raise InvalidInputError(f"A lease must last a positive time, got {ttl}.")

        def work(session: Session) -> bool:
            row = session.get(LeaseRow, name, with_for_update=True)
            if row is None:
                session.add(
                    LeaseRow(name=name, holder=holder, acquired_at=now, expires_at=now + ttl)
                )
                session.flush()  # a concurrent first insert fails here, on the primary key
                return True
            if row.holder != holder and row.expires_at > now:
                return False
            if row.holder != holder:
                row.holder, row.acquired_at = holder, now
            row.expires_at = now + ttl
            return True

        try:
            return self.db.write(work)
        except StoreError as exc:
            if isinstance(exc.__cause__, SAIntegrityError):
                return False  # another process inserted the lease first: it holds it
            raise

    def release(self, name: str, holder: str) -> None:
        """Give lease ``name`` up, if ``holder`` holds it (anyone may take it at once)."""

        def work(session: Session) -> None:
            session.execute(
                delete(LeaseRow).where(LeaseRow.name == name, LeaseRow.holder == holder)
            )

        self.db.write(work)

    def lease(self, name: str) -> Lease | None:
        """The lease ``name`` as stored (possibly expired), or None."""
        with self.db.read() as session:
            row = session.get(LeaseRow, name)
            if row is None:
                return None
            return Lease(row.name, row.holder, row.acquired_at, row.expires_at)

    # -- snapshots ---------------------------------------------------------------------

    def save_snapshot(
        self,
        key: str,
        *,
        model: str,
        version: int,
        window_seconds: float,
        computed_at: datetime,
        computed_by: str,
        figures: dict[str, Any],
    ) -> None:
        """Store the newest figures under ``key`` (replacing the previous ones)."""
        clean = json_safe(figures)

        def work(session: Session) -> None:
            row = session.get(MonitorSnapshotRow, key)
            if row is None:
                row = MonitorSnapshotRow(key=key)
                session.add(row)
            row.model, row.version, row.window_seconds = model, version, window_seconds
            row.computed_at, row.computed_by, row.figures = computed_at, computed_by, clean

        self.db.write(work)

    def snapshot(self, key: str) -> MonitorSnapshot | None:
        """The newest figures stored under ``key``, or None."""
        with self.db.read() as session:
            row = session.scalar(select(MonitorSnapshotRow).where(MonitorSnapshotRow.key == key))
            if row is None:
                return None
            return MonitorSnapshot(
                row.key,
                row.model,
                row.version,
                row.window_seconds,
                row.computed_at,
                row.computed_by,
                dict(row.figures),
            )

    def snapshots(self, prefix: str) -> list[MonitorSnapshot]:
        """Every stored snapshot whose key starts with ``prefix`` (a deployment's
        variants: ``web/``), newest first."""
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        with self.db.read() as session:
            rows = session.scalars(
                select(MonitorSnapshotRow)
                .where(MonitorSnapshotRow.key.like(escaped + "%", escape="\\"))
                .order_by(MonitorSnapshotRow.computed_at.desc())
            ).all()
            return [
                MonitorSnapshot(
                    r.key,
                    r.model,
                    r.version,
                    r.window_seconds,
                    r.computed_at,
                    r.computed_by,
                    dict(r.figures),
                )
                for r in rows
            ]
