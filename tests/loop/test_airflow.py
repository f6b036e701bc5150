"""``shipyard loop export --airflow``: the DAG file, parsed by Airflow's own DagBag.

Airflow runs in its own venv (``bench/.peers/airflow``). Under CI (``CI=true``)
the venv is built on first use; elsewhere the parse test skips until it is built::

    .venv/bin/python bench/_peers.py airflow 'apache-airflow==3.*'
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from peers import peer_venv_python
from shipyard import Shipyard
from shipyard.cli.main import app
from shipyard.config import Settings
from shipyard.errors import InvalidInputError
from shipyard.loop.airflow import airflow_dag
from shipyard.loop.examples import iris_frame

AIRFLOW_REQUIREMENTS = ["apache-airflow==3.*"]
PARSE = """
import json, os, sys, tempfile
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp())
try:
    from airflow.dag_processing.dagbag import DagBag
except ImportError:
    from airflow.models.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
print(json.dumps({
    "errors": {k: str(v) for k, v in bag.import_errors.items()},
    "dags": {i: {"schedule": str(getattr(d, "schedule", None) or d.timetable),
                 "tasks": {t.task_id: t.bash_command for t in d.tasks}}
             for i, d in bag.dags.items()},
}))
"""

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("airflow")]


@pytest.fixture(scope="module")
def airflow_python() -> Path:
    return peer_venv_python("airflow", AIRFLOW_REQUIREMENTS, "Airflow")


def _config(folder: Path) -> Path:
    iris_frame().to_csv(folder / "iris.csv", index=False)
    pipeline = {
        "entry_point": "shipyard.loop.examples:train_iris",
        "params": {"cv": 2},
        "data": {"path": "iris.csv"},
        "target": "species",
    }
    models = [
        {
            "model": name,
            "pipeline": pipeline,
            "triggers": [{"kind": "new_data", "min_new_rows": 10}],
            "canary": {"enabled": False},
        }
        for name in ("iris", "iris-big")
    ]
    path = folder / "loop.yaml"
    path.write_text(yaml.safe_dump({"models": models}))
    return path


def test_exported_dag_parses_in_airflow(tmp_path: Path, airflow_python: Path) -> None:
    config = _config(tmp_path)
    dag = tmp_path / "dags" / "shipyard_loop.py"
    client = Shipyard(Settings(home=tmp_path / "home", user="tester"))
    done = CliRunner().invoke(
        app,
        ["loop", "export", "-c", str(config), "--airflow", str(dag), "--schedule", "0 * * * *"],
        obj=client,
    )
    assert done.exit_code == 0, done.output
    parsed = subprocess.run(
        [airflow_python, "-c", PARSE, dag], capture_output=True, text=True, timeout=300
    )
    assert parsed.returncode == 0, parsed.stderr
    body = json.loads(parsed.stdout.strip().splitlines()[-1])
    assert body["errors"] == {}
    [(dag_id, info)] = body["dags"].items()
    assert dag_id == "shipyard_loop" and "0 * * * *" in info["schedule"]
    assert info["tasks"] == {
        f"tick_{m}": f"shipyard loop tick --config {config.resolve()} --model {m}"
        for m in ("iris", "iris-big")
    }


def test_the_dag_text_compiles_and_bad_options_are_refused() -> None:
    text = airflow_dag(["iris"], config="/srv/my loop.yaml")
    compile(text, "dag.py", "exec")
    assert "'/srv/my loop.yaml'" in text  # quoted for the shell
    with pytest.raises(InvalidInputError, match="not a cron expression"):
        airflow_dag(["iris"], config="x.yaml", schedule="every hour")
    with pytest.raises(InvalidInputError, match="DAG id"):
        airflow_dag(["iris"], config="x.yaml", dag_id="bad id")


def test_tick_model_runs_only_that_model(tmp_path: Path) -> None:
    config = _config(tmp_path)
    client = Shipyard(Settings(home=tmp_path / "home", user="tester"))
    done = CliRunner().invoke(
        app, ["loop", "tick", "-c", str(config), "--model", "iris-big", "--json"], obj=client
    )
    assert done.exit_code == 0, done.output
    assert [t["model"] for t in json.loads(done.output)] == ["iris-big"]
    missing = CliRunner().invoke(
        app, ["loop", "tick", "-c", str(config), "--model", "nope"], obj=client
    )
    assert missing.exit_code == 1
    assert "has no model 'nope'; it configures iris, iris-big" in missing.output
