"""The assembled app over real HTTP: /predict in every form, ops routes, the OpenAPI schema."""

from __future__ import annotations

import time

import httpx
import pytest
from serving_helpers import SETOSA, VIRGINICA, IrisRegistry, LiveServer

from shipyard.quickstart import IRIS_RECORD
from shipyard.serving import ServeOptions, create_app


@pytest.fixture(scope="module")
def http(shared_live: LiveServer) -> httpx.Client:
    with shared_live.client() as client:
        yield client


def test_course_record_answers_prediction_probabilities_version_and_request_id(
    http: httpx.Client, shared_iris: IrisRegistry
) -> None:
    response = http.post("/predict", json=IRIS_RECORD)
    assert response.status_code == 200
    body = response.json()
    assert body["prediction"] == "setosa"
    assert set(body["probabilities"]) == {"setosa", "versicolor", "virginica"}
    assert sum(body["probabilities"].values()) == pytest.approx(1.0)
    assert max(body["probabilities"], key=body["probabilities"].get) == "setosa"
    assert body["model"] == "iris"
    assert body["version"] == shared_iris.logistic
    assert body["request_id"] == response.headers["x-request-id"]
    assert len(body["request_id"]) >= 16


def test_the_answer_matches_the_registered_model(
    http: httpx.Client, shared_iris: IrisRegistry
) -> None:
    model = shared_iris.client.registry.load(f"iris:{shared_iris.logistic}")
    body = http.post("/predict", json=[SETOSA, VIRGINICA]).json()
    assert body["predictions"] == model.predict([SETOSA, VIRGINICA]).tolist()
    expected = model.predict_proba([SETOSA, VIRGINICA])
    for row, probs in zip(expected, body["probabilities"], strict=True):
        assert list(probs.values()) == pytest.approx(row.tolist())


def test_list_and_instances_forms_answer_in_order(http: httpx.Client) -> None:
    for payload in ([SETOSA, VIRGINICA, SETOSA], {"instances": [SETOSA, VIRGINICA, SETOSA]}):
        body = http.post("/predict", json=payload).json()
        assert body["predictions"] == ["setosa", "virginica", "setosa"]
        assert len(body["probabilities"]) == 3


def test_incoming_request_id_prefixes_a_unique_id_and_a_bad_one_is_replaced(
    http: httpx.Client,
) -> None:
    """Labels join by request id, so each answer has its own even when a client
    sends one X-Request-ID many times; the client's id stays its prefix."""
    ids = set()
    for _ in range(3):
        response = http.post("/predict", json=SETOSA, headers={"X-Request-ID": "abc-123"})
        rid = response.headers["x-request-id"]
        assert rid.startswith("abc-123.") and len(rid) > len("abc-123.")
        assert response.json()["request_id"] == rid
        ids.add(rid)
    assert len(ids) == 3
    response = http.post("/predict", json=SETOSA, headers={"X-Request-ID": "bad id\twith space"})
    assert "bad id" not in response.headers["x-request-id"]


def test_extra_fields_are_ignored(http: httpx.Client) -> None:
    body = http.post("/predict", json={**SETOSA, "customer_id": 17}).json()
    assert body["prediction"] == "setosa"
    assert body["ignored_fields"] == ["customer_id"]


def test_health_ready_and_unknown_route(http: httpx.Client, shared_iris: IrisRegistry) -> None:
    assert http.get("/health").json() == {"status": "ok"}
    ready = http.get("/ready").json()
    assert ready["ready"] is True
    assert ready["version"] == shared_iris.logistic
    assert ready["ref"] == "iris@production"
    missing = http.get("/no/such/route")
    assert missing.status_code == 404
    assert "error" in missing.json()


def test_openapi_shows_the_signature_fields_and_types(http: httpx.Client) -> None:
    spec = http.get("/openapi.json").json()
    body = spec["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    refs = [option.get("$ref") for option in body["schema"]["anyOf"]]
    assert "#/components/schemas/IrisRecord" in refs
    record = spec["components"]["schemas"]["IrisRecord"]
    assert record["required"] == ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    assert {p["type"] for p in record["properties"].values()} == {"number"}
    assert "/invocations" in spec["paths"]
    assert "/v2/models/{name}/infer" in spec["paths"]
    assert http.get("/docs").status_code == 200


def test_not_ready_until_the_model_is_loaded(iris: IrisRegistry) -> None:
    """/health answers at once; /ready and /predict say 503 until load + warm-up ran."""
    iris.client.registry.delete_alias("iris", "production")
    app = create_app(iris.client, "iris", options=ServeOptions(poll_interval=0.05))
    server = LiveServer(app).start(ready=False)
    try:
        with server.client() as http:
            assert http.get("/health").status_code == 200
            ready = http.get("/ready")
            assert ready.status_code == 503
            assert "production" in ready.json()["error"]
            assert ready.headers["retry-after"] == "1"
            assert http.post("/predict", json=SETOSA).status_code == 503
            iris.client.registry.set_alias("iris", "production", iris.forest)
            deadline = time.monotonic() + 20
            while http.get("/ready").status_code != 200:
                assert time.monotonic() < deadline, "never became ready"
                time.sleep(0.05)
            assert http.post("/predict", json=SETOSA).json()["version"] == iris.forest
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("GET", "/predict", "POST"),
        ("PUT", "/invocations", "POST"),
        ("GET", "/v2/models/iris/infer", "POST"),
        ("POST", "/health", "GET"),
        ("DELETE", "/feedback", "POST"),
    ],
)
def test_method_not_allowed_says_which_methods_are(
    http: httpx.Client, method: str, path: str, allow: str
) -> None:
    response = http.request(method, path)
    assert response.status_code == 405
    assert response.headers["allow"] == allow
    assert "Method Not Allowed" in response.text
