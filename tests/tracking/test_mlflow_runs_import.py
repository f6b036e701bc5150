"""Import from folders and databases written by the real MLflow, run in its own venv.

The venv (``bench/.peers/mlflow``) is built on first use under CI (``CI=true``);
elsewhere these tests skip until it is built::

    .venv/bin/python bench/_peers.py mlflow 'mlflow==3.17.*' 'scikit-learn==1.9.*' skops
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from peers import peer_venv_python
from shipyard import Shipyard
from shipyard.cli.main import app
from shipyard.config import Settings
from shipyard.errors import InvalidInputError
from shipyard.tracking.mlflow_import import import_mlflow

MLFLOW_REQUIREMENTS = ["mlflow==3.17.*", "scikit-learn==1.9.*", "skops"]
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("mlflow")]

# Runs in MLflow's venv: writes experiments the way a team's notebooks would.
WRITER = r"""
import json, math, os, sys
import mlflow
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

uri, workdir = sys.argv[1], sys.argv[2]
os.chdir(workdir)
mlflow.set_tracking_uri(uri)
X, y = load_iris(return_X_y=True)
mlflow.set_experiment("churn model")
out = {"runs": {}}
with mlflow.start_run(run_name="search") as parent:
    mlflow.log_params({"cv": 3, "solver": "lbfgs"})
    mlflow.set_tag("team", "risk")
    for step in range(20):
        mlflow.log_metric("loss", 1.0 / (step + 1), step=step, timestamp=1_700_000_000_000 + step)
    mlflow.log_metric("odd", float("nan"))
    mlflow.log_text("confusion\n", "notes/readme.txt")
    mlflow.log_dict({"C": [0.1, 1.0]}, "config.json")
    os.makedirs("plots/sub", exist_ok=True)
    open("plots/sub/a.csv", "w").write("x\n1\n")
    mlflow.log_artifacts("plots", "plots")
    for c in (0.1, 1.0):
        with mlflow.start_run(run_name=f"C={c}", nested=True) as child:
            mlflow.log_param("C", c)
            model = LogisticRegression(C=c, max_iter=500).fit(X, y)
            mlflow.log_metric("accuracy", model.score(X, y))
            out["runs"][child.info.run_id] = {"C": str(c), "parent": parent.info.run_id}
    out["parent"] = parent.info.run_id
with mlflow.start_run(run_name="failed") as failed:
    mlflow.log_metric("loss", 3.0)
mlflow.tracking.MlflowClient().set_terminated(failed.info.run_id, "FAILED")
out["failed"] = failed.info.run_id
with mlflow.start_run(run_name="gone") as gone:
    mlflow.log_metric("loss", 9.0)
mlflow.delete_run(gone.info.run_id)
out["deleted"] = gone.info.run_id
mlflow.set_experiment("other")
with mlflow.start_run(run_name="elsewhere") as other:
    mlflow.log_metric("accuracy", 0.5)
out["other"] = other.info.run_id
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def mlflow_python() -> Path:
    return peer_venv_python("mlflow", MLFLOW_REQUIREMENTS, "MLflow")


@pytest.fixture(scope="module", params=["file-store", "sqlite"])
def written(request: pytest.FixtureRequest, mlflow_python: Path, tmp_path_factory) -> dict:
    """MLflow's own folder or database, and what the writer says it wrote."""
    work = tmp_path_factory.mktemp(f"mlflow-{request.param}")
    if request.param == "file-store":
        uri, source = (work / "mlruns").as_uri(), str(work / "mlruns")
    else:
        uri = f"sqlite:///{work / 'mlflow.db'}"
        source = uri
    env = {**os.environ, "MLFLOW_ALLOW_FILE_STORE": "true"}
    done = subprocess.run(
        [str(mlflow_python), "-c", WRITER, uri, str(work)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    expected = json.loads(done.stdout.strip().splitlines()[-1])
    return {"source": source, "expected": expected}


@pytest.fixture
def client(database_url: str, tmp_path: Path) -> Shipyard:
    return Shipyard(Settings(home=tmp_path / "home", db=database_url, user="importer"))


def test_everything_mlflow_wrote_is_imported(client: Shipyard, written: dict) -> None:
    expected = written["expected"]
    report = import_mlflow(client.runs, client.artifacts, written["source"])
    assert report.experiments["churn model"] == "churn-model"
    assert report.runs == 5 and report.skipped_deleted == 1
    assert any("'odd'" in w and "nan" in w for w in report.warnings)
    parent = client.runs.get_run(expected["parent"])
    assert parent.experiment == "churn-model" and parent.name == "search"
    assert parent.status == "FINISHED" and parent.end_time is not None
    assert parent.params == {"cv": "3", "solver": "lbfgs"}
    assert parent.tags["team"] == "risk" and "mlflow.user" in parent.tags
    history = client.runs.metric_history(parent.id, "loss")
    assert [p.step for p in history] == list(range(20))
    assert [p.value for p in history] == pytest.approx([1 / (s + 1) for s in range(20)])
    assert history[3].timestamp.timestamp() * 1000 == pytest.approx(1_700_000_000_003)
    assert parent.metrics["loss"] == pytest.approx(0.05)
    children = client.runs.children(parent.id)
    assert {c.id for c in children} == set(expected["runs"])
    for child in children:
        assert child.params["C"] == expected["runs"][child.id]["C"]
        assert 0.9 < child.metrics["accuracy"] <= 1.0
    assert client.runs.get_run(expected["failed"]).status == "FAILED"
    assert not client.runs.run_exists(expected["deleted"])
    assert client.runs.get_run(expected["other"]).experiment == "other"
    files = {a.path: a for a in client.runs.list_artifacts(parent.id)}
    assert set(files) == {"notes/readme.txt", "config.json", "plots/sub/a.csv"}
    assert client.artifacts.get_bytes(files["notes/readme.txt"].digest) == b"confusion\n"
    assert json.loads(client.artifacts.get_bytes(files["config.json"].digest)) == {"C": [0.1, 1.0]}
    # Again: nothing doubles.
    again = import_mlflow(client.runs, client.artifacts, written["source"])
    assert again.runs == 0 and again.skipped_existing == 5
    assert len(client.runs.metric_history(parent.id, "loss")) == 20


def test_one_experiment_through_the_command(
    written: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHIPYARD_HOME", str(tmp_path / "cli-home"))
    result = CliRunner().invoke(
        app, ["runs", "import-mlflow", written["source"], "--experiment", "other", "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["runs"] == 1 and report["experiments"] == {"other": "other"}
    result = CliRunner().invoke(app, ["runs", "list", "--json"])
    assert [r["name"] for r in json.loads(result.output)] == ["elsewhere"]
    result = CliRunner().invoke(app, ["runs", "import-mlflow", written["source"], "-e", "nope"])
    assert result.exit_code == 1 and "No MLflow experiment named 'nope'" in result.output


def test_bad_sources_are_explained(client: Shipyard, tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="no such folder or file"):
        import_mlflow(client.runs, client.artifacts, str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidInputError, match="not an MLflow file store"):
        import_mlflow(client.runs, client.artifacts, str(tmp_path / "empty"))
    (tmp_path / "notes.db").write_text("not a database at all, just text" * 10)
    with pytest.raises(InvalidInputError, match="not"):
        import_mlflow(client.runs, client.artifacts, str(tmp_path / "notes.db"))
    with pytest.raises(InvalidInputError, match="expected an MLflow file store"):
        import_mlflow(client.runs, client.artifacts, "http://tracking.example:5000")
