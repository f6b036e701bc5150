"""The metadata store: experiments, runs, models, versions, aliases, audit log.

One class over one SQLAlchemy engine, the same code for SQLite and PostgreSQL.
Methods take and return plain values and the frozen records of
:mod:`shipyard.store.records`; they never leak ORM rows or sessions.

>>> store = MetadataStore("sqlite:///:memory:")
>>> store.create_model("iris").name
'iris'
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Engine, func, select
from sqlalchemy.exc import IntegrityError as SAIntegrityError
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session

from shipyard.clock import utc_now
from shipyard.errors import (
    AliasNotFoundError,
    ConflictError,
    ExperimentNotFoundError,
    InvalidInputError,
    ModelNotFoundError,
    RunNotFoundError,
    ShipyardError,
    StoreError,
    VersionNotFoundError,
)
from shipyard.names import check_alias_name, check_name
from shipyard.store import records
from shipyard.store.db import WRITE, create_db_engine, migrate
from shipyard.store.schema import (
    AliasRow,
    AuditRow,
    ExperimentRow,
    ModelRow,
    ModelTagRow,
    ModelVersionRow,
    RunDatasetRow,
    RunMetricRow,
    RunParamRow,
    RunRow,
    RunTagRow,
    VersionTagRow,
)

T = TypeVar("T")

RUN_STATUSES = ("RUNNING", "FINISHED", "FAILED", "KILLED")
_RETRIES = 5


class MetadataStore:
    """Repository over the metadata database; migrates on first use."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._engine: Engine | None = None

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            engine = create_db_engine(self.url)
            migrate(engine)
            self._engine = engine
        return self._engine

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    # -- transactions -------------------------------------------------------

    @contextmanager
    def _read(self) -> Iterator[Session]:
        try:
            with Session(self.engine, expire_on_commit=False) as session, session.begin():
                yield session
        except ShipyardError:
            raise
        except SQLAlchemyError as exc:
            raise StoreError(f"Metadata database error ({self._safe_url}): {exc}") from exc

    def _write(self, work: Callable[[Session], T]) -> T:
        """Run ``work`` in one write transaction, retrying transient lock errors.

        SQLite waits up to its busy timeout before reporting a lock; a retry
        covers the rare case where even that ran out under heavy contention.
        """
        for attempt in range(_RETRIES):
            try:
                with (
                    self.engine.connect().execution_options(**WRITE) as conn,
                    Session(bind=conn, expire_on_commit=False) as session,
                    session.begin(),
                ):
                    return work(session)
            except ShipyardError:
                raise
            except OperationalError as exc:
                if "locked" in str(exc).lower() and attempt < _RETRIES - 1:
                    time.sleep(0.05 * 2**attempt)
                    continue
                raise StoreError(f"Metadata database error ({self._safe_url}): {exc}") from exc
            except SQLAlchemyError as exc:
                raise StoreError(f"Metadata database error ({self._safe_url}): {exc}") from exc
        raise AssertionError("unreachable")

    @property
    def _safe_url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    # -- experiments and runs ----------------------------------------------

    def get_or_create_experiment(self, name: str) -> records.Experiment:
        check_name(name, kind="Experiment name")

        def work(session: Session) -> records.Experiment:
            row = session.scalar(select(ExperimentRow).where(ExperimentRow.name == name))
            if row is None:
                row = ExperimentRow(name=name)
                session.add(row)
                session.flush()
            return records.Experiment(row.id, row.name, row.created_at)

        return self._write(work)

    def list_experiments(self) -> list[records.Experiment]:
        with self._read() as session:
            rows = session.scalars(select(ExperimentRow).order_by(ExperimentRow.id))
            return [records.Experiment(r.id, r.name, r.created_at) for r in rows]

    def create_run(
        self, experiment: str, *, name: str | None = None, actor: str = "unknown"
    ) -> records.Run:
        exp = self.get_or_create_experiment(experiment)
        run_id = uuid.uuid4().hex

        def work(session: Session) -> None:
            session.add(
                RunRow(
                    id=run_id,
                    experiment_id=exp.id,
                    name=name or f"run-{run_id[:8]}",
                    status="RUNNING",
                    created_by=actor,
                )
            )

        self._write(work)
        return self.get_run(run_id)

    def end_run(self, run_id: str, status: str = "FINISHED") -> None:
        if status not in RUN_STATUSES:
            raise InvalidInputError(
                f"Run status {status!r} is not one of {', '.join(RUN_STATUSES)}."
            )

        def work(session: Session) -> None:
            row = self._run_row(session, run_id)
            row.status = status
            row.end_time = utc_now()

        self._write(work)

    def log_params(self, run_id: str, params: dict[str, Any]) -> None:
        def work(session: Session) -> None:
            self._run_row(session, run_id)
            for key, value in params.items():
                existing = session.get(RunParamRow, (run_id, key))
                if existing is not None and existing.value != str(value):
                    raise ConflictError(
                        f"Param {key!r} of run {run_id} is already {existing.value!r}; "
                        "params are immutable, log a metric or a tag for values that change."
                    )
                if existing is None:
                    session.add(RunParamRow(run_id=run_id, key=key, value=str(value)))

        self._write(work)

    def log_metrics(
        self, run_id: str, metrics: dict[str, float], *, step: int = 0, at: datetime | None = None
    ) -> None:
        def work(session: Session) -> None:
            self._run_row(session, run_id)
            for key, value in metrics.items():
                session.add(
                    RunMetricRow(
                        run_id=run_id,
                        key=key,
                        value=float(value),
                        step=step,
                        timestamp=at or utc_now(),
                    )
                )

        self._write(work)

    def set_run_tags(self, run_id: str, tags: dict[str, str]) -> None:
        def work(session: Session) -> None:
            self._run_row(session, run_id)
            for key, value in tags.items():
                session.merge(RunTagRow(run_id=run_id, key=key, value=str(value)))

        self._write(work)

    def log_dataset(self, run_id: str, context: str, fingerprint: dict[str, Any]) -> None:
        check_name(context, kind="Dataset context")

        def work(session: Session) -> None:
            self._run_row(session, run_id)
            session.merge(RunDatasetRow(run_id=run_id, context=context, fingerprint=fingerprint))

        self._write(work)

    def get_run(self, run_id: str) -> records.Run:
        with self._read() as session:
            row = self._run_row(session, run_id)
            return self._run_record(session, row)

    def run_exists(self, run_id: str) -> bool:
        with self._read() as session:
            return session.get(RunRow, run_id) is not None

    def list_runs(self, experiment: str | None = None, limit: int = 100) -> list[records.Run]:
        with self._read() as session:
            query = select(RunRow).order_by(RunRow.start_time.desc()).limit(limit)
            if experiment is not None:
                exp = session.scalar(select(ExperimentRow).where(ExperimentRow.name == experiment))
                if exp is None:
                    known = ", ".join(session.scalars(select(ExperimentRow.name))) or "none yet"
                    raise ExperimentNotFoundError(
                        f"No experiment named {experiment!r}. Known experiments: {known}."
                    )
                query = query.where(RunRow.experiment_id == exp.id)
            return [self._run_record(session, r) for r in session.scalars(query)]

    def metric_history(self, run_id: str, key: str) -> list[records.MetricPoint]:
        with self._read() as session:
            self._run_row(session, run_id)
            rows = session.scalars(
                select(RunMetricRow)
                .where(RunMetricRow.run_id == run_id, RunMetricRow.key == key)
                .order_by(RunMetricRow.step, RunMetricRow.id)
            )
            return [records.MetricPoint(r.key, r.value, r.step, r.timestamp) for r in rows]

    @staticmethod
    def _run_row(session: Session, run_id: str) -> RunRow:
        row = session.get(RunRow, run_id)
        if row is None:
            raise RunNotFoundError(
                f"No run with id {run_id!r}. List runs with `shipyard runs list`."
            )
        return row

    @staticmethod
    def _run_record(session: Session, row: RunRow) -> records.Run:
        experiment = session.get(ExperimentRow, row.experiment_id)
        params = {
            p.key: p.value
            for p in session.scalars(select(RunParamRow).where(RunParamRow.run_id == row.id))
        }
        tags = {
            t.key: t.value
            for t in session.scalars(select(RunTagRow).where(RunTagRow.run_id == row.id))
        }
        # The latest value of each metric: highest step, then the last logged.
        metrics: dict[str, float] = {}
        for m in session.scalars(
            select(RunMetricRow)
            .where(RunMetricRow.run_id == row.id)
            .order_by(RunMetricRow.step, RunMetricRow.id)
        ):
            metrics[m.key] = m.value
        datasets = {
            d.context: d.fingerprint
            for d in session.scalars(select(RunDatasetRow).where(RunDatasetRow.run_id == row.id))
        }
        return records.Run(
            id=row.id,
            experiment=experiment.name if experiment else "",
            name=row.name,
            status=row.status,
            start_time=row.start_time,
            end_time=row.end_time,
            created_by=row.created_by,
            params=params,
            metrics=metrics,
            tags=tags,
            datasets=datasets,
        )

    # -- models ------------------------------------------------------------

    def create_model(self, name: str, description: str | None = None) -> records.Model:
        check_name(name, kind="Model name")

        def work(session: Session) -> None:
            if session.scalar(select(ModelRow).where(ModelRow.name == name)) is not None:
                raise ConflictError(f"Model {name!r} already exists.")
            session.add(ModelRow(name=name, description=description))

        try:
            self._write(work)
        except StoreError as exc:
            if isinstance(exc.__cause__, SAIntegrityError):
                raise ConflictError(f"Model {name!r} already exists.") from exc
            raise
        return self.get_model(name)

    def ensure_model(self, name: str) -> None:
        """Create the model if it does not exist; concurrent callers both succeed."""
        with suppress(ConflictError):
            self.create_model(name)

    def get_model(self, name: str) -> records.Model:
        with self._read() as session:
            return self._model_record(session, self._model_row(session, name))

    def list_models(self, *, include_archived: bool = False) -> list[records.Model]:
        with self._read() as session:
            query = select(ModelRow).order_by(ModelRow.name)
            if not include_archived:
                query = query.where(ModelRow.archived.is_(False))
            return [self._model_record(session, r) for r in session.scalars(query)]

    def update_model(
        self, name: str, *, description: str | None = None, tags: dict[str, str] | None = None
    ) -> records.Model:
        def work(session: Session) -> None:
            row = self._model_row(session, name)
            if description is not None:
                row.description = description
            for key, value in (tags or {}).items():
                session.merge(ModelTagRow(model_id=row.id, key=key, value=value))
            row.updated_at = utc_now()

        self._write(work)
        return self.get_model(name)

    def set_model_archived(
        self, name: str, archived: bool, *, actor: str, reason: str | None
    ) -> None:
        def work(session: Session) -> None:
            row = self._model_row(session, name)
            if row.archived == archived:
                return
            if archived:
                held = session.scalars(select(AliasRow.alias).where(AliasRow.model_id == row.id))
                aliases = sorted(held)
                if aliases:
                    raise ConflictError(
                        f"Model {name!r} still has aliases {', '.join(aliases)}; remove them "
                        f"first with `shipyard models alias {name} ALIAS --delete`."
                    )
            row.archived = archived
            row.updated_at = utc_now()
            self._audit(
                session,
                actor=actor,
                action="archive_model" if archived else "restore_model",
                model=name,
                subject=name,
                reason=reason,
            )

        self._write(work)

    @staticmethod
    def _model_row(session: Session, name: str) -> ModelRow:
        row = session.scalar(select(ModelRow).where(ModelRow.name == name))
        if row is None:
            known = ", ".join(session.scalars(select(ModelRow.name).order_by(ModelRow.name)))
            raise ModelNotFoundError(
                f"No model named {name!r}. Registered models: {known or 'none yet'}."
            )
        return row

    @staticmethod
    def _model_record(session: Session, row: ModelRow) -> records.Model:
        aliases = {
            a.alias: a.version
            for a in session.scalars(select(AliasRow).where(AliasRow.model_id == row.id))
        }
        tags = {
            t.key: t.value
            for t in session.scalars(select(ModelTagRow).where(ModelTagRow.model_id == row.id))
        }
        return records.Model(
            name=row.name,
            description=row.description,
            archived=row.archived,
            created_at=row.created_at,
            updated_at=row.updated_at,
            latest_version=row.last_version,
            aliases=dict(sorted(aliases.items())),
            tags=tags,
        )

    # -- versions ------------------------------------------------------------

    def create_version(
        self,
        name: str,
        *,
        write_manifest: Callable[[int], str],
        flavor: str,
        run_id: str | None = None,
        description: str | None = None,
        metrics: dict[str, float] | None = None,
        data_fingerprint: dict[str, Any] | None = None,
        tags: dict[str, str] | None = None,
        actor: str = "unknown",
    ) -> records.ModelVersion:
        """Allocate the next version number and record the version.

        ``write_manifest(version)`` is called inside the transaction, with the
        model row locked, to store the manifest and return its digest: if it
        fails, no number is used up, so numbering stays gap-free.
        """
        self.ensure_model(name)

        def work(session: Session) -> int:
            model = session.scalar(select(ModelRow).where(ModelRow.name == name).with_for_update())
            if model is None:  # archived-and-deleted race; ensure_model just made it
                raise ModelNotFoundError(f"No model named {name!r}.")
            if model.archived:
                raise ConflictError(
                    f"Model {name!r} is archived; restore it with "
                    f"`shipyard models archive {name} --restore` before adding versions."
                )
            if run_id is not None:
                self._run_row(session, run_id)
            version = model.last_version + 1
            digest = write_manifest(version)
            model.last_version = version
            model.updated_at = utc_now()
            row = ModelVersionRow(
                model_id=model.id,
                version=version,
                manifest_digest=digest,
                flavor=flavor,
                run_id=run_id,
                description=description,
                metrics=dict(metrics or {}),
                data_fingerprint=data_fingerprint,
                created_by=actor,
            )
            session.add(row)
            session.flush()
            for key, value in (tags or {}).items():
                session.add(VersionTagRow(version_id=row.id, key=key, value=value))
            return version

        version = self._write(work)
        return self.get_version(name, version)

    def get_version(self, name: str, version: int) -> records.ModelVersion:
        with self._read() as session:
            model = self._model_row(session, name)
            return self._version_record(session, model, self._version_row(session, model, version))

    def list_versions(self, name: str) -> list[records.ModelVersion]:
        with self._read() as session:
            model = self._model_row(session, name)
            rows = session.scalars(
                select(ModelVersionRow)
                .where(ModelVersionRow.model_id == model.id)
                .order_by(ModelVersionRow.version)
            )
            return [self._version_record(session, model, r) for r in rows]

    def latest_version(self, name: str) -> records.ModelVersion:
        """The newest version that is not archived."""
        with self._read() as session:
            model = self._model_row(session, name)
            row = session.scalar(
                select(ModelVersionRow)
                .where(ModelVersionRow.model_id == model.id, ModelVersionRow.status != "archived")
                .order_by(ModelVersionRow.version.desc())
                .limit(1)
            )
            if row is None:
                raise VersionNotFoundError(
                    f"Model {name!r} has no live versions. Register one with "
                    "`shipyard.log_model(model, name, sample=...)`."
                )
            return self._version_record(session, model, row)

    def set_version_archived(
        self, name: str, version: int, archived: bool, *, actor: str, reason: str | None
    ) -> None:
        def work(session: Session) -> None:
            model = self._model_row(session, name)
            row = self._version_row(session, model, version)
            target = "archived" if archived else "ready"
            if row.status == target:
                return
            if archived:
                held = sorted(
                    session.scalars(
                        select(AliasRow.alias).where(
                            AliasRow.model_id == model.id, AliasRow.version == version
                        )
                    )
                )
                if held:
                    raise ConflictError(
                        f"Version {name}:{version} holds alias {', '.join(held)}; move the "
                        f"alias first with `shipyard models alias {name} {held[0]} VERSION`."
                    )
            previous = row.status
            row.status = target
            self._audit(
                session,
                actor=actor,
                action="archive_version" if archived else "restore_version",
                model=name,
                subject=f"{name}:{version}",
                from_value=previous,
                to_value=target,
                reason=reason,
            )

        self._write(work)

    def set_version_tags(self, name: str, version: int, tags: dict[str, str]) -> None:
        def work(session: Session) -> None:
            model = self._model_row(session, name)
            row = self._version_row(session, model, version)
            for key, value in tags.items():
                session.merge(VersionTagRow(version_id=row.id, key=key, value=value))

        self._write(work)

    @staticmethod
    def _version_row(session: Session, model: ModelRow, version: int) -> ModelVersionRow:
        row = session.scalar(
            select(ModelVersionRow).where(
                ModelVersionRow.model_id == model.id, ModelVersionRow.version == version
            )
        )
        if row is None:
            existing = list(
                session.scalars(
                    select(ModelVersionRow.version)
                    .where(ModelVersionRow.model_id == model.id)
                    .order_by(ModelVersionRow.version)
                )
            )
            listed = ", ".join(str(v) for v in existing) or "none yet"
            raise VersionNotFoundError(
                f"Model {model.name!r} has no version {version}. Versions: {listed}."
            )
        return row

    @staticmethod
    def _version_record(
        session: Session, model: ModelRow, row: ModelVersionRow
    ) -> records.ModelVersion:
        aliases = tuple(
            sorted(
                session.scalars(
                    select(AliasRow.alias).where(
                        AliasRow.model_id == model.id, AliasRow.version == row.version
                    )
                )
            )
        )
        tags = {
            t.key: t.value
            for t in session.scalars(
                select(VersionTagRow).where(VersionTagRow.version_id == row.id)
            )
        }
        return records.ModelVersion(
            model=model.name,
            version=row.version,
            manifest_digest=row.manifest_digest,
            flavor=row.flavor,
            run_id=row.run_id,
            status=row.status,
            description=row.description,
            metrics=dict(row.metrics or {}),
            data_fingerprint=row.data_fingerprint,
            created_by=row.created_by,
            created_at=row.created_at,
            aliases=aliases,
            tags=tags,
        )

    # -- aliases -------------------------------------------------------------

    def set_alias(
        self, name: str, alias: str, version: int, *, actor: str, reason: str | None = None
    ) -> int | None:
        """Point ``alias`` at ``version``; returns the version it pointed to before."""
        return self._write(
            lambda session: self.move_alias_in(
                session, name, alias, version, actor=actor, reason=reason
            )
        )

    def move_alias_in(
        self,
        session: Session,
        name: str,
        alias: str,
        version: int,
        *,
        actor: str,
        reason: str | None = None,
    ) -> int | None:
        """:meth:`set_alias` inside the caller's write transaction (a deployment's change
        moves the alias it follows in the same transaction)."""
        check_alias_name(alias)
        model = self._model_row(session, name)
        row = self._version_row(session, model, version)
        if row.status == "archived":
            raise ConflictError(
                f"Version {name}:{version} is archived and cannot take alias {alias!r}; "
                f"restore it with `shipyard models archive {name}:{version} --restore`."
            )
        current = session.get(AliasRow, (model.id, alias), with_for_update=True)
        previous = current.version if current else None
        if previous == version:
            return previous
        if current is None:
            session.add(AliasRow(model_id=model.id, alias=alias, version=version))
        else:
            current.version = version
            current.updated_at = utc_now()
        self._audit(
            session,
            actor=actor,
            action="set_alias",
            model=name,
            subject=f"{name}@{alias}",
            from_value=None if previous is None else str(previous),
            to_value=str(version),
            reason=reason,
        )
        return previous

    def delete_alias(self, name: str, alias: str, *, actor: str, reason: str | None = None) -> int:
        def work(session: Session) -> int:
            model = self._model_row(session, name)
            current = session.get(AliasRow, (model.id, alias))
            if current is None:
                raise self._no_alias(session, model, alias)
            previous = current.version
            session.delete(current)
            self._audit(
                session,
                actor=actor,
                action="delete_alias",
                model=name,
                subject=f"{name}@{alias}",
                from_value=str(previous),
                to_value=None,
                reason=reason,
            )
            return previous

        return self._write(work)

    def get_alias(self, name: str, alias: str) -> int:
        with self._read() as session:
            model = self._model_row(session, name)
            row = session.get(AliasRow, (model.id, alias))
            if row is None:
                raise self._no_alias(session, model, alias)
            return row.version

    @staticmethod
    def _no_alias(session: Session, model: ModelRow, alias: str) -> ShipyardError:
        held = sorted(session.scalars(select(AliasRow.alias).where(AliasRow.model_id == model.id)))
        return AliasNotFoundError(
            f"Model {model.name!r} has no alias {alias!r} (aliases: {', '.join(held) or 'none'}). "
            f"Set one with `shipyard models alias {model.name} {alias} VERSION`."
        )

    # -- audit ---------------------------------------------------------------

    def record_audit(
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
            self._audit(
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

        self._write(work)

    def audit_log(self, *, model: str | None = None, limit: int = 100) -> list[records.AuditEntry]:
        with self._read() as session:
            query = select(AuditRow).order_by(AuditRow.id.desc()).limit(limit)
            if model is not None:
                query = query.where(AuditRow.model == model)
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

    @staticmethod
    def _audit(session: Session, **fields: Any) -> None:
        fields["details"] = fields.get("details") or {}
        session.add(AuditRow(**fields))

    def count_versions(self, name: str) -> int:
        with self._read() as session:
            model = self._model_row(session, name)
            return int(
                session.scalar(
                    select(func.count())
                    .select_from(ModelVersionRow)
                    .where(ModelVersionRow.model_id == model.id)
                )
                or 0
            )
