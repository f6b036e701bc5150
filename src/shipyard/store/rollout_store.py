"""Repository for deployments: desired state with optimistic concurrency, history, live stats.

It works on the shared :class:`~shipyard.store.database.Database` (same engine,
same transactions, same audit log) like
:class:`~shipyard.store.validation_store.ValidationStore` does. A deployment's
desired state is a JSON ``spec`` (its meaning belongs to :mod:`shipyard.rollout`);
this module only guarantees that

- a change applies in one transaction, and only if the caller read the current
  ``revision`` (else :class:`ConflictError`, nothing changed);
- the versions a change routes traffic to exist and are not archived, checked
  in that same transaction;
- every change leaves a history row (the whole spec after it) and an audit entry.

>>> store = RolloutStore(Database("sqlite:///:memory:"))     # doctest: +SKIP
>>> record = store.create("web", "iris", {"primary": 1},          # doctest: +SKIP
...                       versions=[1], actor="ann")
>>> store.update("web", {"primary": 2}, expected_revision=record.revision,  # doctest: +SKIP
...              versions=[2], actor="ann", action="promote")
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError as SAIntegrityError
from sqlalchemy.orm import Session

from shipyard.clock import utc_now
from shipyard.errors import ConflictError, InvalidInputError, StoreError
from shipyard.names import check_name
from shipyard.store import alias_store
from shipyard.store.database import Database
from shipyard.store.rollout_records import (
    DeploymentChange,
    DeploymentNotFoundError,
    DeploymentRecord,
    EpochCounts,
    VariantCounters,
    WorkerHeartbeat,
)
from shipyard.store.rows import model_row, version_row
from shipyard.store.schema_rollout import (
    DeploymentChangeRow,
    DeploymentRow,
    DeploymentStatsRow,
    DeploymentWorkerRow,
)


class RolloutStore:
    """Deployments on the metadata database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- helpers ------------------------------------------------------------------------

    @staticmethod
    def _row(session: Session, name: str) -> DeploymentRow:
        row = session.scalar(select(DeploymentRow).where(DeploymentRow.name == name))
        if row is None:
            known = ", ".join(session.scalars(select(DeploymentRow.name).order_by("name")))
            raise DeploymentNotFoundError(
                f"No deployment named {name!r} (deployments: {known or 'none yet'}). Create "
                f"one with `shipyard deploy {name} --model MODEL:VERSION`."
            )
        return row

    @staticmethod
    def _check_versions(session: Session, model: str, versions: Iterable[int]) -> None:
        """Every version traffic would reach exists and is live (same transaction)."""
        found = model_row(session, model)
        for version in sorted(set(versions)):
            row = version_row(session, found, version)
            if row.status == "archived":
                raise InvalidInputError(
                    f"Version {model}:{version} is archived and cannot take traffic; restore "
                    f"it with `shipyard models archive {model}:{version} --restore` or pick "
                    "another version."
                )

    @staticmethod
    def _record(row: DeploymentRow) -> DeploymentRecord:
        return DeploymentRecord(
            name=row.name,
            model=row.model,
            spec=dict(row.spec),
            revision=row.revision,
            created_at=row.created_at,
            updated_at=row.updated_at,
            updated_by=row.updated_by,
        )

    @staticmethod
    def _history(
        session: Session,
        row: DeploymentRow,
        *,
        action: str,
        actor: str,
        reason: str | None,
        audit: dict[str, Any],
    ) -> None:
        session.add(
            DeploymentChangeRow(
                deployment_id=row.id,
                revision=row.revision,
                action=action,
                actor=actor,
                reason=reason,
                spec=dict(row.spec),
            )
        )
        Database.audit(
            session,
            actor=actor,
            action=action,
            model=row.model,
            subject=f"deployment:{row.name}",
            from_value=audit.get("from"),
            to_value=audit.get("to"),
            reason=reason,
            details={"revision": row.revision, **audit.get("details", {})},
        )

    # -- desired state ------------------------------------------------------------------

    def create(
        self,
        name: str,
        model: str,
        spec: dict[str, Any],
        *,
        versions: Iterable[int],
        actor: str,
        reason: str | None = None,
        audit: dict[str, Any] | None = None,
    ) -> DeploymentRecord:
        """Create deployment ``name`` serving versions of ``model``; ConflictError if it exists."""
        check_name(name, kind="Deployment name")

        def work(session: Session) -> None:
            if session.scalar(select(DeploymentRow.id).where(DeploymentRow.name == name)):
                raise ConflictError(
                    f"Deployment {name!r} already exists; change it with `shipyard deploy "
                    f"{name} ...` or look at it with `shipyard deploy status {name}`."
                )
            self._check_versions(session, model, versions)
            row = DeploymentRow(name=name, model=model, spec=spec, revision=1, updated_by=actor)
            session.add(row)
            session.flush()
            self._history(
                session, row, action="deploy_create", actor=actor, reason=reason, audit=audit or {}
            )

        try:
            self.db.write(work)
        except StoreError as exc:  # two creators raced past the check: the index says who won
            if isinstance(exc.__cause__, SAIntegrityError):
                raise ConflictError(f"Deployment {name!r} already exists.") from exc
            raise
        return self.get(name)

    def update(
        self,
        name: str,
        spec: dict[str, Any],
        *,
        expected_revision: int,
        versions: Iterable[int],
        actor: str,
        action: str,
        reason: str | None = None,
        audit: dict[str, Any] | None = None,
        move_alias: tuple[str, int] | None = None,
    ) -> DeploymentRecord:
        """Replace the spec if the deployment is still at ``expected_revision``.

        The compare-and-set is one ``UPDATE ... WHERE revision = ?``: of two
        writers that read the same revision exactly one matches a row; the
        other gets :class:`ConflictError` and nothing of its change is applied.
        ``move_alias=(alias, version)`` points that alias of the deployment's
        model at ``version`` in the same transaction (audit-logged as any move).
        """

        def work(session: Session) -> DeploymentRecord:
            row = self._row(session, name)
            self._check_versions(session, row.model, versions)
            now = utc_now()
            result = session.execute(
                update(DeploymentRow)
                .where(DeploymentRow.id == row.id, DeploymentRow.revision == expected_revision)
                .values(
                    spec=spec,
                    revision=expected_revision + 1,
                    updated_at=now,
                    updated_by=actor,
                )
                .execution_options(synchronize_session=False)
            )
            if result.rowcount != 1:  # type: ignore[attr-defined]
                current = session.scalar(
                    select(DeploymentRow.revision).where(DeploymentRow.id == row.id)
                )
                raise ConflictError(
                    f"Deployment {name!r} was changed by someone else (it is at revision "
                    f"{current}, this change was based on revision {expected_revision}); "
                    f"re-read it with `shipyard deploy status {name}` and retry."
                )
            session.expire(row)
            self._history(
                session, row, action=action, actor=actor, reason=reason, audit=audit or {}
            )
            if move_alias is not None:
                alias, version = move_alias
                why = f"deployment {name!r}: {action}" + (f" ({reason})" if reason else "")
                alias_store.move_alias(session, row.model, alias, version, actor=actor, reason=why)
            return self._record(row)

        return self.db.write(work)

    def get(self, name: str) -> DeploymentRecord:
        with self.db.read() as session:
            return self._record(self._row(session, name))

    def list_deployments(self) -> list[DeploymentRecord]:
        with self.db.read() as session:
            rows = session.scalars(select(DeploymentRow).order_by(DeploymentRow.name))
            return [self._record(r) for r in rows]

    def changes(self, name: str, *, limit: int = 50) -> list[DeploymentChange]:
        """The latest changes, newest first."""
        with self.db.read() as session:
            row = self._row(session, name)
            rows = session.scalars(
                select(DeploymentChangeRow)
                .where(DeploymentChangeRow.deployment_id == row.id)
                .order_by(DeploymentChangeRow.revision.desc())
                .limit(limit)
            )
            return [
                DeploymentChange(r.revision, r.action, r.actor, r.reason, dict(r.spec), r.at)
                for r in rows
            ]

    # -- what the servers report --------------------------------------------------------

    def report_worker(
        self,
        name: str,
        *,
        worker: str,
        revision: int,
        epoch: int,
        counters: Iterable[VariantCounters],
    ) -> None:
        """Store one worker's heartbeat and its cumulative counters for ``epoch``.

        A worker only ever writes its own rows, so workers never conflict.
        """

        def work(session: Session) -> None:
            row = self._row(session, name)
            now = utc_now()
            beat = session.get(DeploymentWorkerRow, (row.id, worker))
            if beat is None:
                session.add(
                    DeploymentWorkerRow(
                        deployment_id=row.id, worker=worker, revision=revision, seen_at=now
                    )
                )
            else:
                beat.revision = revision
                beat.seen_at = now
            for c in counters:
                stats = session.get(DeploymentStatsRow, (row.id, epoch, worker, c.variant))
                if stats is None:
                    stats = DeploymentStatsRow(
                        deployment_id=row.id, epoch=epoch, worker=worker, variant=c.variant
                    )
                    session.add(stats)
                stats.version = c.version
                stats.requests = c.requests
                stats.errors = c.errors
                stats.latency = dict(c.latency)
                stats.updated_at = now

        self.db.write(work)

    def counters(self, name: str, epoch: int) -> list[VariantCounters]:
        """Every worker's counters for ``epoch`` (sum them per variant)."""
        with self.db.read() as session:
            row = self._row(session, name)
            rows = session.scalars(
                select(DeploymentStatsRow).where(
                    DeploymentStatsRow.deployment_id == row.id, DeploymentStatsRow.epoch == epoch
                )
            )
            return [
                VariantCounters(
                    r.variant,
                    r.version,
                    r.requests,
                    r.errors,
                    {str(k): int(v) for k, v in (r.latency or {}).items()},
                    r.worker,
                )
                for r in rows
            ]

    def epoch_counts(self, name: str) -> list[EpochCounts]:
        """Requests and errors of every epoch and variant (summed over workers), oldest first.

        Workers keep cumulative counts per epoch, not per minute: this is the
        finest time grain at which failed requests are recorded.
        """
        with self.db.read() as session:
            row = self._row(session, name)
            started: dict[int, datetime] = {}
            for spec, at in session.execute(
                select(DeploymentChangeRow.spec, DeploymentChangeRow.at).where(
                    DeploymentChangeRow.deployment_id == row.id
                )
            ):
                epoch = int((spec or {}).get("epoch") or 1)
                if epoch not in started or at < started[epoch]:
                    started[epoch] = at
            totals = session.execute(
                select(
                    DeploymentStatsRow.epoch,
                    DeploymentStatsRow.variant,
                    func.max(DeploymentStatsRow.version),
                    func.sum(DeploymentStatsRow.requests),
                    func.sum(DeploymentStatsRow.errors),
                    func.max(DeploymentStatsRow.updated_at),
                )
                .where(DeploymentStatsRow.deployment_id == row.id)
                .group_by(DeploymentStatsRow.epoch, DeploymentStatsRow.variant)
                .order_by(DeploymentStatsRow.epoch, DeploymentStatsRow.variant)
            )
            return [
                EpochCounts(
                    int(epoch),
                    variant,
                    int(version),
                    int(requests or 0),
                    int(errors or 0),
                    started.get(int(epoch)),
                    reported,
                )
                for epoch, variant, version, requests, errors, reported in totals
            ]

    def workers(self, name: str) -> list[WorkerHeartbeat]:
        with self.db.read() as session:
            row = self._row(session, name)
            rows = session.scalars(
                select(DeploymentWorkerRow)
                .where(DeploymentWorkerRow.deployment_id == row.id)
                .order_by(DeploymentWorkerRow.worker)
            )
            return [WorkerHeartbeat(r.worker, r.revision, r.seen_at) for r in rows]

    def forget_worker(self, name: str, worker: str) -> None:
        """Drop a worker's heartbeat at shutdown (its counters stay for reports)."""

        def work(session: Session) -> None:
            row = self._row(session, name)
            session.execute(
                delete(DeploymentWorkerRow).where(
                    DeploymentWorkerRow.deployment_id == row.id,
                    DeploymentWorkerRow.worker == worker,
                )
            )

        self.db.write(work)


__all__ = ["RolloutStore"]
