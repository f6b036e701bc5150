"""Chunked sources: real Parquet, CSV and SQLite files, read in bounded pieces."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pytest
import sqlalchemy as sa

from shipyard.errors import InvalidInputError, TableError
from shipyard.tables import (
    CsvSource,
    ParquetSource,
    SqlSource,
    open_source,
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
