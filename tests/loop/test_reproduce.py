"""``shipyard runs reproduce RUN_ID --check`` on SQLite + local files and PostgreSQL + S3.

The loop trains in this process; the reproduction runs as a real ``shipyard``
process, as a user would run it later (and so imports the pipeline's source
as it is on disk then).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from shipyard import Shipyard
from shipyard.cli.main import app
from shipyard.config import Settings
from shipyard.loop.examples import iris_frame

SHIPYARD = Path(sys.executable).with_name("shipyard")
TRAIN = """from shipyard.loop.examples import train_iris


def train(data, params):
    return train_iris(data, params)
"""


@pytest.fixture(params=["sqlite+local", "postgres+s3"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    if request.param == "sqlite+local":
        yield Settings(home=tmp_path / "home", user="tester")
        return
    endpoint = request.getfixturevalue("s3_endpoint")
    bucket = request.getfixturevalue("s3_bucket")
    request.getfixturevalue("aws_env")
    yield Settings(
        home=tmp_path / "home",
        user="tester",
        db=request.getfixturevalue("postgres_url"),
        artifacts=f"s3://{bucket}/artifacts",
        s3_endpoint_url=endpoint,
    )


def _env(settings: Settings) -> dict[str, str]:
    env = {**os.environ, "SHIPYARD_HOME": str(settings.home), "SHIPYARD_USER": "tester"}
    if settings.db:
        env["SHIPYARD_DB"] = str(settings.db)
    if settings.s3_endpoint_url:
        env["SHIPYARD_ARTIFACTS"] = str(settings.artifacts)
        env["SHIPYARD_S3_ENDPOINT_URL"] = settings.s3_endpoint_url
    return env


def _loop_run(client: Shipyard, folder: Path) -> tuple[str, Path]:
    """Retrain iris once through the loop with a pipeline in ``folder``; the tracking run."""
    module = f"train_{uuid.uuid4().hex[:8]}"
    (folder / f"{module}.py").write_text(TRAIN)
    iris_frame().to_csv(folder / "iris.csv", index=False)
    config = {
        "model": "iris",
        "pipeline": {
            "entry_point": f"{module}:train",
            "params": {"cv": 2, "C": 1.0},
            "data": {"path": "iris.csv"},
            "target": "species",
        },
        "triggers": [{"kind": "new_data", "min_new_rows": 10}],
        "canary": {"enabled": False},
    }
    (folder / "loop.yaml").write_text(yaml.safe_dump(config))
    done = CliRunner().invoke(
        app, ["loop", "trigger", "iris", "-c", str(folder / "loop.yaml")], obj=client
    )
    assert done.exit_code == 0, done.output
    run = client.runs.list_runs("loop-iris")[0]
    return run.id, folder / f"{module}.py"


def _reproduce(settings: Settings, run_id: str) -> tuple[int, dict[str, object]]:
    done = subprocess.run(
        [SHIPYARD, "runs", "reproduce", run_id, "--check", "--json"],
        env=_env(settings),
        capture_output=True,
        text=True,
    )
    assert done.stdout, done.stderr
    return done.returncode, json.loads(done.stdout)


def test_reproduce_check_passes_then_fails_on_changed_code_and_package(
    backend: Settings, tmp_path: Path
) -> None:
    client = Shipyard(backend)
    try:
        run_id, source = _loop_run(client, tmp_path)
        record = client.datasets.get_pipeline(run_id)
        assert record is not None
        assert record.snapshots == {"training": "iris:1", "holdout": "iris-holdout:1"}
        assert record.record["params"] == {"target": "species", "cv": 2, "C": 1.0}
        assert "scikit-learn" in record.record["environment"]["packages"]
        assert list(record.record["files"]) == [source.name]

        code, body = _reproduce(backend, run_id)
        assert code == 0, body
        assert body["ok"] is True and body["predictions_identical"] is True
        assert body["original"] == "iris:1"
        candidate = client.models.get_version("iris", int(str(body["candidate"]).split(":")[1]))
        assert candidate.aliases == ()  # a candidate: no alias moved
        assert candidate.tags["reproduces"] == run_id

        # A changed source file: the check fails and names the file and what moved.
        source.write_text(
            TRAIN.replace("train_iris(data, params)", "train_iris(data, {**params, 'C': 0.001})")
        )
        code, body = _reproduce(backend, run_id)
        assert code == 1
        assert any(f"source file {source.name} changed" in r for r in body["reasons"])
        assert body["predictions_identical"] is False
        source.write_text(TRAIN)

        # A changed package: the run's record says it trained with another scikit-learn.
        env = record.record["environment"]
        packages = {**env["packages"], "scikit-learn": "0.0.1"}
        client.datasets.save_pipeline(
            replace(record, record={**record.record, "environment": {**env, "packages": packages}})
        )
        done = subprocess.run(
            [SHIPYARD, "runs", "reproduce", run_id[:12], "--check"],
            env=_env(backend),
            capture_output=True,
            text=True,
        )
        assert done.returncode == 1
        assert "NOT reproduced:" in done.stdout
        assert "package scikit-learn 0.0.1 recorded" in done.stdout
        assert "holdout predictions of iris:1" in done.stdout and "identical" in done.stdout
    finally:
        client.close()


def test_a_run_without_a_pipeline_cannot_be_reproduced(tmp_path: Path) -> None:
    client = Shipyard(Settings(home=tmp_path / "home", user="tester"))
    with client.tracker.start_run("plain") as run:
        run.log_param("C", 1)
    done = CliRunner().invoke(app, ["runs", "reproduce", run.id], obj=client)
    assert done.exit_code != 0
    assert "recorded no pipeline" in done.output and "Traceback" not in done.output
