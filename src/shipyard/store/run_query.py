"""The runs table, queried in SQL: chosen columns, filters, sort and one page at a time.

A table of thousands of runs with a hundred steps of twenty metrics each must
not load every run to show fifty: filters, the sort and the page are one SQL
statement, and a run's latest value of a metric (highest step, then the last
logged) is a correlated sub-query answered by one primary-key seek in
``run_latest_metrics``, which logging keeps up to date. The filter is MLflow's syntax, compiled by
:func:`shipyard.store.run_search.apply_filter`, the same as ``search_runs``.

>>> query = RunQuery(metric_columns=("accuracy",), order_by="metric:accuracy")
>>> RunQueries(Database("sqlite:///:memory:")).page(query).total
0
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import aliased

from shipyard.errors import InvalidInputError
from shipyard.store.database import Database
from shipyard.store.run_search import apply_filter
from shipyard.store.schema import ExperimentRow, RunMetricRow, RunParamRow, RunRow
from shipyard.store.schema_tracking import RunLatestMetricRow

__all__ = ["RunPage", "RunQueries", "RunQuery", "RunSummary"]

ORDER_FIELDS = ("start_time", "name", "status", "experiment")
#: Generations of nested runs shown under a top-level run (a search's candidates are one).
MAX_DEPTH = 8


@dataclass(frozen=True)
class RunQuery:
    """Which runs, which columns, in which order, which page.

    ``order_by`` is a run field (``start_time``, ``name``, ``status``,
    ``experiment``), ``metric:KEY`` or ``param:KEY``.
    """

    experiment: str | None = None
    status: str | None = None
    #: MLflow's filter syntax, as ``search_runs`` and ``shipyard runs search`` take it
    #: (``metrics.accuracy > 0.9 and tags.team = 'risk'``): one language everywhere.
    filter: str | None = None
    metric_columns: tuple[str, ...] = ()
    param_columns: tuple[str, ...] = ()
    order_by: str = "start_time"
    descending: bool = True
    offset: int = 0
    limit: int = 50
    #: Nested runs under their parent (as ``runs list``): the page holds top-level runs,
    #: each followed by its matching descendants. False: every matching run, flat.
    tree: bool = False


@dataclass(frozen=True)
class RunSummary:
    """One line of the runs table: the run and the chosen columns' values."""

    id: str
    name: str
    experiment: str
    status: str
    start_time: datetime
    end_time: datetime | None
    created_by: str
    metrics: dict[str, float | None] = field(default_factory=dict)
    params: dict[str, str | None] = field(default_factory=dict)
    parent_id: str | None = None
    #: 0 for a run shown at the top level, 1 for its child, 2 for a grandchild...
    depth: int = 0
    #: How many nested runs follow this one in the tree (all generations).
    descendants: int = 0


@dataclass(frozen=True)
class RunPage:
    """One page of runs and how many runs match in all."""

    runs: list[RunSummary]
    total: int
    query: RunQuery
    #: With ``query.tree``: nested runs shown under the page's top-level runs.
    nested: int = 0


def _latest_metric(key: str) -> Any:
    # run_latest_metrics keeps each run's latest point per key as it is logged (the
    # filter reads it too): one primary-key seek, where ordering a run's history by
    # step made PostgreSQL sort per run and row.
    m = aliased(RunLatestMetricRow)
    return select(m.value).where(m.run_id == RunRow.id, m.key == key).scalar_subquery()


def _param(key: str) -> Any:
    p = aliased(RunParamRow)
    return select(p.value).where(p.run_id == RunRow.id, p.key == key).scalar_subquery()


