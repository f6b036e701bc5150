"""The Open Inference Protocol (KServe V2) with the payloads V2 clients send."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from serving_helpers import SETOSA, VIRGINICA, IrisRegistry, LiveServer

from shipyard import __version__
from shipyard.errors import SchemaError
from shipyard.serving.protocols.v2 import flat_values

NAMES = list(SETOSA)


@pytest.fixture(scope="module")
def http(shared_live: LiveServer) -> Iterator[httpx.Client]:
    with shared_live.client() as client:
        yield client


def _columns(datatype: str = "FP64") -> dict:
    return {
        "inputs": [
            {"name": n, "shape": [2], "datatype": datatype, "data": [SETOSA[n], VIRGINICA[n]]}
            for n in NAMES
        ]
    }


def _matrix(data: list, datatype: str = "FP32", shape: list[int] | None = None) -> dict:
    return {
        "id": "req-7",
        "inputs": [
            {"name": "input-0", "shape": shape or [2, 4], "datatype": datatype, "data": data}
        ],
    }


FLAT = [SETOSA[n] for n in NAMES] + [VIRGINICA[n] for n in NAMES]
NESTED = [[SETOSA[n] for n in NAMES], [VIRGINICA[n] for n in NAMES]]


def test_health_and_server_metadata(http: httpx.Client) -> None:
    assert http.get("/v2/health/live").json() == {"live": True}
    assert http.get("/v2/health/ready").json() == {"ready": True}
    assert http.get("/v2").json() == {
        "name": "shipyard",
        "version": __version__,
        "extensions": ["binary_tensor_data", "classification"],
    }


def test_model_metadata_and_ready(http: httpx.Client, shared_iris: IrisRegistry) -> None:
    meta = http.get("/v2/models/iris").json()
    assert meta["name"] == "iris"
    assert meta["versions"] == [str(shared_iris.logistic)]
    assert [i["name"] for i in meta["inputs"]] == NAMES
    assert {i["datatype"] for i in meta["inputs"]} == {"FP64"}
    assert meta["outputs"] == [
        {"name": "predict", "datatype": "BYTES", "shape": [-1]},
        {"name": "predict_proba", "datatype": "FP64", "shape": [-1, 3]},
    ]
    version = shared_iris.logistic
    assert http.get(f"/v2/models/iris/versions/{version}").json() == meta
    assert http.get("/v2/models/iris/ready").json() == {"name": "iris", "ready": True}
    assert http.get(f"/v2/models/iris/versions/{version}/ready").status_code == 200


@pytest.mark.parametrize(
    "payload",
    [_columns(), _columns("FP32"), _matrix(FLAT), _matrix(NESTED), _matrix(FLAT, "FP64")],
    ids=["per-column", "per-column-fp32", "matrix-flat", "matrix-nested", "matrix-fp64"],
)
def test_infer(http: httpx.Client, payload: dict, shared_iris: IrisRegistry) -> None:
    response = http.post("/v2/models/iris/infer", json=payload)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_name"] == "iris"
    assert body["model_version"] == str(shared_iris.logistic)
    assert body["id"] == payload.get("id", response.headers["x-request-id"])
    predict, proba = body["outputs"]
    assert predict == {
        "name": "predict",
        "shape": [2],
        "datatype": "BYTES",
        "data": ["setosa", "virginica"],
    }
    assert proba["name"] == "predict_proba"
    assert proba["shape"] == [2, 3]
    assert proba["datatype"] == "FP64"
    assert proba["parameters"] == {"classes": ["setosa", "versicolor", "virginica"]}
    assert len(proba["data"]) == 6
    assert sum(proba["data"][:3]) == pytest.approx(1.0)
    assert proba["data"][0] > 0.5 and proba["data"][5] > 0.5


def test_requested_outputs_and_versioned_route(
    http: httpx.Client, shared_iris: IrisRegistry
) -> None:
    payload = {**_matrix(FLAT), "outputs": [{"name": "predict"}]}
    path = f"/v2/models/iris/versions/{shared_iris.logistic}/infer"
    body = http.post(path, json=payload).json()
    assert [o["name"] for o in body["outputs"]] == ["predict"]
    bad = http.post(path, json={**_matrix(FLAT), "outputs": [{"name": "logits"}]})
    assert bad.status_code == 400
    assert "logits" in bad.json()["error"]


@pytest.mark.parametrize(
    ("path", "payload", "status", "needle"),
    [
        ("/v2/models/nope/infer", _matrix(FLAT), 404, "not served here"),
        ("/v2/models/iris/versions/99/infer", _matrix(FLAT), 404, "not '99'"),
        ("/v2/models/iris/infer", _matrix(FLAT[:5]), 400, "holds 8 values"),
        ("/v2/models/iris/infer", _matrix(FLAT, shape=[2, 3]), 400, "[N, 4]"),
        ("/v2/models/iris/infer", _matrix(FLAT, "INT64"), 400, "declared INT64"),
        ("/v2/models/iris/infer", _matrix([str(v) for v in FLAT], "BYTES"), 400, "expects a float"),
        ("/v2/models/iris/infer", _matrix(FLAT, "FP128"), 400, "datatype"),
        ("/v2/models/iris/infer", {"inputs": []}, 400, "inputs"),
        ("/v2/models/iris/infer", {"inputs": _columns()["inputs"][:3]}, 400, "petal_width"),
        (
            "/v2/models/iris/infer",
            {
                "inputs": [
                    *_columns()["inputs"],
                    {"name": "x", "shape": [2], "datatype": "FP64", "data": [1, 2]},
                ]
            },
            400,
            "Unknown input 'x'",
        ),
    ],
)
def test_v2_errors(http: httpx.Client, path: str, payload: dict, status: int, needle: str) -> None:
    response = http.post(path, json=payload)
    assert response.status_code == status, response.text
    assert needle in response.json()["error"]


def test_malformed_json_and_unknown_model_metadata(http: httpx.Client) -> None:
    response = http.post(
        "/v2/models/iris/infer", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert "JSON" in response.json()["error"]
    assert http.get("/v2/models/nope").status_code == 404
    assert http.get("/v2/models/nope/ready").status_code == 404


def test_flat_values() -> None:
    assert flat_values([1, 2, 3], "x") == [1, 2, 3]
    assert flat_values([[1, [2]], [3]], "x") == [1, 2, 3]
    deep: list = [1]
    for _ in range(10):
        deep = [deep]
    with pytest.raises(SchemaError, match="nested"):
        flat_values(deep, "x")
