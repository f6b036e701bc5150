"""Parsing table locations: files by extension, s3:// objects, database URL#TABLE / #query."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipyard.errors import InvalidInputError, TableError
from shipyard.tables import ACCEPTED, locate
from shipyard.tables.locations import is_table_file, table_error


@pytest.mark.parametrize(
    ("source", "fmt", "compression"),
    [
        ("a/rows.csv", "csv", None),
        ("rows.CSV.GZ", "csv", "gzip"),
        ("rows.tsv", "tsv", None),
        ("rows.parquet", "parquet", None),
        ("rows.pq", "parquet", None),
        ("rows.jsonl", "jsonl", None),
        ("rows.ndjson.gz", "jsonl", "gzip"),
        ("rows.json", "json", None),
        ("s3://bucket/day=1/rows.parquet", "parquet", None),
        (Path("x") / "rows.csv", "csv", None),
    ],
)
def test_files_take_their_format_from_the_extension(source, fmt, compression) -> None:
    where = locate(source)
    assert (where.format, where.compression, where.is_sql) == (fmt, compression, False)
    assert where.is_remote == str(source).startswith("s3://")


def test_database_urls_name_a_table_or_a_query() -> None:
    table = locate("postgresql+psycopg://me:secret@db/shop?sslmode=require#sales.visits")
    assert (table.format, table.table, table.query) == ("sql", "sales.visits", None)
    assert table.path == "postgresql+psycopg://me:secret@db/shop?sslmode=require"
    # The password never reaches a message.
    assert table.describe() == (
        "table 'sales.visits' in postgresql+psycopg://me:***@db/shop?sslmode=require"
    )
    query = locate("sqlite:///shop.db#  with t AS (SELECT 1 AS x) SELECT x FROM t")
    assert query.query is not None and query.query.strip().startswith("with")
    assert query.describe() == "query in sqlite:///shop.db"
    # The keyword form, as the Python API and --input-db take it.
    assert locate("sqlite:///shop.db", table="visits").table == "visits"


def test_the_format_override_wins() -> None:
    assert locate("rows.txt", fmt="CSV").format == "csv"
    with pytest.raises(TableError, match="unknown format 'xlsx'"):
        locate("rows.txt", fmt="xlsx")


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ("rows.xlsx", "cannot tell its format from the extension '.xlsx'"),
        ("rows", "extension '(none)'"),
        ("rows.parquet.gz", "a parquet file is not read gzipped"),
        ("sqlite:///shop.db", "needs '#TABLE' or '#SELECT ...' after it"),
        ("sqlite:///shop.db#  ", "needs '#TABLE'"),
    ],
)
def test_bad_locations_raise_one_error_that_lists_the_formats(source, problem) -> None:
    with pytest.raises(TableError) as info:
        locate(source)
    message = str(info.value)
    assert problem in message
    assert message.endswith(ACCEPTED)
    assert isinstance(info.value, InvalidInputError)  # a 4xx / exit 1 like any bad input


def test_table_error_keeps_an_ellipsis_and_drops_a_doubled_period() -> None:
    assert "use URL#SELECT ... Shipyard reads" in str(table_error("x", "use URL#SELECT ..."))
    assert "went wrong. Shipyard" in str(table_error("'x'", "it went wrong."))


def test_is_table_file() -> None:
    assert is_table_file("a/b.csv.gz") and is_table_file(Path("b.PQ"))
    assert not is_table_file("notes.txt") and not is_table_file("README")
