"""read_table: every format whole, text ids kept as text, one error for a bad table."""

from __future__ import annotations

import gzip
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from shipyard.errors import TableError
from shipyard.tables import ACCEPTED, read_table

FRAME = pd.DataFrame({"id": ["007", "42", "x"], "x": [1.5, 2.0, -3.25], "n": [1, 2, 3]})


def _write(frame: pd.DataFrame, path: Path) -> None:
    name = path.name.removesuffix(".gz")
    if name.endswith(".csv"):
        frame.to_csv(path, index=False)
    elif name.endswith(".tsv"):
        frame.to_csv(path, index=False, sep="\t")
    elif name.endswith((".parquet", ".pq")):
        frame.to_parquet(path)
    elif name.endswith(".json"):
        frame.to_json(path, orient="records")
    else:
        frame.to_json(path, orient="records", lines=True)


@pytest.mark.parametrize(
    "name",
    [
        "t.csv",
        "t.csv.gz",
        "t.tsv",
        "t.parquet",
        "t.pq",
        "t.jsonl",
        "t.ndjson",
        "t.jsonl.gz",
        "t.json",
    ],
)
def test_every_file_format_reads_back_the_same_table(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    _write(FRAME, path)
    if name.endswith(".gz"):
        with gzip.open(path) as unzipped:
            assert unzipped.read(1)  # really gzipped
    got = read_table(path, text_columns=("id",))
    assert list(got.columns) == ["id", "x", "n"]
    assert got["id"].tolist() == ["007", "42", "x"]  # ids stay text, "007" too
    assert got["x"].tolist() == [1.5, 2.0, -3.25]
    assert got["n"].tolist() == [1, 2, 3]


def test_a_json_file_of_lines_is_read_as_lines(tmp_path: Path) -> None:
    path = tmp_path / "rows.json"
    FRAME.to_json(path, orient="records", lines=True)
    assert read_table(path)["x"].tolist() == [1.5, 2.0, -3.25]


def test_sql_tables_and_queries(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        FRAME.to_sql("rows", conn, index=False)
    engine.dispose()
    assert read_table(f"{url}#rows")["x"].tolist() == [1.5, 2.0, -3.25]
    got = read_table(f"{url}#SELECT id, n FROM rows WHERE n > 1")
    assert got.to_dict("list") == {"id": ["42", "x"], "n": [2, 3]}
    empty = read_table(f"{url}#SELECT id FROM rows WHERE n > 99")
    assert list(empty.columns) == ["id"] and empty.empty


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("empty.csv", b"", "not a readable CSV file"),
        ("bad.parquet", b"not parquet", "not a readable Parquet file"),
        ("bad.jsonl", b'{"a": 1}\n{oops\n', "not a readable JSON lines file"),
        ("empty.jsonl", b"\n", "the file is empty"),
        ("bad.csv.gz", b"not gzip", "not a readable CSV file"),
    ],
)
def test_damaged_files_name_the_file_and_list_the_formats(
    tmp_path: Path, name: str, content: bytes, problem: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(TableError) as info:
        read_table(path)
    message = str(info.value)
    assert f"Cannot read {str(path)!r}: " in message and problem in message
    assert message.endswith(ACCEPTED)


def test_missing_files_and_folders(tmp_path: Path) -> None:
    with pytest.raises(TableError, match=r"gone\.csv': there is no such file\. Shipyard reads"):
        read_table(tmp_path / "gone.csv")
    (tmp_path / "dir.csv").mkdir()
    with pytest.raises(TableError, match=r"dir\.csv': it is not a file"):
        read_table(tmp_path / "dir.csv")
