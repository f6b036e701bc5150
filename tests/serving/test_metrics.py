"""/metrics: the Prometheus text a scraper reads after real traffic."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families
from serving_helpers import SETOSA, VIRGINICA, IrisRegistry, LiveServer, serve

from shipyard.serving.metrics import ServingMetrics


def _families(text: str) -> dict[str, list]:
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def test_metrics_after_traffic(live: LiveServer, iris: IrisRegistry) -> None:
    with live.client() as http:
        for _ in range(3):
            assert http.post("/predict", json=SETOSA).status_code == 200
        assert http.post("/predict", json=[SETOSA, VIRGINICA, VIRGINICA]).status_code == 200
        assert http.post("/predict", json={"sepal_length": 1}).status_code == 422
        assert http.post("/v2/models/iris/infer", json={"inputs": []}).status_code == 400
        response = http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    families = _families(response.text)

    requests = {
        (s.labels["route"], s.labels["method"], s.labels["status"]): s.value
        for s in families["shipyard_http_requests"]
        if s.name.endswith("_total")
    }
    assert requests[("/predict", "POST", "200")] == 4
    assert requests[("/predict", "POST", "422")] == 1
    assert requests[("/v2/models/{name}/infer", "POST", "400")] == 1

    buckets = [
        s
        for s in families["shipyard_http_request_duration_seconds"]
        if s.name.endswith("_count") and s.labels["route"] == "/predict"
    ]
    assert buckets[0].value == 5

    # The /metrics request itself is in flight while the text is rendered.
    assert families["shipyard_http_requests_in_flight"][0].value == 1

    by_class = {
        s.labels["class"]: s.value
        for s in families["shipyard_predictions"]
        if s.name.endswith("_total")
    }
    # Warm-up is not counted: only answered requests.
    assert by_class == {"setosa": 4, "virginica": 2}
    assert {s.labels["version"] for s in families["shipyard_predictions"]} == {"1"}

    info = families["shipyard_model_info"]
    assert [(s.labels["model"], s.labels["version"], s.value) for s in info] == [
        ("iris", str(iris.logistic), 1.0)
    ]
    assert info[0].labels["flavor"] == "sklearn"
    assert info[0].labels["ref"] == "iris@production"
    assert families["shipyard_model_load_seconds"][0].value > 0
    assert families["shipyard_model_ready"][0].value == 1


def test_each_app_has_its_own_registry() -> None:
    a, b = ServingMetrics(), ServingMetrics()
    a.swaps.labels("iris").inc()
    assert b"shipyard_model_swaps_total" in a.render()[0]
    assert b'shipyard_model_swaps_total{model="iris"}' not in b.render()[0]


def test_requests_answered_before_routing_count_under_their_route(iris: IrisRegistry) -> None:
    """A 413 (the body limit answers before any route runs) counts under its route."""
    server = serve(iris.client, max_body_bytes=1000)
    try:
        with server.client() as http:
            big = b"[" + b",".join([b'{"sepal_length": 5.1}'] * 100) + b"]"
            headers = {"Content-Type": "application/json"}
            assert http.post("/predict", content=big, headers=headers).status_code == 413
            assert http.post("/v2/models/iris/infer", content=big).status_code == 413
            assert http.get("/predict").status_code == 405
            assert http.get("/no/such/route").status_code == 404
            text = http.get("/metrics").text
    finally:
        server.stop()
    requests = {
        (s.labels["route"], s.labels["method"], s.labels["status"]): s.value
        for s in _families(text)["shipyard_http_requests"]
        if s.name.endswith("_total")
    }
    assert requests[("/predict", "POST", "413")] == 1
    assert requests[("/v2/models/{name}/infer", "POST", "413")] == 1
    assert requests[("/predict", "GET", "405")] == 1
    assert requests[("<unmatched>", "GET", "404")] == 1
    assert not any(route == "<unmatched>" and status == "413" for route, _, status in requests)
