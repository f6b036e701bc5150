"""Direct dispatch: marked routes skip FastAPI's router, others pass through untouched."""

from __future__ import annotations

import asyncio

import pytest
from fastapi import APIRouter, FastAPI, Request
from fastapi.testclient import TestClient
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from shipyard.errors import SchemaError
from shipyard.serving.direct import (
    DirectRoutesMiddleware,
    direct,
    direct_routes,
    header,
    is_direct,
    read_body,
)
from shipyard.serving.errors import install_error_handlers


def _app() -> tuple[FastAPI, list[str]]:
    calls: list[str] = []
    router = APIRouter()

    @router.post("/fast")
    @direct
    async def fast(request: Request) -> Response:
        calls.append("fast")
        if await request.body() == b"bad":
            raise SchemaError("bad body", field="x", expected="float")
        return Response(b'{"ok":true}', media_type="application/json")

    @router.post("/slow")
    async def slow(request: Request) -> Response:
        calls.append("slow")
        return Response(b"{}", media_type="application/json")

    app = FastAPI()
    install_error_handlers(app)
    table = direct_routes(router.routes)
    app.include_router(router)
    app.add_middleware(DirectRoutesMiddleware, routes=table)
    return app, calls


def test_marked_routes_are_answered_directly_and_still_documented() -> None:
    app, calls = _app()
    assert set(direct_routes(app.router.routes)) <= {("POST", "/fast")}
    with TestClient(app) as client:
        assert client.post("/fast").json() == {"ok": True}
        assert client.post("/slow").status_code == 200
        error = client.post("/fast", content=b"bad")
        assert error.status_code == 422
        assert error.json()["field"] == "x"
        assert client.get("/fast").status_code == 405  # other methods reach FastAPI
    assert calls == ["fast", "slow", "fast"]
    assert "/fast" in app.openapi()["paths"]


def test_only_fixed_paths_can_be_direct() -> None:
    router = APIRouter()

    @router.post("/items/{name}")
    @direct
    async def item(request: Request) -> Response:
        return Response()

    assert is_direct(item)
    with pytest.raises(ValueError, match="fixed path"):
        direct_routes(router.routes)


def _request(messages: list[dict[str, object]]) -> Request:
    queue = list(messages)

    async def receive() -> dict[str, object]:
        return queue.pop(0)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/fast",
        "headers": [(b"content-type", b"application/json"), (b"content-type", b"text/csv")],
    }
    return Request(scope, receive)  # type: ignore[arg-type]


def test_read_body_reads_what_starlette_reads() -> None:
    async def read(messages: list[dict[str, object]]) -> tuple[bytes, bytes]:
        request = _request(messages)
        body = await read_body(request)
        return body, await request.body()  # kept on the request, as Starlette keeps it

    one = [{"type": "http.request", "body": b'{"x": 1}', "more_body": False}]
    assert asyncio.run(read(one)) == (b'{"x": 1}', b'{"x": 1}')
    chunked = [
        {"type": "http.request", "body": b'{"x"', "more_body": True},
        {"type": "http.request", "body": b"", "more_body": True},
        {"type": "http.request", "body": b": 1}", "more_body": False},
    ]
    assert asyncio.run(read(chunked)) == (b'{"x": 1}', b'{"x": 1}')
    assert asyncio.run(read([{"type": "http.request"}])) == (b"", b"")
    for gone in ([{"type": "http.disconnect"}], [chunked[0], {"type": "http.disconnect"}]):
        with pytest.raises(ClientDisconnect):
            asyncio.run(read(gone))


def test_header_is_the_first_value_as_starlette_gives_it() -> None:
    request = _request([])
    assert header(request, b"content-type") == request.headers.get("content-type")
    assert header(request, b"content-type") == "application/json"
    assert header(request, b"x-api-key") is None
