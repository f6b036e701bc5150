"""What a snapshot reads: a Parquet file's row groups decoded on two threads and handed
over in order, as Arrow batches; a file whose row groups are too large is streamed."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shipyard.data import sources
from shipyard.data.chunking import Chunker
from shipyard.data.sources import iter_pieces, read_ahead
from shipyard.errors import InvalidInputError
from shipyard.tracking.fingerprint import fingerprint


def table(rows: int) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    return pd.DataFrame(
        {
            "id": np.arange(rows, dtype=np.int64),
            "price": rng.gamma(2.0, 10.0, rows).round(2),
            "city": rng.choice(["Oslo", "Lima", "Pune"], rows),
        }
    )


def joined(path: Path) -> pd.DataFrame:
    frames = [piece.frame for piece in iter_pieces(str(path))]
    return pd.concat(frames, ignore_index=True)


def test_row_groups_are_decoded_on_reader_threads_and_come_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    frame = table(12_000)
    path = tmp_path / "t.parquet"
    frame.to_parquet(path, row_group_size=1_000)  # 12 row groups
    threads: list[str] = []
    real = pq.ParquetFile.read_row_group

    def read_row_group(self: pq.ParquetFile, i: int, **kwargs: object) -> pa.Table:
        threads.append(threading.current_thread().name)
        return real(self, i, **kwargs)

    monkeypatch.setattr(pq.ParquetFile, "read_row_group", read_row_group)
    pd.testing.assert_frame_equal(joined(path), frame)
    assert len(threads) == 12
    assert all(name.startswith("shipyard-parquet") for name in threads)


def test_a_file_with_large_row_groups_is_streamed_in_batches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    frame = table(5_000)
    path = tmp_path / "t.parquet"
    frame.to_parquet(path, row_group_size=2_500)
    monkeypatch.setattr(sources, "ROW_GROUP_BYTES", 1_000)  # every group is "too large"
    monkeypatch.setattr(sources, "BATCH_ROWS", 700)
    monkeypatch.setattr(pq.ParquetFile, "read_row_group", None)  # never decoded whole
    pieces = list(iter_pieces(str(path)))
    assert max(p.rows for p in pieces) == 700
    pd.testing.assert_frame_equal(pd.concat([p.frame for p in pieces], ignore_index=True), frame)


def test_the_fingerprint_of_a_file_read_either_way_is_the_run_fingerprint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    frame = table(9_000).drop(columns=["city"])  # plain columns: hashed without pandas
    path = tmp_path / "t.parquet"
    frame.to_parquet(path, row_group_size=1_000)
    expected = fingerprint(frame).content_hash
    for group_bytes in (sources.ROW_GROUP_BYTES, 1):
        monkeypatch.setattr(sources, "ROW_GROUP_BYTES", group_bytes)
        chunker = Chunker(target_rows=256)
        for piece in read_ahead(str(path)):
            assert piece.plain
            list(chunker.feed(piece))
        assert chunker.fingerprint.hexdigest() == expected


def test_files_with_other_integer_widths_take_the_first_files_types(tmp_path: Path) -> None:
    first = pd.DataFrame({"id": np.arange(3, dtype=np.int32), "x": [0.5, 1.5, 2.5]})
    second = pd.DataFrame({"id": np.arange(3, 6, dtype=np.int64), "x": [3.5, 4.5, 5.5]})
    first.to_parquet(tmp_path / "a.parquet")
    second.to_parquet(tmp_path / "b.parquet")
    pieces = list(iter_pieces(str(tmp_path)))
    assert [str(p.frame["id"].dtype) for p in pieces] == ["int32", "int32"]
    whole = pd.concat([first, second.astype({"id": "int32"})], ignore_index=True)
    pd.testing.assert_frame_equal(joined(tmp_path), whole)


@pytest.mark.parametrize(
    "later, shown",
    [([7.9, -0.5], "e.g. 7.9"), ([7.0, np.nan], "")],
    ids=["fractions", "missing values"],
)
def test_values_the_first_files_type_cannot_hold_are_refused_not_truncated(
    tmp_path: Path, later: list[float], shown: str
) -> None:
    from shipyard.errors import InvalidInputError

    pd.DataFrame({"price": [10, 20]}).to_parquet(tmp_path / "a.parquet")
    pd.DataFrame({"price": later}).to_parquet(tmp_path / "b.parquet")
    with pytest.raises(InvalidInputError, match=r"Column 'price' of .* changes type") as error:
        list(iter_pieces(str(tmp_path)))
    assert "int64 in the first rows, float64 further on" in str(error.value)
    assert shown in str(error.value)
    assert f"of {tmp_path / 'b.parquet'} (in {str(tmp_path)!r})" in str(error.value)
    # The other way round every value fits: the integers are read as floats.
    (tmp_path / "a.parquet").rename(tmp_path / "c.parquet")
    assert joined(tmp_path)["price"].tolist()[-2:] == [10.0, 20.0]


def test_files_with_the_same_columns_in_another_order_take_the_first_files_order(
    tmp_path: Path,
) -> None:
    first = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    first.to_parquet(tmp_path / "1.parquet")
    first.iloc[:0].assign(a=[3], b=["z"])[["b", "a"]].to_parquet(tmp_path / "2.parquet")
    pieces = list(iter_pieces(str(tmp_path)))
    assert [list(p.frame.columns) for p in pieces] == [["a", "b"], ["a", "b"]]
    whole = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]})
    pd.testing.assert_frame_equal(joined(tmp_path), whole)
    # Other columns are still refused, naming both sets.
    pd.DataFrame({"a": [4], "c": [0.5]}).to_parquet(tmp_path / "3.parquet")
    both = r"\['a', 'b'\] in .*1.parquet, \['a', 'c'\] in .*3.parquet"
    with pytest.raises(InvalidInputError, match=both):
        list(iter_pieces(str(tmp_path)))


def test_a_sql_column_whose_first_null_comes_after_the_first_fetch_says_how_to_type_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlite3

    from shipyard.errors import InvalidInputError

    with sqlite3.connect(tmp_path / "shop.db") as db:
        db.execute("CREATE TABLE orders (id INTEGER, qty INTEGER)")
        db.executemany("INSERT INTO orders VALUES (?, ?)", [(i, i or None) for i in range(1, 9)])
        db.execute("UPDATE orders SET qty = NULL WHERE id = 7")
    monkeypatch.setattr(sources, "BATCH_ROWS", 4)  # the NULL is in the second fetch
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    with pytest.raises(InvalidInputError, match=r"CAST\(qty AS REAL\)"):
        list(iter_pieces(f"{url}#orders"))
    typed = f"{url}#SELECT id, CAST(qty AS REAL) AS qty FROM orders"
    assert pd.concat([p.frame for p in iter_pieces(typed)])["qty"].isna().sum() == 1


def test_files_with_other_columns_are_named_in_the_error(tmp_path: Path) -> None:
    from shipyard.errors import InvalidInputError

    pd.DataFrame({"a": [1], "b": [2]}).to_parquet(tmp_path / "a.parquet")
    pd.DataFrame({"a": [1], "c": [2]}).to_parquet(tmp_path / "b.parquet")
    with pytest.raises(InvalidInputError) as error:
        list(iter_pieces(str(tmp_path)))
    assert str(error.value) == (
        f"The files of {str(tmp_path)!r} do not share one set of columns: ['a', 'b'] in "
        f"{tmp_path / 'a.parquet'}, ['a', 'c'] in {tmp_path / 'b.parquet'}."
    )
