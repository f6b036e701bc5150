"""The Open Inference Protocol (KServe V2) with the payloads V2 clients send."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from serving_helpers import SETOSA, VIRGINICA, IrisRegistry, LiveServer

from shipyard import __version__
from shipyard.errors import SchemaError
from shipyard.serving.protocols.v2_tensors import flat_values

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


BIG = int("1" * 401)


def _one(datatype: str, value: object) -> dict:
    row = [value, 3.5, 1.4, 0.2] if datatype.startswith("FP") else [value, 3, 1, 0]
    return {"inputs": [{"name": "x", "shape": [1, 4], "datatype": datatype, "data": row}]}


@pytest.mark.parametrize(
    ("datatype", "value"),
    [
        ("FP64", BIG),
        ("FP64", -BIG),
        ("FP32", 10**39),
        ("FP16", 70000),
        ("FP16", -65520),
        ("INT64", BIG),
        ("INT64", 2**63),
        ("INT64", -(2**63) - 1),
        ("INT32", 2**31),
        ("INT8", 300),
        ("INT8", -129),
        ("UINT8", 256),
        ("UINT8", -1),
        ("UINT64", -1),
        ("UINT16", 70000),
    ],
)
def test_values_outside_their_datatype_are_a_400_naming_the_input(
    http: httpx.Client, datatype: str, value: int
) -> None:
    response = http.post("/v2/models/iris/infer", json=_one(datatype, value))
    assert response.status_code == 400, response.text
    error = response.json()
    assert error["field"] == "x" and error["expected"] == datatype
    assert datatype in error["error"]


@pytest.mark.parametrize(
    ("datatype", "value"),
    [("FP16", 65504), ("INT8", 127), ("INT8", -128), ("UINT8", 255), ("INT64", 2**63 - 1)],
)
def test_values_at_the_edge_of_their_datatype_reach_the_model(
    http: httpx.Client, datatype: str, value: int
) -> None:
    response = http.post("/v2/models/iris/infer", json=_one(datatype, value))
    assert response.status_code == 200, response.text
    assert response.json()["outputs"][0]["data"][0] in {"setosa", "versicolor", "virginica"}


@pytest.mark.parametrize(
    "headers",
    [{}, {"Content-Type": "application/json"}, {"Content-Type": "application/json; charset=utf-8"}],
)
def test_requests_without_or_with_a_json_content_type_are_read(
    http: httpx.Client, headers: dict
) -> None:
    import orjson

    response = http.post(
        "/v2/models/iris/infer", content=orjson.dumps(_matrix(FLAT)), headers=headers
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"]
)
def test_other_content_types_are_415(http: httpx.Client, content_type: str) -> None:
    import orjson

    body = orjson.dumps(_matrix(FLAT))
    response = http.post(
        "/v2/models/iris/infer", content=body, headers={"Content-Type": content_type}
    )
    assert response.status_code == 415, response.text


def test_duplicate_keys_are_refused(http: httpx.Client) -> None:
    body = (
        b'{"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", '
        b'"datatype": "BYTES", "data": [5.1, 3.5, 1.4, 0.2]}]}'
    )
    response = http.post("/v2/models/iris/infer", content=body)
    assert response.status_code == 400, response.text
    assert response.json()["field"] == "datatype"


def _binary(header: dict, *buffers: bytes, length: int | None = None) -> tuple[bytes, dict]:
    import orjson

    text = orjson.dumps(header)
    size = len(text) if length is None else length
    return text + b"".join(buffers), {"Inference-Header-Content-Length": str(size)}


def _binary_input(count: int, size: int) -> dict:
    return {
        "inputs": [
            {
                "name": "x",
                "shape": [count, 4],
                "datatype": "FP32",
                "parameters": {"binary_data_size": size},
            }
        ]
    }


def test_binary_input_edge_cases_are_400s(http: httpx.Client) -> None:
    import numpy as np

    rows = np.array(NESTED, dtype=np.float32).tobytes()  # 2 rows x 4 x 4 bytes
    ok, headers = _binary(_binary_input(2, len(rows)), rows)
    assert http.post("/v2/models/iris/infer", content=ok, headers=headers).status_code == 200
    cases = [
        (_binary(_binary_input(2, len(rows)), rows[:-4]), "left in the body"),  # truncated
        (_binary(_binary_input(2, len(rows)), rows, b"junk"), "no input claims"),  # leftover
        (_binary(_binary_input(2, len(rows) - 4), rows[:-4]), "needs 8 values"),  # size/shape
        (_binary(_binary_input(2, len(rows)), rows, length=10**6), "Inference-Header"),
        (_binary(_binary_input(2, -1), rows), "binary_data_size"),
    ]
    for (body, headers), needle in cases:
        response = http.post("/v2/models/iris/infer", content=body, headers=headers)
        assert response.status_code == 400, (needle, response.text)
        assert needle in response.json()["error"], (needle, response.text)
    octet = http.post(
        "/v2/models/iris/infer",
        content=ok,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert octet.status_code == 400 and "Inference-Header-Content-Length" in octet.text


def test_binary_output_on_request(http: httpx.Client) -> None:
    import numpy as np

    payload = {**_matrix(FLAT), "parameters": {"binary_data_output": True}}
    response = http.post("/v2/models/iris/infer", json=payload)
    assert response.status_code == 200, response.text
    size = int(response.headers["inference-header-content-length"])
    header = httpx.Response(200, content=response.content[:size]).json()
    predict, proba = header["outputs"]
    assert "data" not in predict and "data" not in proba
    rest = response.content[size:]
    assert (
        len(rest)
        == predict["parameters"]["binary_data_size"] + proba["parameters"]["binary_data_size"]
    )
    values = np.frombuffer(rest[predict["parameters"]["binary_data_size"] :], dtype="<f8")
    assert values.reshape(2, 3).sum(axis=1) == pytest.approx([1.0, 1.0])
    bad = http.post(
        "/v2/models/iris/infer", json={**_matrix(FLAT), "parameters": {"binary_data_output": "yes"}}
    )
    assert bad.status_code == 400 and "binary_data_output" in bad.text
