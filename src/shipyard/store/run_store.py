"""Experiments and runs: params (immutable), metrics (by step), tags, dataset fingerprints.

>>> runs = RunStore(Database("sqlite:///:memory:"))        # doctest: +SKIP
>>> run = runs.create_run("iris", actor="ann")               # doctest: +SKIP
>>> runs.log_metrics(run.id, {"accuracy": 0.97})             # doctest: +SKIP
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Table, func, insert, select
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
from shipyard.store.schema_tracking import RunArtifactRow, RunLatestMetricRow

RUN_STATUSES = ("RUNNING", "FINISHED", "FAILED", "KILLED")
_METRICS_TABLE: Table = RunMetricRow.__table__  # type: ignore[assignment]


class Point(NamedTuple):
    """One metric value to write: what the background writer batches."""

    key: str
    value: float
    step: int
    timestamp: datetime


def check_metric(key: str, value: Any) -> float:
    """``value`` as a finite float; InvalidInputError naming the metric otherwise."""
    if not isinstance(key, str) or not key or len(key) > 255:
        raise InvalidInputError(
            f"Metric name {key!r}: expected a non-empty string of at most 255 characters."
        )
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(
            f"Metric {key!r} got {value!r}; expected a number (int or float)."
        ) from exc
    if not math.isfinite(number):
        raise InvalidInputError(f"Metric {key!r} got {value!r}; expected a finite number.")
    return number


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
        self,
        experiment: str,
        *,
        name: str | None = None,
        actor: str = "unknown",
        parent_id: str | None = None,
        run_id: str | None = None,
        status: str = "RUNNING",
        start_time: datetime | None = None,
        end_time: datetime | None = None,
    ) -> records.Run:
        """A new run; ``run_id``, ``status`` and the times are given only when importing."""
        exp = self.get_or_create_experiment(experiment)
        run_id = run_id or uuid.uuid4().hex
        _check_status(status)

        def work(session: Session) -> None:
            if parent_id is not None:
                run_row(session, parent_id)
            session.add(
                RunRow(
                    id=run_id,
                    experiment_id=exp.id,
                    name=name or f"run-{run_id[:8]}",
                    status=status,
                    created_by=actor,
                    parent_id=parent_id,
                    start_time=start_time or utc_now(),
                    end_time=end_time,
                )
            )

        self.db.write(work)
        return self.get_run(run_id)

    def end_run(self, run_id: str, status: str = "FINISHED") -> None:
        _check_status(status)

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
        when = at or utc_now()
        self.log_points(
            run_id, [Point(k, check_metric(k, v), step, when) for k, v in metrics.items()]
        )

    def log_points(self, run_id: str, points: Sequence[Point]) -> None:
        """Write many metric points of one run in one transaction (one multi-row INSERT).

        The run's latest value of each metric moves to a point of a higher (or
        the same) step; points are taken in the order given.
        """
        if not points:
            return
        latest: dict[str, Point] = {}
        for point in points:
            seen = latest.get(point.key)
            if seen is None or point.step >= seen.step:
                latest[point.key] = point
        rows = [
            {
                "run_id": run_id,
                "key": p.key,
                "value": p.value,
                "step": p.step,
                "timestamp": p.timestamp,
            }
            for p in points
        ]

        def work(session: Session) -> None:
            run_row(session, run_id)
            # Core, not the ORM's bulk insert: the same multi-row INSERT at half the cost.
            session.connection().execute(insert(_METRICS_TABLE), rows)
            current = {
                r.key: r
                for r in session.scalars(
                    select(RunLatestMetricRow).where(
                        RunLatestMetricRow.run_id == run_id,
                        RunLatestMetricRow.key.in_(list(latest)),
                    )
                )
            }
            for key, point in latest.items():
                row = current.get(key)
                if row is None:
                    session.add(
                        RunLatestMetricRow(
                            run_id=run_id,
                            key=key,
                            value=point.value,
                            step=point.step,
                            timestamp=point.timestamp,
                        )
                    )
                elif point.step >= row.step:
                    row.value, row.step, row.timestamp = point.value, point.step, point.timestamp

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

    def add_artifact(
        self, run_id: str, path: str, *, digest: str, size: int, kind: str
    ) -> records.RunArtifact:
        """Record that ``run_id`` keeps the blob ``digest`` at ``path`` (replacing one there)."""

        def work(session: Session) -> records.RunArtifact:
            run_row(session, run_id)
            row = session.merge(
                RunArtifactRow(
                    run_id=run_id,
                    path=path,
                    digest=digest,
                    size=size,
                    kind=kind,
                    created_at=utc_now(),
                )
            )
            return _artifact_record(row)

        return self.db.write(work)

    def list_artifacts(self, run_id: str) -> list[records.RunArtifact]:
        with self.db.read() as session:
            run_row(session, run_id)
            rows = session.scalars(
                select(RunArtifactRow)
                .where(RunArtifactRow.run_id == run_id)
                .order_by(RunArtifactRow.path)
            )
            return [_artifact_record(r) for r in rows]

    def metric_summaries(self, run_id: str) -> list[records.MetricSummary]:
        """Each metric of the run: latest value and step, minimum, maximum, number of points."""
        with self.db.read() as session:
            run_row(session, run_id)
            ranges = {
                key: (lo, hi, n)
                for key, lo, hi, n in session.execute(
                    select(
                        RunMetricRow.key,
                        func.min(RunMetricRow.value),
                        func.max(RunMetricRow.value),
                        func.count(),
                    )
                    .where(RunMetricRow.run_id == run_id)
                    .group_by(RunMetricRow.key)
                )
            }
            out = []
            for row in session.scalars(
                select(RunLatestMetricRow)
                .where(RunLatestMetricRow.run_id == run_id)
                .order_by(RunLatestMetricRow.key)
            ):
                lo, hi, n = ranges.get(row.key, (row.value, row.value, 1))
                out.append(records.MetricSummary(row.key, row.value, row.step, lo, hi, n))
            return out

    def children(self, run_id: str) -> list[records.Run]:
        with self.db.read() as session:
            query = select(RunRow).where(RunRow.parent_id == run_id).order_by(RunRow.start_time)
            return [run_record(session, r) for r in session.scalars(query)]

    def expand_id(self, prefix: str) -> str:
        """The run id starting with ``prefix`` (the 12 characters lists show), if just one.

        A prefix several ids start with is refused, listing them; one no id starts
        with is returned as it is, for the lookup to say there is no such run.
        """
        if len(prefix) >= 32 or not prefix:
            return prefix
        ids = self.ids_starting_with(prefix, limit=6)
        if len(ids) == 1 or prefix in ids:
            return ids[0] if prefix not in ids else prefix
        if ids:
            more = len(ids) > 5
            shown = ", ".join(i[:12] for i in ids[:5]) + (", ..." if more else "")
            count = "more than 5" if more else str(len(ids))
            raise InvalidInputError(
                f"The run id prefix {prefix!r} matches {count} runs ({shown}): "
                "give more characters."
            )
        return prefix

    def ids_starting_with(self, prefix: str, *, limit: int = 10) -> list[str]:
        """Up to ``limit`` run ids starting with ``prefix``, in id order (none for "")."""
        if not prefix:
            return []
        with self.db.read() as session:
            escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            return list(
                session.scalars(
                    select(RunRow.id)
                    .where(RunRow.id.like(f"{escaped}%", escape="\\"))
                    .order_by(RunRow.id)
                    .limit(limit)
                )
            )

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


def _check_status(status: str) -> None:
    if status not in RUN_STATUSES:
        raise InvalidInputError(f"Run status {status!r} is not one of {', '.join(RUN_STATUSES)}.")


def _artifact_record(row: RunArtifactRow) -> records.RunArtifact:
    return records.RunArtifact(row.path, row.digest, row.size, row.kind, row.created_at)
