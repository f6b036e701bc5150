"""Cutting a table into chunks at content-defined row boundaries.

Why this scheme (and not fixed-size row groups): a chunk ends after a row
whose 64-bit hash has chosen bits all zero (one row in ``target_rows`` on
average), within ``[target/4, target*4]`` rows. A boundary depends only on
the row itself, never on its position, so appending rows changes only the
last chunk, and inserting or deleting rows in the middle changes only the
chunks around the edit: every other chunk is byte-identical to the one
already stored and is deduplicated by its SHA-256 in the artifact store.
Fixed-size chunks would shift every boundary after an insert, and whole-file
hashing (what ``dvc add`` does per file) stores a second copy after any
append. The row hashes are the same ones the dataset fingerprint uses
(:func:`pandas.util.hash_pandas_object`), so one pass gives both.

>>> import pandas as pd
>>> chunker = Chunker(target_rows=4)
>>> piece = Piece(pd.DataFrame({"x": range(40)}))
>>> parts = list(chunker.feed(piece)) + list(chunker.finish())
>>> sum(p.rows for p in parts), len(parts[0].frame()) == parts[0].rows
(40, True)
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from shipyard.data.layout import index_as_columns
from shipyard.data.rowhash import (
    PLAIN_TYPES,
    is_plain,
    plain_dtypes,
    plain_row_hashes,
    plain_values,
)
from shipyard.errors import InvalidInputError

if TYPE_CHECKING:
    import pandas as pd

#: Rows per chunk on average. 64Ki rows of a few numeric columns make chunks of a
#: few hundred KiB to a few MiB: large enough for Parquet to compress well and for
#: an object store's per-request cost not to dominate, small enough that a 1 %
#: append to a 10M-row table rewrites about one chunk (0.7 %) besides the new rows.
TARGET_ROWS = 1 << 16
# Parquet settings are fixed so equal rows always give equal bytes (and digests).
_COMPRESSION = "zstd"
_CARDINALITY_SAMPLE = 16_384
#: Rows hashed at a time: 7 numeric columns of 64Ki rows keep the temporaries in cache.
_HASH_ROWS = 1 << 16


def row_hashes(frame: pd.DataFrame) -> np.ndarray:
    """One uint64 per row; independent of the index and of how the table was batched.

    A row's hash depends on that row alone, so the frame is hashed in slices of
    ``_HASH_ROWS`` rows: each slice's temporary arrays stay in the CPU cache, which
    halves the time of hashing a 262,144-row batch at once (the values are the same).
    """
    from pandas.util import hash_pandas_object

    if not len(frame):
        return np.empty(0, dtype=np.uint64)
    if len(frame) <= _HASH_ROWS:
        return hash_pandas_object(frame, index=False).to_numpy(dtype=np.uint64)
    out = np.empty(len(frame), dtype=np.uint64)
    for start in range(0, len(frame), _HASH_ROWS):
        part = frame.iloc[start : start + _HASH_ROWS]
        out[start : start + len(part)] = hash_pandas_object(part, index=False).to_numpy()
    return out


class Piece:
    """Consecutive rows of one batch: the Arrow record batch they were read as (Parquet,
    Delta Lake), the DataFrame they were given as, or both.

    A piece read as Arrow is converted to pandas only when :attr:`frame` is first
    asked for. A *plain* piece (see :mod:`shipyard.data.rowhash`) never is: its rows
    are hashed and written from Arrow, so a snapshot of a numeric Parquet file does
    not even import pandas.

    With ``keep_index``, a named index (the frame's, or the one a Parquet file's
    pandas metadata sets) becomes leading columns of :attr:`frame`, and :attr:`index`
    records it (see :mod:`shipyard.data.layout`); once :attr:`frame` is known.
    """

    __slots__ = ("_frame", "arrow", "index", "keep_index", "plain")

    def __init__(
        self,
        frame: pd.DataFrame | None = None,
        arrow: pa.RecordBatch | None = None,
        *,
        plain: bool | None = None,
        keep_index: bool = False,
    ) -> None:
        if frame is None and arrow is None:
            raise ValueError("a piece needs a DataFrame or an Arrow batch")
        self.index: dict[str, list[Any]] | None = None
        self.keep_index = keep_index
        self._frame = None if frame is None else self._indexed(frame)
        self.arrow = arrow
        self.plain = (arrow is not None and is_plain(arrow)) if plain is None else plain

    @property
    def rows(self) -> int:
        return self.arrow.num_rows if self.arrow is not None else len(self._frame)  # type: ignore[arg-type]

    @property
    def frame(self) -> pd.DataFrame:
        """The rows as a DataFrame (converted from the Arrow batch on first use)."""
        if self._frame is None:
            assert self.arrow is not None
            # One block per column: numeric columns without nulls are then views of
            # Arrow's buffers, not copies consolidated into one 2-D block.
            self._frame = self._indexed(self.arrow.to_pandas(split_blocks=True))
        return self._frame

    def _indexed(self, frame: pd.DataFrame) -> pd.DataFrame:
        if not self.keep_index:
            return frame
        frame, self.index = index_as_columns(frame)
        return frame

    def slice(self, start: int, stop: int) -> Piece:
        arrow = None if self.arrow is None else self.arrow.slice(start, stop - start)
        frame = None if self._frame is None else self._frame.iloc[start:stop]
        # A converted frame already holds its index as columns (and has none left).
        return Piece(frame, arrow, plain=self.plain, keep_index=self.keep_index)

    def dtypes(self) -> dict[str, str]:
        """Column name to pandas dtype name, as the fingerprint records the schema."""
        if self.plain:
            assert self.arrow is not None
            return plain_dtypes(self.arrow.schema)
        return {str(c): str(t) for c, t in self.frame.dtypes.items()}


def piece_hashes(piece: Piece) -> np.ndarray:
    """:func:`row_hashes` of the piece's rows (from Arrow, without pandas, when plain)."""
    if piece.plain:
        assert piece.arrow is not None
        return plain_row_hashes(piece.arrow)
    return row_hashes(piece.frame)


