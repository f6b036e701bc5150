"""The README's workflow, end to end, on several real (dataset, model) pairs.

For each pair, as a new user would: log the model inside ``shipyard.start_run``
(Python API), ``shipyard validate data`` on a held-out split, ``shipyard serve``
and ``/predict``, ``shipyard predict`` (batch), ``shipyard package`` and
``shipyard serve`` of the package from a fresh home, then ``shipyard drift``
against the version's stored reference. Commands run through the real CLI app;
servers are real ``shipyard serve`` processes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris, load_wine
from sklearn.ensemble import RandomForestRegressor
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from typer.testing import CliRunner

import shipyard
from live_server import SRC, ServeProcess, subprocess_env
from shipyard import Shipyard
from shipyard.cli.main import app
from shipyard.config import Settings

pytestmark = pytest.mark.slow

Data = tuple[pd.DataFrame, pd.Series]


def _iris() -> tuple[Data, Any]:
    X, y = load_iris(return_X_y=True, as_frame=True)
    X.columns = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    return (X, y.map(dict(enumerate(["setosa", "versicolor", "virginica"])))), LogisticRegression(
        max_iter=500
    )


def _wine_with_text() -> tuple[Data, Any]:
    X, y = load_wine(return_X_y=True, as_frame=True)
    X = X[["alcohol", "malic_acid", "color_intensity", "proline"]].copy()
    X["region"] = np.where(X.alcohol > 13, "north", np.where(X.alcohol > 12.5, "south", "east"))
    encode = ColumnTransformer(
        [("region", OneHotEncoder(handle_unknown="ignore"), ["region"])],
        remainder=StandardScaler(),
    )
    return (X, y), Pipeline([("encode", encode), ("model", LogisticRegression(max_iter=500))])


def _cancer_lightgbm() -> tuple[Data, Any]:
    from lightgbm import LGBMClassifier

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    X.columns = [c.replace(" ", "_") for c in X.columns]
    return (X, y), LGBMClassifier(n_estimators=20, verbose=-1)


def _diabetes_forest() -> tuple[Data, Any]:
    X, y = load_diabetes(return_X_y=True, as_frame=True)
    return (X, y), RandomForestRegressor(n_estimators=10, random_state=0)


def _cancer_xgboost() -> tuple[Data, Any]:
    from xgboost import XGBClassifier

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    X.columns = [c.replace(" ", "_") for c in X.columns]
    return (X, y), XGBClassifier(n_estimators=10, max_depth=3)


PAIRS: dict[str, Callable[[], tuple[Data, Any]]] = {
    "iris-logistic": _iris,
    "wine-text-pipeline": _wine_with_text,
    "cancer-lightgbm": _cancer_lightgbm,
    "diabetes-forest": _diabetes_forest,
    "cancer-xgboost": _cancer_xgboost,
}


def _cli(home: Path, *args: Any) -> Any:
    env = {"SHIPYARD_HOME": str(home), "SHIPYARD_USER": "tester", "SHIPYARD_DB": None}
    client = Shipyard(Settings(home=home, user="tester"))
    try:
        return CliRunner().invoke(app, [str(a) for a in args], obj=client, env=env)
    finally:
        client.close()


def _served_answer(home: Path, ref: str | Path, record: dict[str, Any]) -> dict[str, Any]:
    server = ServeProcess(subprocess_env(Settings(home=home), importable=SRC), str(ref))
    try:
        server.wait_ready()
        answer = httpx.post(server.url + "/predict", json=record, timeout=30)
    finally:
        server.stop()
    assert answer.status_code == 200, answer.text
    return answer.json()


@pytest.mark.parametrize("pair", sorted(PAIRS))
def test_documented_workflow(pair: str, tmp_path: Path) -> None:
    (X, y), model = PAIRS[pair]()
    X_train, X_held, y_train, _ = train_test_split(X, y, test_size=0.3, random_state=0)
    home, fresh, name = tmp_path / "home", tmp_path / "fresh", pair.split("-")[0]

    # 1. Log inside a run, as the README's Python API does.
    client = shipyard.configure(Settings(home=home, user="tester"))
    try:
        with shipyard.start_run(name, name="baseline") as run:
            run.log_dataset(X_train.assign(target=y_train), context="training")
            model.fit(X_train, y_train)
            version = shipyard.log_model(model, name, sample=X_train, alias="production")
        assert version.run_id == run.id
        expected = shipyard.load_model(name).predict(X_held)
    finally:
        client.close()
    np.testing.assert_array_equal(expected, model.predict(X_held))
    held = tmp_path / "held.csv"
    X_held.to_csv(held, index=False)

    # 2. The held-out split passes the contract.
    checked = _cli(home, "validate", "data", name, held)
    assert checked.exit_code == 0, checked.output

    # 3. Served, /predict answers like the model.
    record = X_held.iloc[0].to_dict()
    answer = _served_answer(home, name, record)
    assert answer["version"] == 1
    if isinstance(expected[0], float | np.floating):
        assert answer["prediction"] == pytest.approx(float(expected[0]))
    else:
        assert str(answer["prediction"]) == str(expected[0])

    # 4. Batch scoring: every row, the model's answers.
    scored = _cli(home, "predict", name, "-i", held, "-o", tmp_path / "out.csv", "--json")
    assert scored.exit_code == 0, scored.output
    assert json.loads(scored.stdout)["rows_rejected"] == 0
    out = pd.read_csv(tmp_path / "out.csv")
    if expected.dtype.kind == "f":
        np.testing.assert_allclose(out["prediction"], expected)
    else:
        assert out["prediction"].astype(str).tolist() == expected.astype(str).tolist()

    # 5. Packaged, served from a fresh home: same answer, contract and drift reference along.
    packaged = _cli(
        home, "package", name, "--out", tmp_path / "build", "--shipyard-requirement",
        "shipyard==0.1.0",
    )  # fmt: skip
    assert packaged.exit_code == 0, packaged.output
    again = _served_answer(fresh, tmp_path / "build" / "model", record)
    assert again["prediction"] == answer["prediction"]
    assert _cli(fresh, "validate", "data", f"{name}:1", held).exit_code == 0

    # 6. Drift against the stored reference: the held-out split does not drift. (The real
    # executable: `shipyard drift` keeps one registry client per process.)
    drift = subprocess.run(
        [str(Path(sys.executable).with_name("shipyard")), "drift", "--reference", name,
         "--current", str(held), "--json", str(tmp_path / "d.json")],
        env=subprocess_env(Settings(home=home), importable=SRC),
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert drift.returncode == 0, drift.stdout + drift.stderr
    assert json.loads((tmp_path / "d.json").read_text())["dataset"]["dataset_drift"] is False
