"""Cutting a table into chunks at content-defined row boundaries.

Why this scheme (and not fixed-size row groups): a chunk ends after a row
whose 64-bit hash has its low bits all zero (one row in ``target_rows`` on
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
>>> parts = list(chunker.feed(pd.DataFrame({"x": range(40)}))) + list(chunker.finish())
>>> sum(p.rows for p in parts), len(parts[0].frame()) == parts[0].rows
(40, True)
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pandas.util import hash_pandas_object

#: Rows per chunk on average. 64Ki rows of a few numeric columns make chunks of a
#: few hundred KiB to a few MiB: large enough for Parquet to compress well and for
#: an object store's per-request cost not to dominate, small enough that a 1 %
#: append to a 10M-row table rewrites about one chunk (0.7 %) besides the new rows.
TARGET_ROWS = 1 << 16
# Parquet settings are fixed so equal rows always give equal bytes (and digests).
_COMPRESSION = "zstd"
_CARDINALITY_SAMPLE = 16_384
# NumPy dtype kinds whose Arrow type from_pandas derives from the dtype alone (bool,
# integers, floats, datetimes, durations), never from the values.
_PLAIN_KINDS = frozenset("biufmM")
#: Rows hashed at a time: 7 numeric columns of 64Ki rows keep the temporaries in cache.
_HASH_ROWS = 1 << 16


def row_hashes(frame: pd.DataFrame) -> np.ndarray:
    """One uint64 per row; independent of the index and of how the table was batched.

    A row's hash depends on that row alone, so the frame is hashed in slices of
    ``_HASH_ROWS`` rows: each slice's temporary arrays stay in the CPU cache, which
    halves the time of hashing a 262,144-row batch at once (the values are the same).
    """
    if not len(frame):
        return np.empty(0, dtype=np.uint64)
    if len(frame) <= _HASH_ROWS:
        return hash_pandas_object(frame, index=False).to_numpy(dtype=np.uint64)
    out = np.empty(len(frame), dtype=np.uint64)
    for start in range(0, len(frame), _HASH_ROWS):
        part = frame.iloc[start : start + _HASH_ROWS]
        out[start : start + len(part)] = hash_pandas_object(part, index=False).to_numpy()
    return out


class Fingerprinter:
    """The dataset content hash, computed batch by batch.

    Equal to :func:`shipyard.tracking.fingerprint.fingerprint` of the whole table,
    so a snapshot and a run's fingerprint of the same frame agree.
    """

    def __init__(self) -> None:
        self._digest = hashlib.sha256()
        self.schema: dict[str, str] | None = None
        self.n_rows = 0

    def start(self, frame: pd.DataFrame) -> None:
        self.schema = {str(c): str(t) for c, t in frame.dtypes.items()}
        self._digest.update(repr(sorted(self.schema.items())).encode())
        self._digest.update(repr(list(self.schema)).encode())

    def update(self, hashes: np.ndarray) -> None:
        self._digest.update(hashes.tobytes())
        self.n_rows += len(hashes)

    def hexdigest(self) -> str:
        return self._digest.hexdigest()


class Piece(NamedTuple):
    """Consecutive rows of one batch: as a DataFrame and, when the source was read as
    Arrow (Parquet, Delta Lake), as the Arrow record batch they came from."""

    frame: pd.DataFrame
    arrow: pa.RecordBatch | None = None


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
        return sum(len(p.frame) for p in self.parts)

    def frame(self) -> pd.DataFrame:
        """The chunk's rows as one DataFrame indexed from 0."""
        if len(self.parts) == 1:
            return self.parts[0].frame.reset_index(drop=True)
        return pd.concat([p.frame for p in self.parts], ignore_index=True)

    def head(self, rows: int) -> pd.DataFrame:
        """The chunk's first ``rows`` rows (joining only the pieces they span)."""
        frames, taken = [], 0
        for piece in self.parts:
            if taken >= rows:
                break
            frames.append(piece.frame.iloc[: rows - taken])
            taken += len(frames[-1])
        return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


