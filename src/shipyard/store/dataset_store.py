"""Repository of dataset versions, their uses by runs, and the pipelines runs ran.

Numbering a new version and inserting it is one write transaction; the
primary key (dataset, version) makes two concurrent snapshots of one dataset
safe: one of them gets a conflict and retries with the next number.

>>> store = DatasetStore(Database("sqlite:///:memory:"))       # doctest: +SKIP
>>> store.add_version("iris", n_rows=150, ...)                    # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError as SAIntegrityError
from sqlalchemy.orm import Session

from shipyard.errors import ConflictError, DatasetNotFoundError
from shipyard.names import check_name
from shipyard.store.data_records import DatasetUse, DatasetVersion, PipelineRecord
from shipyard.store.database import Database
from shipyard.store.rows import run_row
from shipyard.store.schema_data import DatasetUseRow, DatasetVersionRow, RunPipelineRow

_TRIES = 5


def _record(row: DatasetVersionRow) -> DatasetVersion:
    return DatasetVersion(
        dataset=row.dataset,
        version=row.version,
        manifest_digest=row.manifest_digest,
        n_rows=int(row.n_rows),
        schema=dict(row.schema),
        content_hash=row.content_hash,
        source=row.source,
        message=row.message,
        total_bytes=int(row.total_bytes),
        new_bytes=int(row.new_bytes),
        details=dict(row.details or {}),
        created_at=row.created_at,
        created_by=row.created_by,
    )


class DatasetStore:
    """Dataset versions and pipeline records on one :class:`Database`."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- versions ---------------------------------------------------------------------------

    def add_version(self, dataset: str, *, actor: str, **fields: Any) -> DatasetVersion:
        """Insert the next version of ``dataset`` with ``fields``; return it."""
        check_name(dataset, kind="Dataset name")

        def work(session: Session) -> DatasetVersion:
            last = session.scalar(
                select(func.max(DatasetVersionRow.version)).where(
                    DatasetVersionRow.dataset == dataset
                )
            )
            row = DatasetVersionRow(
                dataset=dataset, version=(last or 0) + 1, created_by=actor, **fields
            )
            session.add(row)
            session.flush()
            return _record(row)

        for attempt in range(_TRIES):
            try:
                return self.db.write(work)
            except Exception as exc:  # the key taken by a concurrent snapshot: renumber
                if not _is_conflict(exc) or attempt == _TRIES - 1:
                    raise
        raise AssertionError("unreachable")

    def get_version(self, dataset: str, version: int | None = None) -> DatasetVersion:
        """``dataset:version``, or its newest version when ``version`` is None."""
        with self.db.read() as session:
            query = select(DatasetVersionRow).where(DatasetVersionRow.dataset == dataset)
            if version is None:
                query = query.order_by(DatasetVersionRow.version.desc()).limit(1)
            else:
                query = query.where(DatasetVersionRow.version == version)
            row = session.scalar(query)
            if row is None:
                known = self._known(session, dataset)
                raise DatasetNotFoundError(
                    f"No dataset version {dataset}{'' if version is None else f':{version}'}. "
                    f"{known} Snapshot one with `shipyard data snapshot PATH --name {dataset}`."
                )
            return _record(row)

    def _known(self, session: Session, dataset: str) -> str:
        versions = list(
            session.scalars(
                select(DatasetVersionRow.version)
                .where(DatasetVersionRow.dataset == dataset)
                .order_by(DatasetVersionRow.version)
            )
        )
        if versions:
            return f"Dataset {dataset!r} has versions {', '.join(map(str, versions))}."
        names = sorted(set(session.scalars(select(DatasetVersionRow.dataset))))
        return f"Known datasets: {', '.join(names) or 'none yet'}."

    def list_versions(self, dataset: str | None = None) -> list[DatasetVersion]:
        """Every version (of ``dataset``), oldest first."""
        with self.db.read() as session:
            query = select(DatasetVersionRow).order_by(
                DatasetVersionRow.dataset, DatasetVersionRow.version
            )
            if dataset is not None:
                query = query.where(DatasetVersionRow.dataset == dataset)
            rows = list(session.scalars(query))
            if dataset is not None and not rows:
                raise DatasetNotFoundError(
                    f"No dataset named {dataset!r}. {self._known(session, dataset)}"
                )
            return [_record(r) for r in rows]

    def delete_version(self, dataset: str, version: int) -> None:
        def work(session: Session) -> None:
            session.execute(
                delete(DatasetVersionRow).where(
                    DatasetVersionRow.dataset == dataset, DatasetVersionRow.version == version
                )
            )

        self.db.write(work)

    # -- uses -------------------------------------------------------------------------------

    def record_use(self, dataset: str, version: int, run_id: str, context: str) -> None:
        """Remember that run ``run_id`` read ``dataset:version`` as ``context``."""
        check_name(context, kind="Dataset context")

        def work(session: Session) -> None:
            run_row(session, run_id)
            session.merge(
                DatasetUseRow(dataset=dataset, version=version, run_id=run_id, context=context)
            )

        self.db.write(work)

    def uses(self, dataset: str | None = None, version: int | None = None) -> list[DatasetUse]:
        with self.db.read() as session:
            query = select(DatasetUseRow).order_by(DatasetUseRow.run_id)
            if dataset is not None:
                query = query.where(DatasetUseRow.dataset == dataset)
            if version is not None:
                query = query.where(DatasetUseRow.version == version)
            return [
                DatasetUse(r.dataset, r.version, r.run_id, r.context)
                for r in session.scalars(query)
            ]

    def uses_of_run(self, run_id: str) -> list[DatasetUse]:
        with self.db.read() as session:
            rows = session.scalars(select(DatasetUseRow).where(DatasetUseRow.run_id == run_id))
            return [DatasetUse(r.dataset, r.version, r.run_id, r.context) for r in rows]

    # -- pipelines --------------------------------------------------------------------------

    def save_pipeline(self, record: PipelineRecord) -> None:
        def work(session: Session) -> None:
            run_row(session, record.run_id)
            session.merge(
                RunPipelineRow(
                    run_id=record.run_id,
                    entry_point=record.entry_point,
                    code_hash=record.code_hash,
                    record=record.record,
                )
            )

        self.db.write(work)

    def get_pipeline(self, run_id: str) -> PipelineRecord | None:
        with self.db.read() as session:
            row = session.get(RunPipelineRow, run_id)
            if row is None:
                return None
            return PipelineRecord(row.run_id, row.entry_point, row.code_hash, dict(row.record))


def _is_conflict(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, SAIntegrityError | ConflictError):
            return True
        seen = seen.__cause__
    return False


__all__ = ["DatasetStore"]
