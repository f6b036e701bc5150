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

Example:
    >>> flat_values([[1, 2], [3, 4]], "x")
    [1, 2, 3, 4]
"""

from __future__ import annotations

import math
import time
from typing import Annotated, Any, Literal

import numpy as np
import orjson
import pandas as pd
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.responses import Response

from shipyard import __version__
from shipyard.errors import (
    InvalidInputError,
    ModelNotFoundError,
    SchemaError,
    VersionNotFoundError,
)
from shipyard.registry.signature import Signature
from shipyard.serving import schemas
from shipyard.serving.errors import REQUEST_ID_KEY, validation_error
from shipyard.serving.inference import Inference
from shipyard.serving.jsonbody import loads_strict
from shipyard.serving.media import JSON, OCTET_STREAM, media_type
from shipyard.serving.protocols.v2_binary import (
    HEADER_LENGTH,
    NUMPY_DTYPES,
    BinaryInputs,
    decode_tensor,
    encode_tensor,
    split_body,
)
from shipyard.serving.runtime import ModelRuntime, Prediction, ServedModel
from shipyard.serving.security import ApiKeyGuard

Datatype = Literal[
    "BOOL",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "FP16",
    "FP32",
    "FP64",
    "BYTES",
]
_INTEGER = frozenset({"UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64"})
_FLOAT = frozenset({"FP16", "FP32", "FP64"})
_SIGNATURE_DATATYPE = {
    "float": "FP64",
    "integer": "INT64",
    "boolean": "BOOL",
    "string": "BYTES",
    "datetime": "BYTES",
}
_MAX_DEPTH = 8
_MAX_DIMENSION = 2**31
EXTENSIONS = ["binary_tensor_data", "classification"]
PREDICT = "predict"
PREDICT_PROBA = "predict_proba"


# -- the protocol's messages ------------------------------------------------------------------


class RequestInput(BaseModel):
    """One input tensor."""

    model_config = ConfigDict(extra="ignore")

    name: str = Field(min_length=1)
    shape: list[Annotated[int, Field(ge=0, le=_MAX_DIMENSION)]] = Field(min_length=1)
    datatype: Datatype
    parameters: dict[str, Any] | None = None
    #: JSON values; absent when the tensor comes as binary data (``binary_data_size``).
    data: list[Any] | None = None


class RequestOutput(BaseModel):
    """An output the client asks for."""

    model_config = ConfigDict(extra="ignore")

    name: str
    parameters: dict[str, Any] | None = None


class InferenceRequest(BaseModel):
    """``POST /v2/models/{name}/infer`` body."""

    model_config = ConfigDict(extra="ignore")

    id: str | None = None
    parameters: dict[str, Any] | None = None
    inputs: list[RequestInput] = Field(min_length=1)
    outputs: list[RequestOutput] | None = None


class ResponseOutput(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    parameters: dict[str, Any] | None = None
    data: list[Any]


class InferenceResponse(BaseModel):
    model_name: str
    model_version: str | None = None
    id: str
    parameters: dict[str, Any] | None = None
    outputs: list[ResponseOutput]


class TensorMetadata(BaseModel):
    name: str
    datatype: str
    shape: list[int]


class ModelMetadata(BaseModel):
    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]


class ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str]


# -- tensors to rows ----------------------------------------------------------------------------


def flat_values(data: list[Any], name: str) -> list[Any]:
    """``data`` flattened in row-major order (V2 allows flat or nested lists)."""
    if not any(isinstance(v, list) for v in data):
        return data
    out: list[Any] = []

    def walk(values: list[Any], depth: int) -> None:
        if depth > _MAX_DEPTH:
            raise SchemaError(
                f"Input {name!r} is nested more than {_MAX_DEPTH} levels deep.",
                field=name,
                expected="a flat or nested list of values",
            )
        for v in values:
            if isinstance(v, list):
                walk(v, depth + 1)
            else:
                out.append(v)

    walk(data, 1)
    return out


def _check_values(values: list[Any], tensor: RequestInput) -> None:
    """Each JSON value has the tensor's datatype and fits in it, or a SchemaError naming it."""
    dt = tensor.datatype
    if dt == "BOOL":
        ok = [isinstance(v, bool) for v in values]
    elif dt in _INTEGER:
        ok = [isinstance(v, int) and not isinstance(v, bool) for v in values]
    elif dt in _FLOAT:
        ok = [isinstance(v, int | float) and not isinstance(v, bool) for v in values]
    else:
        ok = [isinstance(v, str) for v in values]
    if not all(ok):
        i = ok.index(False)
        raise SchemaError(
            f"Input {tensor.name!r} is declared {dt}, but element {i} is {_short(values[i])}.",
            field=tensor.name,
            expected=dt,
            rows=[i],
        )
    if not values or dt in ("BOOL", "BYTES"):
        return
    if dt in _INTEGER:
        info = np.iinfo(NUMPY_DTYPES[dt])
        lo, hi = int(info.min), int(info.max)
        span = f"whose range is {lo} to {hi}"
    else:
        hi = float(np.finfo(NUMPY_DTYPES[dt]).max)
        lo = -hi
        span = f"whose largest magnitude is {hi:g}"
    if lo <= min(values) and max(values) <= hi:
        return
    i = next(i for i, v in enumerate(values) if not lo <= v <= hi)
    raise SchemaError(
        f"Input {tensor.name!r} is declared {dt}, {span}, but element {i} is "
        f"{_short(values[i])}. Declare a wider datatype or send values in range.",
        field=tensor.name,
        expected=dt,
        rows=[i],
    )


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:37]}... ({len(text)} characters)"


