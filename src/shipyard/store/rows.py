"""Shared row lookups and row -> record conversions for the stores.

Several stores check a model, a version or a run inside their own
transaction (a gate result needs its version, a deployment the versions it
routes to); they all use these functions, so each "not found" message is
written once and no store reaches into another's internals.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from shipyard.errors import ModelNotFoundError, RunNotFoundError, VersionNotFoundError
from shipyard.store import records
from shipyard.store.schema import (
    AliasRow,
    ExperimentRow,
    ModelRow,
    ModelTagRow,
    ModelVersionRow,
    RunDatasetRow,
    RunParamRow,
    RunRow,
    RunTagRow,
    VersionTagRow,
)
from shipyard.store.schema_tracking import RunLatestMetricRow


def model_row(session: Session, name: str) -> ModelRow:
    """The model ``name``; ModelNotFoundError listing the registered models otherwise."""
    row = session.scalar(select(ModelRow).where(ModelRow.name == name))
    if row is None:
        known = ", ".join(session.scalars(select(ModelRow.name).order_by(ModelRow.name)))
        raise ModelNotFoundError(
            f"No model named {name!r}. Registered models: {known or 'none yet'}."
        )
    return row


def version_row(session: Session, model: ModelRow, version: int) -> ModelVersionRow:
    """Version ``version`` of ``model``; VersionNotFoundError listing its versions otherwise."""
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


def named_version_row(session: Session, name: str, version: int) -> ModelVersionRow:
    """:func:`version_row` by model name."""
    return version_row(session, model_row(session, name), version)


def run_row(session: Session, run_id: str) -> RunRow:
    row = session.get(RunRow, run_id)
    if row is None:
        raise RunNotFoundError(f"No run with id {run_id!r}. List runs with `shipyard runs list`.")
    return row


def model_record(
    session: Session,
    row: ModelRow,
    *,
    aliases: dict[str, int] | None = None,
    tags: dict[str, str] | None = None,
) -> records.Model:
    """``row`` as a record; ``aliases`` and ``tags`` when already read (see model_records)."""
    if aliases is None:
        aliases = {
            a.alias: a.version
            for a in session.scalars(select(AliasRow).where(AliasRow.model_id == row.id))
        }
    if tags is None:
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


def model_records(session: Session, rows: list[ModelRow]) -> list[records.Model]:
    """Many models as records with two queries in all (aliases, tags), not two per model:
    on PostgreSQL each round trip costs, and the models list reads every model."""
    ids = [r.id for r in rows]
    aliases: dict[int, dict[str, int]] = {i: {} for i in ids}
    tags: dict[int, dict[str, str]] = {i: {} for i in ids}
    if ids:
        for a in session.scalars(select(AliasRow).where(AliasRow.model_id.in_(ids))):
            aliases[a.model_id][a.alias] = a.version
        for t in session.scalars(select(ModelTagRow).where(ModelTagRow.model_id.in_(ids))):
            tags[t.model_id][t.key] = t.value
    return [model_record(session, r, aliases=aliases[r.id], tags=tags[r.id]) for r in rows]


def version_record(
    session: Session,
    model: ModelRow,
    row: ModelVersionRow,
    *,
    aliases: tuple[str, ...] | None = None,
    tags: dict[str, str] | None = None,
) -> records.ModelVersion:
    """``row`` as a record; ``aliases`` and ``tags`` when already read (see version_records)."""
    if aliases is None:
        aliases = tuple(
            sorted(
                session.scalars(
                    select(AliasRow.alias).where(
                        AliasRow.model_id == model.id, AliasRow.version == row.version
                    )
                )
            )
        )
    if tags is None:
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


def version_records(
    session: Session, model: ModelRow, rows: list[ModelVersionRow]
) -> list[records.ModelVersion]:
    """Many versions of ``model`` with two queries in all (aliases, tags), not two each."""
    held: dict[int, list[str]] = {}
    for a in session.scalars(select(AliasRow).where(AliasRow.model_id == model.id)):
        held.setdefault(a.version, []).append(a.alias)
    tags: dict[int, dict[str, str]] = {r.id: {} for r in rows}
    if rows:
        ids = list(tags)
        for t in session.scalars(select(VersionTagRow).where(VersionTagRow.version_id.in_(ids))):
            tags[t.version_id][t.key] = t.value
    return [
        version_record(
            session,
            model,
            r,
            aliases=tuple(sorted(held.get(r.version, []))),
            tags=tags[r.id],
        )
        for r in rows
    ]


def run_record(session: Session, row: RunRow) -> records.Run:
    experiment = session.get(ExperimentRow, row.experiment_id)
    params = {
        p.key: p.value
        for p in session.scalars(select(RunParamRow).where(RunParamRow.run_id == row.id))
    }
    tags = {
        t.key: t.value for t in session.scalars(select(RunTagRow).where(RunTagRow.run_id == row.id))
    }
    # The latest value of each metric (highest step, then the last logged), kept
    # as points are written, so a run with a long history shows as fast as any.
    metrics = {
        m.key: m.value
        for m in session.scalars(
            select(RunLatestMetricRow)
            .where(RunLatestMetricRow.run_id == row.id)
            .order_by(RunLatestMetricRow.key)
        )
    }
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
        parent_id=row.parent_id,
    )
