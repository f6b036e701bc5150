"""Dataset snapshots on SQLite + local files and PostgreSQL + S3: versions, dedup, read back."""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_digits, load_wine

from shipyard import Shipyard
from shipyard.config import Settings
from shipyard.data.chunking import Piece
from shipyard.data.snapshots import DataVersions
from shipyard.errors import DatasetNotFoundError, InvalidInputError
from shipyard.tracking.fingerprint import fingerprint


def wine() -> pd.DataFrame:
    frame = load_wine(as_frame=True).frame
    return frame.assign(row_id=np.arange(len(frame)))


def small_chunks(client: Shipyard) -> DataVersions:
    """The client's data versions with 16-row chunks, so a small table has many chunks."""
    return DataVersions(
        client.datasets,
        client.artifacts,
        actor="tester",
        target_rows=16,
        storage_options=client.data.storage_options,
    )


def test_snapshot_numbers_versions_and_reads_back_exactly(client: Shipyard, tmp_path: Path) -> None:
    frame = wine()
    path = tmp_path / "wine.parquet"
    frame.to_parquet(path)
    v1 = client.data.snapshot(str(path), name="wine", message="first")
    v2 = client.data.snapshot(frame, name="wine")

    assert (v1.ref, v2.ref) == ("wine:1", "wine:2")
    assert v1.n_rows == len(frame) and v1.message == "first" and v1.source == str(path)
    # Same rows: the second version stores nothing new, and both fingerprints agree
    # with the run fingerprint of the same frame.
    assert v2.new_bytes == 0 and v1.new_bytes > 0
    assert v1.content_hash == v2.content_hash == fingerprint(frame).content_hash
    pd.testing.assert_frame_equal(client.data.read("wine:1"), frame)
    assert client.data.resolve("wine").version == 2


def test_appending_rows_stores_only_the_new_chunks(client: Shipyard) -> None:
    digits = load_digits(as_frame=True).frame
    data = small_chunks(client)
    first = data.snapshot(digits, name="digits")
    grown = pd.concat([digits, digits.iloc[:18].assign(target=-1)], ignore_index=True)
    second = data.snapshot(grown, name="digits")

    assert first.details["chunks"] > 50
    # 1 % more rows: about 1 % more bytes (the new rows plus the one chunk they extend).
    assert second.new_bytes < 0.05 * first.total_bytes
    pd.testing.assert_frame_equal(data.read(second.ref), grown)


def test_an_edit_in_the_middle_changes_only_nearby_chunks(client: Shipyard) -> None:
    frame = wine()
    data = small_chunks(client)
    first = data.snapshot(frame, name="wine")
    edited = frame.drop(index=[50]).reset_index(drop=True)
    second = data.snapshot(edited, name="wine")
    kept = {c["digest"] for c in data.manifest(first)["chunks"]}
    new = [c for c in data.manifest(second)["chunks"] if c["digest"] not in kept]
    assert 1 <= len(new) <= 2 < first.details["chunks"]


def test_folder_glob_and_sql_sources(client: Shipyard, tmp_path: Path) -> None:
    frame = wine()
    folder = tmp_path / "parts"
    folder.mkdir()
    frame.iloc[:100].to_parquet(folder / "a.parquet")
    frame.iloc[100:].to_parquet(folder / "b.parquet")
    by_folder = client.data.snapshot(str(folder), name="wine")
    by_glob = client.data.snapshot(str(folder / "*.parquet"), name="wine")
    db = tmp_path / "shop.db"
    with sqlite3.connect(db) as conn:
        frame.to_sql("wine", conn, index=False)
    by_sql = client.data.snapshot(f"sqlite:///{db}#SELECT * FROM wine", name="wine")

    assert by_folder.content_hash == by_glob.content_hash == fingerprint(frame).content_hash
    assert by_sql.n_rows == len(frame)
    assert by_sql.new_bytes == 0  # the same rows and types: nothing new to store
    pd.testing.assert_frame_equal(client.data.read(by_sql), frame)


