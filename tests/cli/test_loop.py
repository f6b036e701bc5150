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


def flat(text: str) -> str:
    """Output with the console's line wrapping undone."""
    return " ".join(text.split())


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
    # Step details read as `key: value` lines, nested mappings with dotted keys.
    assert re.search(r"\n    in:\n      source: .*iris\.csv\n", shown.output), shown.output
    assert re.search(r"\n      params\.cv: 2\n", shown.output)
    assert re.search(r"\n      version: iris:1\n", shown.output)
    assert "{" not in shown.output.split("gates ")[0]  # no JSON blobs before the gate checks
    as_json = json.loads(run(client, "history", "iris:1", "--json").output)
    [one] = as_json
    assert one["status"] == "promoted" and one["candidate_version"] == 1
    assert [s["name"] for s in one["steps"]][-1] == "promote"
    assert all(s["duration_s"] >= 0 and "inputs" in s and "outputs" in s for s in one["steps"])
    assert json.loads(run(client, "history", "iris:7", "--json").output) == []
    chain = run(client, "lineage", "iris")
    assert chain.exit_code == 0, chain.output
    assert f"data:        {tmp_path / 'iris.csv'} (150 rows, sha256 " in chain.output
    assert "snapshot:    iris:1" in chain.output
    assert "pipeline:    shipyard.loop.examples:train_iris (code sha256 " in chain.output
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


def _drift_config(tmp_path: Path, estimator: str) -> Path:
    """A drift trigger (1 check, 24 h cool-down) on a drifted current file."""
    iris_frame().to_csv(tmp_path / "iris.csv", index=False)
    iris_frame(rows=150, seed=5, shift=1.5).drop(columns=["species"]).to_csv(
        tmp_path / "current.csv", index=False
    )
    config = {
        "model": "iris",
        "pipeline": {
            "entry_point": "shipyard.loop.examples:train_iris",
            "params": {"cv": 2, "estimator": estimator},
            "data": {"path": "iris.csv"},
            "target": "species",
        },
        "triggers": [
            {
                "kind": "drift",
                "current": {"path": "current.csv"},
                "sustained": 1,
                "cooldown": "24h",
            },
        ],
        "contract": {"enabled": False},
        "canary": {"enabled": False},
    }
    path = tmp_path / "loop.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_a_failed_run_starts_no_cooldown_and_messages_say_which_case_holds(
    client: Shipyard, tmp_path: Path
) -> None:
    failed = run(client, "tick", "--config", _drift_config(tmp_path, "svm"))
    assert failed.exit_code == 1
    assert "drift fired -> run 1 failed: step retrain failed" in failed.output
    assert "A failed run starts no cool-down" in flat(failed.output)
    # The pipeline is fixed: the very next tick retries the same drift occurrence.
    fixed = _drift_config(tmp_path, "logistic_regression")
    retried = run(client, "tick", "--config", fixed)
    assert retried.exit_code == 0, retried.output
    assert "drift fired -> run 2 promoted" in retried.output
    # Now the cool-down holds, and the tick says so: which run, until when, what to do.
    cooling = run(client, "tick", "--config", fixed, "--json")
    [tick] = json.loads(cooling.output)
    assert tick["run"] is None and tick["verdicts"][0]["fired"]
    [refused] = tick["refused"]
    assert (refused["kind"], refused["why"], refused["run"]) == ("drift", "cooling_down", 2)
    assert "cooling down: run 2 (drift, promoted)" in refused["message"]
    assert f"`shipyard loop trigger iris -c {fixed}` retrains now" in refused["message"]
    text = flat(run(client, "tick", "--config", fixed).output)
    assert "iris: drift fired, but cooling down: run 2" in text
    assert "claimed elsewhere" not in text
    history = json.loads(run(client, "history", "iris", "--json").output)
    assert [(r["id"], r["status"]) for r in history] == [(2, "promoted"), (1, "failed")]


def test_a_fresh_registry_bootstraps_on_its_first_tick(client: Shipyard, tmp_path: Path) -> None:
    """No production model yet: the data counts as new whatever the thresholds, and
    the champion-relative gates are skipped with a note instead of failing the run."""
    config = yaml.safe_load(_config(tmp_path, min_new_rows=500).read_text())
    config["triggers"] = [{"kind": "new_data", "min_new_rows": 500, "min_growth": 0.2}]
    config["gates"] = {"thresholds": ["accuracy>=0.5"], "min_changes": ["accuracy:+0"]}
    path = tmp_path / "loop.yaml"
    path.write_text(yaml.safe_dump(config))
    first = run(client, "tick", "--config", path)
    assert first.exit_code == 0, first.output
    text = flat(first.output)
    assert "iris: new_data fired -> run 1 promoted: iris:1 promoted to production" in text
    assert "has 150 rows and no model was trained on it yet" in text
    shown = run(client, "history", "iris")
    assert "note: min_changes accuracy:+0 skipped: no champion to compare with yet" in flat(
        shown.output
    )
    assert re.search(r"gates\s+succeeded", shown.output)
    # The 150 rows are now trained on: the next tick waits for the thresholds again.
    second = run(client, "tick", "--config", path)
    assert "iris: no trigger fired" in second.output and "+0 since the 150" in second.output