def _array(values: list[Any], datatype: str) -> np.ndarray:
    if datatype == "BOOL":
        return np.array(values, dtype=bool)
    if datatype in _INTEGER:
        if datatype == "UINT64" and values and max(values) > np.iinfo(np.int64).max:
            return np.array(values, dtype=np.uint64)  # the signature says if it fits the model
        return np.array(values, dtype=np.int64)
    if datatype in _FLOAT:
        return np.array(values, dtype=np.float64)
    return np.array(values, dtype=object)


def _widen(arr: np.ndarray) -> np.ndarray:
    """Binary tensor values in the width the signature checks (int64, float64)."""
    kind = arr.dtype.kind
    if kind == "f":
        return arr.astype(np.float64)
    if kind == "i" or (kind == "u" and arr.dtype.itemsize < 8):
        return arr.astype(np.int64)
    return arr


def tensor_values(tensor: RequestInput, binary: BinaryInputs) -> np.ndarray:
    """One input's values, flat, from its JSON ``data`` or its binary data."""
    count = math.prod(tensor.shape)
    size = (tensor.parameters or {}).get("binary_data_size")
    if size is not None:
        if tensor.data is not None:
            raise SchemaError(
                f"Input {tensor.name!r} has both 'data' and binary_data_size; send one.",
                field=tensor.name,
            )
        raw = binary.take(tensor.name, size)
        return _widen(decode_tensor(raw, tensor.datatype, tensor.name, count))
    if tensor.data is None:
        raise SchemaError(
            f"Input {tensor.name!r} has no 'data' (and no binary_data_size).",
            field=tensor.name,
            expected="data",
        )
    values = flat_values(tensor.data, tensor.name)
    if len(values) != count:
        raise SchemaError(
            f"Input {tensor.name!r} has shape {tensor.shape}, which holds {count} values, "
            f"but its data has {len(values)}.",
            field=tensor.name,
            expected=f"{count} values",
        )
    _check_values(values, tensor)
    return _array(values, tensor.datatype)


def tensors_to_frame(
    request: InferenceRequest, signature: Signature, binary: BinaryInputs | None = None
) -> Any:
    """The request's input tensors as something :meth:`Signature.coerce` takes.

    ``binary`` holds the bytes after the JSON header (binary tensor extension).
    """
    binary = binary if binary is not None else BinaryInputs(b"")
    frame = _tensors_to_frame(request, signature, binary)
    binary.check_all_used()
    return frame


