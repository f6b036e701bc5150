"""The artifact root belongs to the store: recorded in its database, used by every client.

The bug this guards against: two clients of one PostgreSQL database, started in
different folders with only ``SHIPYARD_DB`` set, each kept artifacts under its own
``./shipyard-data/artifacts``; the second saw the models and could load none.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import RandomForestClassifier
from typer.testing import CliRunner

from shipyard import Shipyard
from shipyard.cli.main import app
from shipyard.config import Settings
from shipyard.errors import ArtifactNotFoundError, ConfigError
from shipyard.store.artifact_root import resolve_artifact_root
from shipyard.store.database import Database

SHIPYARD = str(Path(sys.executable).with_name("shipyard"))
PYTHON = sys.executable

_LOG_MODEL = """
import sys
import shipyard
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import RandomForestClassifier

X, y = load_breast_cancer(return_X_y=True, as_frame=True)
model = RandomForestClassifier(n_estimators=10, random_state=0).fit(X, y)
print(shipyard.log_model(model, "cancer", sample=X, alias="production").ref)
"""

_LOAD_AND_PREDICT = """
import shipyard
from sklearn.datasets import load_breast_cancer

X, _ = load_breast_cancer(return_X_y=True, as_frame=True)
print(shipyard.load_model("cancer").predict(X.head(20)).tolist())
"""


def _env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHIPYARD_", "AWS_"))}
    return {**env, "SHIPYARD_USER": "tester", "COLUMNS": "1000", **values}


def _run(command: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    cwd.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )


def _python(code: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return _run([PYTHON, "-c", code], cwd, env)


def _expected() -> list[int]:
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    model = RandomForestClassifier(n_estimators=10, random_state=0).fit(X, y)
    return [int(v) for v in model.predict(X.head(20))]


@pytest.mark.postgres
def test_two_clients_in_different_folders_share_one_postgres_store(
    postgres_url: str, tmp_path: Path
) -> None:
    env = _env(SHIPYARD_DB=postgres_url)  # nothing else: home and artifacts by default
    first, second = tmp_path / "laptop", tmp_path / "server"

    logged = _python(_LOG_MODEL, first, env)
    assert logged.returncode == 0, logged.stderr
    assert logged.stdout.strip() == "cancer:1"
    # The first client warns: only its machine can read that folder.
    assert "shared database" in logged.stderr and "local folder" in logged.stderr
    recorded = first / "shipyard-data" / "artifacts"
    assert any((recorded / "blobs").rglob("*"))

    loaded = _python(_LOAD_AND_PREDICT, second, env)
    assert loaded.returncode == 0, loaded.stderr
    assert eval(loaded.stdout) == _expected()
    # The second client read the recorded store and wrote no store of its own.
    assert not (second / "shipyard-data" / "artifacts").exists()

    # The real CLI from the second folder too: a batch job over the same model.
    X, _ = load_breast_cancer(return_X_y=True, as_frame=True)
    X.head(20).to_csv(second / "rows.csv", index=False)
    done = _run([SHIPYARD, "predict", "cancer", "-i", "rows.csv", "-o", "scores.csv"], second, env)
    assert done.returncode == 0, done.stderr
    assert "cancer" in (second / "scores.csv").read_text()


@pytest.mark.postgres
def test_a_client_pointing_elsewhere_is_refused_with_both_locations(
    postgres_url: str, tmp_path: Path
) -> None:
    env = _env(SHIPYARD_DB=postgres_url)
    assert _python(_LOG_MODEL, tmp_path / "first", env).returncode == 0
    recorded = (tmp_path / "first" / "shipyard-data" / "artifacts").resolve()
    other = tmp_path / "other-artifacts"

    result = CliRunner().invoke(
        app, ["models", "show", "cancer"], env={**env, "SHIPYARD_ARTIFACTS": str(other)}
    )
    assert result.exit_code == 1, result.output
    assert "Error:" in result.output and "Traceback" not in result.output
    assert str(recorded) in result.output and str(other) in result.output
    # Naming the recorded place explicitly (here as a file:// URL) is fine.
    same = _python(
        _LOAD_AND_PREDICT,
        tmp_path / "third",
        {**env, "SHIPYARD_ARTIFACTS": recorded.as_uri()},
    )
    assert same.returncode == 0, same.stderr


@pytest.mark.postgres
def test_clients_racing_to_first_use_agree_on_one_root(postgres_url: str, tmp_path: Path) -> None:
    stores = [Database(postgres_url) for _ in range(4)]
    for store in stores:
        _ = store.engine  # migrated before the race: the race is about the record
    barrier = threading.Barrier(len(stores))
    roots: list[str] = []
    errors: list[BaseException] = []

    def first_use(i: int) -> None:
        settings = Settings(home=tmp_path / f"client-{i}", db=postgres_url, user=f"c{i}")
        barrier.wait()
        try:
            roots.append(resolve_artifact_root(stores[i], settings))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=first_use, args=(i,)) for i in range(len(stores))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for store in stores:
        store.close()
    assert errors == []
    assert len(roots) == 4 and len(set(roots)) == 1


def test_a_sqlite_home_that_moves_keeps_its_artifacts(tmp_path: Path) -> None:
    """The embedded default records its root relative to the database file's folder."""
    home = tmp_path / "home"
    env = _env(SHIPYARD_HOME=str(home))
    assert _python(_LOG_MODEL, tmp_path, env).returncode == 0
    moved = tmp_path / "moved-home"
    shutil.copytree(home, moved)
    shutil.rmtree(home)

    loaded = _python(_LOAD_AND_PREDICT, tmp_path, _env(SHIPYARD_HOME=str(moved)))
    assert loaded.returncode == 0, loaded.stderr
    assert eval(loaded.stdout) == _expected()
    assert "shared database" not in loaded.stderr  # a private SQLite file: no warning
    assert not home.exists()