def test_get_writes_parquet_csv_and_jsonl(client: Shipyard, tmp_path: Path) -> None:
    frame = wine()
    data = small_chunks(client)
    data.snapshot(frame, name="wine")
    for name in ("out.parquet", "out.csv", "out.jsonl"):
        data.write("wine:1", tmp_path / name)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "out.parquet"), frame)
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "out.csv"), frame)
    assert len(pd.read_json(tmp_path / "out.jsonl", lines=True)) == len(frame)


def test_bad_names_refs_and_sources_are_clear_errors(client: Shipyard) -> None:
    with pytest.raises(InvalidInputError, match="Dataset name 'bad name'"):
        client.data.snapshot(wine(), name="bad name")
    with pytest.raises(InvalidInputError, match="NAME:VERSION"):
        client.data.resolve("wine:zero")
    with pytest.raises(DatasetNotFoundError, match="Known datasets: none yet"):
        client.data.resolve("wine:1")
    with pytest.raises(InvalidInputError, match="No table files match"):
        client.data.snapshot("/nonexistent-folder/*.parquet", name="wine")
    # A table with columns and no rows is a version too: its schema reads back.
    empty = client.data.snapshot(wine().iloc[:0], name="wine")
    assert empty.n_rows == 0
    assert list(client.data.read(empty)) == list(wine())


def test_prune_keeps_versions_a_run_uses(client: Shipyard) -> None:
    data = small_chunks(client)
    frame = wine()
    data.snapshot(frame.iloc[:60], name="wine")
    with client.tracker.start_run("wine") as run:
        used = run.log_dataset(frame.iloc[:120], snapshot=True, name="wine")
    data.snapshot(frame, name="wine")
    from shipyard.data.usage import DatasetUsers

    users = DatasetUsers(client.datasets, client.models)
    result = data.prune("wine", keep_last=1, in_use=users.holder)

    assert result.removed == ["wine:1"]
    assert result.kept == {"wine:2": f"run {run.id}"}
    assert client.runs.get_run(run.id).datasets["training"]["snapshot"] == "wine:2"
    assert used.n_rows == 120
    # What survives still reads back whole: no chunk it lists was deleted.
    pd.testing.assert_frame_equal(data.read("wine:2"), frame.iloc[:120])
    pd.testing.assert_frame_equal(data.read("wine:3"), frame)
    with pytest.raises(DatasetNotFoundError):
        data.resolve("wine:1")


def test_a_parquet_file_and_the_same_dataframe_store_the_same_chunks(
    client: Shipyard, tmp_path: Path
) -> None:
    # A Parquet source's chunks are encoded from its Arrow batches, a DataFrame's from
    # pandas: the bytes must agree, or the second snapshot would store everything again.
    # (Another dataset name: no earlier version of its own to reuse chunks from.)
    digits = load_digits(as_frame=True).frame.assign(
        at=pd.Timestamp("2024-01-01") + pd.to_timedelta(np.arange(1797), "min")
    )
    path = tmp_path / "digits.parquet"
    digits.to_parquet(path, row_group_size=500)
    data = small_chunks(client)
    from_frame = data.snapshot(digits, name="digits")
    from_file = data.snapshot(str(path), name="digits_file")

    assert from_frame.details["chunks"] > 50
    assert from_file.new_bytes == 0
    assert [c["digest"] for c in data.manifest(from_file)["chunks"]] == [
        c["digest"] for c in data.manifest(from_frame)["chunks"]
    ]
    pd.testing.assert_frame_equal(data.read(from_file), digits)


