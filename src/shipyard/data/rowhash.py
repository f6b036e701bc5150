"""Row hashes of plain Arrow batches, bit for bit pandas' ``hash_pandas_object``.

A snapshot hashes every row it reads: the fingerprint is a hash over the row
hashes, and the chunk cuts and keys come from them. For a batch read from
Parquet or Delta Lake whose columns are all *plain* (booleans, integers,
float32/float64, times without a zone, durations; no nulls; nothing in the
file's pandas metadata that would turn them into other pandas types), pandas
would add only its import (0.2 s of every command's start-up here) and a
conversion. This computes the same
uint64 per row with NumPy, straight from the Arrow buffers:

- each column's values widened to 64 bits as pandas widens them (booleans to
  0/1, integers and times by their unsigned bit pattern, floats by their bits with
  every NaN and -0.0 first made one canonical value), then mixed by the same
  64-bit finalizer;
- the columns combined in order as pandas combines them (CPython's tuple
  hash: xor, multiply, a multiplier that grows per column).

Any other batch is converted and hashed by pandas itself. The tests check
both ways give the same hashes over every plain type and the awkward values
(-0.0, NaN payloads, infinities, the extreme integers) against the installed
pandas, which the lock file pins.

>>> import pyarrow as pa
>>> batch = pa.record_batch({"x": pa.array([1, 2], pa.int64())})
>>> is_plain(batch), len(plain_row_hashes(batch))
(True, 2)
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pyarrow as pa

#: Arrow types whose pandas dtype (named here) holds the same values in NumPy.
PLAIN_TYPES: dict[pa.DataType, str] = {
    pa.bool_(): "bool",
    pa.int8(): "int8",
    pa.int16(): "int16",
    pa.int32(): "int32",
    pa.int64(): "int64",
    pa.uint8(): "uint8",
    pa.uint16(): "uint16",
    pa.uint32(): "uint32",
    pa.uint64(): "uint64",
    pa.float32(): "float32",
    pa.float64(): "float64",
    # Times without a zone, and durations: NumPy's datetime64 / timedelta64 per unit.
    **{pa.timestamp(unit): f"datetime64[{unit}]" for unit in ("s", "ms", "us", "ns")},
    **{pa.duration(unit): f"timedelta64[{unit}]" for unit in ("s", "ms", "us", "ns")},
}

#: Rows hashed at a time: the scratch arrays of 64Ki rows stay in the CPU cache.
_SLICE_ROWS = 1 << 16
# pandas' constants (pandas/core/util/hashing.py): the finalizer, then the tuple hash.
_MIX_1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX_2 = np.uint64(0x94D049BB133111EB)
_SEED = np.uint64(0x345678)
_FIRST_MULT = np.uint64(1000003)
_TAIL = np.uint64(97531)


def is_plain(batch: pa.RecordBatch) -> bool:
    """True when :func:`plain_row_hashes` gives this batch's pandas row hashes and
    :func:`plain_dtypes` its pandas dtypes."""
    if not all(field.type in PLAIN_TYPES for field in batch.schema):
        return False
    if any(column.null_count for column in batch.columns):
        return False  # pandas reads nullable integers as floats, booleans as objects
    return _pandas_metadata_is_plain(batch.schema)


def pandas_metadata(schema: pa.Schema) -> dict[str, Any] | None:
    """The pandas metadata of a schema read from a file written from a DataFrame (None
    when there is none); ValueError when it is not a JSON object."""
    raw = (schema.metadata or {}).get(b"pandas")
    if raw is None:
        return None
    meta = json.loads(raw)
    if not isinstance(meta, dict):
        raise ValueError("the pandas metadata is not a JSON object")
    return meta


def _pandas_metadata_is_plain(schema: pa.Schema) -> bool:
    """The file's pandas metadata (if any) restores exactly the columns as they are:
    no index stored as a column, no extension dtype (``Int64``) over a plain type."""
    try:
        meta = pandas_metadata(schema)
        if meta is None:
            return True
        indexes = meta.get("index_columns", [])
        if any(not isinstance(index, dict) for index in indexes):
            return False  # an index stored as a column: pandas moves it out of the rows
        if any(index.get("name") is not None for index in indexes):
            return False  # a named RangeIndex, stored as metadata: a snapshot keeps it
        levels = meta.get("column_indexes", [])
        if len(levels) > 1 or any(
            level.get("pandas_type") != "unicode" or level.get("name") is not None
            for level in levels
        ):
            return False  # column labels that are not plain text (numbers, several levels)
        described = {c.get("field_name"): c for c in meta.get("columns", [])}
    except (ValueError, AttributeError, TypeError):
        return False
    for field in schema:
        column = described.get(field.name)
        if column is None:
            continue
        if column.get("name") != field.name or column.get("numpy_type") != PLAIN_TYPES[field.type]:
            return False
    return True


def plain_dtypes(schema: pa.Schema) -> dict[str, str]:
    """The pandas dtype names of a plain batch's columns, as ``str(frame.dtypes[c])``."""
    return {field.name: PLAIN_TYPES[field.type] for field in schema}


