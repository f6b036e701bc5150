"""The same training set as Feast itself, value for value, and as the brute-force reference.

Feast 0.67 runs in its own venv (``bench/.peers/feast``) through
``bench/feast_runner.py``, with its DuckDB offline store, on the same Parquet
source and entity rows. The data holds the edge cases on purpose: entity rows
exactly at a feature row's time, exactly at the TTL boundary and one second
past it, ties on event time broken by the created timestamp, unknown drivers.
Under CI (``CI=true``) the venv is built on first use; elsewhere the test skips
until it is built::

    .venv/bin/python bench/_peers.py feast 'feast[duckdb]==0.67.*' 'pandas<3'
"""

from __future__ import annotations

import json
import subprocess
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from driver_data import assert_matches, driver_stats, entity_rows, reference, write_definitions

from peers import BENCH, load_bench, peer_venv_python
from shipyard.config import Settings
from shipyard.features.service import FeatureService

FEATURES = ["conv_rate", "acc_rate", "avg_daily_trips"]
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("feast")]


@pytest.fixture(scope="module")
def feast_python() -> Path:
    return peer_venv_python("feast", load_bench("feast_runner").FEAST_REQUIREMENTS, "Feast")


def _edge_data() -> tuple[pd.DataFrame, pd.DataFrame]:
    stats = driver_stats(n_drivers=12, hours=48, seed=5)
    rng = np.random.default_rng(7)
    # Ties: copies of some rows at the same event time, created earlier or later.
    ties = stats.sample(40, random_state=2).copy()
    ties["created"] = ties["created"] + pd.to_timedelta(rng.choice([-300, 300], 40), "s")
    ties["conv_rate"] = rng.random(40).astype("float32")
    ties["avg_daily_trips"] = rng.integers(1000, 2000, 40)
    # A driver seen every 6 hours: past its 2-hour TTL nothing newer takes over.
    times = pd.date_range("2026-01-01", periods=8, freq="6h", tz="UTC")
    sparse = pd.DataFrame(
        {
            "driver_id": 5000,
            "event_timestamp": times,
            "created": times,
            "conv_rate": rng.random(8).astype("float32"),
            "acc_rate": rng.random(8),
            "avg_daily_trips": rng.integers(0, 500, 8),
        }
    )
    stats = pd.concat([stats, ties, sparse], ignore_index=True)
    random_rows = entity_rows(stats, 500, seed=9)
    picked = pd.concat(
        [sparse, stats.drop_duplicates("event_timestamp").sample(22, random_state=4)]
    )
    edges = []
    for offset in (pd.Timedelta(0), pd.Timedelta(hours=2), pd.Timedelta(hours=2, seconds=1)):
        edges.append(
            pd.DataFrame(
                {
                    "driver_id": picked["driver_id"].to_numpy(),
                    "event_timestamp": (picked["event_timestamp"] + offset).to_numpy(),
                    "label": 1,
                }
            )
        )
    entities = pd.concat([random_rows, *edges], ignore_index=True)
    entities["event_timestamp"] = pd.to_datetime(entities["event_timestamp"], utc=True)
    entities["row_id"] = np.arange(len(entities))
    return stats, entities


def test_training_set_equals_feasts_and_the_reference(tmp_path: Path, feast_python: Path) -> None:
    stats, entities = _edge_data()
    definitions = write_definitions(tmp_path / "repo", stats, ttl="2h")
    entities.to_parquet(tmp_path / "entities.parquet", index=False)
    done = subprocess.run(
        [
            str(feast_python),
            str(BENCH / "feast_runner.py"),
            "--stats",
            str(tmp_path / "repo" / "driver_stats.parquet"),
            "--entities",
            str(tmp_path / "entities.parquet"),
            "--ttl-seconds",
            "7200",
            "--store",
            "duckdb",
            "--output",
            str(tmp_path / "feast.parquet"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1])["rows"] == len(entities)
    feast = pd.read_parquet(tmp_path / "feast.parquet")

    service = FeatureService.from_settings(Settings(home=tmp_path / "home", user="tester"))
    service.apply(definitions)
    ours = service.training_set(entities, [f"driver_stats:{f}" for f in FEATURES])

    assert feast["row_id"].tolist() == ours["row_id"].tolist()
    for feature in FEATURES:
        mine, theirs = ours[feature], feast[feature]
        assert mine.isna().tolist() == theirs.isna().tolist(), feature
        found = mine.notna()
        assert (
            mine[found].astype("float64").to_numpy() == theirs[found].astype("float64").to_numpy()
        ).all(), feature
    expected = reference(
        entities, stats, keys=["driver_id"], features=FEATURES, ttl=timedelta(hours=2)
    )
    assert_matches(ours, expected, FEATURES)
    # The edge cases were really there: exact and boundary rows found values, past-TTL ones
    # of the sparse driver did not.
    n = len(entities)
    assert ours["conv_rate"].iloc[n - 90 : n - 60].notna().all()
    assert ours["conv_rate"].iloc[n - 60 : n - 30].notna().all()
    assert ours["conv_rate"].iloc[n - 30 :].isna().sum() > 0
    assert (ours["avg_daily_trips"] >= 1000).sum() > 0  # some tie rows won on created time
