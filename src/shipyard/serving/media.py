"""Which Content-Types a route reads: everything else answers 415.

Why it matters: a browser lets any page post ``text/plain``,
``application/x-www-form-urlencoded`` or ``multipart/form-data`` to another
site without asking it first (no CORS preflight). A prediction or feedback
route that reads such a body as JSON can be driven from any web page a user of
the server happens to open. Reading only the types a route documents closes
that door: ``application/json`` needs a preflight, which this server never
grants.

The rules, per route:

- ``/predict``, ``/feedback``, admin routes with a body: ``application/json``.
- ``/invocations``: ``application/json`` or ``text/csv`` (MLflow's protocol).
- ``/v2/.../infer``: ``application/json`` or ``application/octet-stream`` (the
  binary tensor extension); a request with *no* Content-Type is read as JSON,
  because the Open Inference Protocol's own clients send none.

A ``charset`` parameter other than UTF-8, or any other parameter, is refused
too. Matching is case-insensitive, as media types are.

Example:
    >>> media_type("application/json; charset=utf-8", accepted=(JSON,))
    'application/json'
    >>> media_type(None, accepted=(JSON,), missing=JSON)
    'application/json'
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

from shipyard.serving.errors import UnsupportedMediaTypeError
from shipyard.serving.jsonbody import loads_strict

JSON = "application/json"
CSV = "text/csv"
OCTET_STREAM = "application/octet-stream"


def media_type(header: str | None, *, accepted: tuple[str, ...], missing: str | None = None) -> str:
    """The media type of a ``Content-Type`` header if the route reads it, else 415.

    ``missing`` is what a request without the header counts as (None: refused).
    """
    if header is not None and header in accepted:  # the common case: a type, no parameter
        return header
    wanted = " or ".join(repr(a) for a in accepted)
    if not header:
        if missing is not None:
            return missing
        raise UnsupportedMediaTypeError(f"Send a Content-Type header: this route reads {wanted}.")
    mime, *params = (part.strip() for part in header.split(";"))
    mime = mime.lower()
    if mime not in accepted:
        raise UnsupportedMediaTypeError(
            f"This route only supports the following content types: {list(accepted)}; got "
            f"{mime!r}. Send the body with Content-Type: {accepted[0]}."
        )
    for param in params:
        key, _, value = param.partition("=")
        key = key.strip().lower()
        if key == "charset":
            if value.strip().strip('"').lower() not in ("utf-8", "utf8"):
                raise UnsupportedMediaTypeError(
                    f"Only UTF-8 bodies are read; got charset {value.strip()!r}."
                )
        elif key:
            raise UnsupportedMediaTypeError(
                f"Unrecognized content type parameters: {key}. Only charset=utf-8 is read."
            )
    return mime


class JsonBodyRoute(APIRoute):
    """A FastAPI route whose body, when there is one, must be strict JSON.

    Before FastAPI reads the body: the Content-Type must be ``application/json``
    (415 otherwise) and the JSON must have no duplicate keys (422). FastAPI then
    parses and validates the same (cached) bytes as usual.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict_json_handler(request: Request) -> Response:
            body = await request.body()
            if body:
                media_type(request.headers.get("content-type"), accepted=(JSON,))
                loads_strict(body)
            return await handler(request)

        return strict_json_handler