def plain_row_hashes(batch: pa.RecordBatch) -> np.ndarray:
    """One uint64 per row, equal to ``hash_pandas_object(batch.to_pandas(), index=False)``.

    The batch must be :func:`is_plain`. Computed 64Ki rows at a time into scratch
    arrays that stay in the cache (the values do not depend on the slicing).
    """
    n = batch.num_rows
    out = np.empty(n, dtype=np.uint64)
    columns = [plain_values(column) for column in batch.columns]
    width = len(columns)
    mixed = np.empty(min(n, _SLICE_ROWS), dtype=np.uint64)
    shifted = np.empty_like(mixed)
    for start in range(0, n, _SLICE_ROWS):
        stop = min(n, start + _SLICE_ROWS)
        row = out[start:stop]
        value, spare = mixed[: stop - start], shifted[: stop - start]
        row.fill(_SEED)
        mult = _FIRST_MULT
        for i, column in enumerate(columns):
            _column_hash(column[start:stop], value, spare)
            row ^= value
            row *= mult
            mult += np.uint64(82520 + 2 * (width - i))
        row += _TAIL
    return out


def plain_values(column: pa.Array) -> np.ndarray:
    """A plain column's values as NumPy: a view of the Arrow buffer (booleans unpacked
    from their bits). Not ``to_numpy()``, which imports pandas to check for it."""
    data = column.buffers()[1]
    if column.type == pa.bool_():
        bits = np.frombuffer(data, dtype=np.uint8)
        flags = np.unpackbits(bits, count=column.offset + len(column), bitorder="little")
        return flags[column.offset :].view(np.bool_)
    dtype = np.dtype(PLAIN_TYPES[column.type])
    return np.frombuffer(
        data, dtype=dtype, count=len(column), offset=column.offset * dtype.itemsize
    )


def _column_hash(values: np.ndarray, out: np.ndarray, spare: np.ndarray) -> None:
    """pandas' ``_hash_ndarray`` of ``values`` into ``out`` (``spare``: scratch)."""
    if values.dtype.kind == "b":
        np.copyto(out, values, casting="unsafe")
    else:
        bits = values.view(f"u{values.dtype.itemsize}")
        np.copyto(out, bits, casting="safe")  # zero-extended, as pandas widens
        if values.dtype.kind == "f":
            nan = np.isnan(values)
            if nan.any():
                out[nan] = np.array(np.nan, dtype=values.dtype).view(bits.dtype)
            out[out == np.array(-0.0, dtype=values.dtype).view(bits.dtype)] = 0
    np.right_shift(out, np.uint64(30), out=spare)
    out ^= spare
    out *= _MIX_1
    np.right_shift(out, np.uint64(27), out=spare)
    out ^= spare
    out *= _MIX_2
    np.right_shift(out, np.uint64(31), out=spare)
    out ^= spare


__all__ = [
    "PLAIN_TYPES",
    "is_plain",
    "pandas_metadata",
    "plain_dtypes",
    "plain_row_hashes",
    "plain_values",
]
