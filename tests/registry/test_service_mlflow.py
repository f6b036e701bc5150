"""Importing an MLflow model folder through the registry (and the CLI)."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import skops.io
import yaml
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

from shipyard import Shipyard
from shipyard.cli.main import app
from shipyard.config import Settings
from shipyard.errors import UnsafeArtifactError
from shipyard.quickstart import IRIS_FEATURES, IRIS_RECORD, iris_frame


def write_mlflow_folder(root: Path, model: object, fmt: str) -> Path:
    """Lay out a folder as MLflow 3 does, unknown keys included."""
    root.mkdir(parents=True)
    filename = "model.skops" if fmt == "skops" else "model.pkl"
    if fmt == "skops":
        skops.io.dump(model, root / filename)
    else:
        (root / filename).write_bytes(pickle.dumps(model))
    inputs = [{"type": "double", "name": n, "required": True} for n in IRIS_FEATURES]
    mlmodel = {
        "artifact_path": "model",
        "flavors": {
            "python_function": {
                "env": {"conda": "conda.yaml", "virtualenv": "python_env.yaml"},
                "loader_module": "mlflow.sklearn",
                "model_path": filename,
                "predict_fn": "predict",
                "python_version": "3.11.7",
            },
            "sklearn": {
                "code": None,
                "pickled_model": filename,
                "serialization_format": fmt,
                "sklearn_version": "1.9.1",
            },
        },
        "mlflow_version": "3.18.0",
        "model_size_bytes": 1234,
        "model_uuid": "5f1d0c1e9a3b4c7d",
        "run_id": "0123456789abcdef",
        "databricks_runtime": "15.4",
        "signature": {
            "inputs": json.dumps(inputs),
            "outputs": json.dumps([{"type": "tensor", "tensor-spec": {"dtype": "object"}}]),
            "params": None,
        },
        "utc_time_created": "2026-11-01 10:00:00.000000",
    }
    (root / "MLmodel").write_text(yaml.safe_dump(mlmodel))
    return root


@pytest.fixture
def client(settings: Settings) -> Shipyard:
    return Shipyard(settings)


@pytest.fixture
def model() -> LogisticRegression:
    X, y = iris_frame()
    return LogisticRegression(max_iter=500).fit(X, y)


def test_import_skops_folder_keeps_signature(client: Shipyard, model, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    folder = write_mlflow_folder(tmp_path / "mlflow-model", model, "skops")
    version = client.registry.import_mlflow(folder, "iris")
    assert version.ref == "iris:1"
    assert version.tags["mlflow_run_id"] == "0123456789abcdef"
    loaded = client.registry.load("iris:1")
    assert [c.name for c in loaded.signature.inputs] == IRIS_FEATURES
    assert loaded.predict(IRIS_RECORD)[0] == "setosa"
    assert client.registry.manifest(version).trusted_pickle is False


def test_pickled_folder_needs_trust(client: Shipyard, model, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    folder = write_mlflow_folder(tmp_path / "mlflow-model", model, "cloudpickle")
    with pytest.raises(UnsafeArtifactError):
        client.registry.import_mlflow(folder, "iris")
    assert client.models.list_models() == []  # refused before anything was stored
    version = client.registry.import_mlflow(folder, "iris", trusted_pickle=True)
    # Trusted once at import; re-stored as skops, so loading needs no trust.
    assert client.registry.manifest(version).trusted_pickle is False
    assert client.registry.load("iris:1").predict(IRIS_RECORD)[0] == "setosa"


def test_cli_import(model, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("SHIPYARD_HOME", str(tmp_path / "home"))
    folder = write_mlflow_folder(tmp_path / "mlflow-model", model, "skops")
    args = ["models", "import-mlflow", str(folder), "--name", "iris", "--alias", "production"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "iris:1" in result.output
    missing = CliRunner().invoke(app, ["models", "import-mlflow", str(tmp_path), "--name", "x"])
    assert missing.exit_code == 1 and "MLmodel" in missing.output
