"""Atomic streaming sinks: nothing under the final name until commit."""

from __future__ import annotations

import os
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shipyard.batch.writers import (
    CsvSink,
    ParquetSink,
    _host,
    create_temp_folder,
    format_of,
    open_sink,
    release_temp_folder,
)
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


def test_stale_temp_files_are_removed_only_when_provably_shipyards_and_dead(tmp_path):
    """Left by a killed job: removed when the next sink starts in the folder. Kept: a
    file of another host (its process cannot be checked from here), one not named
    like Shipyard's, and the temporary file of a sink of this process still writing."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    host = _host()
    dead = tmp_path / f".a.csv.shipyard-{host}-{gone.pid}-0123abcd.tmp"
    # Same id as this process but not one of its files: an earlier process with the
    # same id (containers reuse small ids) left it.
    reused = tmp_path / f".b.csv.shipyard-{host}-{os.getpid()}-89abcdef.tmp"
    other_host = tmp_path / f".c.csv.shipyard-{host}x-{gone.pid}-0123abcd.tmp"
    foreign = tmp_path / ".d.csv.12345.tmp"
    for path in (dead, reused, other_host, foreign):
        path.write_bytes(b"x")
    writing = CsvSink(tmp_path / "first.csv")
    writing.write(pa.table({"x": [1]}))
    [mine] = [p for p in tmp_path.iterdir() if ".first.csv." in p.name]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [other_host.name, foreign.name, mine.name]
    )
    with CsvSink(tmp_path / "second.csv") as second:
        second.write(pa.table({"x": [2]}))
    assert mine.exists()  # a live sink's file survives another sink's sweep
    writing.commit()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [other_host.name, foreign.name, "first.csv", "second.csv"]
    )


def test_a_killed_parallel_jobs_staging_folder_is_removed_but_a_live_one_kept(tmp_path):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    dead = tmp_path / f".scores.shipyard-{_host()}-{gone.pid}-0123abcd.tmp"
    (dead / "day=1").mkdir(parents=True)
    (dead / "day=1" / "part-00000.parquet").write_bytes(b"half a dataset")
    live = create_temp_folder(tmp_path, "other")
    with CsvSink(tmp_path / "next.csv") as sink:
        sink.write(pa.table({"x": [1]}))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, "next.csv"])
    release_temp_folder(live)


def test_format_comes_from_the_extension_or_the_override():
    assert format_of("a/b.parquet") == "parquet"
    assert format_of("b.PQ") == "parquet"
    assert format_of("b.csv") == "csv"
    assert format_of("b.txt", "CSV") == "csv"
    with pytest.raises(InvalidInputError, match=r"extension '\.txt'.*--format parquet\|csv"):
        format_of("b.txt")
    with pytest.raises(InvalidInputError, match="Unknown output format 'json'"):
        format_of("b.csv", "json")