def schema_digest(schema: dict[str, str]) -> Any:
    """A SHA-256 started with the columns and their dtypes (sorted, then in order): what
    the fingerprint and every chunk key hash before their row hashes."""
    digest = hashlib.sha256()
    digest.update(repr(sorted(schema.items())).encode())
    digest.update(repr(list(schema)).encode())
    return digest


class Fingerprinter:
    """The dataset content hash, computed batch by batch.

    Equal to :func:`shipyard.tracking.fingerprint.fingerprint` of the whole table,
    so a snapshot and a run's fingerprint of the same frame agree.
    """

    def __init__(self) -> None:
        self._digest = hashlib.sha256()
        self.schema: dict[str, str] | None = None
        self.n_rows = 0

    def start(self, schema: dict[str, str]) -> None:
        """Begin with the table's columns and their pandas dtype names."""
        self.schema = dict(schema)
        self._digest = schema_digest(self.schema)

    def update(self, hashes: np.ndarray) -> None:
        self._digest.update(hashes.tobytes())
        self.n_rows += len(hashes)

    def hexdigest(self) -> str:
        return self._digest.hexdigest()


class Chunk(NamedTuple):
    """A chunk's rows (as the pieces of the batches they came in) and its key: SHA-256
    of its schema and row hashes (what it holds, whatever its Parquet bytes).

    The pieces are joined only by :meth:`frame` or :func:`chunk_table`, which the
    snapshot calls on its worker threads and only for a chunk it has to encode: a
    chunk an earlier version already stored is never copied.
    """

    parts: tuple[Piece, ...]
    key: str

    @property
    def rows(self) -> int:
        return sum(p.rows for p in self.parts)

    def frame(self) -> pd.DataFrame:
        """The chunk's rows as one DataFrame indexed from 0."""
        import pandas as pd

        if len(self.parts) == 1:
            return self.parts[0].frame.reset_index(drop=True)
        return pd.concat([p.frame for p in self.parts], ignore_index=True)