def test_loop_hints_are_full_commands(client: Shipyard, tmp_path: Path) -> None:
    config = _config(tmp_path, estimator="svm")
    failed = run(client, "tick", "--config", config)
    assert failed.exit_code == 1
    assert f"`shipyard loop trigger iris -c {config}` retries now" in flat(failed.output)


def test_a_failed_new_data_run_leaves_its_rows_to_train_on(
    client: Shipyard, tmp_path: Path
) -> None:
    assert run(client, "tick", "--config", _config(tmp_path, estimator="svm")).exit_code == 1
    retried = run(client, "tick", "--config", _config(tmp_path))
    assert retried.exit_code == 0, retried.output
    assert "new_data fired -> run 2 promoted" in retried.output


def test_an_entry_point_beside_the_config_imports_without_pythonpath(tmp_path: Path) -> None:
    """`shipyard loop tick` as a real process, from another folder, no PYTHONPATH."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "wine_training.py").write_text(
        "from sklearn.linear_model import LogisticRegression\n"
        "from sklearn.pipeline import make_pipeline\n"
        "from sklearn.preprocessing import StandardScaler\n"
        "from wine_features import FEATURES\n"  # a neighbour module, imported the same way
        "def train(data, params):\n"
        "    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))\n"
        "    model.fit(data[FEATURES], data[params['target']])\n"
        "    return model, {'train_rows': len(data)}\n"
    )
    from sklearn.datasets import load_wine

    wine = load_wine(as_frame=True).frame
    features = [c for c in wine.columns if c != "target"]
    (project / "wine_features.py").write_text(f"FEATURES = {features!r}\n")
    (project / "data").mkdir()
    wine.to_csv(project / "data" / "wine.csv", index=False)
    config = {
        "model": "wine",
        "pipeline": {
            "entry_point": "wine_training:train",
            "data": {"path": "data/wine.csv"},
            "target": "target",
        },
        "triggers": [{"kind": "new_data", "min_new_rows": 1}],
        "canary": {"enabled": False},
    }
    (project / "loop.yaml").write_text(yaml.safe_dump(config))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(SHIPYARD_HOME=str(tmp_path / "home"), SHIPYARD_USER="ci")

    def shipyard(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(SHIPYARD), *args], cwd=elsewhere, env=env, capture_output=True, text=True,
            timeout=300,
        )  # fmt: skip

    done = shipyard("loop", "tick", "--config", "../project/loop.yaml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "wine: new_data fired -> run 1 promoted" in done.stdout
    [history] = json.loads(shipyard("loop", "history", "wine", "--json").stdout)
    retrain = next(s for s in history["steps"] if s["name"] == "retrain")
    assert retrain["inputs"]["entry_point"] == "wine_training:train"


def test_a_canary_no_server_serves_is_reported_by_tick_and_deploy_status(
    client: Shipyard, tmp_path: Path
) -> None:
    from live_server import LiveServer
    from shipyard.serving import ServeOptions, create_app

    config = _config(tmp_path)
    assert run(client, "tick", "--config", config).exit_code == 0  # iris:1, production
    data = yaml.safe_load(config.read_text())
    data["canary"] = {
        "deployment": "web",
        "policy": {"steps": [50, 100], "step_requests": 5, "min_requests": 1},
    }
    data["triggers"] = [{"kind": "new_data", "min_new_rows": 1}]
    config.write_text(yaml.safe_dump(data))
    iris_frame(rows=30, seed=3).to_csv(tmp_path / "iris.csv", mode="a", header=False, index=False)

    waiting = run(client, "tick", "--config", config)
    assert waiting.exit_code == 0, waiting.output
    said = flat(waiting.output)
    assert "run 2 canary" in said
    assert "no server has served deployment 'web' in the last 60 s (none running now)" in said
    assert "shipyard serve --deployment web" in said
    status = CliRunner().invoke(app, ["deploy", "status", "web"], obj=client)
    assert "no server has served deployment 'web' in the last 60 s" in flat(status.output)
    as_json = json.loads(
        CliRunner().invoke(app, ["deploy", "status", "web", "--json"], obj=client).output
    )
    assert as_json["unserved"].startswith("no server has served deployment 'web'")

    options = ServeOptions(deployment="web", poll_interval=0.1)
    server = LiveServer(create_app(client, "web", options=options)).start()
    try:
        served = json.loads(
            CliRunner().invoke(app, ["deploy", "status", "web", "--json"], obj=client).output
        )
        assert served["unserved"] is None and len(served["workers"]) == 1
        resumed = run(client, "tick", "--config", config, "--json")
        [tick] = json.loads(resumed.output)
        assert tick["resumed"] and "no server" not in (tick["run"]["message"] or "")
        record = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
        with server.client() as http:
            assert http.post("/predict", json=record).status_code == 200
        deadline = time.monotonic() + 30
        while not client.deployments.store.epoch_counts("web"):  # the worker reports
            assert time.monotonic() < deadline, "the server never reported its requests"
            time.sleep(0.1)
    finally:
        server.stop()
    # A server that stopped cleanly dropped its heartbeat; when it last served is still known.
    stopped = json.loads(
        CliRunner().invoke(app, ["deploy", "status", "web", "--json"], obj=client).output
    )
    assert stopped["workers"] == [] and "(last seen " in stopped["unserved"]
