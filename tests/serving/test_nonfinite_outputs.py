"""A model whose output is NaN or infinite answers a 4xx naming the row, on every route.

Inputs of 1e308 pass the signature (they are finite floats) but overflow inside
the model: a logistic regression's probabilities become NaN, a linear
regression's value infinite or NaN. Reading a label off NaN probabilities
(``argmax`` picks the first class) would be a silently wrong answer.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import numpy as np
import pytest
from serving_helpers import SETOSA, VIRGINICA, LiveServer, serve
from sklearn.linear_model import LinearRegression, LogisticRegression

from shipyard import Shipyard
from shipyard.config import Settings
from shipyard.quickstart import diabetes_frame, iris_frame

HUGE = {name: 1e308 for name in SETOSA}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shipyard]:
    client = Shipyard(Settings(home=tmp_path_factory.mktemp("nonfinite") / "home", user="t"))
    X, y = iris_frame()
    client.registry.log_model(LogisticRegression(max_iter=500).fit(X, y), "iris", sample=X)
    client.registry.set_alias("iris", "production", 1)
    D, target = diabetes_frame()
    client.registry.log_model(LinearRegression().fit(D, target), "diabetes", sample=D)
    client.registry.set_alias("diabetes", "production", 1)
    yield client
    client.close()


@pytest.fixture(scope="module", params=[True, False], ids=["batched", "unbatched"])
def iris_http(client: Shipyard, request: pytest.FixtureRequest) -> Iterator[httpx.Client]:
    server: LiveServer = serve(client, "iris", batching=request.param, prediction_log=False)
    with server.client() as http:
        yield http
    server.stop()


@pytest.fixture(scope="module")
def diabetes_http(client: Shipyard) -> Iterator[httpx.Client]:
    server = serve(client, "diabetes", prediction_log=False)
    with server.client() as http:
        yield http
    server.stop()


def _assert_names_row(response: httpx.Response, row: int, *, key: str = "error") -> None:
    assert 400 <= response.status_code < 500, response.text
    body = response.json()
    message = body[key] if key in body else body["message"]
    assert f"row {row}" in message.lower(), message
    assert "not finite" in message, message
    assert "setosa" not in response.text


def test_predict_route_answers_422_naming_the_row(iris_http: httpx.Client) -> None:
    _assert_names_row(iris_http.post("/predict", json=HUGE), 0)
    response = iris_http.post("/predict", json=[SETOSA, VIRGINICA, HUGE])
    _assert_names_row(response, 2)
    assert response.status_code == 422
    assert response.json()["rows"] == [2]
    # The server still answers good input afterwards.
    assert iris_http.post("/predict", json=SETOSA).json()["prediction"] == "setosa"


def test_a_bad_request_in_a_merged_batch_does_not_fail_its_neighbours(
    iris_http: httpx.Client,
) -> None:
    import concurrent.futures

    payloads = [SETOSA, HUGE, VIRGINICA, HUGE, SETOSA, VIRGINICA] * 4
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda p: iris_http.post("/predict", json=p), payloads))
    for payload, response in zip(payloads, answers, strict=True):
        if payload is HUGE:
            _assert_names_row(response, 0)
        else:
            assert response.status_code == 200, response.text
            expected = "setosa" if payload is SETOSA else "virginica"
            assert response.json()["prediction"] == expected


def test_invocations_answers_a_4xx_naming_the_row(iris_http: httpx.Client) -> None:
    body = {"dataframe_records": [SETOSA, HUGE]}
    _assert_names_row(iris_http.post("/invocations", json=body), 1, key="message")
    csv = "sepal_length,sepal_width,petal_length,petal_width\n1e308,1e308,1e308,1e308\n"
    response = iris_http.post("/invocations", content=csv, headers={"content-type": "text/csv"})
    _assert_names_row(response, 0, key="message")


def test_v2_infer_answers_a_4xx_naming_the_row(iris_http: httpx.Client) -> None:
    inputs = [
        {"name": n, "shape": [2], "datatype": "FP64", "data": [VIRGINICA[n], 1e308]} for n in SETOSA
    ]
    response = iris_http.post("/v2/models/iris/infer", json={"inputs": inputs})
    _assert_names_row(response, 1)


def test_an_infinite_or_nan_regression_value_is_refused(
    client: Shipyard, diabetes_http: httpx.Client
) -> None:
    D, _ = diabetes_frame()
    good = D.iloc[0].to_dict()
    overflow = {k: 1e308 for k in good}
    signs = {k: (1e308 if i % 2 else -1e308) for i, k in enumerate(good)}
    model = client.registry.load("diabetes")
    raw = model.predictor.predict(model.prepare([overflow, signs]))
    assert not np.isfinite(raw).any()  # the model really answers inf/NaN here
    response = diabetes_http.post("/predict", json=[good, overflow])
    _assert_names_row(response, 1)
    _assert_names_row(diabetes_http.post("/predict", json=[signs]), 0)
    ok = diabetes_http.post("/predict", json=good)
    assert ok.status_code == 200 and np.isfinite(ok.json()["prediction"])


def test_a_model_that_raises_answers_4xx_naming_the_field_on_every_route(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """A forest raises on 1e308 (its float32 cast): /predict, /invocations and V2 answer
    4xx naming the column, and the good rows of other requests still score."""
    from sklearn.ensemble import RandomForestRegressor

    D, target = diabetes_frame()
    home = tmp_path_factory.mktemp("raising") / "home"
    client = Shipyard(Settings(home=home, user="t"))
    client.registry.log_model(
        RandomForestRegressor(n_estimators=3, random_state=0).fit(D, target), "forest", sample=D
    )
    client.registry.set_alias("forest", "production", 1)
    good = D.iloc[0].to_dict()
    bad = {**good, "bmi": 1e308}
    server = serve(client, "forest", prediction_log=False)
    try:
        with server.client() as http:
            answers = {
                "/predict": http.post("/predict", json=[good, bad]),
                "/invocations": http.post("/invocations", json={"dataframe_records": [bad]}),
                "/v2": http.post(
                    "/v2/models/forest/infer",
                    json={
                        "inputs": [
                            {"name": k, "shape": [1], "datatype": "FP64", "data": [v]}
                            for k, v in bad.items()
                        ]
                    },
                ),
            }
            for route, response in answers.items():
                assert 400 <= response.status_code < 500, (route, response.text)
                assert "bmi" in response.text, (route, response.text)
            assert answers["/predict"].json()["field"] == "bmi"
            assert answers["/predict"].json()["rows"] == [1]
            assert http.post("/predict", json=good).status_code == 200
    finally:
        server.stop()
        client.close()
