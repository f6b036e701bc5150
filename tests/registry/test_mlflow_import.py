"""Importing MLflow scikit-learn models from folders laid out exactly as MLflow 2 and 3 write them.

MLflow is not installed: each test writes the ``MLmodel`` YAML and the model file
by hand, unknown keys included.
"""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
import yaml
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from shipyard.errors import ManifestError, UnsafeArtifactError
from shipyard.registry.mlflow_import import read_mlflow_model
from shipyard.registry.model import LoadedModel
from shipyard.registry.package import read_package, write_package

IRIS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
INPUTS = json.dumps([{"type": "double", "name": n, "required": True} for n in IRIS])


def scale_down(X: Any) -> Any:
    """A custom function that MLflow's skops_trusted_types may list; we still refuse it."""
    return X / 10


@pytest.fixture(scope="module")
def iris() -> tuple[pd.DataFrame, np.ndarray]:
    X, y = load_iris(return_X_y=True, as_frame=True)
    X.columns = IRIS
    return X, y.to_numpy()


@pytest.fixture(scope="module")
def clf(iris: tuple[pd.DataFrame, np.ndarray]) -> LogisticRegression:
    X, y = iris
    return LogisticRegression(max_iter=300).fit(X, y)


def _mlflow2_folder(root: Path, model: Any, example: pd.DataFrame | None = None) -> Path:
    """What ``mlflow.sklearn.log_model`` (MLflow 2.x, cloudpickle) leaves in artifacts/model."""
    root.mkdir(parents=True)
    with (root / "model.pkl").open("wb") as fh:
        pickle.dump(model, fh)  # cloudpickle writes a standard pickle stream for estimators
    mlmodel: dict[str, Any] = {
        "artifact_path": "model",
        "flavors": {
            "python_function": {
                "env": {"conda": "conda.yaml", "virtualenv": "python_env.yaml"},
                "loader_module": "mlflow.sklearn",
                "model_path": "model.pkl",
                "predict_fn": "predict",
                "python_version": "3.11.7",
            },
            "sklearn": {
                "code": None,
                "pickled_model": "model.pkl",
                "serialization_format": "cloudpickle",
                "sklearn_version": "1.5.1",
            },
        },
        "mlflow_version": "2.16.2",
        "model_size_bytes": (root / "model.pkl").stat().st_size,
        "model_uuid": "0f6c9d5e1b8a4b3e9a2d7c1f4e5b6a7d",
        "run_id": "5b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e",
        "signature": {
            "inputs": INPUTS,
            "outputs": '[{"type": "long", "required": true}]',
            "params": None,
        },
        "utc_time_created": "2024-09-30 08:15:42.123456",
    }
    if example is not None:
        mlmodel["saved_input_example_info"] = {
            "artifact_path": "input_example.json",
            "pandas_orient": "split",
            "serving_input_path": "serving_input_example.json",
            "type": "dataframe",
        }
        split = {"columns": list(example.columns), "data": example.to_numpy().tolist()}
        (root / "input_example.json").write_text(json.dumps(split))
        (root / "serving_input_example.json").write_text(json.dumps({"dataframe_split": split}))
    (root / "MLmodel").write_text(yaml.safe_dump(mlmodel, sort_keys=True))
    (root / "conda.yaml").write_text("channels: [conda-forge]\ndependencies: [python=3.11.7]\n")
    (root / "python_env.yaml").write_text("python: 3.11.7\nbuild_dependencies: [pip]\n")
    (root / "requirements.txt").write_text("mlflow==2.16.2\nscikit-learn==1.5.1\n")
    return root


