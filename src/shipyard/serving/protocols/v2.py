"""The Open Inference Protocol (KServe V2) over HTTP/REST, so V2 clients work unchanged.

Routes: ``GET /v2`` (server metadata), ``/v2/health/live``, ``/v2/health/ready``,
``/v2/models/{name}[/versions/{v}]`` (model metadata), ``.../ready``, and
``POST .../infer``. Inputs are tensors ``{"name", "shape", "datatype", "data"}``
(``data`` flat in row-major order, or nested), given either

- one tensor per input column, named after the column, of shape ``[N]`` or
  ``[N, 1]``; or
- one tensor of shape ``[N, n_columns]`` with the columns in signature order.

Outputs are ``predict`` (shape ``[N]``) and, for classifiers with
probabilities, ``predict_proba`` (``[N, n_classes]``, FP64, the class labels in
its ``parameters``); a request's ``outputs`` list picks among them. Asking
``predict_proba`` for ``{"classification": k}`` answers the top ``k`` classes
of each row as ``BYTES`` ``"probability:index:label"`` (shape ``[N, k]``), as
Triton's classification extension does.

Every value must fit its tensor's datatype (an ``INT8`` of 300, an ``FP16`` of
70000 or a 400-digit integer are refused, naming the input). Tensors may come
as JSON ``data`` or in the binary tensor extension (:mod:`.v2_binary`), and
answers go back either way: Triton's and KServe's clients use binary by
default. A request with no Content-Type is read as JSON (those clients send
none); ``application/json`` and ``application/octet-stream`` are read too,
anything else is 415. Errors answer ``{"error": "..."}``: 400 for bad input,
404 for an unknown model or version.

Messages: :mod:`.v2_messages`; tensors to rows and back: :mod:`.v2_tensors`;
the binary extension: :mod:`.v2_binary`.

Example:
    >>> router = build_router(inference, api_key=guard)  # doctest: +SKIP
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import orjson
import pandas as pd
from fastapi import APIRouter, Depends, Request
from pydantic import ValidationError
from starlette.responses import Response

from shipyard._version import __version__
from shipyard.errors import InvalidInputError, ModelNotFoundError, VersionNotFoundError
from shipyard.serving import schemas
from shipyard.serving.errors import REQUEST_ID_KEY, validation_error
from shipyard.serving.inference import Inference
from shipyard.serving.jsonbody import loads_strict
from shipyard.serving.media import JSON, OCTET_STREAM, media_type
from shipyard.serving.protocols.v2_binary import HEADER_LENGTH, BinaryInputs, split_body
from shipyard.serving.protocols.v2_messages import (
    ErrorBody,
    InferenceRequest,
    InferenceResponse,
    ModelMetadata,
    ServerMetadata,
)
from shipyard.serving.protocols.v2_tensors import (
    PREDICT,
    PREDICT_PROBA,
    SIGNATURE_DATATYPE,
    output_tensors,
    tensors_to_frame,
)
from shipyard.serving.readiness import Readiness
from shipyard.serving.runtime import ModelRuntime, ServedModel
from shipyard.serving.security import ApiKeyGuard

EXTENSIONS = ["binary_tensor_data", "classification"]


def model_metadata(served: ServedModel) -> dict[str, Any]:
    # A feature-backed model takes its entity keys and request-time fields.
    inputs = [
        {"name": c.name, "datatype": SIGNATURE_DATATYPE[c.dtype], "shape": [-1]}
        for c in served.request_signature.inputs
    ]
    output = served.signature.output
    predict_type = SIGNATURE_DATATYPE.get(output.dtype, "BYTES")
    outputs = [{"name": PREDICT, "datatype": predict_type, "shape": [-1]}]
    if served.has_proba and served.class_keys is not None:
        outputs.append(
            {"name": PREDICT_PROBA, "datatype": "FP64", "shape": [-1, len(served.class_keys)]}
        )
    return {
        "name": served.name,
        "versions": [str(served.version)],
        "platform": f"shipyard-{served.model.flavor}",
        "inputs": inputs,
        "outputs": outputs,
    }


# -- routes ---------------------------------------------------------------------------------


def _served_for(runtime: ModelRuntime, name: str, version: str | None) -> ServedModel:
    if name != runtime.name:
        raise ModelNotFoundError(
            f"Model {name!r} is not served here; this server serves {runtime.name!r}."
        )
    served = runtime.require()
    if version is not None and version != str(served.version):
        raise VersionNotFoundError(
            f"This server serves {served.name} version {served.version}, not {version!r}. "
            f"Use /v2/models/{served.name}/infer for the served version."
        )
    return served


async def read_request(request: Request) -> tuple[InferenceRequest, BinaryInputs]:
    """The JSON inference request and the binary tensor data after it, if any."""
    mime = media_type(
        request.headers.get("content-type"), accepted=(JSON, OCTET_STREAM), missing=JSON
    )
    header_length = request.headers.get(HEADER_LENGTH)
    if mime == OCTET_STREAM and header_length is None:
        raise InvalidInputError(
            "An application/octet-stream body needs the Inference-Header-Content-Length "
            "header (the length of the JSON request at its start)."
        )
    text, rest = split_body(await request.body(), header_length)
    payload = loads_strict(text)
    try:
        return InferenceRequest.model_validate(payload), BinaryInputs(rest)
    except ValidationError as exc:
        raise validation_error(exc, payload) from None


def document(spec: dict[str, Any]) -> None:
    """Put the inference request's schema into an OpenAPI document."""
    components = spec.setdefault("components", {}).setdefault("schemas", {})
    components[InferenceRequest.__name__] = schemas.body_schema(
        InferenceRequest, components=components
    )