def test_a_version_is_recorded_only_after_its_chunks_are_synced_and_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Durability: when the database records a version, every chunk and the manifest it
    lists are already synced to disk under their digests (a crash cannot leave the
    database pointing at a blob that is lost or half-written)."""
    from shipyard.store import artifacts as module

    client = Shipyard(Settings(home=tmp_path / "home", user="tester"))
    versions = small_chunks(client)
    synced: set[str] = set()
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.add(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(module.os, "fsync", fsync)
    checked: list[int] = []
    real_add = client.datasets.add_version

    def add_version(name: str, **fields: object) -> object:
        digest = str(fields["manifest_digest"])
        manifest = json.loads(client.artifacts.get_bytes(digest))
        for blob in [digest, *(c["digest"] for c in manifest["chunks"])]:
            path = tmp_path / "home" / "artifacts" / "blobs" / blob[:2] / blob
            assert path.is_file(), f"{blob} not under its name when the version was recorded"
            assert str(path.parent) in synced, f"the folder of {blob} was not synced"
        checked.append(len(manifest["chunks"]))
        return real_add(name, **fields)

    monkeypatch.setattr(client.datasets, "add_version", add_version)
    versions.snapshot(wine(), name="wine")
    assert checked and checked[0] > 5  # many chunks, all checked
    client.close()


def test_a_failed_snapshot_leaves_no_blobs_and_no_version(tmp_path: Path) -> None:
    client = Shipyard(Settings(home=tmp_path / "home", user="tester"))
    versions = small_chunks(client)
    frame = wine()

    def pieces() -> Iterator[Piece]:
        yield Piece(frame.iloc[:100])  # several chunks' worth, encoded and written
        raise OSError("the export was cut off")

    with pytest.raises(OSError, match="cut off"):
        versions._store_frames(pieces(), name="wine", message=None, described="wine.parquet")
    artifacts = tmp_path / "home" / "artifacts"
    assert [p for p in artifacts.rglob("*") if p.is_file()] == []
    with pytest.raises(DatasetNotFoundError):
        client.datasets.get_version("wine")
    client.close()


def test_a_local_parquet_file_is_read_through_arrows_own_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not a Python file object: that took the GIL (and copied the bytes) on every read
    the decoding thread made. A missing or damaged file is still a clear error."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from shipyard.data import sources
    from shipyard.errors import TableError

    opened: list[object] = []

    class Recording(pq.ParquetFile):  # type: ignore[misc]
        def __init__(self, source: object, *args: object, **kwargs: object) -> None:
            opened.append(source)
            super().__init__(source, *args, **kwargs)

    monkeypatch.setattr(sources.pq, "ParquetFile", Recording)
    client = Shipyard(Settings(home=tmp_path / "home", user="tester"))
    wine().to_parquet(tmp_path / "wine.parquet")
    version = client.data.snapshot(tmp_path / "wine.parquet", name="wine")
    assert version.n_rows == 178
    assert len(opened) == 1 and isinstance(opened[0], pa.NativeFile)

    with pytest.raises(TableError, match="no such file"):
        client.data.snapshot(tmp_path / "missing.parquet", name="wine")
    (tmp_path / "bad.parquet").write_text("not parquet")
    with pytest.raises(TableError, match=r"bad\.parquet"):
        client.data.snapshot(tmp_path / "bad.parquet", name="wine")
    client.close()


def test_a_location_is_told_from_a_dataframe_while_pandas_is_half_imported(
    client: Shipyard, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CLI's read-ahead thread may be importing pandas (a file with text columns)
    while the snapshot asks whether its source is a DataFrame: a half-imported pandas
    has no ``DataFrame`` yet, and asking it crashed the command."""
    import sys
    import types

    wine().to_parquet(tmp_path / "wine.parquet")
    reading = client.data  # made before pandas is swapped for its half-imported state
    half_imported = types.ModuleType("pandas")  # as sys.modules holds it mid-import
    with monkeypatch.context() as patch:
        patch.setitem(sys.modules, "pandas", half_imported)
        from shipyard.data.snapshots import _is_dataframe

        assert not _is_dataframe(str(tmp_path / "wine.parquet"))
        assert not _is_dataframe(tmp_path / "wine.parquet")
    version = reading.snapshot(tmp_path / "wine.parquet", name="wine")
    assert version.n_rows == 178


