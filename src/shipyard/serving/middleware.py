"""The outermost middleware: request ids and the per-request HTTP metrics.

Pure ASGI (no ``BaseHTTPMiddleware``, which costs a task per request). It

- gives every request an id of its own, unique per request because labels
  (``POST /feedback``) join predictions by it: a fresh one, or the caller's
  ``X-Request-ID`` (when it is a sane token: letters, digits, ``._:-``, at most
  128 characters) followed by ``.`` and a random suffix, so a client that sends
  one id many times still gets one id per prediction and traces still find it
  by prefix. The id goes into the scope (``shipyard.request_id``) and the
  answer's ``X-Request-ID`` header (and the body of ``/predict``);
- counts requests by route *template* (``/v2/models/{name}/infer``, never the
  raw path, so a scanner cannot blow up the label set), method and status,
  times them, and tracks how many are in flight. A request answered before
  routing (413 from the body limit) is counted under the route it was for.

Example:
    >>> from shipyard.serving.metrics import ServingMetrics
    >>> app = RequestMiddleware(lambda scope, receive, send: None, ServingMetrics())
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Sequence
from typing import Any

from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shipyard.serving.errors import REQUEST_ID_KEY
from shipyard.serving.metrics import ServingMetrics

_VALID_ID = re.compile(rb"[A-Za-z0-9._:\-]{1,128}")
_UNMATCHED = "<unmatched>"


def _uuid4_hex() -> str:
    """``uuid.uuid4().hex``, the same 16 random bytes and version bits, without the
    ``UUID`` object (a quarter of the cost; this runs once per request)."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    return raw.hex()


def request_id_for(scope: Scope) -> str:
    """A new id, unique to this request: the caller's id (if sane) plus a random suffix."""
    suffix = _uuid4_hex()
    incoming = incoming_request_id(scope)
    return suffix if incoming is None else f"{incoming}.{suffix[:16]}"


def incoming_request_id(scope: Scope) -> str | None:
    """The caller's ``X-Request-ID`` if it is safe to log and echo, else None."""
    for key, value in scope["headers"]:
        if key == b"x-request-id":
            return value.decode("ascii") if _VALID_ID.fullmatch(value) else None
    return None


def _route_template(scope: Scope, routes: Sequence[BaseRoute]) -> str:
    route = scope.get("route")
    if route is not None:
        return str(getattr(route, "path", _UNMATCHED))
    # Plain Starlette routes (/openapi.json, /docs) have fixed paths: a bounded label set.
    if "endpoint" in scope:
        return str(scope["path"])
    # Answered before routing (a 413 from the body limit, a 504): find the route the
    # request was for, so it is counted there rather than as unmatched.
    for candidate in routes:
        match, _ = candidate.matches(scope)
        if match is not Match.NONE:
            return str(getattr(candidate, "path", _UNMATCHED))
    return _UNMATCHED


class RequestMiddleware:
    """Assigns request ids and records request count, latency and in-flight gauge."""

    def __init__(
        self, app: ASGIApp, metrics: ServingMetrics, routes: Sequence[BaseRoute] = ()
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes
        # Labelled children, resolved once per label set: ``labels()`` takes a lock and
        # builds a key on every call. The label sets are bounded (route templates).
        self._counted: dict[tuple[str, str, int], Any] = {}
        self._timed: dict[tuple[str, str], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_for(scope)
        scope[REQUEST_ID_KEY] = request_id
        header = (b"x-request-id", request_id.encode("ascii"))
        status = 500  # what the client sees if the app dies before answering

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        metrics = self.metrics
        metrics.in_flight.inc()
        start = time.perf_counter()
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - start
            metrics.in_flight.dec()
            template = _route_template(scope, self.routes)
            method = scope["method"]
            counter = self._counted.get((template, method, status))
            if counter is None:
                counter = metrics.requests.labels(template, method, str(status))
                self._counted[(template, method, status)] = counter
            counter.inc()
            histogram = self._timed.get((template, method))
            if histogram is None:
                histogram = metrics.latency.labels(template, method)
                self._timed[(template, method)] = histogram
            histogram.observe(elapsed)
