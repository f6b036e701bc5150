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
its ``parameters``); a request's ``outputs`` list picks among them. Errors
answer ``{"error": "..."}``: 400 for bad input, 404 for an unknown model or
version. The binary tensor extension is not supported.

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
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from shipyard import __version__
from shipyard.errors import ModelNotFoundError, SchemaError, VersionNotFoundError
from shipyard.registry.signature import Signature
from shipyard.serving.errors import REQUEST_ID_KEY
from shipyard.serving.inference import Inference
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
PREDICT = "predict"
PREDICT_PROBA = "predict_proba"


# -- the protocol's messages ------------------------------------------------------------------


class RequestInput(BaseModel):
    """One input tensor."""

    model_config = ConfigDict(extra="ignore")

    name: str = Field(min_length=1)
    shape: list[Annotated[int, Field(ge=0)]] = Field(min_length=1)
    datatype: Datatype
    parameters: dict[str, Any] | None = None
    data: list[Any]


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


def _check_types(values: list[Any], tensor: RequestInput) -> None:
    dt = tensor.datatype
    if dt == "BOOL":
        ok = [isinstance(v, bool) for v in values]
    elif dt in _INTEGER:
        unsigned = dt.startswith("U")
        ok = [
            isinstance(v, int) and not isinstance(v, bool) and (v >= 0 or not unsigned)
            for v in values
        ]
    elif dt in _FLOAT:
        ok = [isinstance(v, int | float) and not isinstance(v, bool) for v in values]
    else:
        ok = [isinstance(v, str) for v in values]
    if not all(ok):
        i = ok.index(False)
        raise SchemaError(
            f"Input {tensor.name!r} is declared {dt}, but element {i} is {values[i]!r}.",
            field=tensor.name,
            expected=dt,
            rows=[i],
        )


def _values(tensor: RequestInput) -> list[Any]:
    values = flat_values(tensor.data, tensor.name)
    expected = math.prod(tensor.shape)
    if len(values) != expected:
        raise SchemaError(
            f"Input {tensor.name!r} has shape {tensor.shape}, which holds {expected} values, "
            f"but its data has {len(values)}.",
            field=tensor.name,
            expected=f"{expected} values",
        )
    _check_types(values, tensor)
    return values


def _array(values: list[Any], datatype: str) -> np.ndarray:
    if datatype == "BOOL":
        return np.array(values, dtype=bool)
    if datatype in _INTEGER:
        try:
            return np.array(values, dtype=np.int64)
        except OverflowError:  # beyond int64 (UINT64's top half): keep the exact values
            return np.array(values, dtype=object)
    if datatype in _FLOAT:
        return np.array(values, dtype=np.float64)
    return np.array(values, dtype=object)


def tensors_to_frame(request: InferenceRequest, signature: Signature) -> Any:
    """The request's input tensors as something :meth:`Signature.coerce` takes."""
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
            columns[tensor.name] = _array(_values(tensor), tensor.datatype)
        return pd.DataFrame({n: columns[n] for n in names}, copy=False)
    if len(inputs) == 1 and len(inputs[0].shape) == 2 and inputs[0].shape[1] == len(names):
        tensor = inputs[0]
        n, width = tensor.shape
        return _array(_values(tensor), tensor.datatype).reshape(n, width)
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
    served: ServedModel, result: Prediction, wanted: list[RequestOutput] | None
) -> list[dict[str, Any]]:
    """The ``outputs`` of an inference response."""
    available = [PREDICT] + ([PREDICT_PROBA] if result.probabilities is not None else [])
    names = available if not wanted else [o.name for o in wanted]
    unknown = [n for n in names if n not in available]
    if unknown:
        raise SchemaError(
            f"Unknown output {unknown[0]!r}; this model gives {', '.join(available)}.",
            field="outputs",
            expected=" or ".join(available),
        )
    outputs: list[dict[str, Any]] = []
    for name in names:
        if name == PREDICT:
            labels = result.labels
            datatype = _datatype(labels)
            data = labels.tolist() if datatype != "BYTES" else [str(v) for v in labels.tolist()]
            outputs.append(
                {"name": PREDICT, "shape": list(labels.shape), "datatype": datatype, "data": data}
            )
        else:
            proba = np.asarray(result.probabilities, dtype=np.float64)
            outputs.append(
                {
                    "name": PREDICT_PROBA,
                    "shape": list(proba.shape),
                    "datatype": "FP64",
                    "parameters": {"classes": list(served.class_keys or ())},
                    "data": proba.ravel().tolist(),
                }
            )
    return outputs


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
        return _json({"name": "shipyard", "version": __version__, "extensions": []})

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

    async def infer(request: Request, payload: InferenceRequest, name: str) -> Response:
        return await _infer(request, payload, _served_for(runtime, name, None))

    async def version_infer(
        request: Request, payload: InferenceRequest, name: str, version: str
    ) -> Response:
        return await _infer(request, payload, _served_for(runtime, name, version))

    async def _infer(request: Request, payload: InferenceRequest, served: ServedModel) -> Response:
        started = time.perf_counter()
        data = tensors_to_frame(payload, served.signature)
        request_id = request.scope[REQUEST_ID_KEY]
        served, _, result = await inference.run(
            data, request_id=request_id, protocol="v2", started=started, served=served
        )
        body = {
            "model_name": served.name,
            "model_version": str(served.version),
            "id": payload.id if payload.id is not None else request_id,
            "outputs": output_tensors(served, result, payload.outputs),
        }
        return _json(body)

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
            responses=errors,
            dependencies=guarded,
            summary="Inference",
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
