"""The audit log: who changed what serves, when, from what, to what, and why.

Stores add entries inside their own write transactions (:meth:`Database.audit`);
this store records standalone entries and reads the log.

>>> audit = AuditStore(Database("sqlite:///:memory:"))
>>> audit.record(actor="ann", action="note", model="iris")
>>> [e.action for e in audit.log(model="iris")]
['note']
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from shipyard.store import records
from shipyard.store.database import Database
from shipyard.store.schema import AuditRow


class AuditStore:
    """Reads the audit log and records entries that no other change carries."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def record(
        self,
        *,
        actor: str,
        action: str,
        model: str | None = None,
        subject: str | None = None,
        from_value: str | None = None,
        to_value: str | None = None,
        reason: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        def work(session: Session) -> None:
            self.db.audit(
                session,
                actor=actor,
                action=action,
                model=model,
                subject=subject,
                from_value=from_value,
                to_value=to_value,
                reason=reason,
                details=details,
            )

        self.db.write(work)

    def log(
        self,
        *,
        model: str | None = None,
        limit: int = 100,
        actor: str | None = None,
        action: str | None = None,
        before: int | None = None,
    ) -> list[records.AuditEntry]:
        """The newest ``limit`` entries (of ``model``, ``actor``, ``action``, if given), newest
        first; ``before`` an entry id pages back from it."""
        with self.db.read() as session:
            query = select(AuditRow).order_by(AuditRow.id.desc()).limit(limit)
            if model is not None:
                query = query.where(AuditRow.model == model)
            if actor is not None:
                query = query.where(AuditRow.actor == actor)
            if action is not None:
                query = query.where(AuditRow.action == action)
            if before is not None:
                query = query.where(AuditRow.id < before)
            return [
                records.AuditEntry(
                    id=r.id,
                    at=r.at,
                    actor=r.actor,
                    action=r.action,
                    model=r.model,
                    subject=r.subject,
                    from_value=r.from_value,
                    to_value=r.to_value,
                    reason=r.reason,
                    details=dict(r.details or {}),
                )
                for r in session.scalars(query)
            ]

    def facets(self) -> tuple[list[str], list[str], list[str]]:
        """The models, actors and actions the log names (for the UI's filter lists)."""
        with self.db.read() as session:
            models = session.scalars(
                select(AuditRow.model).where(AuditRow.model.is_not(None)).distinct()
            )
            actors = session.scalars(select(AuditRow.actor).distinct())
            actions = session.scalars(select(AuditRow.action).distinct())
            return sorted(m for m in models if m), sorted(actors), sorted(actions)