@pytest.mark.postgres
def test_an_s3_root_set_once_is_used_by_clients_that_do_not_set_it(
    postgres_url: str, tmp_path: Path, s3_endpoint: str, s3_bucket: str, aws_env: None
) -> None:
    aws = {k: v for k, v in os.environ.items() if k.startswith("AWS_")}
    env = _env(SHIPYARD_DB=postgres_url, SHIPYARD_S3_ENDPOINT_URL=s3_endpoint, **aws)
    first = _python(
        _LOG_MODEL, tmp_path / "a", {**env, "SHIPYARD_ARTIFACTS": f"s3://{s3_bucket}/team"}
    )
    assert first.returncode == 0, first.stderr
    assert "local folder" not in first.stderr  # a shared root: no warning

    later = _python(_LOAD_AND_PREDICT, tmp_path / "b", env)
    assert later.returncode == 0, later.stderr
    assert eval(later.stdout) == _expected()
    assert not (tmp_path / "b" / "shipyard-data" / "artifacts").exists()


def test_a_missing_artifact_names_the_model_and_version(tmp_path: Path) -> None:
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    client = Shipyard(Settings(home=tmp_path / "home", user="tester"))
    version = client.registry.log_model(
        RandomForestClassifier(n_estimators=5, random_state=0).fit(X, y), "cancer", sample=X
    )
    relpath, entry = next(
        (p, e) for p, e in client.registry.manifest(version).files.items() if p.startswith("model/")
    )
    (client.artifacts.root / "blobs" / entry.sha256[:2] / entry.sha256).unlink()  # type: ignore[attr-defined]
    shutil.rmtree(client.registry.cache_dir)

    with pytest.raises(ArtifactNotFoundError, match=rf"cancer:1.*{relpath}"):
        client.registry.load("cancer:1")
    profile = version.tags["drift_profile"]
    (client.artifacts.root / "blobs" / profile[:2] / profile).unlink()  # type: ignore[attr-defined]
    with pytest.raises(ArtifactNotFoundError, match="drift reference stored with cancer:1"):
        client.references.load(client.models.get_version("cancer", 1))
    client.close()


def test_settings_errors_stay_config_errors(tmp_path: Path) -> None:
    """An unusable artifact URL is still reported as such, not as a root mismatch."""
    client = Shipyard(Settings(home=tmp_path / "home", artifacts="ftp://nowhere/x"))
    with pytest.raises(ConfigError, match="unsupported scheme 'ftp'"):
        _ = client.artifacts
    client.close()
