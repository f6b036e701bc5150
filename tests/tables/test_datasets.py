"""Many files as one table: listing a folder or a glob and cutting it into partitions."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shipyard.errors import TableError
from shipyard.tables.datasets import list_files, plan_partitions


def _frame(n: int) -> pd.DataFrame:
    return pd.DataFrame({"x": range(n), "y": [float(i) for i in range(n)]})


def test_a_folder_is_listed_recursively_in_path_order_without_hidden_files(tmp_path):
    for name in ["b=2/z.parquet", "a=1/y.csv", "a=1/x.parquet"]:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if name.endswith(".csv"):
            _frame(3).to_csv(path, index=False)
        else:
            _frame(3).to_parquet(path)
    (tmp_path / "_SUCCESS").touch()
    (tmp_path / "a=1" / ".x.parquet.crc").write_text("checksum")
    (tmp_path / "_tmp").mkdir()
    _frame(3).to_parquet(tmp_path / "_tmp" / "half-written.parquet")
    (tmp_path / "notes.txt").write_text("not a table")
    files = list_files(str(tmp_path))
    assert [f[len(str(tmp_path)) + 1 :] for f in files] == [
        "a=1/x.parquet",
        "a=1/y.csv",
        "b=2/z.parquet",
    ]


def test_a_glob_and_a_single_file(tmp_path):
    for i in range(3):
        _frame(2).to_csv(tmp_path / f"part-{i}.csv", index=False)
    _frame(2).to_parquet(tmp_path / "other.parquet")
    assert [f.rsplit("/", 1)[1] for f in list_files(str(tmp_path / "part-*.csv"))] == [
        "part-0.csv",
        "part-1.csv",
        "part-2.csv",
    ]
    assert list_files(str(tmp_path / "other.parquet")) == [str(tmp_path / "other.parquet")]


def test_a_big_parquet_file_is_cut_by_row_groups(tmp_path):
    pq.write_table(
        pa.Table.from_pandas(_frame(2_500)), tmp_path / "big.parquet", row_group_size=500
    )
    _frame(300).to_csv(tmp_path / "small.csv", index=False)
    plan = plan_partitions(str(tmp_path), partition_rows=1_000)
    assert [(p.relative, p.row_groups, p.rows) for p in plan] == [
        ("big.parquet", (0, 1), 1_000),
        ("big.parquet", (2, 3), 1_000),
        ("big.parquet", (4,), 500),
        ("small.csv", None, None),  # CSV has no row count until it is read
    ]
    assert [p.index for p in plan] == [0, 1, 2, 3]
    whole = plan_partitions(str(tmp_path / "big.parquet"), partition_rows=10_000)
    assert [(p.relative, p.row_groups, p.rows) for p in whole] == [("big.parquet", None, 2_500)]


def test_nothing_to_read_is_named(tmp_path):
    with pytest.raises(TableError, match="no such file, folder or matching file"):
        list_files(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(TableError, match=r"'.*empty'.*holds no table file"):
        list_files(str(tmp_path / "empty"))
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    with pytest.raises(TableError, match="not a readable Parquet file"):
        plan_partitions(str(tmp_path / "bad.parquet"), partition_rows=10)


@pytest.mark.parametrize(
    "form", ["batch/events", "./batch/events", "batch/events/", "batch/events/*/*.parquet"]
)
def test_a_relative_input_keeps_its_sub_folders_and_gets_absolute_paths(
    tmp_path, monkeypatch, form
):
    """Relative forms plan like the absolute path: key=value folders kept, files named
    absolutely (a worker in another directory opens them)."""
    for name in ("day=1/a.parquet", "day=2/b.parquet"):
        (tmp_path / "batch" / "events" / name).parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame({"x": [1.0, 2.0]}).to_parquet(tmp_path / "batch" / "events" / name)
    monkeypatch.chdir(tmp_path)
    plan = plan_partitions(form, partition_rows=100)
    assert [p.relative for p in plan] == ["day=1/a.parquet", "day=2/b.parquet"]
    assert all(p.path.startswith(str(tmp_path)) for p in plan)