def _mlflow3_skops_folder(root: Path, model: Any, trusted_types: list[str]) -> Path:
    """An MLflow 3 folder saved with serialization_format='skops'."""
    root.mkdir(parents=True)
    sio.dump(model, root / "model.skops")
    mlmodel = {
        "artifact_path": "mlflow-artifacts:/1/models/m-8f1e2d3c/artifacts",
        "databricks_runtime": "15.4.x-cpu-ml-scala2.12",
        "flavors": {
            "python_function": {
                "loader_module": "mlflow.sklearn",
                "model_path": "model.skops",
                "predict_fn": "predict",
                "python_version": "3.11.7",
                "env": {"conda": "conda.yaml", "virtualenv": "python_env.yaml"},
            },
            "sklearn": {
                "code": None,
                "pickled_model": "model.skops",
                "serialization_format": "skops",
                "skops_trusted_types": trusted_types,
                "sklearn_version": "1.7.0",
            },
        },
        "is_signature_from_type_hint": False,
        "metadata": {"team": "growth"},
        "mlflow_version": "3.1.0",
        "model_id": "m-8f1e2d3c",
        "model_size_bytes": 4321,
        "model_uuid": "m-8f1e2d3c",
        "prompts": None,
        "run_id": "9a8b7c6d",
        "signature": {"inputs": INPUTS, "outputs": None, "params": None},
        "type_hint_from_example": False,
        "utc_time_created": "2025-06-12 14:03:11.654321",
    }
    (root / "MLmodel").write_text(yaml.safe_dump(mlmodel))
    return root


def test_mlflow2_pickle_with_trust(
    clf: LogisticRegression, iris: tuple[pd.DataFrame, np.ndarray], tmp_path: Path
) -> None:
    X, _ = iris
    folder = _mlflow2_folder(tmp_path / "model", clf, example=X.head(5))
    model, signature, meta = read_mlflow_model(folder, trusted_pickle=True)
    np.testing.assert_array_equal(model.predict(X), clf.predict(X))
    assert signature is not None and signature.names == tuple(IRIS)
    assert all(c.dtype == "float" and c.minimum is None for c in signature.inputs)
    assert signature.output.task == "classification" and signature.output.classes == (0, 1, 2)
    assert meta["mlflow_version"] == "2.16.2" and meta["run_id"].startswith("5b1c")
    assert meta["serialization_format"] == "cloudpickle"
    assert meta["sklearn_version"] == "1.5.1" and meta["python_version"] == "3.11.7"
    pd.testing.assert_frame_equal(meta["input_example"], X.head(5).reset_index(drop=True))


def test_mlflow2_pickle_refused_without_trust(clf: LogisticRegression, tmp_path: Path) -> None:
    folder = _mlflow2_folder(tmp_path / "model", clf)
    with pytest.raises(UnsafeArtifactError, match="MLflow model is a pickle"):
        read_mlflow_model(folder)


def test_mlflow3_skops_loads_through_the_trust_list(
    clf: LogisticRegression, iris: tuple[pd.DataFrame, np.ndarray], tmp_path: Path
) -> None:
    X, _ = iris
    folder = _mlflow3_skops_folder(tmp_path / "model", clf, trusted_types=[])
    model, signature, meta = read_mlflow_model(folder)
    np.testing.assert_array_equal(model.predict(X), clf.predict(X))
    assert signature is not None and signature.output.classes == (0, 1, 2)
    assert meta["mlflow_version"] == "3.1.0" and meta["metadata"] == {"team": "growth"}
    assert meta["model_id"] == "m-8f1e2d3c" and "input_example" not in meta


def test_mlflow_skops_trusted_types_are_ignored(
    iris: tuple[pd.DataFrame, np.ndarray], tmp_path: Path
) -> None:
    X, y = iris
    pipe = make_pipeline(FunctionTransformer(scale_down), LogisticRegression(max_iter=300))
    pipe.fit(X, y)
    custom = f"{__name__}.scale_down"
    folder = _mlflow3_skops_folder(tmp_path / "model", pipe, trusted_types=[custom])
    with pytest.raises(UnsafeArtifactError, match="scale_down"):
        read_mlflow_model(folder)
    model, _, _ = read_mlflow_model(folder, trusted_pickle=True)
    np.testing.assert_array_equal(model.predict(X), pipe.predict(X))


