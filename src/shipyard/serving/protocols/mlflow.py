"""``POST /invocations``: MLflow's scoring protocol, so MLflow clients work unchanged.

Accepted, as MLflow 2+ does: a JSON object with exactly one of

- ``dataframe_split``: ``{"columns": [...], "data": [[...], ...]}`` (``index`` ignored),
- ``dataframe_records``: ``[{"col": value, ...}, ...]``,
- ``instances``: a list of records or of rows,
- ``inputs``: the same, or columns ``{"col": [values...]}``, or one record,

plus an optional ``params`` object (ignored: these models take no parameters);
or ``text/csv`` with a header row. The answer is ``{"predictions": [...]}``.
Errors use MLflow's shape and codes: ``400 {"error_code": "BAD_REQUEST",
"message": ...}``; an unsupported content type or charset is 415.

Example:
    >>> parse_json(b'{"dataframe_split": {"columns": ["x"], "data": [[1.0]]}}')
    [{'x': 1.0}]
"""

from __future__ import annotations

import csv
import io
import time
from typing import Any

import orjson
import pandas as pd
from fastapi import APIRouter, Request
from starlette.responses import Response

from shipyard.errors import InvalidInputError, SchemaError
from shipyard.serving import schemas
from shipyard.serving.direct import direct
from shipyard.serving.errors import REQUEST_ID_KEY
from shipyard.serving.inference import Inference
from shipyard.serving.jsonbody import DuplicateKeyError, loads_strict
from shipyard.serving.media import CSV, JSON, media_type
from shipyard.serving.runtime import ServedModel
from shipyard.serving.security import ApiKeyGuard
from shipyard.tables.missing import pandas_csv_options

PATH = "/invocations"
INPUT_KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs")


def parse_content_type(header: str | None) -> str:
    """The media type, refusing what MLflow's scoring server refuses (415)."""
    return media_type(header, accepted=(JSON, CSV))


def parse_json(body: bytes) -> Any:
    """Rows of an MLflow JSON request, in a form :meth:`Signature.coerce` takes."""
    try:
        payload = loads_strict(body)
    except DuplicateKeyError:
        raise
    except InvalidInputError as exc:
        raise InvalidInputError(
            f"Failed to parse input from JSON. Ensure that input is a valid JSON formatted "
            f"string. {exc}"
        ) from None
    if not isinstance(payload, dict):
        raise InvalidInputError(_shape_message(f"a JSON {type(payload).__name__}"))
    keys = [k for k in payload if k != "params"]
    if len(keys) != 1 or keys[0] not in INPUT_KEYS:
        raise InvalidInputError(_shape_message(f"input fields {sorted(keys)}"))
    key = keys[0]
    params = payload.get("params")
    if params is not None and not isinstance(params, dict):
        raise SchemaError("'params' must be a JSON object.", field="params", expected="object")
    value = payload[key]
    if key == "dataframe_split":
        return _split(value)
    if key == "dataframe_records":
        if not isinstance(value, list):
            raise SchemaError(
                "'dataframe_records' must be a list of records.",
                field=key,
                expected="list",
            )
        return value
    if isinstance(value, list):
        return value
    if key == "inputs" and isinstance(value, dict):
        return _columns(value)
    raise SchemaError(
        f"{key!r} must be a list of records or rows"
        + (", or an object of columns" if key == "inputs" else "")
        + f"; got {type(value).__name__}.",
        field=key,
        expected="list",
    )


def parse_csv(body: bytes) -> pd.DataFrame:
    """A CSV body with a header row, as pandas reads it (MLflow's own behaviour).

    Every row must have as many fields as the header: pandas would otherwise take
    the extra leading fields of a longer row as an index and score the rest
    shifted by a column, or fill a shorter row with missing values.
    """
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"The CSV body is not UTF-8 text ({exc}).") from None
    _check_field_counts(text)
    try:
        frame = pd.read_csv(io.StringIO(text), index_col=False, **pandas_csv_options())
    except Exception as exc:  # any parser failure is the input's fault
        raise InvalidInputError(
            "Failed to parse input as a Pandas DataFrame. Ensure that the input is a valid "
            "CSV-formatted Pandas DataFrame produced using the `pandas.DataFrame.to_csv()` "
            f"method ({type(exc).__name__}: {exc})."
        ) from None
    if frame.empty and len(frame.columns):
        # One line only: often a row sent without its header, read as the column names.
        header = ",".join(map(str, frame.columns))
        raise InvalidInputError(
            f"The CSV body has a header line ({header[:200]}) but no rows. The first line "
            "must name the columns, one row per line after it."
        )
    return frame


def _check_field_counts(text: str) -> None:
    """Refuse a row whose field count differs from the header's, naming its line."""
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader, None)
        if header is None:
            return  # no header at all: pandas says so
        row_number = 0
        for fields in reader:
            if not fields:
                continue  # a blank line, which pandas skips too
            if len(fields) != len(header):
                line = reader.line_num
                raise SchemaError(
                    f"CSV line {line} has {len(fields)} fields but the header has "
                    f"{len(header)} ({', '.join(header[:8])}{', ...' if len(header) > 8 else ''}). "
                    "Send one value per header column in every row, without an index column.",
                    field=f"line {line}",
                    expected=f"{len(header)} fields",
                    rows=[row_number],
                )
            row_number += 1
    except csv.Error as exc:
        raise InvalidInputError(
            f"The CSV body cannot be read on line {reader.line_num} ({exc})."
        ) from None


