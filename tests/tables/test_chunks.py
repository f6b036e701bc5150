"""Chunked sources: real Parquet, CSV and SQLite files, read in bounded pieces."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pytest
import sqlalchemy as sa

from shipyard.errors import InvalidInputError, TableError
from shipyard.tables import (
    CsvSource,
    JsonArraySource,
    JsonLinesSource,
    ParquetSource,
    SqlSource,
    open_source,
    read_table,
    rechunk,
)


def test_rechunk_makes_fixed_size_tables_in_order():
    tables = [
        pa.table({"x": list(range(start, start + n))}) for start, n in [(0, 3), (3, 0), (3, 7)]
    ]
    out = list(rechunk(tables, 4))
    assert [t.num_rows for t in out] == [4, 4, 2]
    assert pa.concat_tables(out)["x"].to_pylist() == list(range(10))
    with pytest.raises(InvalidInputError, match="at least 1"):
        list(rechunk(tables, 0))


def test_parquet_reads_only_the_asked_columns_in_chunks(tmp_path):
    frame = pd.DataFrame(
        {"a": range(10), "b": [float(i) for i in range(10)], "c": list("abcdefghij")}
    )
    # Several row groups of a size unrelated to the chunk size.
    frame.to_parquet(tmp_path / "f.parquet", row_group_size=3)
    source = open_source(tmp_path / "f.parquet")
    assert isinstance(source, ParquetSource) and not source.text_numbers
    assert source.columns() == ["a", "b", "c"]
    assert source.total_rows() == 10
    chunks = list(source.chunks(["c", "a"], 4))
    assert [len(c) for c in chunks] == [4, 4, 2]
    assert list(chunks[0].columns) == ["c", "a"]
    assert pd.concat(chunks)["a"].tolist() == list(range(10))


def test_csv_is_streamed_as_text_so_odd_values_do_not_break_the_stream(tmp_path):
    lines = ["x,y,z"] + [f"{i}.5,{i},keep" for i in range(5000)] + ["oops,,keep"]
    (tmp_path / "f.csv").write_text("\n".join(lines) + "\n")
    source = open_source(tmp_path / "f.csv")
    assert isinstance(source, CsvSource) and source.text_numbers
    assert source.columns() == ["x", "y", "z"]
    assert source.total_rows() is None
    chunks = list(source.chunks(["x", "y"], 2000))
    assert [len(c) for c in chunks] == [2000, 2000, 1001]
    last = chunks[-1]
    assert last["x"].iloc[-1] == "oops"
    assert pd.isna(last["y"].iloc[-1])  # an empty field is missing, not ""
    assert last["x"].iloc[0] == "4000.5"


def test_missing_and_broken_files_are_named(tmp_path):
    with pytest.raises(TableError, match=r"nope\.parquet': there is no such file"):
        ParquetSource(tmp_path / "nope.parquet").columns()
    (tmp_path / "bad.parquet").write_text("not parquet")
    with pytest.raises(InvalidInputError, match="not a readable Parquet file"):
        ParquetSource(tmp_path / "bad.parquet").columns()
    (tmp_path / "ragged.csv").write_text("a,b\n1,2\n3,4,5\n")
    with pytest.raises(InvalidInputError, match=r"ragged\.csv.*Expected 2 columns, got 3"):
        list(CsvSource(tmp_path / "ragged.csv").chunks(["a", "b"], 10))


def test_sql_table_and_query_on_sqlite(tmp_path):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        pd.DataFrame(
            {"id": range(7), "v": [0.5 * i for i in range(7)], "s": list("abcdefg")}
        ).to_sql("t", conn, index=False)
    engine.dispose()
    table = SqlSource(url, table="t")
    assert table.description == f"table 't' in {url}"
    assert table.columns() == ["id", "v", "s"]
    assert table.total_rows() == 7
    chunks = list(table.chunks(["v", "id"], 3))
    assert [len(c) for c in chunks] == [3, 3, 1]
    assert list(chunks[0].columns) == ["v", "id"]
    assert pd.concat(chunks)["id"].tolist() == list(range(7))
    query = SqlSource(url, query="SELECT id, v FROM t WHERE id > 3;")
    assert query.columns() == ["id", "v"]
    assert pd.concat(query.chunks(["id"], 2))["id"].tolist() == [4, 5, 6]
    with pytest.raises(TableError, match="there is no table 'missing'"):
        SqlSource(url, table="missing").columns()
    with pytest.raises(InvalidInputError, match="either a table name or a query"):
        SqlSource(url)


@pytest.mark.parametrize("name", ["f.tsv", "f.csv.gz"])
def test_tsv_and_gzipped_csv_stream_as_text(tmp_path, name):
    frame = pd.DataFrame({"a": range(7), "b": [f"v{i}" for i in range(7)]})
    path = tmp_path / name
    frame.to_csv(path, index=False, sep="\t" if name.endswith(".tsv") else ",")
    source = open_source(path)
    assert isinstance(source, CsvSource) and source.columns() == ["a", "b"]
    chunks = list(source.chunks(["b", "a"], 3))
    assert [len(c) for c in chunks] == [3, 3, 1]
    assert pd.concat(chunks)["a"].tolist() == [str(i) for i in range(7)]


def test_json_lines_stream_in_chunks_and_keep_their_types(tmp_path):
    path = tmp_path / "f.jsonl"
    pd.DataFrame({"id": ["007", "1"] * 5, "x": [0.5 * i for i in range(10)]}).to_json(
        path, orient="records", lines=True
    )
    source = open_source(path)
    assert isinstance(source, JsonLinesSource) and not source.text_numbers
    assert source.columns() == ["id", "x"]
    chunks = list(source.chunks(["x", "id", "absent"], 4))
    assert [len(c) for c in chunks] == [4, 4, 2]
    assert list(chunks[0].columns) == ["x", "id", "absent"]
    whole = pd.concat(chunks, ignore_index=True)
    assert whole["id"].tolist()[:2] == ["007", "1"]  # text stays text
    assert whole["x"].tolist() == [0.5 * i for i in range(10)]
    assert whole["absent"].isna().all()
    with pytest.raises(InvalidInputError, match="at least 1"):
        list(source.chunks(["x"], 0))


def test_a_json_array_is_read_whole_then_sliced(tmp_path):
    path = tmp_path / "f.json"
    pd.DataFrame({"x": range(5)}).to_json(path, orient="records")
    source = open_source(path)
    assert isinstance(source, JsonArraySource) and source.columns() == ["x"]
    assert [c["x"].tolist() for c in source.chunks(["x"], 2)] == [[0, 1], [2, 3], [4]]


def test_a_database_location_string_opens_a_sql_source(tmp_path):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        pd.DataFrame({"id": range(4)}).to_sql("t", conn, index=False)
    engine.dispose()
    source = open_source(f"{url}#SELECT id FROM t WHERE id >= 2")
    assert isinstance(source, SqlSource) and source.description == f"query in {url}"
    assert pd.concat(source.chunks(["id"], 10))["id"].tolist() == [2, 3]
    with pytest.raises(TableError, match=r"table 't' in .*no column\(s\) \['nope'\]"):
        list(open_source(f"{url}#t").chunks(["nope"], 10))


@pytest.mark.parametrize("what", ["table", "query", "uri"])
def test_a_missing_sqlite_file_is_named_and_never_created(tmp_path, monkeypatch, what):
    """SQLite creates a missing file on connect: reading must not, and must say so."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    url = "sqlite:///data/nosuch.db"
    if what == "uri":
        url = "sqlite:///file:data/nosuch.db?mode=rw&uri=true"
    source = (
        SqlSource(url, table="orders")
        if what != "query"
        else SqlSource(url, query="SELECT * FROM orders")
    )
    reads = [source.columns, lambda: list(source.chunks(["id"], 10))]
    if what != "query":  # a query's rows are not counted ahead
        reads.append(source.total_rows)
    for read in reads:
        with pytest.raises(TableError) as caught:
            read()
        message = str(caught.value)
        assert "the SQLite database file data/nosuch.db does not exist" in message
        assert "there is no table" not in message and "\n" not in message
    with pytest.raises(TableError, match=r"nosuch\.db does not exist"):
        read_table("sqlite:///data/nosuch.db#orders")
    assert list((tmp_path / "data").iterdir()) == []
    with pytest.raises(TableError, match=r"database file data is a folder"):
        SqlSource("sqlite:///data", table="orders").columns()


def test_an_in_memory_sqlite_database_is_still_read():
    source = SqlSource("sqlite://", query="SELECT 1 AS one")
    assert source.columns() == ["one"]
    assert pd.concat(source.chunks(["one"], 5))["one"].tolist() == [1]


def test_a_query_returning_one_column_name_twice_is_a_clear_error(tmp_path):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        pd.DataFrame({"id": range(3), "v": [1.0, 2.0, 3.0]}).to_sql("t", conn, index=False)
    engine.dispose()
    for sql in ("SELECT id, id FROM t", "SELECT id AS a, v AS a FROM t"):
        source = SqlSource(url, query=sql)
        twice = r"returns column name\(s\) \['(id|a)'\] more than once"
        with pytest.raises(TableError, match=twice):
            list(source.chunks(source.columns(), 2))
