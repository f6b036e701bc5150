"""DuckDB reads of the prediction log: time windows, and predictions joined to their labels.

Each query lists the day partitions the window touches (partition pruning,
see :meth:`SegmentStore.files`), hands exactly those files to DuckDB's
``read_parquet(..., hive_partitioning=true, union_by_name=true)`` and filters
on the timestamp inside them. ``union_by_name`` lets segments written by
different model versions (say, one with an extra feature) be read together.

Labels are joined at query time by ``(request_id, row)``; when a row was
labelled more than once, the label received last wins. A label joins exactly
one prediction per deployment variant (a shadow's copy of a request is judged
by the same label as its primary): should several logged rows share a
``(request_id, row)`` (ids chosen by a client of the Python API, say), only
the newest of them takes it, so one label can never count fifty times.

>>> import tempfile
>>> from datetime import UTC, datetime
>>> store = SegmentStore(tempfile.mkdtemp())
>>> read_window(store, "iris", since=datetime(2024, 1, 1, tzinfo=UTC),
...             until=datetime(2024, 1, 2, tzinfo=UTC)).empty
True
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta

import duckdb
import pandas as pd

from shipyard.errors import StoreError
from shipyard.monitoring.compaction import dedupe_clause
from shipyard.monitoring.records import INPUT_PREFIX, PROBA_PREFIX
from shipyard.monitoring.segments import UNASSIGNED, SegmentStore

__all__ = [
    "count_labelled",
    "daily_counts",
    "find_known",
    "find_labelled",
    "has_fractional_prediction",
    "labelled_columns",
    "newest_labels",
    "read_labelled",
    "read_window",
    "row_filter",
]

META_COLUMNS = (
    "request_id",
    "row",
    "timestamp",
    "model",
    "version",
    "variant",
    "source",
    "latency_seconds",
    # Only in segments a deployment's server wrote: the deployment that answered.
    "deployment",
)
_SCAN = "read_parquet(?, hive_partitioning = true, union_by_name = true)"
# Labels may be received a little "before" a prediction when the two machines'
# clocks disagree; look one day further back than the window for them.
_CLOCK_SLACK = timedelta(days=1)


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _days(since: datetime, until: datetime) -> tuple[date, date]:
    return since.date(), (until - timedelta(microseconds=1)).date()


def _columns(con: duckdb.DuckDBPyConnection, files: Sequence[str]) -> list[str]:
    rows = con.execute(f"DESCRIBE SELECT * FROM {_SCAN}", [list(files)]).fetchall()
    return [row[0] for row in rows if row[0] != "date"]


def _empty(columns: Sequence[str] = META_COLUMNS) -> pd.DataFrame:
    frame = pd.DataFrame({name: pd.Series(dtype="object") for name in columns})
    if "timestamp" in frame:
        frame["timestamp"] = pd.Series(dtype="datetime64[us, UTC]")
    return frame


def read_window(
    store: SegmentStore,
    model: str,
    *,
    since: datetime,
    until: datetime,
    version: int | None = None,
    inputs: bool = True,
) -> pd.DataFrame:
    """Logged rows of ``model`` with ``since <= timestamp < until``, oldest first.

    ``inputs=False`` leaves out the ``in_*`` columns (DuckDB then does not even
    read them).
    """
    first, last = _days(since, until)
    files = store.files("predictions", model, first=first, last=last)
    if not files:
        return _empty()
    with _translated(store), store.connect() as con:
        names = _columns(con, files)
        if not inputs:
            names = [n for n in names if not n.startswith(INPUT_PREFIX)]
        sql = (
            f"SELECT {', '.join(_q(n) for n in names)} FROM {_SCAN} "
            "WHERE timestamp >= ? AND timestamp < ?"
        )
        params: list[object] = [files, since, until]
        if version is not None:
            sql += " AND version = ?"
            params.append(version)
        sql += dedupe_clause("predictions", files)
        return con.execute(sql + ' ORDER BY timestamp, request_id, "row"', params).df()


def daily_counts(
    store: SegmentStore,
    model: str,
    *,
    since: datetime,
    until: datetime,
    version: int | None = None,
) -> list[tuple[date, int, datetime, datetime]]:
    """Per UTC day with logged rows of ``model`` in ``[since, until)``: the day, its row
    count, its first and last time. An aggregate: no row is read into Python."""
    first, last = _days(since, until)
    files = store.files("predictions", model, first=first, last=last)
    if not files:
        return []
    version_filter = "" if version is None else " AND version = ?"
    params: list[object] = [files, since, until] + ([] if version is None else [version])
    with _translated(store), store.connect() as con:
        frame = con.execute(
            "SELECT CAST(timezone('UTC', timestamp) AS DATE) AS day, count(*) AS n, "
            "min(timestamp) AS first, max(timestamp) AS last FROM ("
            f"SELECT timestamp FROM {_SCAN} WHERE timestamp >= ? AND timestamp < ?"
            f"{version_filter}{dedupe_clause('predictions', files)}) AS w "
            "GROUP BY day ORDER BY day",
            params,
        ).df()
    return [
        (
            pd.Timestamp(day).date(),
            int(n),
            pd.Timestamp(lo).to_pydatetime(),
            pd.Timestamp(hi).to_pydatetime(),
        )
        for day, n, lo, hi in zip(
            frame["day"], frame["n"], frame["first"], frame["last"], strict=True
        )
    ]


def _feedback_files(store: SegmentStore, models: Sequence[str], first: date | None) -> list[str]:
    files: list[str] = []
    for model in [*models, UNASSIGNED]:
        files.extend(store.files("feedback", model, first=first))
    return files


def read_labelled(
    store: SegmentStore,
    model: str,
    *,
    since: datetime,
    until: datetime,
    version: int | None = None,
    deployment: str | None = None,
) -> pd.DataFrame:
    """Rows in the window with their newest label (``label`` / ``labelled_at``, null if none).

    Inputs are left out; the columns are the metadata, ``prediction``, the
    ``proba_*`` columns, ``label`` (text, see :func:`class_key`) and
    ``labelled_at`` (when the truth became known, else when it was received).
    ``deployment`` keeps only the rows that deployment's servers logged (see
    :func:`row_filter`).
    """
    first, last = _days(since, until)
    files = store.files("predictions", model, first=first, last=last)
    if not files:
        return _empty([*META_COLUMNS, "prediction", "label", "labelled_at"])
    labels = _feedback_files(store, [model], first - _CLOCK_SLACK)
    with _translated(store), store.connect() as con:
        names = [n for n in _columns(con, files) if not n.startswith(INPUT_PREFIX)]
        wanted = [n for n in names if n in META_COLUMNS or n == "prediction"]
        wanted += [n for n in names if n.startswith(PROBA_PREFIX)]
        joined, params = _joined(
            ", ".join(_q(n) for n in wanted), names, files, labels, version, deployment
        )
        sql = joined + 'SELECT * FROM j ORDER BY timestamp, request_id, "row"'
        return con.execute(sql, [files, since, until, *params]).df()


def row_filter(
    names: Sequence[str], version: int | None = None, deployment: str | None = None
) -> tuple[str, list[object]]:
    """SQL (`` AND ...``) keeping the rows of ``version`` logged by ``deployment``'s
    servers, and its parameters, for a log with columns ``names``.

    A deployment's server stamps its name on every row (``deployment``); a batch
    job (``shipyard predict``) and a plain ``shipyard serve`` do not, so their rows,
    and segments with no such column at all, belong to no deployment.

    >>> row_filter(["version", "deployment"], 3, "web")
    (' AND version = ? AND deployment = ?', [3, 'web'])
    >>> row_filter(["version"], None, "web")
    (' AND FALSE', [])
    """
    sql, params = "", list[object]()
    if version is not None:
        sql += " AND version = ?"
        params.append(version)
    if deployment is not None:
        if "deployment" not in names:
            return sql + " AND FALSE", params
        sql += " AND deployment = ?"
        params.append(deployment)
    return sql, params


def _joined(
    select: str,
    names: Sequence[str],
    files: list[str],
    labels: list[str],
    version: int | None,
    deployment: str | None = None,
) -> tuple[str, list[object]]:
    """``WITH ... j AS (...)``: the window's rows (``select``, which must hold request_id
    and row) joined to their labels as relation ``j`` with ``label`` / ``labelled_at``,
    and the parameters after the files and the window's two ends."""
    filters, params = row_filter(names, version, deployment)
    sql = (
        f"WITH p AS (SELECT {select}, {_label_claim(names)} AS _claim "
        f"FROM {_SCAN} WHERE timestamp >= ? AND timestamp < ?{filters}"
        f"{dedupe_clause('predictions', files)}), "
        f"f AS ({newest_labels(bool(labels))}), "
        "j AS (SELECT p.* EXCLUDE (_claim), "
        "CASE WHEN p._claim THEN f.label END AS label, "
        "CASE WHEN p._claim THEN f.labelled_at END AS labelled_at "
        'FROM p LEFT JOIN f ON p.request_id = f.request_id AND p."row" = f."row") '
    )
    return sql, params + ([labels] if labels else [])


