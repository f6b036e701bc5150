"""The one place where errors become HTTP answers: status codes and JSON bodies.

Every route, middleware and protocol raises Shipyard's own exceptions (or lets
pydantic/Starlette raise theirs); this module decides the status code and the
body. Three clients speak three dialects, chosen by the request path:

- ``native`` (``/predict``, ``/ready``, ``/admin/...``) and ``v2`` (``/v2/...``,
  whose protocol asks for ``{"error": "<message>"}``) answer
  ``{"error": message, "type": ..., "field": ..., "expected": ..., "rows": [...],
  "request_id": ...}``; the extra keys name what was wrong and are harmless to V2
  clients.
- ``mlflow`` (``/invocations``, ``/ping``) answers MLflow's scoring-server shape
  ``{"error_code": "BAD_REQUEST", "message": ...}`` so MLflow clients read it.

Example:
    >>> from shipyard.errors import SchemaError
    >>> status_for(SchemaError("bad", field="x"), "native")
    422
    >>> status_for(SchemaError("bad", field="x"), "mlflow")
    400
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Scope

from shipyard.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    SchemaError,
    ShipyardError,
    StoreError,
)

logger = logging.getLogger("shipyard.serving")

Dialect = Literal["native", "mlflow", "v2"]
REQUEST_ID_KEY = "shipyard.request_id"
_NO_BODY: Any = object()  # validation_error() without the input that was validated


# -- errors that only exist at the HTTP edge ------------------------------------------------


class PayloadTooLargeError(InvalidInputError):
    """The request body is larger than the server accepts (413)."""


class UnsupportedMediaTypeError(InvalidInputError):
    """The request's Content-Type is not one the route reads (415)."""


class UnauthorizedError(ShipyardError):
    """No valid credentials were sent (401)."""


class ForbiddenError(ShipyardError):
    """The route exists but is disabled or not allowed for this caller (403)."""


class ModelNotReadyError(ShipyardError):
    """The model is not loaded and warmed up yet (503, retry shortly)."""


class OnlineStoreNotReadyError(ModelNotReadyError):
    """A feature-backed model's online store cannot be reached (``/ready`` answers 503).

    ``online_store`` names the store without credentials (the body's ``online_store``).
    """

    def __init__(self, message: str, *, online_store: str) -> None:
        super().__init__(message)
        self.online_store = online_store


class RequestTimeoutError(ShipyardError):
    """The request took longer than the per-request timeout (504)."""


# -- the mapping ----------------------------------------------------------------------------

# Most specific first: the first matching type wins.
_STATUS: tuple[tuple[type[BaseException], int], ...] = (
    (PayloadTooLargeError, 413),
    (UnsupportedMediaTypeError, 415),
    (SchemaError, 422),
    (InvalidInputError, 400),
    (UnauthorizedError, 401),
    (ForbiddenError, 403),
    (NotFoundError, 404),
    (ConflictError, 409),
    (ModelNotReadyError, 503),
    (StoreError, 503),
    (RequestTimeoutError, 504),
)
# MLflow's scoring server answers every input problem with 400 BAD_REQUEST.
_DIALECT_OVERRIDES: dict[Dialect, dict[int, int]] = {
    "native": {},
    "mlflow": {422: 400},
    "v2": {422: 400},
}
_MLFLOW_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "RESOURCE_DOES_NOT_EXIST",
    405: "BAD_REQUEST",
    409: "RESOURCE_ALREADY_EXISTS",
    413: "BAD_REQUEST",
    415: "BAD_REQUEST",
    503: "TEMPORARILY_UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def dialect_for_path(path: str) -> Dialect:
    """Which error shape a path's clients expect."""
    if path.startswith("/v2"):
        return "v2"
    if path.startswith(("/invocations", "/ping")):
        return "mlflow"
    return "native"


def status_for(exc: BaseException, dialect: Dialect = "native") -> int:
    """The HTTP status code for an exception, in a client dialect (500 if unknown)."""
    status = exc.status_code if isinstance(exc, StarletteHTTPException) else 500
    for kind, code in _STATUS:
        if isinstance(exc, kind):
            status = code
            break
    return _DIALECT_OVERRIDES[dialect].get(status, status)


