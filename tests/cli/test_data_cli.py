"""``shipyard data ...`` through the real Typer app, and ``data get`` as a real process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from click.testing import Result
from sklearn.datasets import load_wine
from sklearn.tree import DecisionTreeClassifier
from typer.testing import CliRunner

from shipyard import Shipyard
from shipyard.cli._common import console
from shipyard.cli.main import app
from shipyard.config import Settings

SHIPYARD = Path(sys.executable).with_name("shipyard")


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(console, "width", 200)


@pytest.fixture
def client(tmp_path: Path) -> Shipyard:
    return Shipyard(Settings(home=tmp_path / "home", user="tester"))


def data(client: Shipyard, *args: str | Path) -> Result:
    return CliRunner().invoke(app, ["data", *map(str, args)], obj=client)


def wine() -> pd.DataFrame:
    return load_wine(as_frame=True).frame.assign(row_id=np.arange(178))


def test_snapshot_list_versions_show_diff(client: Shipyard, tmp_path: Path) -> None:
    frame = wine()
    frame.iloc[:150].to_csv(tmp_path / "v1.csv", index=False)
    frame.to_parquet(tmp_path / "v2.parquet")

    first = data(client, "snapshot", tmp_path / "v1.csv", "--name", "wine", "-m", "first cut")
    assert first.exit_code == 0, first.output
    assert "wine:1: 150 rows, 15 columns" in first.output
    second = data(client, "snapshot", tmp_path / "v2.parquet", "--name", "wine", "--json")
    assert json.loads(second.output)["ref"] == "wine:2"

    listed = data(client, "list")
    assert "wine" in listed.output and "178" in listed.output
    versions = data(client, "versions", "wine", "--json")
    assert [v["message"] for v in json.loads(versions.output)] == ["first cut", None]

    # A run reads wine:2 and a model version is logged from it: show names both.
    with client.tracker.start_run("wine") as run:
        client.datasets.record_use("wine", 2, run.id, "training")
        features = frame.drop(columns="target")
        model = DecisionTreeClassifier(random_state=0).fit(features, frame.target)
        client.registry.log_model(model, "wine-clf", sample=features.head(20), run_id=run.id)
    shown = data(client, "show", "wine:2")
    assert shown.exit_code == 0, shown.output
    assert "rows:        178" in shown.output
    assert f"runs:        {run.id}" in shown.output
    assert "models:      wine-clf:1" in shown.output
    assert "alcohol" in shown.output  # the schema

    diff = data(client, "diff", "wine:1", "wine:2", "--key", "row_id", "--json")
    assert diff.exit_code == 0, diff.output
    body = json.loads(diff.output)
    assert (body["added"], body["removed"], body["changed"]) == (28, 0, 0)

    pruned = data(client, "prune", "wine", "--keep-last", "0", "--dry-run")
    assert "would remove 1 version(s): wine:1" in pruned.output
    assert "kept wine:2: used by model version wine-clf:1" in pruned.output
    assert data(client, "show", "wine:1").exit_code == 0  # dry run: still there


def test_get_is_a_real_command_that_writes_the_version(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {**os.environ, "SHIPYARD_HOME": str(home), "SHIPYARD_USER": "tester"}
    wine().to_parquet(tmp_path / "wine.parquet")
    subprocess.run(
        [SHIPYARD, "data", "snapshot", tmp_path / "wine.parquet", "--name", "wine"],
        env=env,
        check=True,
        capture_output=True,
    )
    out = tmp_path / "copy.csv"
    done = subprocess.run(
        [SHIPYARD, "data", "get", "wine:1", "--output", out],
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    pd.testing.assert_frame_equal(pd.read_csv(out), wine())


def test_get_gives_back_the_categories_and_named_index_it_snapshotted(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    events = pd.DataFrame(
        {
            "event_id": rng.permutation(np.arange(1000, 1400)),
            "level": pd.Categorical(
                rng.choice(["lo", "hi"], 400), categories=["lo", "mid", "hi"], ordered=True
            ),
            "country": pd.Categorical(
                rng.choice(["US", "JP", "FR", "DE", "BR"], 400),
                categories=["BR", "DE", "FR", "JP", "US"],
            ),
        }
    ).set_index("event_id")
    events.to_parquet(tmp_path / "events.parquet")
    env = {**os.environ, "SHIPYARD_HOME": str(tmp_path / "home"), "SHIPYARD_USER": "tester"}

    def shipyard(*args: str | Path) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([SHIPYARD, *args], env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return done

    snapped = shipyard("data", "snapshot", tmp_path / "events.parquet", "--name", "events")
    assert "3 columns" in snapped.stdout  # event_id is kept, as a column of the version
    shipyard("data", "get", "events:1", "--output", tmp_path / "copy.parquet")
    back = pd.read_parquet(tmp_path / "copy.parquet")
    pd.testing.assert_frame_equal(back, events)
    assert (back["country"].cat.codes == events["country"].cat.codes).all()
    shipyard("data", "get", "events:1", "--output", tmp_path / "copy.csv")
    text = pd.read_csv(tmp_path / "copy.csv")
    assert list(text.columns) == ["event_id", "level", "country"]
    assert list(text["event_id"]) == list(events.index)


def test_bad_input_is_one_line(client: Shipyard, tmp_path: Path) -> None:
    missing = data(client, "show", "wine:7")
    assert missing.exit_code != 0
    assert "No dataset version wine:7" in missing.output
    assert "Traceback" not in missing.output
    bad = data(client, "snapshot", tmp_path / "x.parquet", "--name", "no/slash")
    assert "Dataset name 'no/slash' is not allowed" in bad.output
    wine().to_parquet(tmp_path / "w.parquet")
    data(client, "snapshot", tmp_path / "w.parquet", "--name", "wine")
    wrong = data(client, "get", "wine:1", "--output", tmp_path / "out.xlsx")
    assert "give a file ending in .parquet, .csv or .jsonl" in wrong.output


def test_snapshot_loads_its_libraries_with_the_collector_paused_then_freezes_them(
    client: Shipyard, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Start-up: no cyclic collection while pandas, pyarrow and SQLAlchemy are imported;
    afterwards what was loaded is frozen and the collector runs again for the rest."""
    import gc

    from shipyard.data.snapshots import DataVersions

    seen: list[bool] = []
    real = type(client).data

    def loading(self: Shipyard) -> DataVersions:
        seen.append(gc.isenabled())
        return real.func(self)  # type: ignore[attr-defined,no-any-return]

    monkeypatch.setattr(type(client), "data", property(loading))
    wine().to_parquet(tmp_path / "wine.parquet")
    frozen = gc.get_freeze_count()
    try:
        result = data(client, "snapshot", tmp_path / "wine.parquet", "--name", "wine")
        assert result.exit_code == 0, result.output
        assert seen == [False]
        assert gc.isenabled()
        assert gc.get_freeze_count() > frozen
    finally:
        gc.unfreeze()