def _tensors_to_frame(request: InferenceRequest, signature: Signature, binary: BinaryInputs) -> Any:
    names = signature.names
    inputs = request.inputs
    seen = [t.name for t in inputs]
    if len(set(seen)) != len(seen):
        dup = next(n for n in seen if seen.count(n) > 1)
        raise SchemaError(f"Input {dup!r} is given more than once.", field=dup)
    if any(name in names for name in seen):
        unknown = [n for n in seen if n not in names]
        if unknown:
            raise SchemaError(
                f"Unknown input {unknown[0]!r}; the model takes {signature.describe()}.",
                field=unknown[0],
            )
        missing = [n for n in names if n not in seen]
        if missing:
            spec = signature.inputs[names.index(missing[0])]
            raise SchemaError(
                f"Input {missing[0]!r} is missing; the model takes {signature.describe()}, "
                "one tensor per column.",
                field=missing[0],
                expected=_SIGNATURE_DATATYPE[spec.dtype],
            )
        columns: dict[str, np.ndarray] = {}
        rows: int | None = None
        for tensor in inputs:
            shape = tensor.shape
            if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)):
                raise SchemaError(
                    f"Input {tensor.name!r} has shape {shape}; a per-column tensor must be "
                    "[N] or [N, 1].",
                    field=tensor.name,
                    expected="shape [N]",
                )
            if rows is not None and shape[0] != rows:
                raise SchemaError(
                    f"Input {tensor.name!r} has {shape[0]} rows but the others have {rows}; "
                    "every column needs the same number of rows.",
                    field=tensor.name,
                    expected=f"shape [{rows}]",
                )
            rows = shape[0]
            columns[tensor.name] = tensor_values(tensor, binary)
        return pd.DataFrame({n: columns[n] for n in names}, copy=False)
    if len(inputs) == 1 and len(inputs[0].shape) == 2 and inputs[0].shape[1] == len(names):
        tensor = inputs[0]
        n, width = tensor.shape
        return tensor_values(tensor, binary).reshape(n, width)
    got = ", ".join(f"{t.name} {t.shape}" for t in inputs)
    raise SchemaError(
        f"Send one tensor per input column named {', '.join(names)} (shape [N]), or one "
        f"tensor of shape [N, {len(names)}] with the columns in that order; got {got}.",
        expected=f"[N, {len(names)}]",
    )


# -- rows to tensors ----------------------------------------------------------------------------


def _datatype(arr: np.ndarray) -> str:
    kind, size = arr.dtype.kind, arr.dtype.itemsize
    if kind == "b":
        return "BOOL"
    if kind == "i":
        return f"INT{size * 8}"
    if kind == "u":
        return f"UINT{size * 8}"
    if kind == "f":
        return f"FP{size * 8}"
    return "BYTES"


def output_tensors(
    served: ServedModel, result: Prediction, request: InferenceRequest
) -> tuple[list[dict[str, Any]], list[bytes]]:
    """The ``outputs`` of an inference response, and the bytes of those sent as binary."""
    available = [PREDICT] + ([PREDICT_PROBA] if result.probabilities is not None else [])
    wanted = request.outputs or [RequestOutput(name=name) for name in available]
    unknown = [o.name for o in wanted if o.name not in available]
    if unknown:
        raise SchemaError(
            f"Unknown output {unknown[0]!r}; this model gives {', '.join(available)}.",
            field="outputs",
            expected=" or ".join(available),
        )
    all_binary = _flag(request.parameters, "binary_data_output", default=False)
    outputs: list[dict[str, Any]] = []
    buffers: list[bytes] = []
    for output in wanted:
        params = output.parameters or {}
        tensor, values = _output(served, result, output.name, params.get("classification"))
        if _flag(params, "binary_data", default=all_binary):
            raw = encode_tensor(values, tensor["datatype"])
            tensor["parameters"] = {**tensor.get("parameters", {}), "binary_data_size": len(raw)}
            buffers.append(raw)
        else:
            data = values.ravel().tolist()
            tensor["data"] = [str(v) for v in data] if tensor["datatype"] == "BYTES" else data
        outputs.append(tensor)
    return outputs, buffers


def _flag(parameters: dict[str, Any] | None, key: str, *, default: bool) -> bool:
    value = (parameters or {}).get(key, default)
    if not isinstance(value, bool):
        raise SchemaError(
            f"Parameter {key!r} must be true or false, got {_short(value)}.",
            field=key,
            expected="boolean",
        )
    return value