class Chunker:
    """Feed it pieces in row order; it yields chunks cut at content-defined boundaries."""

    def __init__(self, target_rows: int = TARGET_ROWS) -> None:
        if target_rows < 1 or target_rows & (target_rows - 1):
            raise ValueError("target_rows must be a power of two")
        self.mask = np.uint64(target_rows - 1)
        self.min_rows = max(1, target_rows // 4)
        self.max_rows = target_rows * 4
        self.fingerprint = Fingerprinter()
        self._pending: list[Piece] = []
        self._pending_rows = 0
        self._pending_key = self._new_key()

    def feed(self, piece: Piece, hashes: np.ndarray | None = None) -> Iterator[Chunk]:
        """Take the next rows (and their :func:`piece_hashes` if already computed);
        yield every chunk they complete."""
        if self.fingerprint.schema is None:
            # Before anything is hashed into the fingerprint or stored: its schema is a
            # mapping, which would silently keep one of two columns of the same name.
            check_unique_columns(piece.arrow.schema.names if piece.arrow else piece.frame.columns)
            self.fingerprint.start(piece.dtypes())
            self._pending_key = self._new_key()
        if hashes is None:
            hashes = piece_hashes(piece)
        self.fingerprint.update(hashes)
        rows = piece.rows

        # The cut rule reads high bits of the row hash (bits 40 and up).
        marks = np.flatnonzero(((hashes >> np.uint64(40)) & self.mask) == 0)
        start = 0
        for end in [*(int(m) + 1 for m in marks), rows]:
            while end - start + self._pending_rows >= self.max_rows:
                cut = start + self.max_rows - self._pending_rows
                yield self._take(piece.slice(start, cut), hashes[start:cut])
                start = cut
            if end == rows:
                break
            if end - start + self._pending_rows >= self.min_rows:
                yield self._take(piece.slice(start, end), hashes[start:end])
                start = end
        if start < rows:
            self._pending.append(piece.slice(start, rows))
            self._pending_key.update(hashes[start:].tobytes())
            self._pending_rows += rows - start

    def finish(self) -> Iterator[Chunk]:
        """The rows after the last boundary, as the final chunk."""
        if self._pending_rows:
            yield self._take(None, None)

    def _take(self, tail: Piece | None, tail_hashes: np.ndarray | None) -> Chunk:
        parts = [*self._pending, *([] if tail is None else [tail])]
        if tail_hashes is not None:
            self._pending_key.update(tail_hashes.tobytes())
        key = self._pending_key.hexdigest()
        self._pending, self._pending_rows = [], 0
        self._pending_key = self._new_key()
        return Chunk(tuple(parts), key)

    def _new_key(self) -> Any:
        return schema_digest(self.fingerprint.schema or {})


def chunk_table(chunk: Chunk) -> pa.Table:
    """The chunk as the Arrow table :func:`chunk_bytes` writes.

    A table of plain columns (booleans, integers, floats; no nulls) is written
    without pandas' schema metadata: nothing in it needs restoring, so reading
    it back gives the same DataFrame, and its bytes depend on the rows alone
    (not on the pandas version). When every piece is plain and no float is NaN
    (which pandas would write as null), that table is the pieces' Arrow batches
    joined, never converted to pandas and back: the same table, so the same bytes
    and digest, as the same rows snapshotted from a DataFrame or a SQL query.
    """
    if all(piece.plain and not _has_nan(piece.arrow) for piece in chunk.parts):
        batches = [piece.arrow for piece in chunk.parts]
        table = pa.Table.from_batches(batches)  # type: ignore[arg-type]
        # Rows from two batches are joined into one array per column, as from_pandas
        # makes them: the writer cuts pages per array, so the bytes would differ.
        table = table.combine_chunks() if len(batches) > 1 else table
        # The fields as from_pandas makes them: nullable, no metadata of the file's.
        schema = pa.schema([pa.field(f.name, f.type) for f in table.schema])
        return pa.Table.from_arrays(table.columns, schema=schema)
    return frame_table(chunk.frame())


def frame_table(frame: pd.DataFrame) -> pa.Table:
    """``frame`` as the Arrow table a chunk of its rows is written as (see
    :func:`chunk_table`)."""
    check_unique_columns(frame.columns)
    try:
        table = pa.Table.from_pandas(frame, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
        error = _unstorable(frame)
        if error is None:
            raise
        raise error from exc
    # Arrow stores an object column of bytes and text as bytes, text encoded: refused,
    # or the text would come back as bytes under an unchanged fingerprint.
    for field, (name, column) in zip(table.schema, frame.items(), strict=True):
        binary = pa.types.is_binary(field.type) or pa.types.is_large_binary(field.type)
        if binary and any(isinstance(value, str) for value in column):
            raise _mixed_error({repr(str(name)): "bytes, str"})
    types = zip(table.schema, frame.dtypes, strict=True)
    plain = (
        all(isinstance(c, str) for c in frame.columns)
        and frame.columns.is_unique
        and frame.columns.name is None
        and all(str(dtype) == PLAIN_TYPES.get(field.type) for field, dtype in types)
        and not any(column.null_count for column in table.columns)
    )
    return table.replace_schema_metadata(None) if plain else table


def check_unique_columns(columns: Iterable[Any]) -> None:
    """Refuse a table with two columns of the same name (Parquet and the schema a
    version records hold one column per name)."""
    seen: set[str] = set()
    twice: list[str] = []
    for column in map(str, columns):
        if column in seen and column not in twice:
            twice.append(column)
        seen.add(column)
    if twice:
        raise InvalidInputError(
            f"Column name(s) {', '.join(map(repr, twice))} appear more than once: a snapshot "
            "needs unique column names; rename or drop the duplicates first."
        )


def _unstorable(frame: pd.DataFrame) -> InvalidInputError | None:
    """Why Arrow could not convert ``frame``, naming the object columns at fault: values
    of several types (``'a' (int, str)``), or integers beyond 64 bits. Looked for only
    after a conversion failed."""
    mixed: dict[str, str] = {}
    huge: list[str] = []
    for name, column in frame.items():
        if column.dtype != object:
            continue
        try:
            pa.array(column, from_pandas=True)
        except OverflowError:
            huge.append(repr(str(name)))
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            kinds = sorted({type(v).__name__ for v in column.dropna()})
            mixed[repr(str(name))] = ", ".join(kinds)
    if huge:
        return InvalidInputError(
            f"Column(s) {', '.join(huge)} hold integers too large for 64 bits: a snapshot "
            "stores 64-bit integers; convert them first, e.g. with .astype(str)."
        )
    return _mixed_error(mixed) if mixed else None


def _mixed_error(mixed: dict[str, str]) -> InvalidInputError:
    first = next(iter(mixed))
    listed = ", ".join(f"{name} ({kinds})" for name, kinds in mixed.items())
    return InvalidInputError(
        f"Column(s) {listed} mix values of several types: a snapshot needs one type "
        f"per column; convert first, e.g. df[{first}] = df[{first}].astype(str)."
    )


def _has_nan(batch: pa.RecordBatch | None) -> bool:
    floats = (c for c in batch.columns if pa.types.is_floating(c.type)) if batch else ()
    return any(pc.any(pc.is_nan(c)).as_py() for c in floats)


def chunk_bytes(chunk: pd.DataFrame | Chunk) -> bytes:
    """The chunk as Parquet bytes; equal rows and dtypes always give equal bytes.

    Encodings are picked per column from the chunk's own values (so still a pure
    function of the rows): a dictionary only for columns with few distinct values,
    where it pays; delta encoding for the other integer columns (ids, timestamps),
    which a per-chunk dictionary would bloat. Small chunks then compress as well as
    one big Parquet file does. No column statistics are written: nothing reads a
    chunk by its min/max, and computing them was 30 % of the encoding's CPU time.
    """
    table = chunk_table(chunk) if isinstance(chunk, Chunk) else frame_table(chunk)
    # Judged on the chunk's first rows: cheap, and still a function of the rows alone.
    head = table.slice(0, _CARDINALITY_SAMPLE)
    limit = max(1, head.num_rows // 4)
    low = [
        field.name
        for field, column in zip(head.schema, head.columns, strict=True)
        if _distinct(column) <= limit
    ]
    delta = {
        f.name: "DELTA_BINARY_PACKED"
        for f in table.schema
        if pa.types.is_integer(f.type) and f.name not in low
    }
    # Arrow's own buffer, not a Python file object: writing to one took the GIL for
    # every page written, from every thread encoding at once.
    sink = pa.BufferOutputStream()
    pq.write_table(
        table,
        sink,
        compression=_COMPRESSION,
        use_dictionary=low,
        column_encoding=delta or None,
        write_statistics=False,
    )
    return sink.getvalue().to_pybytes()


def _distinct(column: pa.ChunkedArray) -> int:
    """Distinct values, nulls counted as one; a column Arrow cannot hash (lists,
    structs) counts as all distinct, so it gets no dictionary.

    A plain column without nulls is counted by sorting a NumPy view of it: seven
    times faster than Arrow's hash-based count on 16Ki rows (a written table holds
    no float NaN, which would not equal itself: pandas writes NaN as null)."""
    array = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    if array.type in PLAIN_TYPES and not array.null_count:
        values = np.sort(plain_values(array))
        return int(np.count_nonzero(values[1:] != values[:-1])) + min(1, len(values))
    try:
        return int(pc.count_distinct(array, mode="all").as_py())
    except pa.ArrowNotImplementedError:
        return len(array)


def read_chunk(data: bytes) -> pd.DataFrame:
    return pq.read_table(io.BytesIO(data)).to_pandas()


__all__ = [
    "TARGET_ROWS",
    "Chunk",
    "Chunker",
    "Fingerprinter",
    "Piece",
    "chunk_bytes",
    "chunk_table",
    "frame_table",
    "piece_hashes",
    "read_chunk",
    "row_hashes",
]
