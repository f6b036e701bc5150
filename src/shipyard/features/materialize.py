"""Materialization: each key's newest source row in a time window, into the online store.

The window is ``(start, end]`` in event time (UTC). An incremental run starts
where the last one ended (the watermark kept in the metadata database), so
it reads only newer source rows: DuckDB pushes the time filter into the
Parquet scan. Writing keeps the newer of the stored and the new record, so a
run repeated, or a window older than the last, changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import duckdb
import pyarrow as pa

from shipyard.features.offline import micros
from shipyard.features.online import Record
from shipyard.features.registry import AppliedView
from shipyard.features.sources import SQL_TYPES, quote

__all__ = ["latest_rows"]

_BATCH = 10_000


def _literal(moment: datetime) -> str:
    """Microseconds since the epoch (UTC), as the time columns are compared."""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    delta = aware - datetime(1970, 1, 1, tzinfo=UTC)
    return str((delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds)


def latest_rows(
    con: duckdb.DuckDBPyConnection,
    applied: AppliedView,
    alias: str,
    *,
    start: datetime | None,
    end: datetime,
) -> Iterator[list[Record]]:
    """Batches of records: per key, its newest row with ``start < event <= end``."""
    src, view = applied.source, applied.view
    keys = ", ".join(quote(k) for k in applied.join_keys)
    event = micros(src.timestamp_field)
    created = micros(src.created_timestamp_column) if src.created_timestamp_column else "NULL"
    features = ", ".join(
        # Timestamps travel as ISO text (JSON has no time type); the reader casts back.
        f"CAST({quote(f.name)} AS {'VARCHAR' if f.dtype == 'timestamp' else SQL_TYPES[f.dtype]})"
        f" AS {quote(f.name)}"
        for f in view.features
    )
    window = f"{event} <= {_literal(end)}"
    if start is not None:
        window += f" AND {event} > {_literal(start)}"
    sql = (
        f"SELECT {keys}, {event} / 1e6 AS __event, {created} / 1e6 "
        f"AS __created, {features} FROM {quote(alias)} WHERE {event} IS NOT NULL AND {window} "
        f"QUALIFY row_number() OVER (PARTITION BY {keys} ORDER BY {event} DESC, "
        f"{created} DESC NULLS LAST) = 1"
    )
    reader = con.sql(sql).to_arrow_reader(_BATCH)
    names = [f.name for f in view.features]
    for batch in reader:
        yield _records(batch, applied.join_keys, names)


def _records(batch: pa.RecordBatch, keys: list[str], names: list[str]) -> list[Record]:
    data = batch.to_pydict()
    key_columns = [data[k] for k in keys]
    return [
        Record(
            tuple(str(column[i]) for column in key_columns),
            float(data["__event"][i]),
            None if data["__created"][i] is None else float(data["__created"][i]),
            {name: data[name][i] for name in names},
        )
        for i in range(batch.num_rows)
    ]
