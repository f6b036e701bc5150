"""``shipyard loop ...`` through Typer's CliRunner, and ``loop run`` as a real process."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from click.testing import Result
from typer.testing import CliRunner

from shipyard import Shipyard
from shipyard.cli._common import console
from shipyard.cli.main import app
from shipyard.config import Settings
from shipyard.loop.examples import iris_frame

SHIPYARD = Path(sys.executable).with_name("shipyard")


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(console, "width", 200)


@pytest.fixture
def client(tmp_path: Path) -> Shipyard:
    return Shipyard(Settings(home=tmp_path / "home", user="tester"))


def _config(tmp_path: Path, min_new_rows: int = 10, **params: object) -> Path:
    iris_frame().to_csv(tmp_path / "iris.csv", index=False)
    config = {
        "model": "iris",
        "pipeline": {
            "entry_point": "shipyard.loop.examples:train_iris",
            "params": {"cv": 2, **params},
            "data": {"path": "iris.csv"},
            "target": "species",
        },
        "triggers": [{"kind": "new_data", "min_new_rows": min_new_rows}],
        "canary": {"enabled": False},
    }
    path = tmp_path / "loop.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def run(client: Shipyard, *args: str | Path) -> Result:
    return CliRunner().invoke(app, ["loop", *map(str, args)], obj=client)


def test_tick_then_history(client: Shipyard, tmp_path: Path) -> None:
    config = _config(tmp_path)
    first = run(client, "tick", "--config", config)
    assert first.exit_code == 0, first.output
    assert "iris: new_data fired -> run 1 promoted: iris:1 promoted to production" in first.output
    second = run(client, "tick", "--config", config, "--json")
    assert second.exit_code == 0, second.output
    [tick] = json.loads(second.output)
    assert tick["run"] is None and tick["verdicts"][0]["fired"] is False
    assert "+0 since the 150" in tick["verdicts"][0]["reason"]

    shown = run(client, "history", "iris")
    assert shown.exit_code == 0, shown.output
    for step in ("validate_data", "retrain", "register", "gates", "approval", "canary"):
        assert re.search(rf"{step}\s+(succeeded|skipped)\s+[\d.]+ s", shown.output), step
    assert re.search(r"promote\s+succeeded", shown.output)
    assert "in:  {" in shown.output and "out: {" in shown.output
    as_json = json.loads(run(client, "history", "iris:1", "--json").output)
    [one] = as_json
    assert one["status"] == "promoted" and one["candidate_version"] == 1
    assert [s["name"] for s in one["steps"]][-1] == "promote"
    assert all(s["duration_s"] >= 0 and "inputs" in s and "outputs" in s for s in one["steps"])
    assert json.loads(run(client, "history", "iris:7", "--json").output) == []
    chain = run(client, "lineage", "iris")
    assert chain.exit_code == 0, chain.output
    assert f"data:        {tmp_path / 'iris.csv'} (150 rows, sha256 " in chain.output
    assert "version:     iris:1 (production)" in chain.output
    assert "deployments: none" in chain.output and "predictions: 0" in chain.output
    bad = run(client, "history", "iris:x")
    assert bad.exit_code == 1 and "is not MODEL or MODEL:VERSION" in bad.output


def test_a_failed_run_fails_the_tick_and_says_why(client: Shipyard, tmp_path: Path) -> None:
    config = _config(tmp_path, estimator="svm")
    result = run(client, "tick", "--config", config)
    assert result.exit_code == 1
    assert "step retrain failed: InvalidInputError: params.estimator is 'svm'" in result.output
    history = run(client, "history", "iris")
    assert "error: InvalidInputError: params.estimator is 'svm'" in history.output


def test_trigger_and_run_with_max_ticks(client: Shipyard, tmp_path: Path) -> None:
    config = _config(tmp_path)
    manual = run(client, "trigger", "iris", "--config", config, "--reason", "demo")
    assert manual.exit_code == 0, manual.output
    assert "run 1 iris promoted - manual" in manual.output and "trigger: demo" in manual.output
    loop = run(client, "run", "--config", config, "--interval", "0.01", "--max-ticks", "2")
    assert loop.exit_code == 0, loop.output
    assert "Stopped after 2 tick(s)." in loop.output
    missing = run(client, "tick", "--config", tmp_path / "nope.yaml")
    assert missing.exit_code == 1 and "Cannot read loop config" in missing.output


def test_loop_run_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    config = _config(tmp_path, min_new_rows=10_000)  # ticks that train nothing: fast
    env = {**os.environ, "SHIPYARD_HOME": str(tmp_path / "home"), "SHIPYARD_USER": "ci"}
    proc = subprocess.Popen(
        [str(SHIPYARD), "loop", "run", "--config", str(config), "--interval", "0.2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        lines = []
        deadline = time.monotonic() + 120
        assert proc.stdout is not None
        while time.monotonic() < deadline:  # wait for a finished tick, however slow the box
            line = proc.stdout.readline()
            lines.append(line)
            if "iris:" in line or not line:
                break
        assert any("iris:" in line for line in lines), "".join(lines)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, "".join(lines) + out
    assert "SIGTERM: stopping after the current tick." in out
    assert re.search(r"Stopped after \d+ tick\(s\)\.", out)
