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
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from shipyard.ahead import mapped_ahead, prefetched
from shipyard.data.chunking import Piece
from shipyard.data.rowhash import pandas_metadata
from shipyard.errors import InvalidInputError, TableError
from shipyard.extras import require_extra
from shipyard.tables.files import check_readable, open_file
from shipyard.tables.locations import ACCEPTED, TableLocation, is_table_file, locate, table_error

if TYPE_CHECKING:
    import pandas as pd

#: Rows per batch read from Parquet and SQL.
BATCH_ROWS = 262_144
#: A local Parquet file whose row groups are at most this large decoded has them
#: decoded whole, ``_READERS`` at a time (pandas writes up to 1Mi rows per group).
ROW_GROUP_BYTES = 128 << 20
_READERS = 2
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


def _sql_location(source: str) -> TableLocation | None:
    """``source`` as a SQL table or query (``URL#TABLE``, ``URL#SELECT ...``), else None."""
    if "://" not in source or source.startswith(("s3", "file")):
        return None
    where = locate(source)
    return where if where.is_sql else None


def is_file_source(source: str) -> bool:
    """A file, folder or glob (local or ``s3://``): not SQL, not a local Delta Lake table."""
    return not is_delta_table(source) and _sql_location(source) is None


def read_ahead(source: str, *, storage_options: dict[str, Any] | None = None) -> Iterator[Piece]:
    """:func:`iter_pieces` of ``source``, already being read on a thread of its own.

    ``shipyard data snapshot`` starts reading a file this way before it opens the
    store, so decoding the first row groups overlaps importing the database layer.
    """
    return prefetched(iter_pieces(source, storage_options=storage_options))


def iter_pieces(source: str, *, storage_options: dict[str, Any] | None = None) -> Iterator[Piece]:
    """The rows of ``source`` in order, in bounded batches (files of a folder in name
    order); a Parquet file's as the Arrow batches they were read as, so rows to store
    need no conversion to pandas and back."""
    options = dict(storage_options or {})
    sql = _sql_location(source) is not None
    first: Piece | None = None
    first_file = source
    for where, piece in _raw_pieces(source, options):
        # Later batches keep the first batch's types (SQL infers them per fetch, files
        # may differ), so rows hash alike however the table was batched.
        if first is None:
            first, first_file = piece, where
        elif not _same_types(piece, first):
            frame, dtypes = piece.frame, first.frame.dtypes
            if set(frame.columns) == set(dtypes.index) and frame.columns.is_unique:
                # The same columns in another order: the first file's order (a row's
                # hash depends on its columns' order).
                frame = frame[list(dtypes.index)]
            if list(frame.columns) != list(dtypes.index):
                raise InvalidInputError(
                    f"The files of {source!r} do not share one set of columns: "
                    f"{list(dtypes.index)} in {first_file}, {list(frame.columns)} in {where}."
                )
            types = _common_types(frame, dtypes.to_dict())
            # Where the piece came from, when the source is several files.
            named = repr(source) if where == source else f"{where} (in {source!r})"
            cast = Piece(_cast_losslessly(frame, types, named, sql=sql))
            cast.index = piece.index
            piece = cast
        yield piece


def _cast_losslessly(
    frame: pd.DataFrame, dtypes: dict[str, Any], source: str, *, sql: bool
) -> pd.DataFrame:
    """``frame`` with the first rows' column types, when every value survives the change
    (integers into floats, say); otherwise a clear error, never a truncated value.

    A SQL result is typed one fetch of ``BATCH_ROWS`` rows at a time: an integer
    column whose first NULL comes after the first fetch cannot be typed as pandas
    types the whole result (floats) without reading it twice, so the error says how
    to type it in the query."""
    changed = [c for c, t in dtypes.items() if frame[c].dtype != t]

    def refuse(column: str, example: object = None) -> InvalidInputError:
        found = f" (e.g. {example!r})" if example is not None else ""
        remedy = (
            f"Give it one type in the query, e.g. CAST({column} AS REAL) for an integer "
            "column with NULLs."
            if sql
            else "Give the column one type in every file, or snapshot the files one at a time."
        )
        return InvalidInputError(
            f"Column {column!r} of {source} changes type: {dtypes[column]} in the first "
            f"rows, {frame[column].dtype} further on, with values {dtypes[column]} cannot "
            f"hold{found}. {remedy}"
        )

    converted = frame.copy()
    for column in changed:
        try:
            converted[column] = frame[column].astype(dtypes[column])
            back = converted[column].astype(frame[column].dtype)
        except (ValueError, TypeError, OverflowError) as exc:
            raise refuse(column) from exc
        if not back.equals(frame[column]):
            differs = back.ne(frame[column]) & frame[column].notna()
            value: Any = frame[column][differs].iloc[0] if differs.any() else None
            raise refuse(column, value.item() if hasattr(value, "item") else value)
    return converted


def _common_types(frame: pd.DataFrame, first: dict[Any, Any]) -> dict[Any, Any]:
    """The first batch's dtypes to cast ``frame`` to, except that a categorical column
    keeps the categories of its own rows: cast to the first batch's categories, a value
    the first batch did not have would become NaN. The snapshot records the union of
    all batches' categories (see :mod:`shipyard.data.layout`)."""
    import pandas as pd

    types = dict(first)
    for column, dtype in first.items():
        if isinstance(dtype, pd.CategoricalDtype):
            own = frame[column].dtype
            types[column] = own if isinstance(own, pd.CategoricalDtype) else "category"
    return types