def test_pruning_one_dataset_keeps_the_chunks_another_dataset_shares(client: Shipyard) -> None:
    """The same rows under two names share their chunks: pruning one name must leave
    every chunk the other lists, and both dry-run totals agree."""
    data = small_chunks(client)
    frame = wine()
    data.snapshot(frame, name="wine")  # wine:1
    data.snapshot(frame.iloc[:100], name="wine")  # wine:2
    shared = data.snapshot(frame, name="wine_copy")
    assert shared.new_bytes == 0  # every chunk already stored for wine:1

    from shipyard.data.usage import DatasetUsers

    users = DatasetUsers(client.datasets, client.models)
    one = data.prune("wine", keep_last=1, in_use=users.holder, dry_run=True)
    everything = data.prune(None, keep_last=1, in_use=users.holder, dry_run=True)
    assert one.removed == everything.removed == ["wine:1"]
    assert one.bytes_freed == everything.bytes_freed == 0  # wine_copy:1 lists them all

    data.prune("wine", keep_last=1, in_use=users.holder)
    pd.testing.assert_frame_equal(data.read(shared.ref), frame)


def test_an_empty_parquet_file_is_a_version_with_its_columns_like_an_empty_csv(
    client: Shipyard, tmp_path: Path
) -> None:
    columns = wine().iloc[:0]
    columns.to_parquet(tmp_path / "empty.parquet")
    columns.to_csv(tmp_path / "empty.csv", index=False)
    from_parquet = client.data.snapshot(tmp_path / "empty.parquet", name="empty")
    from_csv = client.data.snapshot(tmp_path / "empty.csv", name="empty_csv")
    assert from_parquet.n_rows == from_csv.n_rows == 0
    assert from_parquet.schema == {c: str(t) for c, t in columns.dtypes.items()}
    pd.testing.assert_frame_equal(client.data.read(from_parquet), columns, check_index_type=False)


def orders() -> pd.DataFrame:
    """An ordered category with an unused level, and an unordered one whose categories
    are not in the order their values first appear (as pandas and models see them)."""
    rng = np.random.default_rng(7)
    n = 300
    return pd.DataFrame(
        {
            "level": pd.Categorical(
                rng.choice(["lo", "hi"], n), categories=["lo", "mid", "hi"], ordered=True
            ),
            "country": pd.Categorical(
                rng.choice(["US", "JP", "FR", "DE", "BR"], n),
                categories=["BR", "DE", "FR", "JP", "US"],
            ),
            "amount": rng.normal(size=n),
        }
    )


def assert_same_categories(frame: pd.DataFrame, like: pd.DataFrame) -> None:
    for column in ("level", "country"):
        got, want = frame[column].dtype, like[column].dtype
        assert list(got.categories) == list(want.categories), column
        assert got.ordered == want.ordered, column