_INFER_BODY = {
    "required": True,
    "content": {
        JSON: {"schema": {"$ref": f"#/components/schemas/{InferenceRequest.__name__}"}},
        OCTET_STREAM: {
            "schema": {
                "type": "string",
                "format": "binary",
                "description": "The JSON request, then each input's binary data "
                "(binary tensor extension; the Inference-Header-Content-Length header gives "
                "the JSON's length).",
            }
        },
    },
}


def _json(content: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(content), status_code=status, media_type="application/json")


def build_router(inference: Inference, *, api_key: ApiKeyGuard, readiness: Readiness) -> APIRouter:
    """Every V2 route, bound to ``inference``; server readiness is ``readiness``'s
    (the same answer as ``/ready``)."""
    runtime = inference.runtime
    guarded = [Depends(api_key)] if api_key.enabled else []
    router = APIRouter(prefix="/v2", tags=["v2 (Open Inference Protocol)"])
    err = {"model": ErrorBody}
    errors: dict[int | str, dict[str, Any]] = {400: err, 404: err, 503: err}

    @router.get("", response_model=ServerMetadata, summary="Server metadata")
    async def server_metadata() -> Response:
        return _json({"name": "shipyard", "version": __version__, "extensions": EXTENSIONS})

    @router.get("/health/live", summary="Liveness")
    async def live() -> Response:
        return _json({"live": True})

    @router.get("/health/ready", summary="Readiness", responses={503: err})
    async def ready() -> Response:
        await readiness.require()
        return _json({"ready": True})

    async def metadata(name: str) -> Response:
        return _json(model_metadata(_served_for(runtime, name, None)))

    async def version_metadata(name: str, version: str) -> Response:
        return _json(model_metadata(_served_for(runtime, name, version)))

    async def model_ready(name: str) -> Response:
        return _json({"name": _served_for(runtime, name, None).name, "ready": True})

    async def version_ready(name: str, version: str) -> Response:
        return _json({"name": _served_for(runtime, name, version).name, "ready": True})

    async def infer(request: Request, name: str) -> Response:
        return await _infer(request, _served_for(runtime, name, None))

    async def version_infer(request: Request, name: str, version: str) -> Response:
        return await _infer(request, _served_for(runtime, name, version))

    async def _infer(request: Request, served: ServedModel) -> Response:
        started = time.perf_counter()
        payload, binary = await read_request(request)
        data = tensors_to_frame(payload, served.request_signature, binary)
        if served.request_fields is not None and isinstance(data, np.ndarray):
            # One [N, k] tensor of keys and fields: the feature join takes named rows.
            data = pd.DataFrame(data, columns=list(served.request_signature.names))
        request_id = request.scope[REQUEST_ID_KEY]
        served, _, result = await inference.run(
            data, request_id=request_id, protocol="v2", started=started, served=served
        )
        outputs, buffers = output_tensors(served, result, payload)
        body = {
            "model_name": served.name,
            "model_version": str(served.version),
            "id": payload.id if payload.id is not None else request_id,
            "outputs": outputs,
        }
        if not buffers:
            return _json(body)
        header = orjson.dumps(body)
        return Response(
            header + b"".join(buffers),
            media_type=OCTET_STREAM,
            headers={"Inference-Header-Content-Length": str(len(header))},
        )

    base, versioned = "/models/{name}", "/models/{name}/versions/{version}"
    for path, endpoint in ((base, metadata), (versioned, version_metadata)):
        router.add_api_route(
            path,
            endpoint,
            methods=["GET"],
            response_model=ModelMetadata,
            responses=errors,
            summary="Model metadata",
        )
    for path, endpoint in ((base, model_ready), (versioned, version_ready)):
        router.add_api_route(
            path + "/ready", endpoint, methods=["GET"], responses=errors, summary="Model ready"
        )
    for path, infer_endpoint in ((base, infer), (versioned, version_infer)):
        router.add_api_route(
            path + "/infer",
            infer_endpoint,
            methods=["POST"],
            response_model=InferenceResponse,
            responses={**errors, 415: err},
            dependencies=guarded,
            summary="Inference",
            openapi_extra={"requestBody": _INFER_BODY},
        )
    return router