def _shape_message(got: str) -> str:
    return (
        "Invalid input. The input must be a JSON dictionary with exactly one of the input "
        f"fields {{'dataframe_split', 'dataframe_records', 'instances', 'inputs'}}. Received "
        f"{got}. (This is the MLflow 2.0+ scoring protocol.)"
    )


def _split(value: Any) -> Any:
    if not isinstance(value, dict) or not isinstance(value.get("data"), list):
        raise SchemaError(
            "'dataframe_split' must be an object with 'data' (a list of rows) and optionally "
            "'columns' (the column names), as DataFrame.to_dict(orient='split') writes it.",
            field="dataframe_split",
            expected="object",
        )
    data, columns = value["data"], value.get("columns")
    if columns is None:
        return data  # positional rows, in signature order
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        raise SchemaError(
            "'dataframe_split.columns' must be a list of column names.",
            field="dataframe_split.columns",
            expected="list of strings",
        )
    bad = [i for i, row in enumerate(data) if not isinstance(row, list) or len(row) != len(columns)]
    if bad:
        raise SchemaError(
            f"Every row of 'dataframe_split.data' must be a list of {len(columns)} values "
            f"(one per column); row(s) {bad[:10]} (0-based) are not.",
            field="dataframe_split.data",
            expected=f"{len(columns)} values per row",
            rows=bad,
        )
    return [dict(zip(columns, row, strict=True)) for row in data]


def _columns(value: dict[str, Any]) -> Any:
    lists = [v for v in value.values() if isinstance(v, list)]
    if not lists:
        return value  # one record
    if len(lists) != len(value) or len({len(v) for v in lists}) != 1:
        raise SchemaError(
            "'inputs' as columns must map every column name to a list, all of one length.",
            field="inputs",
            expected="object of equal-length lists",
        )
    names = list(value)
    return [dict(zip(names, row, strict=True)) for row in zip(*value.values(), strict=True)]


def build_router(inference: Inference, *, api_key: ApiKeyGuard) -> APIRouter:
    """``POST /invocations`` and ``GET /ping``, bound to ``inference``."""
    router = APIRouter(tags=["mlflow"])

    @router.post(
        PATH,
        summary="MLflow scoring protocol",
        response_model=None,
        responses={
            200: {
                "description": "Predictions",
                "content": {"application/json": {"schema": _PREDICTIONS_SCHEMA}},
            },
            **_error_responses(),
        },
        openapi_extra={"requestBody": {"required": True, "content": {JSON: {}, CSV: {}}}},
    )
    @direct
    async def invocations(request: Request) -> Response:
        started = time.perf_counter()
        await api_key(request)
        served = inference.runtime.require()
        mime = parse_content_type(request.headers.get("content-type"))
        body = await request.body()
        data = parse_json(body) if mime == JSON else parse_csv(body)
        _, _, result = await inference.run(
            data,
            request_id=request.scope[REQUEST_ID_KEY],
            protocol="mlflow",
            started=started,
            served=served,
        )
        content = orjson.dumps({"predictions": result.labels.tolist()})
        return Response(content, media_type="application/json")

    @router.get("/ping", summary="MLflow health check: 200 once the model is ready")
    async def ping() -> Response:
        inference.runtime.require()
        return Response(b"\n", media_type="application/json")

    return router


_PREDICTIONS_SCHEMA = {
    "type": "object",
    "required": ["predictions"],
    "properties": {"predictions": {"type": "array", "items": {}}},
}


def document(spec: dict[str, Any], served: ServedModel | None) -> None:
    """Describe the accepted request bodies in an OpenAPI document."""
    operation = spec.get("paths", {}).get(PATH, {}).get("post")
    if operation is None:
        return
    components = spec.setdefault("components", {}).setdefault("schemas", {})
    components["MlflowError"] = schemas.body_schema(
        schemas.MlflowErrorResponse, components=components
    )
    record: dict[str, Any] = {"type": "object"}
    if served is not None and served.record_model.__name__ in components:
        record = {"$ref": f"#/components/schemas/{served.record_model.__name__}"}
    rows = {"type": "array", "minItems": 1, "items": {"anyOf": [record, {"type": "array"}]}}

    def only(key: str, schema: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "object",
            "required": [key],
            "properties": {key: schema, "params": {"type": "object"}},
            "additionalProperties": False,
        }

    split = {
        "type": "object",
        "required": ["data"],
        "properties": {
            "columns": {"type": "array", "items": {"type": "string"}},
            "data": {"type": "array", "items": {"type": "array"}},
            "index": {"type": "array"},
        },
    }
    columns = {"type": "object", "additionalProperties": {"type": "array"}}
    json_body = {
        "anyOf": [
            only("dataframe_split", split),
            only("dataframe_records", {"type": "array", "minItems": 1, "items": record}),
            only("instances", rows),
            only("inputs", {"anyOf": [rows, columns]}),
        ]
    }
    operation["requestBody"] = {
        "required": True,
        "content": {
            JSON: {"schema": json_body},
            CSV: {"schema": {"type": "string", "description": "CSV with a header row"}},
        },
    }


def _error_responses() -> dict[int | str, dict[str, Any]]:
    content = {"application/json": {"schema": {"$ref": "#/components/schemas/MlflowError"}}}
    return {
        400: {"description": "Bad input (MLflow's BAD_REQUEST)", "content": content},
        401: {"description": "Missing or wrong API key", "content": content},
        413: {"description": "Body too large", "content": content},
        415: {"description": "Unsupported content type", "content": content},
        503: {"description": "Model not loaded yet", "content": content},
    }