def test_snapshot_allocates_arrow_buffers_with_malloc_and_restores_the_pool(
    client: Shipyard, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Arrow's default pool (mimalloc) faulted in 2 MiB pages that the kernel zeroed
    whole: several times the system time of malloc for a snapshot (bench/data.py)."""
    import pyarrow as pa

    from shipyard.data.snapshots import DataVersions

    pools: list[str] = []
    real = DataVersions.snapshot

    def snapshot(self: DataVersions, *args: Any, **kwargs: Any) -> Any:
        pools.append(pa.default_memory_pool().backend_name)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(DataVersions, "snapshot", snapshot)
    before = pa.default_memory_pool().backend_name
    wine().to_parquet(tmp_path / "wine.parquet")
    result = data(client, "snapshot", tmp_path / "wine.parquet", "--name", "wine")
    assert result.exit_code == 0, result.output
    assert pools == ["system"]
    assert pa.default_memory_pool().backend_name == before


def test_snapshot_starts_no_blas_threads_unless_asked(tmp_path: Path) -> None:
    """A snapshot multiplies no matrices: the command keeps OpenBLAS to one thread (its
    extra threads spun 0.1 s of CPU at start-up), but a value the user set wins."""
    wine().to_parquet(tmp_path / "wine.parquet")
    probe = (
        "import atexit, json, sys\n"
        "from shipyard.cli.main import app\n"
        "def report():\n"
        "    from threadpoolctl import threadpool_info\n"
        "    blas = [p['num_threads'] for p in threadpool_info() if p['user_api'] == 'blas']\n"
        "    print('BLAS', json.dumps(blas), file=sys.stderr)\n"
        "atexit.register(report)\n"
        "sys.argv = ['shipyard', *sys.argv[1:]]\n"
        "app()\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    env.update(SHIPYARD_HOME=str(tmp_path / "home"), SHIPYARD_USER="tester")
    command = [sys.executable, "-c", probe, "data", "snapshot", str(tmp_path / "wine.parquet")]

    def blas_threads(extra: dict[str, str], name: str) -> list[int]:
        done = subprocess.run(
            [*command, "--name", name], env={**env, **extra}, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        line = [x for x in done.stderr.splitlines() if x.startswith("BLAS ")][-1]
        return list(json.loads(line.removeprefix("BLAS ")))

    assert set(blas_threads({}, "wine")) == {1}
    if (os.cpu_count() or 1) > 1:
        assert set(blas_threads({"OPENBLAS_NUM_THREADS": "2"}, "wine2")) == {2}


def test_snapshot_starts_reading_a_file_before_it_opens_the_store(
    client: Shipyard, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Decoding the first row groups overlaps importing and opening the store; a Delta
    Lake pin reads nothing of the kind ahead."""
    import threading

    from shipyard.data.snapshots import DataVersions

    reading_when_opened: list[bool] = []
    real = type(client).data

    def opening(self: Shipyard) -> DataVersions:
        names = [t.name for t in threading.enumerate()]
        reading_when_opened.append("shipyard-prefetch" in names)
        return real.func(self)  # type: ignore[attr-defined,no-any-return]

    handed: list[object] = []
    real_snapshot = DataVersions.snapshot

    def snapshot(self: DataVersions, *args: Any, **kwargs: Any) -> Any:
        handed.append(kwargs.get("reading"))
        return real_snapshot(self, *args, **kwargs)

    monkeypatch.setattr(type(client), "data", property(opening))
    monkeypatch.setattr(DataVersions, "snapshot", snapshot)
    wine().to_parquet(tmp_path / "wine.parquet", row_group_size=50)
    result = data(client, "snapshot", tmp_path / "wine.parquet", "--name", "wine")
    assert result.exit_code == 0, result.output
    assert reading_when_opened == [True] and handed[0] is not None
    pd.testing.assert_frame_equal(client.data.read("wine:1"), wine())

    missing = data(client, "snapshot", tmp_path / "gone.parquet", "--name", "wine")
    assert missing.exit_code != 0 and "no such file" in missing.output
    pinned = data(client, "snapshot", tmp_path / "wine.parquet", "--name", "w", "--delta")
    assert pinned.exit_code != 0 and handed[-1] is None


def precise() -> pd.DataFrame:
    """Values pandas' own JSON writer cut: long floats, microseconds, a time zone."""
    at = pd.to_datetime(["2024-05-01 10:00:00.123456", "2024-12-01 10:00:00"], format="ISO8601")
    return pd.DataFrame(
        {"x": [0.1 + 0.2, 1 / 3], "at": at, "local": at.tz_localize("Europe/Berlin")}
    )


def test_get_jsonl_and_csv_keep_every_digit_and_time_zone(client: Shipyard, tmp_path: Path) -> None:
    precise().to_parquet(tmp_path / "precise.parquet")
    assert data(client, "snapshot", tmp_path / "precise.parquet", "-n", "p").exit_code == 0
    got = data(client, "get", "p:1", "--output", tmp_path / "p.jsonl")
    assert got.exit_code == 0, got.output
    lines = (tmp_path / "p.jsonl").read_text().splitlines()
    assert lines == [
        '{"x":0.30000000000000004,"at":"2024-05-01T10:00:00.123456",'
        '"local":"2024-05-01T10:00:00.123456+02:00"}',
        '{"x":0.3333333333333333,"at":"2024-12-01T10:00:00.000000",'
        '"local":"2024-12-01T10:00:00.000000+01:00"}',
    ]
    # CSV keeps them too (pandas writes floats with repr and times whole).
    assert data(client, "get", "p:1", "--output", tmp_path / "p.csv").exit_code == 0
    back = pd.read_csv(tmp_path / "p.csv", float_precision="round_trip")
    assert back["x"].tolist() == [0.1 + 0.2, 1 / 3]
    assert back["local"].tolist() == [
        "2024-05-01 10:00:00.123456+02:00",
        "2024-12-01 10:00:00.000000+01:00",
    ]


def test_snapshot_of_a_mistyped_sqlite_path_names_the_file_and_creates_nothing(
    client: Shipyard, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    for source in ("sqlite:///data/nosuch.db#orders", "sqlite:///data/nosuch.db#SELECT 1"):
        result = data(client, "snapshot", source, "--name", "x")
        assert result.exit_code != 0
        assert "the SQLite database file data/nosuch.db does not exist" in result.output
        assert "there is no table" not in result.output and "Traceback" not in result.output
    assert not (tmp_path / "data" / "nosuch.db").exists()


def test_diff_messages_show_plain_key_values(client: Shipyard) -> None:
    """Keys read from Parquet are NumPy scalars: messages show 45576, not np.int32(45576)."""
    old = pd.DataFrame({"user_id": np.array([1, 2], dtype=np.int32), "v": [0.5, 1.5]})
    new = pd.DataFrame({"user_id": np.array([45576, 45576], dtype=np.int32), "v": [2.5, 3.5]})
    client.data.snapshot(old, name="users")
    client.data.snapshot(new, name="users")
    result = data(client, "diff", "users:1", "users:2", "--key", "user_id")
    assert result.exit_code != 0
    assert "Key user_id is not unique in the new version's changed rows (e.g. 45576)" in (
        result.output
    )
    assert "np." not in result.output
    client.data.snapshot(new.iloc[:1].assign(user_id=np.int32(7)), name="users")
    shown = data(client, "diff", "users:1", "users:3", "--key", "user_id")
    assert shown.exit_code == 0, shown.output
    assert "e.g. added: 7" in shown.output and "e.g. removed: 1, 2" in shown.output


def test_snapshot_of_a_folder_whose_files_order_their_columns_differently(
    client: Shipyard, tmp_path: Path
) -> None:
    folder = tmp_path / "exports"
    folder.mkdir()
    frame = wine()
    frame.iloc[:100].to_csv(folder / "1.csv", index=False)
    frame.iloc[100:][list(reversed(frame.columns))].to_csv(folder / "2.csv", index=False)
    result = data(client, "snapshot", folder, "--name", "wine")
    assert result.exit_code == 0, result.output
    assert "wine:1: 178 rows, 15 columns" in result.output
    pd.testing.assert_frame_equal(client.data.read("wine:1"), frame)
