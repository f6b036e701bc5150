"""``POST /predict`` at its edges: content types, strict JSON, unknown fields, huge numbers.

Every answer here is a 4xx naming what was wrong (or a 200 that says what it
ignored), never a 5xx and never a silently different prediction.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from serving_helpers import SETOSA, IrisRegistry, LiveServer, serve, wine_frame

BIG = "1" * 401


@pytest.fixture(scope="module")
def http(shared_live: LiveServer) -> Iterator[httpx.Client]:
    with shared_live.client() as client:
        yield client


@pytest.fixture(scope="module")
def wine_http(shared_iris: IrisRegistry) -> Iterator[httpx.Client]:
    server = serve(shared_iris.client, "wine")
    try:
        with server.client() as client:
            yield client
    finally:
        server.stop()


def _record_text(**override: str) -> bytes:
    values = {k: repr(v) for k, v in SETOSA.items()} | override
    return ("{" + ", ".join(f'"{k}": {v}' for k, v in values.items()) + "}").encode()


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",  # what a page on another site can post without a CORS preflight
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "text/csv",
        None,
    ],
)
def test_only_json_is_read(http: httpx.Client, content_type: str | None) -> None:
    headers = {} if content_type is None else {"Content-Type": content_type}
    response = http.post("/predict", content=_record_text(), headers=headers)
    assert response.status_code == 415, response.text
    assert "application/json" in response.json()["error"]


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "Application/JSON; charset=UTF-8", "application/json;charset=utf8"],
)
def test_json_in_any_spelling_is_read(http: httpx.Client, content_type: str) -> None:
    response = http.post("/predict", content=_record_text(), headers={"Content-Type": content_type})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("body", "key"),
    [
        (
            b'{"sepal_length": 5.1, "sepal_length": 9.9, "sepal_width": 3.5, '
            b'"petal_length": 1.4, "petal_width": 0.2}',
            "sepal_length",
        ),
        (
            b'[{"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, '
            b'"petal_width": 0.2, "petal_width": 2.2}]',
            "petal_width",
        ),
        (b'{"instances": [], "instances": [{"sepal_length": 5.1}]}', "instances"),
        # A colon inside a string must not hide a duplicate (nor fake one).
        (
            b'{"note": "a:b", "sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, '
            b'"petal_width": 0.2, "petal_width": 0.3}',
            "petal_width",
        ),
    ],
    ids=["record", "list", "instances", "colon-in-string"],
)
def test_duplicate_keys_are_refused_naming_the_key(
    http: httpx.Client, body: bytes, key: str
) -> None:
    response = http.post("/predict", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    assert response.json()["field"] == key
    assert repr(key) in response.json()["error"]


def test_a_colon_in_a_string_is_not_a_duplicate(http: httpx.Client) -> None:
    body = {**SETOSA, "note": "seen at 10:30", "where": "a:b:c"}
    response = http.post("/predict", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["prediction"] == "setosa"


@pytest.mark.parametrize(
    "body",
    [
        _record_text(sepal_length=BIG),
        _record_text(sepal_length="-" + BIG),
        _record_text(sepal_length="1e400"),
        (
            "[" + _record_text().decode() + ", " + _record_text(petal_width=BIG).decode() + "]"
        ).encode(),
    ],
    ids=["huge-int", "huge-negative", "huge-float", "second-row"],
)
def test_huge_numbers_are_a_4xx_naming_the_field(http: httpx.Client, body: bytes) -> None:
    response = http.post("/predict", content=body, headers={"Content-Type": "application/json"})
    assert 400 <= response.status_code < 500, response.text
    error = response.json()
    assert error.get("field") in {"sepal_length", "petal_width"}, error


@pytest.mark.parametrize("value", [2**63, -(2**63) - 1, 2**64, int(BIG), 1e30])
def test_integers_beyond_64_bits_are_refused_not_wrapped(
    wine_http: httpx.Client, value: float
) -> None:
    X, _ = wine_frame()
    record = X.iloc[0].to_dict()
    record["magnesium"] = value
    response = wine_http.post("/predict", json=record)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == "magnesium"
    assert "64-bit" in response.json()["error"]


def test_unknown_fields_are_answered_and_named(http: httpx.Client) -> None:
    response = http.post("/predict", json={**SETOSA, "customer_id": 17, "région": "nord"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["prediction"] == "setosa"
    assert body["ignored_fields"] == ["customer_id", "région"]
    assert response.headers["shipyard-ignored-fields"] == "customer_id, r%C3%A9gion"
    batch = http.post("/predict", json=[SETOSA, {**SETOSA, "id": 1}]).json()
    assert batch["ignored_fields"] == ["id"]
    plain = http.post("/predict", json=SETOSA)
    assert "ignored_fields" not in plain.json()
    assert "shipyard-ignored-fields" not in plain.headers


def test_unknown_fields_are_refused_in_strict_mode(iris: IrisRegistry) -> None:
    server = serve(iris.client, reject_unknown_fields=True)
    try:
        with server.client() as http:
            refused = http.post("/predict", json=[SETOSA, {**SETOSA, "customer_id": 17}])
            assert refused.status_code == 422, refused.text
            assert refused.json()["field"] == "customer_id"
            assert http.post("/predict", json=SETOSA).status_code == 200
    finally:
        server.stop()


def test_messages_show_the_served_models_own_fields(wine_http: httpx.Client) -> None:
    """Not iris's: a wine model's errors show wine's columns."""
    broken = wine_http.post(
        "/predict", content=b'{"alcohol": ', headers={"Content-Type": "application/json"}
    )
    assert broken.status_code == 400
    text = broken.json()["error"]
    assert '{"alcohol": ' in text and "sepal" not in text
    scalar = wine_http.post("/predict", json=3)
    assert scalar.status_code == 422
    assert "alcohol" in scalar.json()["error"] and "sepal" not in scalar.json()["error"]