def test_categorical_columns_read_back_with_their_exact_categories(
    client: Shipyard, tmp_path: Path
) -> None:
    frame = orders()
    path = tmp_path / "orders.parquet"
    frame.to_parquet(path, row_group_size=100)
    data = small_chunks(client)
    from_frame = data.snapshot(frame, name="orders")
    from_file = data.snapshot(str(path), name="orders")
    assert from_frame.details["chunks"] > 3

    for version in (from_frame, from_file):
        # The fingerprint is still the run fingerprint of the same frame.
        assert version.content_hash == fingerprint(frame).content_hash
        back = data.read(version)
        pd.testing.assert_frame_equal(back, frame)
        assert (back["country"].cat.codes == frame["country"].cat.codes).all()
        # Each chunk as it is yielded (what `data get` writes), not only the whole.
        for chunk in data.iter_chunks(version):
            assert_same_categories(chunk, frame)
    data.write(from_file.ref, tmp_path / "out.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "out.parquet"), frame)


def test_categories_that_differ_between_files_are_their_union(
    client: Shipyard, tmp_path: Path
) -> None:
    folder = tmp_path / "parts"
    folder.mkdir()
    first = pd.DataFrame({"c": pd.Categorical(["x", "y"] * 20, categories=["y", "x"])})
    second = pd.DataFrame({"c": pd.Categorical(["z", "x"] * 20, categories=["z", "x", "w"])})
    first.to_parquet(folder / "1.parquet")
    second.to_parquet(folder / "2.parquet")

    version = small_chunks(client).snapshot(str(folder), name="parts")
    back = client.data.read(version)
    # No value of the second file lost (cast to the first file's categories, they were NaN).
    assert list(back["c"].astype(str)) == ["x", "y"] * 20 + ["z", "x"] * 20
    assert list(back["c"].cat.categories) == ["y", "x", "z", "w"]
    for chunk in client.data.iter_chunks(version):
        assert list(chunk["c"].cat.categories) == ["y", "x", "z", "w"]


def test_a_named_index_is_kept_and_read_back_as_the_index(client: Shipyard, tmp_path: Path) -> None:
    events = pd.DataFrame(
        {"event_id": [105, 101, 230, 9, 77] * 20, "value": np.arange(100.0)}
    ).set_index("event_id")
    ranged = pd.DataFrame({"value": np.arange(100.0)}).rename_axis("row")  # a named RangeIndex
    data = small_chunks(client)
    for frame, name in ((events, "events"), (ranged, "ranged")):
        path = tmp_path / f"{name}.parquet"
        frame.to_parquet(path)
        from_file = data.snapshot(str(path), name=name)
        from_frame = data.snapshot(frame, name=name)
        for version in (from_file, from_frame):
            assert list(version.schema) == [frame.index.name, "value"]
            # The version's fingerprint is that of the frame with its index as columns.
            assert version.content_hash == fingerprint(frame.reset_index()).content_hash
            pd.testing.assert_frame_equal(data.read(version), frame, check_index_type=False)
            for chunk in data.iter_chunks(version):
                assert chunk.index.name == frame.index.name
        data.write(from_file.ref, tmp_path / "out.parquet")
        data.write(from_file.ref, tmp_path / "out.csv")
        data.write(from_file.ref, tmp_path / "out.jsonl")
        pd.testing.assert_frame_equal(
            pd.read_parquet(tmp_path / "out.parquet"), frame, check_index_type=False
        )
        pd.testing.assert_frame_equal(
            pd.read_csv(tmp_path / "out.csv", index_col=0), frame, check_index_type=False
        )
        jsonl = pd.read_json(tmp_path / "out.jsonl", lines=True)
        assert list(jsonl.columns) == [frame.index.name, "value"]

    # run.log_dataset keeps it the same way.
    with client.tracker.start_run("events") as run:
        logged = run.log_dataset(events, snapshot=True, name="logged")
    assert logged.snapshot is not None
    pd.testing.assert_frame_equal(client.data.read(logged.snapshot), events)


def test_the_default_index_is_still_ignored(client: Shipyard) -> None:
    frame = wine()
    filtered = frame[frame["alcohol"] > 13]  # an unnamed index with gaps: not data
    version = client.data.snapshot(filtered, name="wine")
    assert list(version.schema) == list(frame.columns)
    assert version.content_hash == fingerprint(filtered).content_hash
    assert "index" not in client.data.manifest(version)
    pd.testing.assert_frame_equal(client.data.read(version), filtered.reset_index(drop=True))


def test_an_index_named_like_a_column_is_a_clear_error(client: Shipyard) -> None:
    frame = wine().set_index("row_id").assign(row_id=1)
    with pytest.raises(InvalidInputError, match="The index \\['row_id'\\] has the name of"):
        client.data.snapshot(frame, name="wine")


def test_a_frame_arrow_cannot_store_is_a_clear_error_from_log_dataset(client: Shipyard) -> None:
    twice = pd.DataFrame([[1, 2]], columns=["user_id", "user_id"])
    mixed = pd.DataFrame({"user_id": [1, 2], "note": [3, "three"]})
    with client.tracker.start_run("e") as run:
        with pytest.raises(InvalidInputError, match="'user_id' appear more than once"):
            run.log_dataset(twice, snapshot=True)
        with pytest.raises(InvalidInputError, match=r"'note' \(int, str\) mix values"):
            run.log_dataset(mixed, snapshot=True)
    with pytest.raises(InvalidInputError, match=r"df\['note'\].astype\(str\)"):
        client.data.snapshot(mixed, name="notes")
    assert client.datasets.list_versions() == []