def error_body(
    exc: BaseException, status: int, dialect: Dialect, request_id: str | None
) -> dict[str, Any]:
    """The JSON body for ``exc`` answered with ``status`` in ``dialect``."""
    message = _message(exc, status, request_id)
    if dialect == "mlflow":
        return {"error_code": _MLFLOW_CODES.get(status, "INTERNAL_ERROR"), "message": message}
    body: dict[str, Any] = {"error": message, "type": _type_name(exc, status)}
    if isinstance(exc, SchemaError):
        body["field"] = exc.field
        body["expected"] = exc.expected
        if exc.rows:
            body["rows"] = exc.rows[:100]
    elif isinstance(exc, OnlineStoreNotReadyError):
        body["online_store"] = exc.online_store
    if request_id is not None:
        body["request_id"] = request_id
    return body


def error_response(exc: BaseException, scope: Scope) -> Response:
    """Render ``exc`` for the request in ``scope`` (used by handlers and middleware)."""
    dialect = dialect_for_path(scope.get("path", ""))
    status = status_for(exc, dialect)
    request_id = scope.get(REQUEST_ID_KEY)
    headers: dict[str, str] = {}
    if isinstance(exc, StarletteHTTPException) and exc.headers:
        headers.update(exc.headers)  # e.g. the Allow header of a 405
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    elif status == 503:
        headers["Retry-After"] = "1"
    if status >= 500 and not isinstance(exc, ShipyardError | StarletteHTTPException):
        logger.error(
            "Unexpected error answering %s %s (request id %s)",
            scope.get("method"),
            scope.get("path"),
            request_id,
            exc_info=exc,
        )
    content = orjson.dumps(error_body(exc, status, dialect, request_id))
    return Response(content, status_code=status, headers=headers, media_type="application/json")


def validation_error(
    exc: ValidationError | RequestValidationError, body: Any = _NO_BODY
) -> ShipyardError:
    """A pydantic/FastAPI validation failure as the SchemaError (or 400) it stands for.

    ``body`` is the input that was validated (a FastAPI error carries its own).
    Messages name fields by their path in the body, never by the Python classes
    behind the route: pydantic reports each alternative of a union (``FeedbackIn``
    or ``list[FeedbackIn]``) under the alternative's name, so those names are
    dropped from the path and only the alternative the body was closest to is
    reported.
    """
    errors = exc.errors()
    if not errors:
        return SchemaError("The request body is not valid.")
    if errors[0].get("type") == "json_invalid":
        ctx = errors[0].get("ctx") or {}
        return InvalidInputError(
            f"The request body is not valid JSON ({ctx.get('error', 'parse error')}). "
            "Send a JSON document with Content-Type: application/json."
        )
    if isinstance(exc, RequestValidationError):
        body = exc.body
        errors = [
            {**e, "loc": tuple(e.get("loc", ()))[1:]} if _in_body(e) else dict(e) for e in errors
        ]
    problems = _closest_alternative([_located(e, body) for e in errors])
    first = problems[0]
    field = _field_name(first.path)
    if not first.path and first.alternatives:
        got = type(body).__name__ if body is not _NO_BODY else "something else"
        wanted = " or ".join(first.alternatives)
        return SchemaError(f"The request body must be {wanted}; got {_json_kind(got)}.")
    where = f"Field {field!r}" if field else "The request body"
    if first.error.get("type") == "missing":
        what = f"{where} is missing."
    else:
        what = f"{where}: {str(first.error.get('msg', 'is not valid')).rstrip('.')}."
    more = len(problems) - 1
    rest = f" ({more} more problem{'s' if more > 1 else ''} in the same body.)" if more else ""
    return SchemaError(what + rest, field=field, expected=_expected_from_pydantic(first.error))


def install_error_handlers(app: FastAPI) -> None:
    """Route every exception a request can raise through :func:`error_response`."""

    async def shipyard_error(request: Request, exc: Exception) -> Response:
        return error_response(exc, request.scope)

    async def invalid_request(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError | ValidationError)
        return error_response(validation_error(exc), request.scope)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        return error_response(exc, request.scope)

    app.add_exception_handler(ShipyardError, shipyard_error)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(ValidationError, invalid_request)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, shipyard_error)