class Chunker:
    """Feed it frames in row order; it yields frames cut at content-defined boundaries."""

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

    def feed(
        self,
        frame: pd.DataFrame,
        arrow: pa.RecordBatch | None = None,
        hashes: np.ndarray | None = None,
    ) -> Iterator[Chunk]:
        """Take the next rows (and, if the source was Arrow, the batch they were converted
        from; and their :func:`row_hashes` if already computed); yield every chunk they
        complete."""
        frame = frame.reset_index(drop=True)
        if self.fingerprint.schema is None:
            self.fingerprint.start(frame)
            self._pending_key = self._new_key()
        if hashes is None:
            hashes = row_hashes(frame)
        self.fingerprint.update(hashes)

        def piece(start: int, end: int) -> Piece:
            rows = None if arrow is None else arrow.slice(start, end - start)
            return Piece(frame.iloc[start:end], rows)

        # The cut rule reads high bits of the row hash (bits 40 and up).
        marks = np.flatnonzero(((hashes >> np.uint64(40)) & self.mask) == 0)
        start = 0
        for end in [*(int(m) + 1 for m in marks), len(frame)]:
            while end - start + self._pending_rows >= self.max_rows:
                cut = start + self.max_rows - self._pending_rows
                yield self._take(piece(start, cut), hashes[start:cut])
                start = cut
            if end == len(frame):
                break
            if end - start + self._pending_rows >= self.min_rows:
                yield self._take(piece(start, end), hashes[start:end])
                start = end
        if start < len(frame):
            self._pending.append(piece(start, len(frame)))
            self._pending_key.update(hashes[start:].tobytes())
            self._pending_rows += len(frame) - start

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
        digest = hashlib.sha256()
        digest.update(repr(sorted((self.fingerprint.schema or {}).items())).encode())
        digest.update(repr(list(self.fingerprint.schema or {})).encode())
        return digest


def chunk_table(chunk: Chunk) -> pa.Table:
    """The chunk as the Arrow table :func:`chunk_bytes` writes.

    Converting a DataFrame to Arrow is most of the cost of encoding a chunk that is
    not in the store yet. When every piece still has the Arrow batch it was read as,
    and those batches are exactly what ``pa.Table.from_pandas`` makes of the
    DataFrame (columns of plain NumPy dtypes, the same Arrow types, no float NaN,
    which ``from_pandas`` writes as null), the batches are joined instead: the same
    table, so the same bytes and digest as the same rows snapshotted from a DataFrame.
    """
    expected = pa.Schema.from_pandas(chunk.parts[0].frame.iloc[:0], preserve_index=False)
    if all(_arrow_matches(piece, expected) for piece in chunk.parts):
        batches = [piece.arrow for piece in chunk.parts]
        table = pa.Table.from_batches(batches).replace_schema_metadata(expected.metadata)
        # Rows from two batches are joined into one array per column, as from_pandas
        # makes them: the writer cuts pages per array, so the bytes would differ.
        return table.combine_chunks() if len(batches) > 1 else table
    return pa.Table.from_pandas(chunk.frame(), preserve_index=False)


def _arrow_matches(piece: Piece, expected: pa.Schema) -> bool:
    if piece.arrow is None or not all(
        isinstance(dtype, np.dtype) and dtype.kind in _PLAIN_KINDS for dtype in piece.frame.dtypes
    ):
        return False
    if piece.arrow.schema.remove_metadata() != expected.remove_metadata():
        return False
    floats = (c for c in piece.arrow.columns if pa.types.is_floating(c.type))
    return not any(pc.any(pc.is_nan(c)).as_py() for c in floats)


def chunk_bytes(chunk: pd.DataFrame | Chunk) -> bytes:
    """The chunk as Parquet bytes; equal rows and dtypes always give equal bytes.

    Encodings are picked per column from the chunk's own values (so still a pure
    function of the rows): a dictionary only for columns with few distinct values,
    where it pays; delta encoding for the other integer columns (ids, timestamps),
    which a per-chunk dictionary would bloat. Small chunks then compress as well as
    one big Parquet file does.
    """
    if isinstance(chunk, Chunk):
        table, head = chunk_table(chunk), chunk.head(_CARDINALITY_SAMPLE)
    else:
        table = pa.Table.from_pandas(chunk, preserve_index=False)
        head = chunk.iloc[:_CARDINALITY_SAMPLE]
    # Judged on the chunk's first rows: cheap, and still a function of the rows alone.
    limit = max(1, len(head) // 4)
    low = [str(c) for c in head.columns if head[c].nunique(dropna=False) <= limit]
    delta = {
        f.name: "DELTA_BINARY_PACKED"
        for f in table.schema
        if pa.types.is_integer(f.type) and f.name not in low
    }
    sink = io.BytesIO()
    pq.write_table(
        table,
        sink,
        compression=_COMPRESSION,
        use_dictionary=low,
        column_encoding=delta or None,
        write_statistics=True,
    )
    return sink.getvalue()


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
    "read_chunk",
    "row_hashes",
]
