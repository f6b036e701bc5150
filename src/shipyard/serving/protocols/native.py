"""``POST /predict``: a plain record, a list of records, or ``{"instances": [...]}``.

One record in, one answer out::

    POST /predict
    {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
    200 {"prediction": "setosa", "probabilities": {"setosa": 0.97, ...},
         "model": "iris", "version": 3, "request_id": "..."}

A list (or ``instances``) answers ``predictions`` and ``probabilities`` as
lists in the order sent. ``probabilities`` is left out for models without
``predict_proba``. The body is parsed with orjson and checked once, by the
model's signature: the pydantic models built from it only document the route.

Fields the model does not take are ignored, and named in the answer's
``ignored_fields`` and its ``Shipyard-Ignored-Fields`` header (or refused with
422 when the server runs with ``--reject-unknown-fields``). The body must be
``application/json`` (415 otherwise) with no key given twice.

Example:
    >>> unknown_fields({"x": 1.0, "id": 7}, True, frozenset({"x"}))
    ['id']
"""

from __future__ import annotations

import time
from typing import Any, Union
from urllib.parse import quote

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from shipyard.errors import SchemaError
from shipyard.registry.signature import Signature
from shipyard.serving import schemas
from shipyard.serving.direct import direct, header, read_body
from shipyard.serving.errors import REQUEST_ID_KEY
from shipyard.serving.inference import Inference
from shipyard.serving.jsonbody import loads_strict
from shipyard.serving.media import JSON, media_type
from shipyard.serving.runtime import Prediction, ServedModel
from shipyard.serving.security import ApiKeyGuard

PATH = "/predict"
IGNORED_FIELDS_HEADER = "Shipyard-Ignored-Fields"
_MAX_FIELDS_LISTED = 100


def parse_body(body: bytes, signature: Signature) -> tuple[Any, bool]:
    """The rows of a ``/predict`` body and whether it was a single record."""
    payload = loads_strict(
        body,
        hint=lambda: (
            f"Send a record such as {example_text(signature)}, a list of records, "
            'or {"instances": [...]}.'
        ),
    )
    if isinstance(payload, dict):
        if schemas.INSTANCES_KEY in payload and schemas.INSTANCES_KEY not in signature.names:
            instances = payload[schemas.INSTANCES_KEY]
            if not isinstance(instances, list):
                raise SchemaError(
                    f"'instances' must be a list of records, got {type(instances).__name__}.",
                    field=schemas.INSTANCES_KEY,
                    expected="list",
                )
            return instances, False
        return payload, True
    if isinstance(payload, list):
        return payload, False
    raise SchemaError(
        f"Expected a record (a JSON object such as {example_text(signature)}), a list of "
        f'records, or {{"instances": [...]}}; got a JSON {type(payload).__name__}.',
        expected="object",
    )


def example_text(signature: Signature, *, fields: int = 2) -> str:
    """A record of the served signature for messages: ``{"alcohol": 13.0, ...}``."""
    example = schemas.warmup_record(signature)
    shown = ", ".join(
        f"{orjson.dumps(k).decode()}: {orjson.dumps(v).decode()}"
        for k, v in list(example.items())[:fields]
    )
    return "{" + shown + (", ..." if len(example) > fields else "") + "}"


def unknown_fields(rows: Any, single: bool, columns: frozenset[str]) -> list[str]:
    """Fields of the records that the model does not take, sorted (at most 100).

    Only records with more keys than the model has columns can hold an unknown
    field and still be scored (any other record with one misses a column, which
    the signature refuses), so only those are looked at.
    """
    width = len(columns)
    if single:
        candidates = [rows] if isinstance(rows, dict) and len(rows) > width else []
    elif isinstance(rows, list):
        candidates = [r for r in rows if type(r) is dict and len(r) > width]
    else:
        candidates = []
    if not candidates:
        return []
    extra: set[str] = set()
    for record in candidates:
        extra.update(record.keys() - columns)
    return sorted(map(str, extra))[:_MAX_FIELDS_LISTED]


def _ignored_header(fields: list[str]) -> str:
    # Header values are Latin-1 on the wire: percent-escape anything else.
    return ", ".join(quote(name, safe="._-~ ") for name in fields)


