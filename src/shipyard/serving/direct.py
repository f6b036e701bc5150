"""Direct dispatch of the hot prediction routes, ahead of FastAPI's router.

FastAPI's router and dependency machinery cost about as much per request as a
LogisticRegression ``predict`` (measured here: ~150 us for a route taking only
``Request``, against ~50 us for a bare Starlette route). ``/predict`` and
``/invocations`` need none of it: they read the raw body and the signature
validates it. So this middleware, innermost in the stack (inside the request
id, metrics, timeout and body-limit middleware), hands those requests straight
to their endpoint functions. FastAPI keeps the very same functions as routes,
which is where ``/docs`` and the OpenAPI schema come from.

An endpoint opts in with :func:`direct`; it must take only the request and
return a response, and must do its own checks (API key) since no dependency
runs on this path.

Example:
    >>> @direct
    ... async def ping(request):
    ...     ...
    >>> is_direct(ping)
    True
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi.routing import APIRoute
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from shipyard.serving.errors import error_response

Endpoint = Callable[[Request], Awaitable[Response]]
F = TypeVar("F", bound=Callable[..., Any])
_MARK = "__shipyard_direct__"


def direct(endpoint: F) -> F:
    """Mark ``endpoint`` for direct dispatch (see the module docstring)."""
    setattr(endpoint, _MARK, True)
    return endpoint


def is_direct(endpoint: Any) -> bool:
    return bool(getattr(endpoint, _MARK, False))


def header(request: Request, name: bytes) -> str | None:
    """The first value of header ``name`` (lower case), as ``request.headers.get`` gives it,
    read off the scope without building a ``Headers`` object."""
    for key, value in request.scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def read_body(request: Request) -> bytes:
    """``await request.body()``, with the usual single-message body read in one step.

    Same outcome as Starlette's: the body (kept on the request, so a later
    ``request.body()`` returns it), or :class:`~starlette.requests.ClientDisconnect`.
    """
    if hasattr(request, "_body") or request._stream_consumed:
        return await request.body()  # already read, or being read: Starlette's rules
    message = await request.receive()
    if message["type"] == "http.request" and not message.get("more_body", False):
        request._stream_consumed = True
        body: bytes = message.get("body", b"")
        request._body = body
        return body
    if message["type"] == "http.disconnect":
        request._is_disconnected = True
        raise ClientDisconnect()
    # More to come: the first chunk, then Starlette reads the rest.
    chunks = [message.get("body", b"")]
    chunks.append(await request.body())
    body = b"".join(chunks)
    request._body = body
    return body


@dataclass(frozen=True)
class DirectRoute:
    """What the metrics middleware reads back from ``scope["route"]``: the path."""

    path: str
    endpoint: Endpoint


def direct_routes(routes: Iterable[Any]) -> dict[tuple[str, str], DirectRoute]:
    """``(method, path) -> route`` for every marked FastAPI route with a fixed path."""
    table: dict[tuple[str, str], DirectRoute] = {}
    for route in routes:
        if isinstance(route, APIRoute) and is_direct(route.endpoint):
            if route.param_convertors:
                raise ValueError(f"Direct routes need a fixed path, not {route.path!r}.")
            for method in route.methods or ():
                table[(method, route.path)] = DirectRoute(route.path, route.endpoint)
    return table


class DirectRoutesMiddleware:
    """Answers marked routes itself; everything else goes on to FastAPI."""

    def __init__(self, app: ASGIApp, routes: dict[tuple[str, str], DirectRoute]) -> None:
        self.app = app
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            route = self.routes.get((scope["method"], scope["path"]))
            if route is not None:
                scope["route"] = route
                try:
                    response = await route.endpoint(Request(scope, receive))
                except Exception as exc:  # rendered exactly as FastAPI's handlers would
                    response = error_response(exc, scope)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
