"""Run search executed in SQL: a parsed filter becomes WHERE clauses, sort keys ORDER BY.

Metric comparisons join ``run_latest_metrics`` (the latest value of each
metric, kept as points are written), params and tags are ``EXISTS``
sub-queries on their primary keys, so a search over ten thousand runs reads
the rows it returns, never every run. The page of runs found is then loaded
with one query per kind (params, metrics, tags) rather than one per run.

>>> RunSearch(db).search(["iris"], "metrics.accuracy > 0.9", ["metrics.accuracy DESC"], 10)
...                                                          # doctest: +SKIP
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, false, select
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql import Select

from shipyard.errors import ExperimentNotFoundError, InvalidInputError
from shipyard.store import records
from shipyard.store.database import Database
from shipyard.store.run_filter import Comparison, OrderKey, parse_filter, parse_order_by
from shipyard.store.schema import ExperimentRow, RunParamRow, RunRow, RunTagRow
from shipyard.store.schema_tracking import RunLatestMetricRow

__all__ = ["MAX_RESULTS", "RunSearch", "apply_filter"]

#: The most runs one search returns (MLflow's limit too).
MAX_RESULTS = 50_000
_CHUNK = 900  # ids per IN (...) list: under SQLite's old 999-parameter limit


class RunSearch:
    """Searches the runs of one :class:`Database`."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def search(
        self,
        experiments: Sequence[str] | None,
        filter: str | None = None,
        order_by: list[str] | None = None,
        max_results: int = 1000,
    ) -> list[records.Run]:
        """Runs of ``experiments`` (None: all) matching ``filter``, sorted, max ``max_results``."""
        if not isinstance(max_results, int) or not 1 <= max_results <= MAX_RESULTS:
            raise InvalidInputError(
                f"max_results={max_results!r}: expected a whole number from 1 to {MAX_RESULTS}."
            )
        parse_filter(filter)  # a bad filter is refused before the database is opened
        keys = parse_order_by(order_by)
        with self.db.read() as session:
            query = select(RunRow)
            if experiments is not None:
                ids = _experiment_ids(session, experiments)
                query = query.where(RunRow.experiment_id.in_(ids))
            query = apply_filter(query, filter)
            query = _order(query, keys).limit(max_results)
            rows = list(session.scalars(query))
            return _records(session, rows)


def apply_filter(query: Select[Any], filter: str | None) -> Select[Any]:
    """``query`` (selecting from ``RunRow``) narrowed to the runs matching ``filter``.

    The one filter language of search, ``runs search`` and the web UI's runs table.
    """
    for n, comparison in enumerate(parse_filter(filter)):
        query = _where(query, comparison, n)
    return query


def _experiment_ids(session: Session, names: Sequence[str]) -> list[int]:
    found = {
        name: id_
        for name, id_ in session.execute(
            select(ExperimentRow.name, ExperimentRow.id).where(ExperimentRow.name.in_(list(names)))
        )
    }
    missing = [n for n in names if n not in found]
    if missing:
        known = ", ".join(sorted(session.scalars(select(ExperimentRow.name)))) or "none yet"
        raise ExperimentNotFoundError(
            f"No experiment named {missing[0]!r}. Known experiments: {known}."
        )
    return list(found.values())


def _millis(value: float) -> datetime:
    return datetime.fromtimestamp(value / 1000, tz=UTC)


def _compare(column: Any, op: str, value: Any) -> ColumnElement[bool]:
    if op == "=":
        return column == value  # type: ignore[no-any-return]
    if op == "!=":
        return column != value  # type: ignore[no-any-return]
    if op == "<":
        return column < value  # type: ignore[no-any-return]
    if op == "<=":
        return column <= value  # type: ignore[no-any-return]
    if op == ">":
        return column > value  # type: ignore[no-any-return]
    if op == ">=":
        return column >= value  # type: ignore[no-any-return]
    if op == "LIKE":
        return column.like(value)  # type: ignore[no-any-return]
    if op == "NOT LIKE":
        return column.not_like(value)  # type: ignore[no-any-return]
    if op == "ILIKE":
        return column.ilike(value)  # type: ignore[no-any-return]
    if op == "IN":
        return column.in_(list(value))  # type: ignore[no-any-return]
    if op == "NOT IN":
        return column.not_in(list(value))  # type: ignore[no-any-return]
    raise AssertionError(op)  # the parser admits no other operator