# -- helpers --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Problem:
    """One validation error, its path in the body, and the union alternative it is about."""

    error: Any
    path: tuple[str | int, ...]
    branch: tuple[str, ...]
    alternatives: tuple[str, ...] = ()


def _in_body(error: Any) -> bool:
    loc = tuple(error.get("loc", ()))
    return bool(loc) and loc[0] == "body"


def _located(error: Any, body: Any) -> _Problem:
    """Split an error's location into its path in ``body`` and the union tags on the way.

    A location part that is not a key (or index) of the input at that point is
    the name of a union alternative, except a missing field's own name at the end.
    """
    loc = tuple(error.get("loc", ()))
    node = body
    path: list[str | int] = []
    branch: list[str] = []
    for i, part in enumerate(loc):
        if (isinstance(node, dict) and part in node) or (
            isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        ):
            path.append(part)
            node = node[part]
        elif i == len(loc) - 1 and error.get("type") == "missing":
            path.append(part)
        elif body is _NO_BODY:
            path.append(part)  # nothing to check against: keep the location as given
        else:
            branch.append(str(part))
    return _Problem(error, tuple(path), tuple(branch))


def _closest_alternative(problems: list[_Problem]) -> list[_Problem]:
    """The problems of the union alternative the body came closest to matching.

    The alternative whose errors lie deepest in the body is the one the client
    meant (a list whose item lacks a field, rather than "not an object"). When
    every alternative fails at the top, one problem remains that names them all.
    """
    branches: dict[tuple[str, ...], list[_Problem]] = {}
    for problem in problems:
        branches.setdefault(problem.branch, []).append(problem)
    if len(branches) == 1:
        return problems
    best = max(branches.values(), key=lambda group: max(len(p.path) for p in group))
    if any(p.path for p in best):
        return best
    kinds = tuple(dict.fromkeys(_expected_words(p.error) for p in problems))
    return [_Problem(problems[0].error, (), (), alternatives=kinds)]


def _field_name(path: tuple[str | int, ...]) -> str | None:
    """``items[0].request_id`` style: keys joined by dots, list positions in brackets."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or None


def _expected_words(error: Any) -> str:
    expected = _expected_from_pydantic(error) or "something else"
    return {"object": "an object", "list": "a list", "integer": "an integer"}.get(
        expected, f"a {expected}"
    )


def _json_kind(python_type: str) -> str:
    return {
        "dict": "an object",
        "list": "a list",
        "str": "a string",
        "int": "a number",
        "float": "a number",
        "bool": "a boolean",
        "NoneType": "null",
    }.get(python_type, python_type)


def _message(exc: BaseException, status: int, request_id: str | None) -> str:
    if isinstance(exc, StarletteHTTPException):
        if status == 404:
            return "Not found. Routes: /predict, /invocations, /v2/..., /health, /ready, /docs."
        return str(exc.detail)
    if isinstance(exc, ShipyardError):
        return str(exc)
    # Never echo an unexpected exception's text: it may hold internals.
    return f"Internal server error (request id {request_id}); the server log has the details."


def _type_name(exc: BaseException, status: int) -> str:
    if isinstance(exc, StarletteHTTPException):
        return {404: "NotFound", 405: "MethodNotAllowed"}.get(status, "HTTPError")
    if isinstance(exc, ShipyardError):
        return type(exc).__name__
    return "InternalError"


def _expected_from_pydantic(error: Any) -> str | None:
    kind = str(error.get("type", ""))
    for prefix, expected in (
        ("float", "float"),
        ("finite_number", "float"),
        ("int", "integer"),
        ("bool", "boolean"),
        ("string", "string"),
        ("datetime", "datetime"),
        ("list", "list"),
        ("dict", "object"),
        ("model", "object"),
    ):
        if kind.startswith(prefix):
            return expected
    if kind == "missing":
        return "a value"
    return None
