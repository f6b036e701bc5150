"""The one mapping from exceptions to HTTP answers, per client dialect."""

from __future__ import annotations

import orjson
import pytest
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException

from shipyard.errors import (
    AliasNotFoundError,
    ConflictError,
    InvalidInputError,
    ManifestError,
    ModelNotFoundError,
    SchemaError,
    StoreError,
)
from shipyard.serving.errors import (
    REQUEST_ID_KEY,
    ForbiddenError,
    ModelNotReadyError,
    PayloadTooLargeError,
    RequestTimeoutError,
    UnauthorizedError,
    UnsupportedMediaTypeError,
    dialect_for_path,
    error_body,
    error_response,
    status_for,
    validation_error,
)


@pytest.mark.parametrize(
    ("exc", "native", "mlflow", "v2"),
    [
        (SchemaError("x", field="a"), 422, 400, 400),
        (InvalidInputError("x"), 400, 400, 400),
        (PayloadTooLargeError("x"), 413, 413, 413),
        (UnsupportedMediaTypeError("x"), 415, 415, 415),
        (UnauthorizedError("x"), 401, 401, 401),
        (ForbiddenError("x"), 403, 403, 403),
        (ModelNotFoundError("x"), 404, 404, 404),
        (AliasNotFoundError("x"), 404, 404, 404),
        (ConflictError("x"), 409, 409, 409),
        (ModelNotReadyError("x"), 503, 503, 503),
        (StoreError("x"), 503, 503, 503),
        (RequestTimeoutError("x"), 504, 504, 504),
        (ManifestError("x"), 500, 500, 500),
        (RuntimeError("boom"), 500, 500, 500),
        (HTTPException(405), 405, 405, 405),
    ],
)
def test_status_codes(exc: Exception, native: int, mlflow: int, v2: int) -> None:
    assert status_for(exc, "native") == native
    assert status_for(exc, "mlflow") == mlflow
    assert status_for(exc, "v2") == v2


def test_dialect_follows_the_path() -> None:
    assert dialect_for_path("/predict") == "native"
    assert dialect_for_path("/invocations") == "mlflow"
    assert dialect_for_path("/ping") == "mlflow"
    assert dialect_for_path("/v2/models/iris/infer") == "v2"
    assert dialect_for_path("/admin/reload") == "native"


def test_native_body_names_field_expected_rows_and_request_id() -> None:
    exc = SchemaError("Column 'x' expects a float", field="x", expected="float", rows=[2])
    body = error_body(exc, 422, "native", "rid-1")
    assert body == {
        "error": "Column 'x' expects a float",
        "type": "SchemaError",
        "field": "x",
        "expected": "float",
        "rows": [2],
        "request_id": "rid-1",
    }


def test_mlflow_body_is_mlflows_shape() -> None:
    body = error_body(SchemaError("bad"), 400, "mlflow", "rid")
    assert body == {"error_code": "BAD_REQUEST", "message": "bad"}
    assert error_body(ModelNotFoundError("no"), 404, "mlflow", None)["error_code"] == (
        "RESOURCE_DOES_NOT_EXIST"
    )


def test_unexpected_errors_do_not_leak_their_text() -> None:
    body = error_body(RuntimeError("secret internals"), 500, "native", "rid-9")
    assert "secret" not in body["error"]
    assert "rid-9" in body["error"]
    assert body["type"] == "InternalError"


def test_error_response_headers() -> None:
    scope = {"path": "/predict", "method": "POST", REQUEST_ID_KEY: "r"}
    unauthorized = error_response(UnauthorizedError("no key"), scope)
    assert unauthorized.status_code == 401
    assert unauthorized.headers["www-authenticate"] == "Bearer"
    not_ready = error_response(ModelNotReadyError("wait"), scope)
    assert not_ready.headers["retry-after"] == "1"
    assert orjson.loads(not_ready.body)["request_id"] == "r"


class _Record(BaseModel):
    sepal_length: float


def test_pydantic_errors_become_schema_errors_naming_the_field() -> None:
    with pytest.raises(ValidationError) as info:
        _Record.model_validate({"sepal_length": "abc"})
    exc = validation_error(info.value)
    assert isinstance(exc, SchemaError)
    assert exc.field == "sepal_length"
    assert exc.expected == "float"
    assert "sepal_length" in str(exc)


def test_malformed_json_is_a_400_not_a_422() -> None:
    with pytest.raises(ValidationError) as info:
        _Record.model_validate_json(b"{nope")
    exc = validation_error(info.value)
    assert not isinstance(exc, SchemaError)
    assert status_for(exc) == 400
    assert "not valid JSON" in str(exc)


class _Label(BaseModel):
    request_id: str
    label: str


def _union_error(body: object) -> Exception:
    from fastapi.exceptions import RequestValidationError
    from pydantic import TypeAdapter

    with pytest.raises(ValidationError) as info:
        TypeAdapter(_Label | list[_Label]).validate_python(body)
    errors = [{**e, "loc": ("body", *e["loc"])} for e in info.value.errors()]
    return validation_error(RequestValidationError(errors, body=body))


@pytest.mark.parametrize(
    ("body", "message", "field"),
    [
        ({"label": "x"}, "Field 'request_id' is missing.", "request_id"),
        ([{"label": "x"}], "Field '[0].request_id' is missing.", "[0].request_id"),
        (
            [{"request_id": "a", "label": "x"}, {"request_id": "b"}],
            "Field '[1].label' is missing.",
            "[1].label",
        ),
        ("text", "The request body must be an object or a list; got a string.", None),
        ({}, "Field 'request_id' is missing. (1 more problem in the same body.)", "request_id"),
    ],
)
def test_union_bodies_name_fields_by_their_path_not_by_class(
    body: object, message: str, field: str | None
) -> None:
    """A body that is one record or a list of them: no class names, no phantom problems."""
    exc = _union_error(body)
    assert isinstance(exc, SchemaError)
    assert str(exc) == message
    assert exc.field == field
    assert "_Label" not in str(exc)


def test_http_errors_keep_their_headers() -> None:
    scope = {"path": "/predict", "method": "GET", REQUEST_ID_KEY: "r"}
    response = error_response(HTTPException(405, headers={"Allow": "POST"}), scope)
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
