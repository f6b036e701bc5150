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
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from shipyard.data.chunking import Piece
from shipyard.errors import InvalidInputError, TableError
from shipyard.extras import require_extra
from shipyard.tables import SqlSource, locate, read_table
from shipyard.tables.files import check_readable, open_file
from shipyard.tables.locations import ACCEPTED, TableLocation, is_table_file, table_error

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


def iter_pieces(source: str, *, storage_options: dict[str, Any] | None = None) -> Iterator[Piece]:
    """The rows of ``source`` in order, in bounded batches (files of a folder in name
    order), each with the Arrow batch it was converted from (Parquet files; None for
    other sources), so rows to store need no conversion back to Arrow."""
    options = dict(storage_options or {})
    first: pd.Series | None = None
    for piece in _raw_pieces(source, options):
        frame = piece.frame
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
            piece = Piece(frame.astype(first.to_dict()))
        yield piece


def _raw_pieces(source: str, options: dict[str, Any]) -> Iterator[Piece]:
    where = locate(source) if "://" in source and not source.startswith(("s3", "file")) else None
    if where is not None and where.is_sql:
        sql = SqlSource(where.path, table=where.table, query=where.query)
        columns = sql.columns()
        for frame in sql.chunks(columns, BATCH_ROWS):
            yield Piece(frame)
        return
    for path in _files(source):
        where = locate(path)
        if where.format == "parquet":
            with _open_parquet(where, options) as handle:
                try:
                    parquet = pq.ParquetFile(handle)
                    # One thread per file: pyarrow's decoding pool cost 3x the CPU time
                    # for the same rows on a busy machine (measured on bench/data.py);
                    # the snapshot's own threads encode chunks meanwhile.
                    batches = parquet.iter_batches(batch_size=BATCH_ROWS, use_threads=False)
                    for batch in batches:
                        yield Piece(_to_pandas(batch), batch)
                except (OSError, ValueError) as exc:
                    raise TableError(f"Cannot read {path!r} as Parquet: {exc}") from exc
        else:
            yield Piece(read_table(where, storage_options=options))


def _open_parquet(where: TableLocation, options: dict[str, Any]) -> AbstractContextManager[Any]:
    """The file for pyarrow: a plain local file as Arrow's own file, which reads without
    the GIL and into Arrow's buffers (a Python file object took the GIL for every read,
    from the thread decoding, and copied each read once more); others through fsspec."""
    if where.compression is None and "://" not in where.path:
        check_readable(where)
        try:
            return pa.OSFile(where.path)
        except OSError as exc:
            raise table_error(where.describe(), f"it cannot be opened: {exc}") from exc
    return open_file(where, options)


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
            yield _to_pandas(batch)


def _to_pandas(batch: pa.RecordBatch) -> pd.DataFrame:
    """The batch as a DataFrame, one block per column: numeric columns without nulls are
    then views of Arrow's buffers, not copies consolidated into one 2-D block (the same
    values and dtypes either way)."""
    return batch.to_pandas(split_blocks=True)


__all__ = [
    "BATCH_ROWS",
    "DeltaSpec",
    "delta_frames",
    "is_delta_table",
    "iter_delta",
    "iter_pieces",
]