class RunQueries:
    """Read-only queries over experiments and runs for tables and charts."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def _filtered(self, query: RunQuery, base: Select[Any]) -> Select[Any]:
        stmt = base.join(ExperimentRow, ExperimentRow.id == RunRow.experiment_id)
        if query.experiment:
            stmt = stmt.where(ExperimentRow.name == query.experiment)
        if query.status:
            stmt = stmt.where(RunRow.status == query.status)
        return apply_filter(stmt, query.filter)

    def _order(self, query: RunQuery) -> list[Any]:
        field_ = query.order_by
        column: Any
        if field_.startswith("metric:"):
            column = _latest_metric(field_[len("metric:") :])
        elif field_.startswith("param:"):
            column = _param(field_[len("param:") :])
        elif field_ == "name":
            column = RunRow.name
        elif field_ == "status":
            column = RunRow.status
        elif field_ == "experiment":
            column = ExperimentRow.name
        elif field_ == "start_time":
            column = RunRow.start_time
        else:
            raise InvalidInputError(
                f"Cannot sort runs by {field_!r}: use one of {', '.join(ORDER_FIELDS)}, "
                "metric:KEY or param:KEY."
            )
        # Runs without the value go last either way, as a person expects.
        ordered = column.desc() if query.descending else column.asc()
        return [column.is_(None), ordered, RunRow.id]

    def _columns(self, query: RunQuery) -> list[Any]:
        columns: list[Any] = [RunRow, ExperimentRow.name]
        columns += [_latest_metric(k).label(f"m{i}") for i, k in enumerate(query.metric_columns)]
        columns += [_param(k).label(f"p{i}") for i, k in enumerate(query.param_columns)]
        return columns

    def _roots(self, query: RunQuery, stmt: Select[Any]) -> Select[Any]:
        """Only runs shown at the top of the tree: no parent, or a parent the filters drop."""
        # Not correlated: the inner RunRow is its own scan of the matching runs.
        matching = self._filtered(query, select(RunRow.id)).correlate(None)
        return stmt.where(or_(RunRow.parent_id.is_(None), RunRow.parent_id.not_in(matching)))

    def page(self, query: RunQuery) -> RunPage:
        """The runs matching ``query``, its page of them, with the chosen columns."""
        stmt = self._filtered(query, select(*self._columns(query)))
        count = self._filtered(query, select(func.count(RunRow.id)))
        if query.tree:
            stmt, count = self._roots(query, stmt), self._roots(query, count)
        stmt = stmt.order_by(*self._order(query)).offset(query.offset).limit(query.limit)
        with self.db.read() as session:
            total = int(session.scalar(count) or 0)
            runs = [self._summary(query, row) for row in session.execute(stmt)]
            if not query.tree:
                return RunPage(runs, total, query)
            children = self._descendants(session, query, [r.id for r in runs])
        ordered = _tree_order(runs, children)
        return RunPage(ordered, total, query, nested=len(ordered) - len(runs))

    def _summary(self, query: RunQuery, row: Any, depth: int = 0) -> RunSummary:
        run, experiment, *values = row
        n_metrics = len(query.metric_columns)
        return RunSummary(
            id=run.id,
            name=run.name,
            experiment=experiment,
            status=run.status,
            start_time=run.start_time,
            end_time=run.end_time,
            created_by=run.created_by,
            metrics=dict(zip(query.metric_columns, values[:n_metrics], strict=True)),
            params=dict(zip(query.param_columns, values[n_metrics:], strict=True)),
            parent_id=run.parent_id,
            depth=depth,
        )

    def _descendants(
        self, session: Any, query: RunQuery, parents: list[str]
    ) -> dict[str, list[RunSummary]]:
        """Matching runs nested under ``parents``, generation by generation, oldest first.

        One query per generation (not per run), at most :data:`MAX_DEPTH` of them.
        """
        out: dict[str, list[RunSummary]] = defaultdict(list)
        depth = 0
        while parents and depth < MAX_DEPTH:
            depth += 1
            stmt = self._filtered(query, select(*self._columns(query)))
            stmt = stmt.where(RunRow.parent_id.in_(parents)).order_by(RunRow.start_time, RunRow.id)
            found = [self._summary(query, row, depth) for row in session.execute(stmt)]
            for child in found:
                out[child.parent_id or ""].append(child)
            parents = [c.id for c in found]
        return out

    def experiments(self) -> list[str]:
        with self.db.read() as session:
            return list(session.scalars(select(ExperimentRow.name).order_by(ExperimentRow.name)))

    def recent_keys(self, *, runs: int = 10) -> tuple[list[str], list[str]]:
        """Metric and param keys of the newest ``runs`` runs (for column pickers).

        Only recent runs are looked at: listing every key of every run would
        read the whole metric history.
        """
        recent = select(RunRow.id).order_by(RunRow.start_time.desc()).limit(runs).subquery()
        with self.db.read() as session:
            # The latest-value table holds one row per run and key: reading the whole
            # history (100 steps a key) for its distinct keys was a scan of every point.
            metric_keys = session.scalars(
                select(RunLatestMetricRow.key)
                .where(RunLatestMetricRow.run_id.in_(select(recent)))
                .distinct()
            )
            param_keys = session.scalars(
                select(RunParamRow.key).where(RunParamRow.run_id.in_(select(recent))).distinct()
            )
            return sorted(metric_keys), sorted(param_keys)

    def histories(
        self, run_ids: list[str], keys: list[str] | None = None
    ) -> dict[str, dict[str, list[tuple[int, float]]]]:
        """Every logged point of the runs' metrics: run -> key -> [(step, value)] by step."""
        out: dict[str, dict[str, list[tuple[int, float]]]] = {r: defaultdict(list) for r in run_ids}
        stmt = select(RunMetricRow.run_id, RunMetricRow.key, RunMetricRow.step, RunMetricRow.value)
        stmt = stmt.where(RunMetricRow.run_id.in_(run_ids))
        if keys is not None:
            stmt = stmt.where(RunMetricRow.key.in_(keys))
        stmt = stmt.order_by(
            RunMetricRow.run_id, RunMetricRow.key, RunMetricRow.step, RunMetricRow.id
        )
        with self.db.read() as session:
            for run_id, key, step, value in session.execute(stmt):
                out[run_id][key].append((int(step), float(value)))
        return {r: dict(v) for r, v in out.items()}


def _tree_order(roots: list[RunSummary], children: dict[str, list[RunSummary]]) -> list[RunSummary]:
    """``roots`` in their order, each followed depth-first by its nested runs, with counts."""
    out: list[RunSummary] = []

    def walk(run: RunSummary) -> int:
        at = len(out)
        out.append(run)
        below = sum(walk(child) for child in children.get(run.id, []))
        out[at] = replace(run, descendants=below)
        return below + 1

    for root in roots:
        walk(root)
    return out