def _output(
    served: ServedModel, result: Prediction, name: str, classification: Any
) -> tuple[dict[str, Any], np.ndarray]:
    """One output tensor's description and its values."""
    if classification is not None:
        return _classification(served, result, name, classification)
    if name == PREDICT:
        labels = result.labels
        return {"name": PREDICT, "shape": list(labels.shape), "datatype": _datatype(labels)}, labels
    proba = np.asarray(result.probabilities, dtype=np.float64)
    tensor = {
        "name": PREDICT_PROBA,
        "shape": list(proba.shape),
        "datatype": "FP64",
        "parameters": {"classes": list(served.class_keys or ())},
    }
    return tensor, proba


def _classification(
    served: ServedModel, result: Prediction, name: str, count: Any
) -> tuple[dict[str, Any], np.ndarray]:
    """The top ``count`` classes per row, as ``"probability:index:label"`` strings."""
    if name != PREDICT_PROBA:
        raise SchemaError(
            f"Classification (top classes) is answered from {PREDICT_PROBA!r}, not {name!r}: "
            f"ask for {{'name': '{PREDICT_PROBA}', 'parameters': {{'classification': k}}}}.",
            field="outputs",
            expected=PREDICT_PROBA,
        )
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise SchemaError(
            f"'classification' must be a positive number of classes, got {_short(count)}.",
            field="classification",
            expected="integer >= 1",
        )
    proba = np.asarray(result.probabilities, dtype=np.float64)
    keys = served.class_keys or tuple(str(i) for i in range(proba.shape[1]))
    k = min(count, proba.shape[1])
    top = np.argsort(-proba, axis=1, kind="stable")[:, :k]
    cells = [
        [f"{row[j]!r}:{j}:{keys[j]}" for j in order]
        for row, order in zip(proba.tolist(), top.tolist(), strict=True)
    ]
    values = np.array(cells, dtype=object).reshape(len(proba), k)
    return {"name": name, "shape": [len(proba), k], "datatype": "BYTES"}, values


def model_metadata(served: ServedModel) -> dict[str, Any]:
    inputs = [
        {"name": c.name, "datatype": _SIGNATURE_DATATYPE[c.dtype], "shape": [-1]}
        for c in served.signature.inputs
    ]
    output = served.signature.output
    predict_type = _SIGNATURE_DATATYPE.get(output.dtype, "BYTES")
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


def build_router(inference: Inference, *, api_key: ApiKeyGuard) -> APIRouter:
    """Every V2 route, bound to ``inference``."""
    runtime = inference.runtime
    guarded = [Depends(api_key)] if api_key.enabled else []
    router = APIRouter(prefix="/v2", tags=["v2 (Open Inference Protocol)"])
    err = {"model": _ErrorModel}
    errors: dict[int | str, dict[str, Any]] = {400: err, 404: err, 503: err}

    @router.get("", response_model=ServerMetadata, summary="Server metadata")
    async def server_metadata() -> Response:
        return _json({"name": "shipyard", "version": __version__, "extensions": EXTENSIONS})

    @router.get("/health/live", summary="Liveness")
    async def live() -> Response:
        return _json({"live": True})

    @router.get("/health/ready", summary="Readiness", responses={503: err})
    async def ready() -> Response:
        runtime.require_all_ready()
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
        data = tensors_to_frame(payload, served.signature, binary)
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
    for path, endpoint in ((base, infer), (versioned, version_infer)):
        router.add_api_route(
            path + "/infer",
            endpoint,
            methods=["POST"],
            response_model=InferenceResponse,
            responses={**errors, 415: err},
            dependencies=guarded,
            summary="Inference",
            openapi_extra={"requestBody": _INFER_BODY},
        )
    return router


class _ErrorModel(BaseModel):
    """The protocol's error body (Shipyard adds the field and expected type)."""

    model_config = ConfigDict(title="V2Error")

    error: str
    type: str | None = None
    field: str | None = None
    expected: str | None = None
    request_id: str | None = None
