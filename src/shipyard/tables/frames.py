"""Reading a whole table into a DataFrame, whatever its format and wherever it is.

What ``shipyard drift``, ``shipyard validate``, feedback files and the loop's
training data use. Unlike the chunked CSV reader, pandas infers column types
here: a whole table is in hand, so one odd value does not stop a stream.

>>> read_table("holdout.csv.gz")                         # doctest: +SKIP
>>> read_table("s3://bucket/current.parquet", storage_options={...})  # doctest: +SKIP
>>> read_table("sqlite:///shop.db#SELECT * FROM visits")  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import IO, Any

import pandas as pd

from shipyard.tables.chunks import SqlSource, parse_json
from shipyard.tables.files import READ_ERRORS, open_file
from shipyard.tables.locations import TableLocation, locate, table_error
from shipyard.tables.missing import pandas_csv_options

# Rows per fetch when a whole SQL table is read: bounded buffers, few round trips.
_SQL_FETCH_ROWS = 50_000
_FORMAT_NAMES = {
    "csv": "CSV",
    "tsv": "TSV",
    "parquet": "Parquet",
    "jsonl": "JSON lines",
    "json": "JSON",
}


def read_table(
    source: str | Path | TableLocation,
    *,
    fmt: str | None = None,
    storage_options: dict[str, Any] | None = None,
    text_columns: Collection[str] = (),
) -> pd.DataFrame:
    """Read the table at ``source`` (a path, ``s3://`` URL or ``URL#table``) whole.

    ``fmt`` overrides the format the extension implies. ``text_columns`` are
    read as text in text formats (CSV, JSON), so an id like ``007`` stays
    ``"007"``. Raises :class:`~shipyard.errors.TableError` naming the table and
    the formats Shipyard reads when it cannot be read.
    """
    where = source if isinstance(source, TableLocation) else locate(source, fmt=fmt)
    if where.is_sql:
        return _read_sql(where)
    with open_file(where, dict(storage_options or {})) as handle:
        try:
            return _parse(where, handle, dtype=dict.fromkeys(text_columns, str) or None)
        except READ_ERRORS as exc:
            raise table_error(
                where.describe(),
                f"it is not a readable {_FORMAT_NAMES[where.format]} file ({_first_line(exc)})",
            ) from exc


def _parse(where: TableLocation, handle: IO[bytes], *, dtype: dict[str, Any] | None) -> Any:
    kind = where.format
    if kind == "parquet":
        return pd.read_parquet(handle)
    if kind in ("csv", "tsv"):
        return pd.read_csv(
            handle, sep="\t" if kind == "tsv" else ",", dtype=dtype, **pandas_csv_options()
        )
    return parse_json(handle.read(), kind=kind, dtype=dtype)


def _read_sql(where: TableLocation) -> pd.DataFrame:
    source = SqlSource(where.path, table=where.table, query=where.query)
    columns = source.columns()
    frames = list(source.chunks(columns, _SQL_FETCH_ROWS))
    if not frames:
        return pd.DataFrame(columns=columns)
    return pd.concat(frames, ignore_index=True)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
