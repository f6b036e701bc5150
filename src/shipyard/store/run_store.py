"""Experiments and runs: params (immutable), metrics (by step), tags, dataset fingerprints.

>>> runs = RunStore(Database("sqlite:///:memory:"))        # doctest: +SKIP
>>> run = runs.create_run("iris", actor="ann")               # doctest: +SKIP
>>> runs.log_metrics(run.id, {"accuracy": 0.97})             # doctest: +SKIP
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from shipyard.clock import utc_now
from shipyard.errors import ConflictError, ExperimentNotFoundError, InvalidInputError
from shipyard.names import check_name
from shipyard.store import records
from shipyard.store.database import Database
from shipyard.store.rows import run_record, run_row
from shipyard.store.schema import (
    ExperimentRow,
    RunDatasetRow,
    RunMetricRow,
    RunParamRow,
    RunRow,
    RunTagRow,
)

RUN_STATUSES = ("RUNNING", "FINISHED", "FAILED", "KILLED")


class RunStore:
    """Experiments and their runs, on one :class:`Database`."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def get_or_create_experiment(self, name: str) -> records.Experiment:
        check_name(name, kind="Experiment name")

        def work(session: Session) -> records.Experiment:
            row = session.scalar(select(ExperimentRow).where(ExperimentRow.name == name))
            if row is None:
                row = ExperimentRow(name=name)
                session.add(row)
                session.flush()
            return records.Experiment(row.id, row.name, row.created_at)

        return self.db.write(work)

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

        self.db.write(work)
        return self.get_run(run_id)

    def end_run(self, run_id: str, status: str = "FINISHED") -> None:
        if status not in RUN_STATUSES:
            raise InvalidInputError(
                f"Run status {status!r} is not one of {', '.join(RUN_STATUSES)}."
            )

        def work(session: Session) -> None:
            row = run_row(session, run_id)
            row.status = status
            row.end_time = utc_now()

        self.db.write(work)

    def log_params(self, run_id: str, params: dict[str, Any]) -> None:
        def work(session: Session) -> None:
            run_row(session, run_id)
            for key, value in params.items():
                existing = session.get(RunParamRow, (run_id, key))
                if existing is not None and existing.value != str(value):
                    raise ConflictError(
                        f"Param {key!r} of run {run_id} is already {existing.value!r}; "
                        "params are immutable, log a metric or a tag for values that change."
                    )
                if existing is None:
                    session.add(RunParamRow(run_id=run_id, key=key, value=str(value)))

        self.db.write(work)

    def log_metrics(
        self, run_id: str, metrics: dict[str, float], *, step: int = 0, at: datetime | None = None
    ) -> None:
        def work(session: Session) -> None:
            run_row(session, run_id)
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

        self.db.write(work)

    def set_run_tags(self, run_id: str, tags: dict[str, str]) -> None:
        def work(session: Session) -> None:
            run_row(session, run_id)
            for key, value in tags.items():
                session.merge(RunTagRow(run_id=run_id, key=key, value=str(value)))

        self.db.write(work)

    def log_dataset(self, run_id: str, context: str, fingerprint: dict[str, Any]) -> None:
        check_name(context, kind="Dataset context")

        def work(session: Session) -> None:
            run_row(session, run_id)
            session.merge(RunDatasetRow(run_id=run_id, context=context, fingerprint=fingerprint))

        self.db.write(work)

    def get_run(self, run_id: str) -> records.Run:
        with self.db.read() as session:
            return run_record(session, run_row(session, run_id))

    def run_exists(self, run_id: str) -> bool:
        with self.db.read() as session:
            return session.get(RunRow, run_id) is not None

    def list_runs(self, experiment: str | None = None, limit: int = 100) -> list[records.Run]:
        with self.db.read() as session:
            query = select(RunRow).order_by(RunRow.start_time.desc()).limit(limit)
            if experiment is not None:
                exp = session.scalar(select(ExperimentRow).where(ExperimentRow.name == experiment))
                if exp is None:
                    known = ", ".join(session.scalars(select(ExperimentRow.name))) or "none yet"
                    raise ExperimentNotFoundError(
                        f"No experiment named {experiment!r}. Known experiments: {known}."
                    )
                query = query.where(RunRow.experiment_id == exp.id)
            return [run_record(session, r) for r in session.scalars(query)]

    def metric_history(self, run_id: str, key: str) -> list[records.MetricPoint]:
        with self.db.read() as session:
            run_row(session, run_id)
            rows = session.scalars(
                select(RunMetricRow)
                .where(RunMetricRow.run_id == run_id, RunMetricRow.key == key)
                .order_by(RunMetricRow.step, RunMetricRow.id)
            )
            return [records.MetricPoint(r.key, r.value, r.step, r.timestamp) for r in rows]
