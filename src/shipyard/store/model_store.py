"""Models and their versions: numbering, tags, archiving.

Version numbers are allocated under a lock on the model row, so they are
gap-free even with many writers; aliases live in :mod:`shipyard.store.alias_store`.

>>> models = ModelStore(Database("sqlite:///:memory:"))
>>> models.create_model("iris").name
'iris'
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import suppress
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError as SAIntegrityError
from sqlalchemy.orm import Session

from shipyard.clock import utc_now
from shipyard.errors import ConflictError, ModelNotFoundError, StoreError, VersionNotFoundError
from shipyard.names import check_model_name
from shipyard.store import records
from shipyard.store.database import Database
from shipyard.store.rows import (
    model_record,
    model_records,
    model_row,
    run_row,
    version_record,
    version_records,
    version_row,
)
from shipyard.store.schema import AliasRow, ModelRow, ModelVersionRow, VersionTagRow


class ModelStore:
    """Models and versions, on one :class:`Database`."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- models ------------------------------------------------------------

    def create_model(self, name: str, description: str | None = None) -> records.Model:
        check_model_name(name)

        def work(session: Session) -> None:
            if session.scalar(select(ModelRow).where(ModelRow.name == name)) is not None:
                raise ConflictError(f"Model {name!r} already exists.")
            session.add(ModelRow(name=name, description=description))

        try:
            self.db.write(work)
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
        with self.db.read() as session:
            return model_record(session, model_row(session, name))

    def list_models(self, *, include_archived: bool = False) -> list[records.Model]:
        with self.db.read() as session:
            query = select(ModelRow).order_by(ModelRow.name)
            if not include_archived:
                query = query.where(ModelRow.archived.is_(False))
            return model_records(session, list(session.scalars(query)))

    def set_model_archived(
        self, name: str, archived: bool, *, actor: str, reason: str | None
    ) -> None:
        def work(session: Session) -> None:
            row = model_row(session, name)
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
            self.db.audit(
                session,
                actor=actor,
                action="archive_model" if archived else "restore_model",
                model=name,
                subject=name,
                reason=reason,
            )

        self.db.write(work)

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
                run_row(session, run_id)
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

        version = self.db.write(work)
        return self.get_version(name, version)

    def get_version(self, name: str, version: int) -> records.ModelVersion:
        with self.db.read() as session:
            model = model_row(session, name)
            return version_record(session, model, version_row(session, model, version))

    def list_versions(self, name: str) -> list[records.ModelVersion]:
        with self.db.read() as session:
            model = model_row(session, name)
            rows = session.scalars(
                select(ModelVersionRow)
                .where(ModelVersionRow.model_id == model.id)
                .order_by(ModelVersionRow.version)
            )
            return version_records(session, model, list(rows))

    def versions_from_run(self, run_id: str) -> list[str]:
        """The references (``name:version``) of every version registered from ``run_id``,
        oldest first: what a run produced, for ``runs show``."""
        with self.db.read() as session:
            rows = session.execute(
                select(ModelRow.name, ModelVersionRow.version)
                .join(ModelRow, ModelRow.id == ModelVersionRow.model_id)
                .where(ModelVersionRow.run_id == run_id)
                .order_by(ModelVersionRow.created_at, ModelVersionRow.id)
            )
            return [f"{name}:{version}" for name, version in rows]

    def latest_version(self, name: str) -> records.ModelVersion:
        """The newest version that is not archived."""
        with self.db.read() as session:
            model = model_row(session, name)
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
            return version_record(session, model, row)

    def count_versions(self, name: str) -> int:
        with self.db.read() as session:
            model = model_row(session, name)
            count = session.scalar(
                select(func.count())
                .select_from(ModelVersionRow)
                .where(ModelVersionRow.model_id == model.id)
            )
            return int(count or 0)

    def set_version_archived(
        self, name: str, version: int, archived: bool, *, actor: str, reason: str | None
    ) -> None:
        def work(session: Session) -> None:
            model = model_row(session, name)
            row = version_row(session, model, version)
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
            self.db.audit(
                session,
                actor=actor,
                action="archive_version" if archived else "restore_version",
                model=name,
                subject=f"{name}:{version}",
                from_value=previous,
                to_value=target,
                reason=reason,
            )

        self.db.write(work)

    def set_version_tags(self, name: str, version: int, tags: dict[str, str]) -> None:
        def work(session: Session) -> None:
            row = version_row(session, model_row(session, name), version)
            for key, value in tags.items():
                session.merge(VersionTagRow(version_id=row.id, key=key, value=value))

        self.db.write(work)