def _same_types(piece: Piece, first: Piece) -> bool:
    """Whether the piece's rows have the first piece's pandas dtypes (found from the
    Arrow types alone for two plain pieces, without converting either)."""
    if piece.plain and first.plain and piece.arrow and first.arrow:
        return bool(piece.arrow.schema.equals(first.arrow.schema))
    return bool(piece.frame.dtypes.equals(first.frame.dtypes))


def _raw_pieces(source: str, options: dict[str, Any]) -> Iterator[tuple[str, Piece]]:
    """Each piece of ``source`` with the file it came from (``source`` itself for SQL)."""
    where = _sql_location(source)
    if where is not None:
        from shipyard.tables.chunks import SqlSource

        sql = SqlSource(where.path, table=where.table, query=where.query)
        columns = sql.columns()
        for frame in sql.chunks(columns, BATCH_ROWS):
            yield source, Piece(frame)
        return
    for path in _files(source):
        where = locate(path)
        if where.format == "parquet":
            with _open_parquet(where, options) as handle:
                try:
                    parquet = pq.ParquetFile(handle)
                    if isinstance(handle, pa.OSFile) and _row_groups_fit(parquet.metadata):
                        batches = _read_row_groups(where.path, parquet.metadata)
                    else:
                        # pyarrow's decoding pool cost 3x the CPU time for the same rows
                        # on a busy machine (measured on bench/data.py): one thread.
                        batches = parquet.iter_batches(batch_size=BATCH_ROWS, use_threads=False)
                    ranged = _named_range(parquet.schema_arrow)
                    offset = 0
                    for batch in batches:
                        if ranged is None:
                            yield path, Piece(arrow=batch, keep_index=True)
                        else:
                            yield path, _with_range(batch, ranged, offset)
                        offset += batch.num_rows
                    if not offset:  # its columns, as a CSV file with only a header gives them
                        empty = pa.RecordBatch.from_pylist([], parquet.schema_arrow)
                        yield path, Piece(arrow=empty, keep_index=True)
                except (OSError, ValueError) as exc:
                    raise TableError(f"Cannot read {path!r} as Parquet: {exc}") from exc
        else:
            from shipyard.tables.frames import read_table

            yield path, Piece(read_table(where, storage_options=options), keep_index=True)


def _named_range(schema: pa.Schema) -> dict[str, Any] | None:
    """The named RangeIndex a Parquet file's pandas metadata describes, if any: pandas
    stores it as metadata (start, stop, step), not as a column."""
    try:
        meta = pandas_metadata(schema)
    except ValueError:
        return None
    indexes = (meta or {}).get("index_columns", [])
    for index in indexes:
        if isinstance(index, dict) and index.get("kind") == "range" and index.get("name"):
            return index
    return None


def _with_range(batch: pa.RecordBatch, ranged: dict[str, Any], offset: int) -> Piece:
    """A batch of a file with a named RangeIndex, its index set to the batch's part of
    the range (pyarrow restores the range only for a batch holding the whole file)."""
    import pandas as pd

    frame = batch.to_pandas(split_blocks=True)
    start, step = int(ranged.get("start", 0)), int(ranged.get("step", 1))
    first = start + step * offset
    frame.index = pd.RangeIndex(
        first, first + step * batch.num_rows, step, name=str(ranged["name"])
    )
    return Piece(frame, keep_index=True)


def _row_groups_fit(metadata: pq.FileMetaData) -> bool:
    """Whether the file's row groups may be decoded whole, a few at a time: there are
    several, and none is larger than ``ROW_GROUP_BYTES`` decoded."""
    groups = [metadata.row_group(i) for i in range(metadata.num_row_groups)]
    return len(groups) > 1 and all(g.total_byte_size <= ROW_GROUP_BYTES for g in groups)


def _read_row_groups(path: str, metadata: pq.FileMetaData) -> Iterator[pa.RecordBatch]:
    """A local Parquet file's batches in order, its row groups decoded on threads of
    their own, ``_READERS`` at a time.

    Decoding is most of a snapshot's work on the rows it has stored before (a
    second snapshot re-reads every row to fingerprint it): on one thread it was the
    longest path. Each reader opens the file for itself (Arrow reads it with
    ``pread``, without the GIL) and reuses the footer already parsed; at most one row
    group per reader waits decoded, so memory stays bounded by ``ROW_GROUP_BYTES``.
    """

    def decode(index: int) -> list[pa.RecordBatch]:
        with pa.OSFile(path) as handle:
            table = pq.ParquetFile(handle, metadata=metadata).read_row_group(
                index, use_threads=False
            )
        return table.to_batches()

    with ThreadPoolExecutor(_READERS, thread_name_prefix="shipyard-parquet") as pool:
        groups = range(metadata.num_row_groups)
        for batches in mapped_ahead(pool, decode, groups, ahead=_READERS):
            yield from batches


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


def iter_delta(table: Any) -> Iterator[Piece]:
    """A Delta table's rows in bounded batches, in its files' order."""
    import pyarrow.dataset as ds

    dataset: ds.Dataset = table.to_pyarrow_dataset()
    for batch in dataset.to_batches(batch_size=BATCH_ROWS):
        if batch.num_rows:
            yield Piece(arrow=batch)


__all__ = [
    "BATCH_ROWS",
    "DeltaSpec",
    "delta_frames",
    "is_delta_table",
    "is_file_source",
    "iter_delta",
    "iter_pieces",
    "read_ahead",
]