def labelled_columns(
    store: SegmentStore, model: str, *, since: datetime, until: datetime
) -> dict[str, str]:
    """Column name -> DuckDB type of the log's segments in the window ({} if none)."""
    first, last = _days(since, until)
    files = store.files("predictions", model, first=first, last=last)
    if not files:
        return {}
    with _translated(store), store.connect() as con:
        rows = con.execute(f"DESCRIBE SELECT * FROM {_SCAN}", [list(files)]).fetchall()
    return {str(r[0]): str(r[1]) for r in rows if r[0] != "date"}


def has_fractional_prediction(
    store: SegmentStore, model: str, *, since: datetime, until: datetime, version: int | None
) -> bool:
    """Whether any numeric prediction in the window has a fractional part (a regressor)."""
    first, last = _days(since, until)
    files = store.files("predictions", model, first=first, last=last)
    if not files:
        return False
    version_filter = "" if version is None else " AND version = ?"
    params: list[object] = [files, since, until, *([] if version is None else [version])]
    with _translated(store), store.connect() as con:
        found = con.execute(
            f"SELECT bool_or(prediction <> floor(prediction)) FROM {_SCAN} "
            f"WHERE timestamp >= ? AND timestamp < ?{version_filter}",
            params,
        ).fetchone()
    return bool(found and found[0])


