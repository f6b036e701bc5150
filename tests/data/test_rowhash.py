"""Row hashes computed from Arrow without pandas must be pandas' own, bit for bit: the
fingerprint of a snapshot must equal the run fingerprint of the same frame."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pandas.util import hash_pandas_object

from shipyard.data.rowhash import PLAIN_TYPES, is_plain, plain_dtypes, plain_row_hashes

ROWS = 150_001  # more than two 64Ki-row slices, and not a multiple of one


def awkward_floats(rng: np.random.Generator, dtype: str) -> np.ndarray:
    values = rng.normal(size=ROWS).astype(dtype)
    values[::101] = np.nan
    values[3], values[4], values[5], values[6] = -0.0, 0.0, np.inf, -np.inf
    bits = values.view(f"u{values.dtype.itemsize}")
    # NaN with the sign bit set and another payload: pandas hashes every NaN alike.
    bits[7] = 0xFFF8000000000001 if dtype == "float64" else 0xFFC00001
    return values


def every_plain_type() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    columns: dict[str, np.ndarray] = {"flag": rng.random(ROWS) < 0.5}
    for kind in ("int", "uint"):
        for bits in (8, 16, 32, 64):
            info = np.iinfo(f"{kind}{bits}")
            values = rng.integers(info.min, info.max, ROWS, dtype=f"{kind}{bits}", endpoint=True)
            values[:2] = info.min, info.max
            columns[f"{kind}{bits}"] = values
    columns["float32"] = awkward_floats(rng, "float32")
    columns["float64"] = awkward_floats(rng, "float64")
    for unit in ("s", "ms", "us", "ns"):
        ticks = rng.integers(-(10**12), 10**12, ROWS)
        columns[f"at_{unit}"] = ticks.astype(f"datetime64[{unit}]")
        columns[f"took_{unit}"] = ticks.astype(f"timedelta64[{unit}]")
    return columns


def test_every_plain_type_hashes_as_pandas_hashes_it() -> None:
    columns = every_plain_type()
    # pa.array keeps a float NaN a NaN value (not null), as a Parquet file holds it.
    batch = pa.record_batch({name: pa.array(values) for name, values in columns.items()})
    assert {field.type for field in batch.schema} == set(PLAIN_TYPES)  # all of them
    assert is_plain(batch)
    frame = batch.to_pandas()
    assert plain_dtypes(batch.schema) == {c: str(t) for c, t in frame.dtypes.items()}
    expected = hash_pandas_object(frame, index=False).to_numpy()
    np.testing.assert_array_equal(plain_row_hashes(batch), expected)
    # A slice of a batch (an offset into its buffers) hashes as its own rows.
    part = batch.slice(65_000, 70_000)
    np.testing.assert_array_equal(plain_row_hashes(part), expected[65_000:135_000])


@pytest.mark.parametrize("name", ["flag", "int8", "uint32", "float32", "at_ms", "took_ns"])
def test_each_type_alone_and_after_others(name: str) -> None:
    """The column order and count enter the combined hash: one column, then two."""
    columns = every_plain_type()
    for chosen in ([name], ["int64", name]):
        batch = pa.record_batch({c: pa.array(columns[c][:1000]) for c in chosen})
        expected = hash_pandas_object(batch.to_pandas(), index=False).to_numpy()
        np.testing.assert_array_equal(plain_row_hashes(batch), expected)


def test_no_rows() -> None:
    rows = pa.record_batch({"x": pa.array([], pa.int64())})
    assert is_plain(rows) and len(plain_row_hashes(rows)) == 0


def parquet_batch(frame: pd.DataFrame, **options: object) -> pa.RecordBatch:
    sink = io.BytesIO()
    frame.to_parquet(sink, **options)
    return next(pq.ParquetFile(io.BytesIO(sink.getvalue())).iter_batches())


def test_a_file_pandas_wrote_is_plain_when_its_metadata_restores_the_same_columns() -> None:
    frame = pd.DataFrame({"id": np.arange(5), "x": np.linspace(0, 1, 5)})
    assert is_plain(parquet_batch(frame))  # a RangeIndex is metadata only
    assert is_plain(parquet_batch(frame, index=False))
    assert is_plain(pa.record_batch({"id": pa.array(np.arange(5))}))  # no pandas metadata


@pytest.mark.parametrize(
    "why, frame",
    [
        ("an index stored as a column", pd.DataFrame({"x": [1, 2]}, index=[10, 20])),
        ("a nullable integer dtype", pd.DataFrame({"x": pd.array([1, 2], dtype="Int64")})),
        ("a null", pd.DataFrame({"x": pd.array([1, None], dtype="Int64")})),
        ("text", pd.DataFrame({"x": ["a", "b"]})),
        ("a time zone", pd.DataFrame({"x": pd.to_datetime(["2024-01-01"] * 2, utc=True)})),
        ("a category", pd.DataFrame({"x": pd.Categorical(["a", "b"])})),
        ("a non-text column name", pd.DataFrame({0: [1, 2]})),
        # A named RangeIndex is metadata only, but data a snapshot keeps as a column.
        ("a named RangeIndex", pd.DataFrame({"x": [1, 2]}).rename_axis("event_id")),
    ],
)
def test_what_pandas_would_read_differently_is_not_plain(why: str, frame: pd.DataFrame) -> None:
    assert not is_plain(parquet_batch(frame)), why