def test_imported_model_becomes_a_package(
    clf: LogisticRegression, iris: tuple[pd.DataFrame, np.ndarray], tmp_path: Path
) -> None:
    X, _ = iris
    folder = _mlflow2_folder(tmp_path / "model", clf, example=X.head(5))
    model, signature, meta = read_mlflow_model(folder, trusted_pickle=True)
    manifest = write_package(
        model,
        tmp_path / "pkg",
        name="iris",
        version=1,
        sample=meta["input_example"],
        signature=signature,
        run_id=meta["run_id"],
    )
    assert manifest.flavor_options["format"] == "skops"  # re-saved in the safe format
    loaded = LoadedModel(*read_package(tmp_path / "pkg"))
    np.testing.assert_array_equal(loaded.predict(X), clf.predict(X))


def test_mlflow_signature_variants(clf: LogisticRegression, tmp_path: Path) -> None:
    folder = _mlflow2_folder(tmp_path / "model", clf)
    conf = yaml.safe_load((folder / "MLmodel").read_text())
    conf["signature"]["inputs"] = json.dumps(
        [
            {"type": "long", "name": "age", "required": True},
            {"type": "string", "name": "plan", "required": False},
            {"type": "boolean", "name": "member"},
        ]
    )
    (folder / "MLmodel").write_text(yaml.safe_dump(conf))
    _, signature, _ = read_mlflow_model(folder, trusted_pickle=True)
    assert signature is not None
    assert [(c.name, c.dtype, c.nullable) for c in signature.inputs] == [
        ("age", "integer", False),
        ("plan", "string", True),
        ("member", "boolean", False),
    ]
    tensor = [{"type": "tensor", "tensor-spec": {"dtype": "float64", "shape": [-1, 4]}}]
    conf["signature"]["inputs"] = json.dumps(tensor)
    (folder / "MLmodel").write_text(yaml.safe_dump(conf))
    assert read_mlflow_model(folder, trusted_pickle=True)[1] is None
    conf["signature"]["inputs"] = json.dumps([{"type": "binary", "name": "image"}])
    (folder / "MLmodel").write_text(yaml.safe_dump(conf))
    with pytest.raises(ManifestError, match="'image' has MLflow type 'binary'"):
        read_mlflow_model(folder, trusted_pickle=True)
    del conf["signature"]
    (folder / "MLmodel").write_text(yaml.safe_dump(conf))
    assert read_mlflow_model(folder, trusted_pickle=True)[1] is None


def test_missing_mlmodel_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match=re.escape(f"No MLmodel file at {tmp_path}/MLmodel")):
        read_mlflow_model(tmp_path)


def test_folder_problems(clf: LogisticRegression, tmp_path: Path) -> None:
    folder = _mlflow2_folder(tmp_path / "model", clf)
    conf = yaml.safe_load((folder / "MLmodel").read_text())
    conf["flavors"].pop("sklearn")
    conf["flavors"]["xgboost"] = {"data": "model.xgb"}
    (folder / "MLmodel").write_text(yaml.safe_dump(conf))
    with pytest.raises(
        ManifestError, match=r"no sklearn flavor \(found: \['python_function', 'xgboost'\]\)"
    ):
        read_mlflow_model(folder)
    conf["flavors"]["sklearn"] = {"pickled_model": "../../etc/passwd"}
    (folder / "MLmodel").write_text(yaml.safe_dump(conf))
    with pytest.raises(ManifestError, match="points outside the folder"):
        read_mlflow_model(folder, trusted_pickle=True)
    conf["flavors"]["sklearn"] = {"pickled_model": "model.pkl", "serialization_format": "joblib"}
    (folder / "MLmodel").write_text(yaml.safe_dump(conf))
    with pytest.raises(ManifestError, match="unknown sklearn serialization_format 'joblib'"):
        read_mlflow_model(folder, trusted_pickle=True)
    (folder / "MLmodel").write_text("flavors: [unclosed")
    with pytest.raises(ManifestError, match="not valid YAML"):
        read_mlflow_model(folder)