def count_labelled(
    store: SegmentStore,
    model: str,
    *,
    since: datetime,
    until: datetime,
    origin: datetime,
    step: timedelta,
    version: int | None = None,
    regression: bool = False,
    deployment: str | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The window's predictions and labels counted in DuckDB: memory bounded by the groups.

    Rows are joined to their labels as :func:`read_labelled` joins them and put in
    buckets of ``step`` from ``origin`` (``bucket`` 0, 1, ...). Returns two frames:

    - the counts: for a classifier, one row per (bucket, variant, version,
      prediction, label) with ``n`` rows (label null: unlabelled); for a regressor,
      one row per (bucket, variant, version) with ``n``, ``n_labelled`` (labels that
      read as numbers), ``unreadable`` labels, and the sums ``sae`` / ``sse`` of
      absolute / squared errors; each with ``first_seen``, its earliest timestamp;
    - the median label delay in seconds (``delay``) of the labelled rows per
      ``bucket``, per (``variant``, ``version``) and overall (``level`` 'bucket',
      'variant', 'all').
    """
    first, last = _days(since, until)
    files = store.files("predictions", model, first=first, last=last)
    if not files:
        return pd.DataFrame(), pd.DataFrame()
    labels = _feedback_files(store, [model], first - _CLOCK_SLACK)
    step_us = int(step / timedelta(microseconds=1))
    with _translated(store), store.connect() as con:
        names = _columns(con, files)
        variant = "variant" if "variant" in names else "'primary'"
        prediction = "prediction" if "prediction" in names else "NULL"
        select = (
            f"timestamp, {variant} AS variant, version, {prediction} AS prediction, "
            'request_id, "row"'
        )
        joined, tail = _joined(select, names, files, labels, version, deployment)
        joined += (
            ", k AS (SELECT *, TRY_CAST(label AS DOUBLE) AS y, "
            "TRY_CAST(prediction AS DOUBLE) AS yhat, "
            "(epoch_us(timestamp) - ?) // ? AS bucket FROM j) "
        )
        params = [files, since, until, *tail, int(origin.timestamp() * 1_000_000), step_us]
        if regression:
            counts = (
                "SELECT bucket, variant, version, count(*) AS n, count(y) AS n_labelled, "
                "count(label) - count(y) AS unreadable, sum(abs(y - yhat)) AS sae, "
                "sum((y - yhat) * (y - yhat)) AS sse, min(timestamp) AS first_seen "
                "FROM k GROUP BY ALL"
            )
            labelled = "y IS NOT NULL"
        else:
            counts = (
                "SELECT bucket, variant, version, prediction, label, count(*) AS n, "
                "min(timestamp) AS first_seen FROM k GROUP BY ALL"
            )
            labelled = "label IS NOT NULL"
        delays = (
            "SELECT CASE WHEN grouping(bucket) = 0 THEN 'bucket' "
            "WHEN grouping(variant) = 0 THEN 'variant' ELSE 'all' END AS level, "
            "bucket, variant, version, "
            "median((epoch_us(labelled_at) - epoch_us(timestamp)) / 1e6) AS delay "
            f"FROM k WHERE {labelled} "
            "GROUP BY GROUPING SETS ((bucket), (variant, version), ())"
        )
        return (
            con.execute(joined + counts, params).df(),
            con.execute(joined + delays, params).df(),
        )


def newest_labels(present: bool) -> str:
    """SQL for the newest label of each ``(request_id, row)``, from the ``?`` list of
    feedback files (an empty relation of the same shape when there are none)."""
    if not present:
        return (
            'SELECT NULL::VARCHAR AS request_id, NULL::INTEGER AS "row", '
            "NULL::VARCHAR AS label, NULL::TIMESTAMPTZ AS labelled_at WHERE false"
        )
    return (
        'SELECT request_id, "row", label, coalesce(label_timestamp, received_at) '
        f"AS labelled_at FROM {_SCAN} QUALIFY row_number() OVER ("
        'PARTITION BY request_id, "row" '
        "ORDER BY received_at DESC, batch DESC, seq DESC) = 1"
    )


def _label_claim(columns: Sequence[str], table: str = "") -> str:
    """SQL that is true for the one prediction row per ``(request_id, row[, variant])``
    that a label joins: the newest (see the module doc). ``table`` qualifies the
    column names (``"p."``) in a query that joins."""
    keys = ["request_id", '"row"'] + (["variant"] if "variant" in columns else [])
    partition = ", ".join(table + k for k in keys)
    return f"row_number() OVER (PARTITION BY {partition} ORDER BY {table}timestamp DESC) = 1"


def find_known(store: SegmentStore, keys: pd.DataFrame, model: str | None) -> pd.DataFrame:
    """Which ``(request_id, row)`` pairs of ``keys`` some logged prediction has.

    Returns the known pairs with the ``model`` that logged them. With
    ``model=None`` every model's log is searched.
    """
    models = [model] if model is not None else store.models("predictions")
    files = [f for m in models for f in store.files("predictions", m)]
    if not files or keys.empty:
        return pd.DataFrame({"request_id": [], "row": [], "model": []})
    with _translated(store), store.connect() as con:
        con.register("wanted", keys[["request_id", "row"]])
        return con.execute(
            f'SELECT DISTINCT p.request_id, p."row", p.model FROM {_SCAN} AS p '
            'SEMI JOIN wanted AS w ON p.request_id = w.request_id AND p."row" = w."row"',
            [files],
        ).df()


def find_known_ids(store: SegmentStore, ids: Sequence[str], model: str | None) -> set[str]:
    """Which of ``ids`` some logged prediction (of ``model``, or of any model) has, at
    any row."""
    models = [model] if model is not None else store.models("predictions")
    files = [f for m in models for f in store.files("predictions", m)]
    if not files or not ids:
        return set()
    with _translated(store), store.connect() as con:
        con.register("wanted", pd.DataFrame({"request_id": list(ids)}))
        found = con.execute(
            f"SELECT DISTINCT p.request_id FROM {_SCAN} AS p "
            "SEMI JOIN wanted AS w ON p.request_id = w.request_id",
            [files],
        ).df()
    return set(found["request_id"].tolist())


def find_labelled(store: SegmentStore, keys: pd.DataFrame, models: Sequence[str]) -> pd.DataFrame:
    """Which ``(request_id, row)`` pairs of ``keys`` already have a stored label."""
    files = _feedback_files(store, models, None)
    if not files or keys.empty:
        return pd.DataFrame({"request_id": [], "row": []})
    with _translated(store), store.connect() as con:
        con.register("wanted", keys[["request_id", "row"]])
        return con.execute(
            f'SELECT DISTINCT f.request_id, f."row" FROM {_SCAN} AS f '
            'SEMI JOIN wanted AS w ON f.request_id = w.request_id AND f."row" = w."row"',
            [files],
        ).df()


class _translated:
    """Turn DuckDB's I/O failures into StoreError naming the store."""

    def __init__(self, store: SegmentStore) -> None:
        self.store = store

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        if isinstance(exc, duckdb.Error) and not isinstance(exc, duckdb.InterruptException):
            raise StoreError(
                f"Could not read the prediction log in {self.store.url}: {exc}"
            ) from exc
