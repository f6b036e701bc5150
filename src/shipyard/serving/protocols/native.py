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

Example:
    >>> parse_body(b'[{"x": 1.0}]', ("x",))
    ([{'x': 1.0}], False)
"""

from __future__ import annotations

import time
from typing import Any, Union

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from shipyard.errors import InvalidInputError, SchemaError
from shipyard.serving import schemas
from shipyard.serving.direct import direct
from shipyard.serving.errors import REQUEST_ID_KEY
from shipyard.serving.inference import Inference
from shipyard.serving.runtime import Prediction, ServedModel
from shipyard.serving.security import ApiKeyGuard

PATH = "/predict"


def parse_body(body: bytes, columns: tuple[str, ...]) -> tuple[Any, bool]:
    """The rows of a ``/predict`` body and whether it was a single record."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInputError(
            f"The request body is not valid JSON ({exc}). Send a record such as "
            '{"sepal_length": 5.1, ...}, a list of records, or {"instances": [...]}.'
        ) from None
    if isinstance(payload, dict):
        if schemas.INSTANCES_KEY in payload and schemas.INSTANCES_KEY not in columns:
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
        'Expected a record (a JSON object), a list of records, or {"instances": [...]}; '
        f"got a JSON {type(payload).__name__}.",
        expected="object",
    )


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


def build_router(inference: Inference, *, api_key: ApiKeyGuard) -> APIRouter:
    """The ``/predict`` route, bound to ``inference``."""
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
        rows, single = parse_body(await request.body(), served.signature.names)
        request_id = request.scope[REQUEST_ID_KEY]
        served, _, result = await inference.run(
            rows, request_id=request_id, protocol="predict", started=started, served=served
        )
        body = render(served, result, single=single, request_id=request_id)
        return Response(orjson.dumps(body), media_type="application/json")

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
        422: {"description": "Input does not match the model's signature", "content": content},
        503: {"description": "Model not loaded yet", "content": content},
        504: {"description": "Request timed out", "content": content},
    }
