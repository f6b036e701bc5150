"""``shipyard quickstart`` twice in one folder: each run tells the whole story."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SHIPYARD = Path(sys.executable).with_name("shipyard")


def quickstart(folder: Path) -> dict:  # type: ignore[type-arg]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
    done = subprocess.run(
        [str(SHIPYARD), "quickstart", "--json"],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(done.stdout)  # type: ignore[no-any-return]


@pytest.mark.slow
def test_a_second_quickstart_run_tells_the_same_full_story(tmp_path: Path) -> None:
    first, second = quickstart(tmp_path), quickstart(tmp_path)
    homes = [tmp_path / run["home"] for run in (first, second)]  # relative to the folder
    assert [h.name for h in homes] == ["run-1", "run-2"]
    assert all(h.parent == tmp_path / "shipyard-data" / "quickstart" for h in homes)
    for run in (first, second):
        steps = {s["name"]: s["outcome"] for s in run["steps"]}
        assert list(steps) == [
            "train and register",
            "serve + first request",
            "replay traffic + labels",
            "shifted data -> drift",
            "loop: retrain, gate, canary",
            "bad candidate: gates",
            "bad canary: auto-rollback",
            "feature store: serve by id",
        ]
        assert steps["serve + first request"].startswith("setosa")
        assert steps["shifted data -> drift"].startswith("drift:")
        # The loop retrains and promotes on every run, not "cooling down" on the second.
        assert steps["loop: retrain, gate, canary"].startswith("promoted: iris:3 serves")
        assert "production refused" in steps["bad candidate: gates"]
        assert "rolled back" in steps["bad canary: auto-rollback"]
        assert "iris:3 serves" in steps["bad canary: auto-rollback"]
    # The deployment's promotion moved production: the registry agrees with it.
    env = {**os.environ, "SHIPYARD_HOME": str(homes[1])}
    env.pop("SHIPYARD_DB", None)
    shown = subprocess.run(
        [str(SHIPYARD), "models", "list", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    [iris] = [m for m in json.loads(shown.stdout) if m["name"] == "iris"]
    assert iris["aliases"]["production"] == 3
