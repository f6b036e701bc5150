"""Serving boosters with category columns over real HTTP: /predict, /invocations, V2.

Clients send category values as plain strings; the server turns them into the
training ``category`` dtype (categories in their training order) before the
model runs, with the native runtime and with a verified ONNX graph alike.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from serving_helpers import LiveServer, serve

from category_data import (
    CATEGORICAL,
    RADIUS_BANDS,
    banded_cancer,
    lightgbm_model,
    records,
    xgboost_model,
)
from shipyard import Shipyard
from shipyard.config import Settings
from shipyard.registry.optimize import CompiledPredictor, optimize_version

BUILDERS = {"lightgbm": lightgbm_model, "xgboost": xgboost_model}
ROWS = 40


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, pd.Series]:
    return banded_cancer()


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cat-serving") / "home"


@dataclass
class Served:
    http: httpx.Client
    model: Any
    server: LiveServer
    client: Shipyard
    name: str
    runtime: str


@pytest.fixture(
    scope="module",
    params=[(f, r) for f in sorted(BUILDERS) for r in ("native", "onnx")],
    ids=lambda p: "-".join(p),
)
def served(
    request: pytest.FixtureRequest, home: Path, data: tuple[pd.DataFrame, pd.Series]
) -> Iterator[Served]:
    """One server per flavor and runtime, each with its own client (a stopping server
    closes its client's prediction log)."""
    flavor, runtime = request.param
    X, y = data
    model = BUILDERS[flavor](X, y)
    name = f"{flavor}-{runtime}"
    client = Shipyard(Settings(home=home, user="t"))
    # "native": registered without the ONNX graph registration compiles by default.
    version = client.registry.log_model(model, name, sample=X, optimize=runtime == "onnx")
    if runtime == "onnx":
        assert optimize_version(client.registry, version.ref, sample=X).verified
    client.registry.set_alias(name, "production", version.version)
    server = serve(client, name)
    with server.client() as http:
        yield Served(http, model, server, client, name, runtime)
    server.stop()
    client.close()


def test_the_server_runs_the_runtime_it_should(served: Served) -> None:
    predictor = served.server.app.state.runtime.require().model.predictor
    assert isinstance(predictor, CompiledPredictor) == (served.runtime == "onnx")


def test_predict_with_string_categories_answers_like_the_model(
    served: Served, data: tuple[pd.DataFrame, pd.Series]
) -> None:
    http, model = served.http, served.model
    X, _ = data
    rows = X.sample(ROWS, random_state=1)
    body = http.post("/predict", json=records(rows))
    assert body.status_code == 200, body.text
    answer = body.json()
    assert answer["predictions"] == model.predict(rows).tolist()
    got = np.array([list(p.values()) for p in answer["probabilities"]])
    np.testing.assert_allclose(got, model.predict_proba(rows), atol=1e-5)
    one = http.post("/predict", json=records(rows.head(1))[0]).json()
    assert one["prediction"] == model.predict(rows.head(1)).tolist()[0]


def test_an_unknown_category_is_a_422_naming_the_column_and_categories(
    served: Served, data: tuple[pd.DataFrame, pd.Series]
) -> None:
    http = served.http
    X, _ = data
    rows = records(X.head(2))
    rows[1]["radius_band"] = "r9"
    response = http.post("/predict", json=rows)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["field"] == "radius_band" and body["rows"] == [1]
    assert str(RADIUS_BANDS) in body["error"]


def test_invocations_json_and_csv(served: Served, data: tuple[pd.DataFrame, pd.Series]) -> None:
    http, model = served.http, served.model
    X, _ = data
    rows = X.sample(ROWS, random_state=2)
    split = rows.astype({c: object for c in CATEGORICAL})
    body = {"dataframe_split": {"columns": list(split.columns), "data": split.values.tolist()}}
    response = http.post("/invocations", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["predictions"] == model.predict(rows).tolist()
    csv = rows.to_csv(index=False)
    response = http.post("/invocations", content=csv, headers={"content-type": "text/csv"})
    assert response.status_code == 200, response.text
    assert response.json()["predictions"] == model.predict(rows).tolist()


def test_v2_infer_with_bytes_tensors(served: Served, data: tuple[pd.DataFrame, pd.Series]) -> None:
    http, model = served.http, served.model
    X, _ = data
    rows = X.sample(ROWS, random_state=3)
    name = served.name
    meta = http.get(f"/v2/models/{name}").json()
    kinds = {i["name"]: i["datatype"] for i in meta["inputs"]}
    assert kinds["radius_band"] == "BYTES" and kinds["mean_texture"] == "FP64"
    inputs = [
        {
            "name": c,
            "shape": [len(rows)],
            "datatype": kinds[c],
            "data": rows[c].astype(object).tolist(),
        }
        for c in rows.columns
    ]
    response = http.post(f"/v2/models/{name}/infer", json={"inputs": inputs})
    assert response.status_code == 200, response.text
    outputs = {o["name"]: o for o in response.json()["outputs"]}
    assert outputs["predict"]["data"] == model.predict(rows).tolist()
    proba = np.array(outputs["predict_proba"]["data"]).reshape(len(rows), -1)
    np.testing.assert_allclose(proba, model.predict_proba(rows), atol=1e-5)


def test_logged_inputs_keep_the_category_values(
    served: Served, data: tuple[pd.DataFrame, pd.Series]
) -> None:
    http = served.http
    X, _ = data
    rows = X.sample(5, random_state=4)
    response = http.post("/predict", json=records(rows), headers={"X-Request-ID": "cat-log-1"})
    assert response.status_code == 200
    served.client.prediction_log.flush()  # the server logs in the background, through it
    logged = served.client.prediction_log.read(served.name, since="1h")
    # Logged under the answer's id: unique per request, the client's id as its prefix.
    rid = response.json()["request_id"]
    assert rid.startswith("cat-log-1.")
    mine = logged[logged["request_id"] == rid].sort_values("row")
    assert len(mine) == 5, logged.columns.tolist()
    assert mine["in_radius_band"].astype(str).tolist() == rows["radius_band"].astype(str).tolist()


@pytest.mark.parametrize(
    ("flavor", "values"),
    [("xgboost", [3, 1, 2]), ("lightgbm", [2.5, 0.5, 1.5])],  # XGBoost refuses float ones
    ids=["integer", "float"],
)
def test_numeric_categories_warm_up_and_answer(
    home: Path, data: tuple[pd.DataFrame, pd.Series], flavor: str, values: list[Any]
) -> None:
    """A category column of numbers: the warm-up record must pick a category (the middle
    of a range is no category), and JSON numbers become the right codes."""
    X, y = data
    numbered = X.assign(
        concavity_band=X["concavity_band"].cat.rename_categories(values)  # same codes
    )
    model = BUILDERS[flavor](numbered, y)
    client = Shipyard(Settings(home=home, user="t"))
    name = f"numbered-{type(values[0]).__name__}"
    version = client.registry.log_model(model, name, sample=numbered)
    client.registry.set_alias(name, "production", version.version)
    spec = client.registry.load(version.ref).signature.inputs[4]
    assert spec.categorical and list(spec.categories) == values
    server = serve(client, name)
    try:
        rows = numbered.sample(30, random_state=6)
        response = server.client().post("/predict", json=records(rows))
        assert response.status_code == 200, response.text
        assert response.json()["predictions"] == model.predict(rows).tolist()
        bad = records(rows.head(1))[0] | {"concavity_band": 7}
        assert server.client().post("/predict", json=bad).status_code == 422
    finally:
        server.stop()
        client.close()
