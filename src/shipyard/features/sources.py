"""Feature sources in DuckDB: a relation per source, its real schema, and checks against views.

Local Parquet and CSV files (and folders of them) are scanned by DuckDB where
they lie, so a 2-million-row source is never copied into pandas; an
``s3://`` object or a SQL table/query (``URL#TABLE``) is read once through
Shipyard's table reader and handed to DuckDB as an Arrow table.

Time columns are compared in UTC: the connection's time zone is UTC, so a
``TIMESTAMP WITH TIME ZONE`` cast to ``TIMESTAMP`` is its UTC wall time, and
a naive timestamp is taken to be UTC already.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb

from shipyard.errors import InvalidInputError
from shipyard.features.definitions import Definitions, FeatureView, Source
from shipyard.tables import locate, read_table
from shipyard.tables.missing import duckdb_nullstr

__all__ = [
    "check_view_schema",
    "connect",
    "is_integer_type",
    "quote",
    "register_source",
    "source_family",
    "source_schema",
]

_INTEGER = {
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "HUGEINT",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
}
_FLOAT = {"FLOAT", "DOUBLE", "REAL"}
_TIME = ("TIMESTAMP", "DATE")

#: Which source column types each declared dtype accepts.
_ACCEPTS: dict[str, str] = {
    "float32": "numeric",
    "float64": "numeric",
    "int32": "integer",
    "int64": "integer",
    "string": "text",
    "bool": "bool",
    "timestamp": "time",
}

#: Integer column types whose values a declared dtype cannot all hold exactly, and the
#: largest magnitude it can: float32 keeps integers exact only up to 2^24, int32 and
#: int64 overflow. Reading them would change values without a word, so apply refuses.
_LOSSY_FROM_INTEGER: dict[str, tuple[frozenset[str], str, str]] = {
    "float32": (
        frozenset({"INTEGER", "BIGINT", "HUGEINT", "UINTEGER", "UBIGINT"}),
        "2^24 = 16,777,216",
        "declare int64 (or float64)",
    ),
    "int32": (
        frozenset({"BIGINT", "HUGEINT", "UINTEGER", "UBIGINT"}),
        "2^31 - 1",
        "declare int64",
    ),
    "int64": (
        frozenset({"HUGEINT", "UBIGINT"}),
        "2^63 - 1",
        "narrow the column in the source",
    ),
}

#: The DuckDB type each dtype is cast to.
SQL_TYPES: dict[str, str] = {
    "float32": "FLOAT",
    "float64": "DOUBLE",
    "int32": "INTEGER",
    "int64": "BIGINT",
    "string": "VARCHAR",
    "bool": "BOOLEAN",
    "timestamp": "TIMESTAMP",
}


def connect() -> duckdb.DuckDBPyConnection:
    """A private in-memory DuckDB connection, in UTC."""
    con = duckdb.connect(":memory:")
    con.execute("SET TimeZone = 'UTC'")
    return con


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _scan(source: Source) -> str | None:
    """The DuckDB table function reading ``source`` in place, or None to read it via pandas."""
    path = source.path
    if "://" in path:
        return None
    local = Path(path)
    text = path.replace("'", "''")
    if local.is_dir():
        if any(local.rglob("*.parquet")):
            return f"read_parquet('{text}/**/*.parquet', union_by_name = true)"
        if any(local.rglob("*.csv")):
            return f"read_csv('{text}/**/*.csv', union_by_name = true, {duckdb_nullstr()})"
        raise InvalidInputError(
            f"Source {source.name!r}: folder {path} holds no .parquet or .csv file."
        )
    if not local.exists():
        raise InvalidInputError(f"Source {source.name!r}: {path} does not exist.")
    fmt = locate(path).format
    if fmt == "parquet":
        return f"read_parquet('{text}')"
    if fmt in ("csv", "tsv"):
        sep = "\\t" if fmt == "tsv" else ","
        return f"read_csv('{text}', delim = '{sep}', header = true, {duckdb_nullstr()})"
    return None


def register_source(
    con: duckdb.DuckDBPyConnection,
    source: Source,
    *,
    alias: str,
    storage_options: dict[str, Any] | None = None,
) -> None:
    """Make ``alias`` a view (or table) of ``source`` on ``con``."""
    scan = _scan(source)
    raw = f"{alias}__raw"
    try:
        if scan is not None:
            con.execute(f"CREATE OR REPLACE VIEW {quote(raw)} AS SELECT * FROM {scan}")
        else:
            frame = read_table(source.path, storage_options=storage_options)
            con.register(raw, frame)
        con.execute(
            f"CREATE OR REPLACE VIEW {quote(alias)} AS SELECT {_columns(con, raw)} "
            f"FROM {quote(raw)}"
        )
    except duckdb.Error as exc:
        raise InvalidInputError(
            f"Source {source.name!r}: cannot read {source.path}: {_first_line(exc)}"
        ) from exc


#: Timestamp types in another unit than microseconds, read as (naive UTC) ``TIMESTAMP``.
#: pandas writes nanoseconds by default (``datetime64[ns, UTC]``), which DuckDB reads as
#: ``TIMESTAMPTZ_NS``: ``epoch_us`` and the joins know only microsecond timestamps.
_CAST_UNITS = frozenset({"TIMESTAMP_S", "TIMESTAMP_MS"})
_NANOSECONDS = frozenset({"TIMESTAMP_NS", "TIMESTAMPTZ_NS", "TIMESTAMP_NS WITH TIME ZONE"})


def _columns(con: duckdb.DuckDBPyConnection, relation: str) -> str:
    """The select list of ``relation`` with every timestamp in microseconds.

    Nanoseconds are truncated (not rounded, as a DuckDB cast would) to the microsecond,
    as pandas truncates an entity table's times: a source row and an entity row of the
    same nanosecond instant stay in the same order.
    """
    rows = con.execute(f"DESCRIBE SELECT * FROM {quote(relation)}").fetchall()
    if not any(str(r[1]).upper() in _CAST_UNITS | _NANOSECONDS for r in rows):
        return "*"
    items = []
    for row in rows:
        name, kind = quote(str(row[0])), str(row[1]).upper()
        if kind in _NANOSECONDS:
            items.append(f"make_timestamp(epoch_ns({name}) // 1000) AS {name}")
        elif kind in _CAST_UNITS:
            items.append(f"CAST({name} AS TIMESTAMP) AS {name}")
        else:
            items.append(name)
    return ", ".join(items)


def _first_line(exc: BaseException) -> str:
    """The first line of an exception's text, without a trailing period (callers add theirs)."""
    return (str(exc).splitlines() or [""])[0].rstrip().rstrip(".")


