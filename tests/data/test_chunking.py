"""Row hashes in cache-sized slices, and chunks encoded from their Arrow batches: both must
give exactly what the plain pandas path gives (the fingerprint and the chunk digests)."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pandas.util import hash_pandas_object

from shipyard.data.chunking import (
    Chunk,
    Chunker,
    Piece,
    chunk_bytes,
    chunk_table,
    frame_table,
    row_hashes,
)
from shipyard.errors import InvalidInputError


def mixed(rows: int) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    price = rng.normal(size=rows)
    price[::97] = np.nan
    price[5] = -0.0
    return pd.DataFrame(
        {
            "id": np.arange(rows, dtype=np.int64),
            "small": rng.integers(0, 5, rows).astype(np.int16),
            "price": price,
            "flag": rng.random(rows) < 0.5,
            "at": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 10**6, rows), "s"),
            "city": rng.choice(["Oslo", "Lima", None], rows),
        }
    )


def test_row_hashes_over_many_slices_equal_pandas_hash_of_the_whole_frame() -> None:
    frame = mixed(150_000)  # more than two 64Ki-row slices
    expected = hash_pandas_object(frame, index=False).to_numpy()
    np.testing.assert_array_equal(row_hashes(frame), expected)
    np.testing.assert_array_equal(row_hashes(frame.iloc[7:]), expected[7:])


def _arrow_chunks(frame: pd.DataFrame, batch_rows: int) -> list[Chunk]:
    """Chunks of ``frame`` as a snapshot of its Parquet file cuts them (Arrow pieces)."""
    sink = io.BytesIO()
    frame.to_parquet(sink, index=False)
    chunker = Chunker(target_rows=64)
    chunks: list[Chunk] = []
    for batch in pq.ParquetFile(io.BytesIO(sink.getvalue())).iter_batches(batch_size=batch_rows):
        chunks.extend(chunker.feed(Piece(arrow=batch)))
    return [*chunks, *chunker.finish()]


def test_chunks_joined_from_arrow_batches_have_the_bytes_of_the_dataframe_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    frame = mixed(3_000).drop(columns=["city", "price"])  # plain dtypes, no NaN
    chunks = _arrow_chunks(frame, batch_rows=500)
    assert len(chunks) > 10 and any(len(c.parts) > 1 for c in chunks)
    plain = [frame_table(c.frame()) for c in chunks]
    expected = [chunk_bytes(c.frame()) for c in chunks]

    def no_conversion(self: Chunk) -> pd.DataFrame:
        raise AssertionError("this chunk should have been joined from its Arrow batches")

    with monkeypatch.context() as patch:
        patch.setattr(Chunk, "frame", no_conversion)  # what the DataFrame path starts with
        tables = [chunk_table(c) for c in chunks]
        encoded = [chunk_bytes(c) for c in chunks]
    for chunk, table, table_plain, data, data_plain in zip(
        chunks, tables, plain, encoded, expected, strict=True
    ):
        assert table.equals(table_plain, check_metadata=True)
        assert data == data_plain
        read_back = pq.read_table(io.BytesIO(data)).to_pandas()
        pd.testing.assert_frame_equal(read_back, chunk.frame())


def test_chunks_arrow_would_write_differently_are_converted_from_pandas() -> None:
    # Float NaN (pandas writes null), strings (types differ) and an int column with
    # nulls (pandas reads it as float) all take the DataFrame path: same bytes still.
    frame = mixed(2_000)
    frame["maybe"] = pd.array(np.where(np.arange(2_000) % 7 == 0, None, 1), dtype="Int64")
    for chunk in _arrow_chunks(frame, batch_rows=300):
        assert chunk_bytes(chunk) == chunk_bytes(chunk.frame())


def test_a_dataframe_piece_without_arrow_is_encoded_from_pandas() -> None:
    frame = mixed(100)
    chunk = Chunk((Piece(frame.iloc[:40]), Piece(frame.iloc[40:])), key="k")
    assert chunk.rows == 100
    pd.testing.assert_frame_equal(chunk.frame(), frame)
    assert chunk_bytes(chunk) == chunk_bytes(frame)


def test_duplicate_column_names_are_refused_by_name() -> None:
    frame = pd.DataFrame([[1, 2, 3]], columns=["a", "b", "a"])
    with pytest.raises(InvalidInputError, match=r"Column name\(s\) 'a' appear more than once"):
        chunk_bytes(frame)
    with pytest.raises(InvalidInputError, match="unique column names"):
        list(Chunker(4).feed(Piece(frame)))


def test_a_column_mixing_types_is_refused_with_how_to_convert_it() -> None:
    frame = pd.DataFrame({"a": [1, "x"], "n": [1, 2], "b": ["y", 2.5]})
    with pytest.raises(InvalidInputError) as caught:
        chunk_bytes(frame)
    assert str(caught.value) == (
        "Column(s) 'a' (int, str), 'b' (float, str) mix values of several types: a snapshot "
        "needs one type per column; convert first, e.g. df['a'] = df['a'].astype(str)."
    )
    assert isinstance(caught.value.__cause__, pa.ArrowException)


def test_text_among_bytes_is_refused_not_stored_as_bytes() -> None:
    """Arrow would store the column as bytes, encoding the text: it would come back as
    bytes while the fingerprint (taken before) still matched."""
    frame = pd.DataFrame({"id": [1, 2, 3], "note": pd.Series(["a", b"raw", None], dtype=object)})
    with pytest.raises(InvalidInputError, match=r"'note' \(bytes, str\) mix values"):
        chunk_bytes(frame)
    only_bytes = frame.assign(note=pd.Series([b"a", b"raw", None], dtype=object))
    assert pq.read_table(io.BytesIO(chunk_bytes(only_bytes)))["note"].to_pylist()[0] == b"a"


def test_integers_beyond_64_bits_are_a_clear_error() -> None:
    frame = pd.DataFrame({"big": pd.Series([1, 2**70], dtype=object), "n": [1, 2]})
    with pytest.raises(InvalidInputError, match=r"'big' hold integers too large for 64 bits"):
        chunk_bytes(frame)
