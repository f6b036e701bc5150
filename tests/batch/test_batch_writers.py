"""Atomic streaming sinks: nothing under the final name until commit."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shipyard.batch.writers import CsvSink, ParquetSink, open_sink
from shipyard.errors import InvalidInputError, StoreError


@pytest.mark.parametrize("name", ["out.parquet", "out.csv"])
def test_output_appears_only_on_commit(tmp_path, name):
    sink = open_sink(tmp_path / name)
    sink.write(pa.table({"id": [1, 2], "p": ["a", "b"]}))
    sink.write(pa.table({"id": [3], "p": ["c"]}))
    # While writing, only a hidden temporary file exists next to the target.
    assert not (tmp_path / name).exists()
    [tmp] = list(tmp_path.iterdir())
    assert tmp.name.startswith(f".{name}.") and tmp.suffix == ".tmp"
    sink.commit()
    assert [p.name for p in tmp_path.iterdir()] == [name]
    assert sink.rows_written == 3


def test_abort_removes_the_temporary_file_and_keeps_the_old_output(tmp_path):
    (tmp_path / "out.parquet").write_bytes(b"old")
    with pytest.raises(ValueError, match="boom"), ParquetSink(tmp_path / "out.parquet") as sink:
        sink.write(pa.table({"x": [1.0]}))
        raise ValueError("boom")
    assert [p.name for p in tmp_path.iterdir()] == ["out.parquet"]
    assert (tmp_path / "out.parquet").read_bytes() == b"old"


def test_later_chunks_are_cast_to_the_first_schema(tmp_path):
    with ParquetSink(tmp_path / "out.parquet") as sink:
        sink.write(pa.table({"id": [1], "p": [0.5]}))
        sink.write(pa.table({"p": [2], "id": [2]}))  # int prediction, columns reordered
    table = pq.read_table(tmp_path / "out.parquet")
    assert table.schema.field("p").type == pa.float64()
    assert table.to_pydict() == {"id": [1, 2], "p": [0.5, 2.0]}
    sink = CsvSink(tmp_path / "out.csv")
    sink.write(pa.table({"id": [1]}))
    with pytest.raises(StoreError, match="does not fit the schema of the first chunk"):
        sink.write(pa.table({"other": [1]}))
    sink.abort()
    assert not (tmp_path / "out.csv").exists()


def test_a_missing_folder_and_an_empty_commit_are_explained(tmp_path):
    with pytest.raises(InvalidInputError, match="does not exist"):
        ParquetSink(tmp_path / "no" / "out.parquet").write(pa.table({"x": [1]}))
    with pytest.raises(StoreError, match="Nothing was written"):
        CsvSink(tmp_path / "out.csv").commit()
