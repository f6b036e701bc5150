"""What a snapshot reads: a DataFrame, a file, a folder or glob of files, a SQL table or
query, or a Delta Lake table at a version or time.

Parquet files and SQL are streamed in batches (a 10M-row table never sits in
memory whole); CSV and JSON files are read whole so pandas infers their column
types once for the whole file, as ``read_table`` does everywhere else.

>>> describe_source("data/*.parquet")                       # doctest: +SKIP
"""

from __future__ import annotations

import glob as globbing
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from shipyard.errors import InvalidInputError, TableError
from shipyard.extras import require_extra
from shipyard.tables import SqlSource, locate, read_table
from shipyard.tables.files import open_file
from shipyard.tables.locations import ACCEPTED, is_table_file

#: Rows per batch read from Parquet and SQL.
BATCH_ROWS = 262_144
_GLOB = set("*?[")


@dataclass(frozen=True)
class DeltaSpec:
    """A Delta Lake table and the version (or time) to read it at; None means the newest."""

    uri: str
    version: int | None = None
    as_of: datetime | None = None


def is_delta_table(path: str) -> bool:
    """A local folder holding a ``_delta_log`` is a Delta table."""
    return "://" not in path and (Path(path) / "_delta_log").is_dir()


def _files(path: str) -> list[str]:
    if _GLOB & set(path):
        files = sorted(f for f in globbing.glob(path, recursive=True) if is_table_file(f))
        if not files:
            raise InvalidInputError(f"No table files match {path!r}. {ACCEPTED}")
        return files
    if "://" not in path and Path(path).is_dir():
        found = sorted(str(p) for p in Path(path).rglob("*") if p.is_file() and is_table_file(p))
        if not found:
            raise InvalidInputError(f"Folder {path} holds no table files. {ACCEPTED}")
        return found
    return [path]


def iter_frames(
    source: str, *, storage_options: dict[str, Any] | None = None
) -> Iterator[pd.DataFrame]:
    """The rows of ``source`` in order, in bounded batches (files of a folder in name order)."""
    options = dict(storage_options or {})
    first: pd.Series | None = None
    for frame in _raw_frames(source, options):
        # Later batches keep the first batch's types (SQL infers them per fetch), so
        # rows hash alike however the table was batched.
        if first is None:
            first = frame.dtypes
        elif not frame.dtypes.equals(first):
            if list(frame.columns) != list(first.index):
                raise InvalidInputError(
                    f"The files of {source!r} do not share one set of columns: "
                    f"{list(first.index)} then {list(frame.columns)}."
                )
            frame = frame.astype(first.to_dict())
        yield frame


def _raw_frames(source: str, options: dict[str, Any]) -> Iterator[pd.DataFrame]:
    where = locate(source) if "://" in source and not source.startswith(("s3", "file")) else None
    if where is not None and where.is_sql:
        sql = SqlSource(where.path, table=where.table, query=where.query)
        columns = sql.columns()
        yield from sql.chunks(columns, BATCH_ROWS)
        return
    for path in _files(source):
        where = locate(path)
        if where.format == "parquet":
            with open_file(where, options) as handle:
                try:
                    parquet = pq.ParquetFile(handle)
                    for batch in parquet.iter_batches(batch_size=BATCH_ROWS):
                        yield batch.to_pandas()
                except (OSError, ValueError) as exc:
                    raise TableError(f"Cannot read {path!r} as Parquet: {exc}") from exc
        else:
            yield read_table(where, storage_options=options)


def delta_frames(spec: DeltaSpec, *, storage_options: dict[str, Any] | None = None) -> Any:
    """The ``deltalake.DeltaTable`` at the version or time ``spec`` names."""
    require_extra("delta", f"reading the Delta Lake table {spec.uri}")
    from deltalake import DeltaTable
    from deltalake.exceptions import DeltaError, TableNotFoundError

    options = _delta_options(storage_options)
    try:
        table = DeltaTable(spec.uri, version=spec.version, storage_options=options or None)
        if spec.as_of is not None:
            # A time without a zone is read as UTC, like every time Shipyard prints.
            when = spec.as_of if spec.as_of.tzinfo else spec.as_of.replace(tzinfo=UTC)
            table.load_as_version(when)
    except TableNotFoundError as exc:
        raise TableError(f"Cannot read {spec.uri!r}: it is not a Delta Lake table.") from exc
    except (DeltaError, OSError, ValueError) as exc:
        raise TableError(f"Cannot read the Delta Lake table {spec.uri!r}: {exc}") from exc
    return table


def _delta_options(storage_options: dict[str, Any] | None) -> dict[str, str]:
    """fsspec-style options (``client_kwargs.endpoint_url``) as delta-rs wants them."""
    endpoint = (storage_options or {}).get("client_kwargs", {}).get("endpoint_url")
    if not endpoint:
        return {}
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ALLOW_HTTP": "true",
        "AWS_S3_ALLOW_UNSAFE_RENAME": "true",
    }


def iter_delta(table: Any) -> Iterator[pd.DataFrame]:
    """A Delta table's rows in bounded batches, in its files' order."""
    import pyarrow.dataset as ds

    dataset: ds.Dataset = table.to_pyarrow_dataset()
    for batch in dataset.to_batches(batch_size=BATCH_ROWS):
        if batch.num_rows:
            yield batch.to_pandas()


__all__ = ["BATCH_ROWS", "DeltaSpec", "delta_frames", "is_delta_table", "iter_delta", "iter_frames"]
