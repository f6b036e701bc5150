"""API keys, the admin token, the body limit and the per-request timeout, over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from serving_helpers import SETOSA, IrisRegistry, LiveServer, serve

from shipyard import Shipyard
from shipyard.config import Settings
from shipyard.serving.security import DEFAULT_MAX_BODY_BYTES


def _client_with(iris: IrisRegistry, **settings: object) -> Shipyard:
    return Shipyard(Settings(home=iris.settings.home, user="tester", **settings))  # type: ignore[arg-type]


@pytest.fixture
def keyed(iris: IrisRegistry) -> Iterator[LiveServer]:
    client = _client_with(iris, api_keys=["key-one", "key-two"], admin_token="s3cret")
    server = serve(client)
    yield server
    server.stop()
    client.close()


def test_api_keys_guard_prediction_routes_only(keyed: LiveServer) -> None:
    with keyed.client() as http:
        missing = http.post("/predict", json=SETOSA)
        assert missing.status_code == 401
        assert "X-API-Key" in missing.json()["error"]
        assert missing.headers["www-authenticate"] == "Bearer"
        wrong = http.post("/predict", json=SETOSA, headers={"X-API-Key": "nope"})
        assert wrong.status_code == 401
        assert "not valid" in wrong.json()["error"]
        ok = http.post("/predict", json=SETOSA, headers={"X-API-Key": "key-two"})
        assert ok.status_code == 200
        bearer = http.post("/predict", json=SETOSA, headers={"Authorization": "Bearer key-one"})
        assert bearer.status_code == 200
        mlflow = http.post("/invocations", json={"dataframe_records": [SETOSA]})
        assert mlflow.status_code == 401
        assert mlflow.json()["error_code"] == "UNAUTHENTICATED"
        v2 = http.post("/v2/models/iris/infer", json={"inputs": []})
        assert v2.status_code == 401
        # Health, readiness and metrics stay open for probes and scrapers.
        for path in ("/health", "/ready", "/metrics", "/v2/health/ready"):
            assert http.get(path).status_code == 200, path


def test_admin_routes_need_the_admin_token(keyed: LiveServer) -> None:
    with keyed.client() as http:
        assert http.post("/admin/reload").status_code == 401
        wrong = http.post("/admin/reload", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        # An API key is not an admin token.
        assert (
            http.post("/admin/reload", headers={"Authorization": "Bearer key-one"}).status_code
            == 401
        )
        ok = http.post("/admin/reload", headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200
        assert ok.json() == {"changed": False, "version": 1, "previous": 1}
        status = http.get("/admin/status", headers={"Authorization": "Bearer s3cret"}).json()
        assert status["version"] == 1
        assert status["follows_alias"] is True


def test_admin_routes_are_disabled_without_a_token(live: LiveServer) -> None:
    with live.client() as http:
        response = http.post("/admin/reload", headers={"Authorization": "Bearer anything"})
        assert response.status_code == 403
        assert "SHIPYARD_ADMIN_TOKEN" in response.json()["error"]


def test_oversize_body_is_413_by_content_length(live: LiveServer) -> None:
    body = b'{"instances": [' + b" " * DEFAULT_MAX_BODY_BYTES + b"]}"
    with live.client() as http:
        response = http.post("/predict", content=body, headers={"content-type": "application/json"})
        assert response.status_code == 413
        assert str(DEFAULT_MAX_BODY_BYTES) in response.json()["error"]
        mlflow = http.post(
            "/invocations", content=body, headers={"content-type": "application/json"}
        )
        assert mlflow.status_code == 413
        assert mlflow.json()["error_code"] == "BAD_REQUEST"


def test_oversize_chunked_body_is_413_by_counting_bytes(live: LiveServer) -> None:
    """No Content-Length (chunked upload): the bytes actually received are counted."""

    def chunks() -> Iterator[bytes]:
        yield b'{"instances": ['
        for _ in range(20):
            yield b" " * 65536
        yield b"]}"

    with live.client() as http:
        response = http.post(
            "/predict", content=chunks(), headers={"content-type": "application/json"}
        )
        assert response.status_code == 413
        assert response.json()["type"] == "PayloadTooLargeError"


def test_body_under_the_limit_is_fine(live: LiveServer) -> None:
    with live.client() as http:
        response = http.post("/predict", json={"instances": [SETOSA] * 2000})
        assert response.status_code == 200
        assert len(response.json()["predictions"]) == 2000


def test_slow_request_times_out_with_504(iris: IrisRegistry) -> None:
    server = serve(iris.client, "slow", request_timeout=0.3)
    try:
        with server.client() as http:
            slow = http.post("/predict", json={"x": 1.0, "delay": 3.0})
            assert slow.status_code == 504
            assert "timeout" in slow.json()["error"]
            assert slow.json()["type"] == "RequestTimeoutError"
            fast = http.post("/predict", json={"x": 1.0, "delay": 0.0})
            assert fast.status_code == 200
            assert fast.json()["prediction"] == "big"
    finally:
        server.stop()


def test_limits_are_configurable(iris: IrisRegistry) -> None:
    server = serve(iris.client, max_body_bytes=100)
    try:
        with server.client() as http:
            assert http.post("/predict", json=SETOSA).status_code == 200
            big = http.post("/predict", json=[SETOSA, SETOSA])
            assert big.status_code == 413
    finally:
        server.stop()


def test_no_keys_configured_means_open(live: LiveServer) -> None:
    with live.client() as http:
        assert http.post("/predict", json=SETOSA).status_code == 200


def test_guard_classes_compare_in_constant_time_and_report_enabled() -> None:
    from pydantic import SecretStr

    from shipyard.serving.security import AdminGuard, ApiKeyGuard

    assert not ApiKeyGuard([]).enabled
    assert ApiKeyGuard(["a"]).enabled
    assert AdminGuard(SecretStr("t")).enabled
    assert not AdminGuard(SecretStr("")).enabled
    assert not AdminGuard(None).enabled


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_timeout_after_the_answer_started_cuts_it_short_without_an_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import anyio

    from shipyard.serving.security import TimeoutMiddleware

    async def streaming(scope: dict, receive: object, send: object) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})  # type: ignore[operator]
        await anyio.sleep(5)

    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    app = TimeoutMiddleware(streaming, seconds=0.05)  # type: ignore[arg-type]
    scope = {"type": "http", "path": "/predict", "method": "POST", "headers": []}
    await app(scope, None, send)  # type: ignore[arg-type]
    assert [m["type"] for m in sent] == ["http.response.start"]
    assert "ran past the 0.05 s timeout" in caplog.text