def render(
    served: ServedModel, result: Prediction, *, single: bool, request_id: str
) -> dict[str, Any]:
    """The answer body for a prediction."""
    labels = result.labels.tolist()
    probabilities: list[dict[str, float]] | None = None
    if result.probabilities is not None and served.class_keys is not None:
        keys = served.class_keys
        probabilities = [dict(zip(keys, row, strict=True)) for row in result.probabilities.tolist()]
    body: dict[str, Any]
    if single:
        body = {"prediction": labels[0]}
        if probabilities is not None:
            body["probabilities"] = probabilities[0]
    else:
        body = {"predictions": labels}
        if probabilities is not None:
            body["probabilities"] = probabilities
    body["model"] = served.name
    body["version"] = served.version
    body["request_id"] = request_id
    return body


def build_router(
    inference: Inference, *, api_key: ApiKeyGuard, reject_unknown_fields: bool = False
) -> APIRouter:
    """The ``/predict`` route, bound to ``inference``.

    Fields the model does not take are ignored and listed in the answer
    (``ignored_fields`` and the ``Shipyard-Ignored-Fields`` header); with
    ``reject_unknown_fields`` they answer 422 instead.
    """
    router = APIRouter(tags=["predict"])

    @router.post(
        PATH,
        summary="Predict one record, a list of records, or {instances: [...]}",
        response_model=None,
        responses={
            200: {
                "description": "Predictions from the served version",
                "content": {
                    "application/json": {
                        "schema": {
                            "anyOf": [
                                {"$ref": "#/components/schemas/PredictResponse"},
                                {"$ref": "#/components/schemas/PredictBatchResponse"},
                            ]
                        }
                    }
                },
            },
            **_error_responses(),
        },
        # The body schema depends on the served version; app.openapi() fills it in.
        openapi_extra={"requestBody": {"required": True, "content": {"application/json": {}}}},
    )
    @direct
    async def predict(request: Request) -> Response:
        started = time.perf_counter()
        await api_key(request)
        served = inference.runtime.require()
        media_type(header(request, b"content-type"), accepted=(JSON,))
        rows, single = parse_body(await read_body(request), served.signature)
        ignored = unknown_fields(rows, single, served.column_set)
        if ignored and reject_unknown_fields:
            raise SchemaError(
                f"Unknown field(s) {', '.join(map(repr, ignored[:10]))}: the model takes "
                f"{served.signature.describe()}. Remove them (this server runs with "
                "--reject-unknown-fields).",
                field=ignored[0],
                expected="only the model's input fields",
            )
        request_id = request.scope[REQUEST_ID_KEY]
        served, _, result = await inference.run(
            rows, request_id=request_id, protocol="predict", started=started, served=served
        )
        body = render(served, result, single=single, request_id=request_id)
        if not ignored:
            return Response(orjson.dumps(body), media_type=JSON)
        body["ignored_fields"] = ignored
        headers = {IGNORED_FIELDS_HEADER: _ignored_header(ignored)}
        return Response(orjson.dumps(body), media_type=JSON, headers=headers)

    return router


def document(spec: dict[str, Any], served: ServedModel | None) -> None:
    """Put the served version's request schema into an OpenAPI document."""
    components = spec.setdefault("components", {}).setdefault("schemas", {})
    for model in (schemas.PredictResponse, schemas.PredictBatchResponse, schemas.ErrorResponse):
        components[model.__name__] = schemas.body_schema(model, components=components)
    operation = spec.get("paths", {}).get(PATH, {}).get("post")
    if operation is None:
        return
    if served is None:
        body: dict[str, Any] = {"type": "object", "description": "No model is loaded yet."}
    else:
        record = served.record_model
        instances = schemas.instances_model(record, served.name)
        body = schemas.body_schema(
            Union[record, list[record], instances],  # type: ignore[valid-type]  # noqa: UP007
            components=components,
        )
        body["anyOf"][1]["minItems"] = 1
    operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}


def _error_responses() -> dict[int | str, dict[str, Any]]:
    ref = {"$ref": "#/components/schemas/ErrorResponse"}
    content = {"application/json": {"schema": ref}}
    return {
        400: {"description": "Malformed body", "content": content},
        401: {"description": "Missing or wrong API key", "content": content},
        413: {"description": "Body too large", "content": content},
        415: {"description": "Body is not application/json", "content": content},
        422: {"description": "Input does not match the model's signature", "content": content},
        503: {"description": "Model not loaded yet", "content": content},
        504: {"description": "Request timed out", "content": content},
    }