def _point_outside(link: Path, target: Path) -> None:
    """Replace ``link`` by a symbolic link to ``target`` (outside the model folder)."""
    if link.is_dir():
        import shutil

        shutil.rmtree(link)
    else:
        link.unlink(missing_ok=True)
    link.symlink_to(target)


def test_a_model_file_linking_out_of_the_folder_is_refused(
    clf: LogisticRegression, tmp_path: Path
) -> None:
    folder = _mlflow2_folder(tmp_path / "model", clf)
    elsewhere = tmp_path / "elsewhere.pkl"
    elsewhere.write_bytes((folder / "model.pkl").read_bytes())
    _point_outside(folder / "model.pkl", elsewhere)
    with pytest.raises(ManifestError, match=r"model\.pkl is a symbolic link .* leads out"):
        read_mlflow_model(folder, trusted_pickle=True)


def test_a_sub_folder_linking_out_of_the_folder_is_refused(
    clf: LogisticRegression, tmp_path: Path
) -> None:
    folder = _mlflow2_folder(tmp_path / "model", clf)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "model.pkl").write_bytes((folder / "model.pkl").read_bytes())
    (folder / "data").symlink_to(outside)
    conf = yaml.safe_load((folder / "MLmodel").read_text())
    conf["flavors"]["sklearn"]["pickled_model"] = "data/model.pkl"
    (folder / "MLmodel").write_text(yaml.safe_dump(conf))
    with pytest.raises(ManifestError, match=r"data/model\.pkl is a symbolic link .* leads out"):
        read_mlflow_model(folder, trusted_pickle=True)


def test_an_input_example_linking_out_of_the_folder_is_refused(
    clf: LogisticRegression, iris: tuple[pd.DataFrame, np.ndarray], tmp_path: Path
) -> None:
    X, _ = iris
    folder = _mlflow2_folder(tmp_path / "model", clf, example=X.head(5))
    secret = tmp_path / "secret.json"
    secret.write_text(json.dumps({"columns": ["password"], "data": [["hunter2"]]}))
    _point_outside(folder / "input_example.json", secret)
    with pytest.raises(ManifestError, match=r"input_example\.json is a symbolic link"):
        read_mlflow_model(folder, trusted_pickle=True)


def test_links_that_stay_inside_the_folder_are_followed(
    clf: LogisticRegression, iris: tuple[pd.DataFrame, np.ndarray], tmp_path: Path
) -> None:
    X, _ = iris
    folder = _mlflow2_folder(tmp_path / "model", clf, example=X.head(5))
    (folder / "data").mkdir()
    (folder / "model.pkl").rename(folder / "data" / "model.pkl")
    (folder / "model.pkl").symlink_to(Path("data") / "model.pkl")
    model, _, meta = read_mlflow_model(folder, trusted_pickle=True)
    assert model.predict(X).tolist() == clf.predict(X).tolist()
    assert len(meta["input_example"]) == 5
    # The folder itself may be reached through a link (e.g. a "latest" link to a run).
    (tmp_path / "latest").symlink_to(folder)
    read_mlflow_model(tmp_path / "latest", trusted_pickle=True)


def test_import_mlflow_command_refuses_a_link_out(
    clf: LogisticRegression, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from shipyard.cli.main import app

    folder = _mlflow2_folder(tmp_path / "model", clf)
    elsewhere = tmp_path / "elsewhere.pkl"
    elsewhere.write_bytes((folder / "model.pkl").read_bytes())
    _point_outside(folder / "model.pkl", elsewhere)
    monkeypatch.setenv("SHIPYARD_HOME", str(tmp_path / "home"))
    result = CliRunner().invoke(
        app,
        ["models", "import-mlflow", str(folder), "--name", "iris", "--trust-pickle"],
        terminal_width=1000,
    )
    assert result.exit_code == 1
    assert "Error:" in result.output and "leads out of the model folder" in result.output
    listed = CliRunner().invoke(app, ["models", "list", "--json"])
    assert listed.output.strip() == "[]"