def source_schema(con: duckdb.DuckDBPyConnection, alias: str) -> dict[str, str]:
    """Column name -> DuckDB type name of a registered source."""
    try:
        rows = con.execute(f"DESCRIBE SELECT * FROM {quote(alias)}").fetchall()
    except duckdb.Error as exc:
        raise InvalidInputError(f"Cannot read the schema of {alias}: {exc}") from exc
    return {str(row[0]): str(row[1]) for row in rows}


def source_family(sql_type: str) -> str:
    """A DuckDB type name's family: integer, float, text, bool, time or the type itself."""
    base = sql_type.split("(")[0].strip().upper()
    if base in _INTEGER:
        return "integer"
    if base in _FLOAT or base.startswith("DECIMAL"):
        return "float"
    if base == "VARCHAR":
        return "text"
    if base == "BOOLEAN":
        return "bool"
    if base.startswith(_TIME):
        return "time"
    return base.lower()


def is_integer_type(sql_type: str) -> bool:
    """Whether a DuckDB type name is an integer type (signed or not, any width)."""
    return source_family(sql_type) == "integer"


def _accepts(dtype: str, sql_type: str) -> bool:
    family = source_family(sql_type)
    wanted = _ACCEPTS[dtype]
    if wanted == "numeric":
        return family in ("integer", "float")
    return family == wanted


def _lossy(dtype: str, sql_type: str) -> str | None:
    """Why reading a ``sql_type`` column as ``dtype`` could change its values (None: it cannot)."""
    rule = _LOSSY_FROM_INTEGER.get(dtype)
    base = sql_type.split("(")[0].strip().upper()
    if rule is None or base not in rule[0]:
        return None
    _, limit, fix = rule
    return (
        f"{dtype} holds integers exactly only up to {limit}, so larger values of a "
        f"{sql_type} column would be silently changed; {fix}"
    )


def check_view_schema(defs: Definitions, view: FeatureView, schema: dict[str, str]) -> None:
    """Refuse a view whose source lacks a column it names, or holds one of another type."""
    source = defs.source(view.source)
    where = f"Feature view {view.name!r} (source {source.name!r}, {source.path})"
    problems = []
    columns = ", ".join(f"{k} {v}" for k, v in schema.items())
    for key in defs.join_keys(view):
        if key not in schema:
            problems.append(f"join key {key!r} is not a column")
    for name, label in (
        (source.timestamp_field, "timestamp_field"),
        (source.created_timestamp_column, "created_timestamp_column"),
    ):
        if name is None:
            continue
        if name not in schema:
            problems.append(f"{label} {name!r} is not a column")
        elif source_family(schema[name]) != "time":
            problems.append(f"{label} {name!r} is {schema[name]}, not a timestamp")
    for feature in view.features:
        if feature.name not in schema:
            problems.append(f"feature {feature.name!r} is not a column")
        elif not _accepts(feature.dtype, schema[feature.name]):
            problems.append(
                f"feature {feature.name!r} is declared {feature.dtype} but the column is "
                f"{schema[feature.name]}"
            )
        elif (why := _lossy(feature.dtype, schema[feature.name])) is not None:
            problems.append(
                f"feature {feature.name!r} is declared {feature.dtype} but source column "
                f"{feature.name!r} is {schema[feature.name]}: {why}"
            )
    if problems:
        raise InvalidInputError(
            f"{where} does not match its source: {'; '.join(problems)}. "
            f"The source's columns are: {columns}."
        )