def _where(query: Select[Any], c: Comparison, n: int) -> Select[Any]:
    if c.entity == "metrics":
        # An inner join on (run_id, key): a run without the metric does not match.
        metric = aliased(RunLatestMetricRow, name=f"m{n}")
        return query.join(
            metric,
            and_(
                metric.run_id == RunRow.id,
                metric.key == c.key,
                _compare(metric.value, c.op, c.value),
            ),
        )
    if c.entity in ("params", "tags"):
        table: Any = RunParamRow if c.entity == "params" else RunTagRow
        match = exists().where(
            table.run_id == RunRow.id, table.key == c.key, _compare(table.value, c.op, c.value)
        )
        # MLflow: != and NOT IN match only runs that have the key.
        return query.where(match)
    column = _attribute(c.key)
    value: Any = c.value
    if c.key in ("start_time", "end_time"):
        value = _millis(float(c.value))  # type: ignore[arg-type]
    if c.key == "parent_run_id" and c.op in ("=", "IN") and not c.value:
        return query.where(false())
    return query.where(_compare(column, c.op, value))


def _attribute(name: str) -> Any:
    return {
        "run_id": RunRow.id,
        "run_name": RunRow.name,
        "status": RunRow.status,
        "user_id": RunRow.created_by,
        "parent_run_id": RunRow.parent_id,
        "start_time": RunRow.start_time,
        "end_time": RunRow.end_time,
    }[name]


def _order(query: Select[Any], keys: list[OrderKey]) -> Select[Any]:
    clauses: list[Any] = []
    for n, key in enumerate(keys):
        if key.entity == "attributes":
            column: Any = _attribute(key.key)
        else:
            table: Any = {
                "metrics": RunLatestMetricRow,
                "params": RunParamRow,
                "tags": RunTagRow,
            }[key.entity]
            alias = aliased(table, name=f"o{n}")
            query = query.outerjoin(alias, and_(alias.run_id == RunRow.id, alias.key == key.key))
            column = alias.value
        # Runs without the value sort last either way (as in MLflow), on both back ends.
        clauses.append(column.is_(None))
        clauses.append(column.desc() if key.descending else column.asc())
    clauses += [RunRow.start_time.desc(), RunRow.id]
    return query.order_by(*clauses)


def _records(session: Session, rows: list[RunRow]) -> list[records.Run]:
    """Records of ``rows`` with their params, latest metrics and tags: three queries a page."""
    ids = [r.id for r in rows]
    params: dict[str, dict[str, str]] = defaultdict(dict)
    metrics: dict[str, dict[str, float]] = defaultdict(dict)
    tags: dict[str, dict[str, str]] = defaultdict(dict)
    for chunk in (ids[i : i + _CHUNK] for i in range(0, len(ids), _CHUNK)):
        for run_id, key, value in session.execute(
            select(RunParamRow.run_id, RunParamRow.key, RunParamRow.value).where(
                RunParamRow.run_id.in_(chunk)
            )
        ):
            params[run_id][key] = value
        for run_id, key, number in session.execute(
            select(RunLatestMetricRow.run_id, RunLatestMetricRow.key, RunLatestMetricRow.value)
            .where(RunLatestMetricRow.run_id.in_(chunk))
            .order_by(RunLatestMetricRow.key)
        ):
            metrics[run_id][key] = number
        for run_id, key, value in session.execute(
            select(RunTagRow.run_id, RunTagRow.key, RunTagRow.value).where(
                RunTagRow.run_id.in_(chunk)
            )
        ):
            tags[run_id][key] = value
    names = {i: n for i, n in session.execute(select(ExperimentRow.id, ExperimentRow.name))}
    return [
        records.Run(
            id=r.id,
            experiment=names.get(r.experiment_id, ""),
            name=r.name,
            status=r.status,
            start_time=r.start_time,
            end_time=r.end_time,
            created_by=r.created_by,
            params=params[r.id],
            metrics=metrics[r.id],
            tags=tags[r.id],
            parent_id=r.parent_id,
        )
        for r in rows
    ]
