"""Tensors in, tensors out: the Open Inference Protocol's data, to and from model rows.

Inputs come either as one tensor per input column, named after the column, of
shape ``[N]`` or ``[N, 1]``; or as one tensor of shape ``[N, n_columns]`` with
the columns in signature order. Values come as JSON ``data`` (flat in row-major
order, or nested) or as binary data (:mod:`.v2_binary`), and every JSON value
must have its tensor's datatype and fit in it: an ``INT8`` of 300, an ``FP16``
of 70000 or a 400-digit integer are refused naming the tensor.

Outputs are ``predict`` (shape ``[N]``) and, for classifiers with
probabilities, ``predict_proba`` (``[N, n_classes]``, FP64, the class labels
in its ``parameters``). ``predict_proba`` asked for ``{"classification": k}``
answers the top ``k`` classes of each row as ``BYTES``
``"probability:index:label"`` (shape ``[N, k]``), as Triton's classification
extension does; each output goes back as JSON or as binary data, as asked.

Example:
    >>> flat_values([[1, 2], [3, 4]], "x")
    [1, 2, 3, 4]
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from shipyard.errors import SchemaError
from shipyard.registry.signature import Signature
from shipyard.serving.protocols.v2_binary import (
    NUMPY_DTYPES,
    BinaryInputs,
    decode_tensor,
    encode_tensor,
)
from shipyard.serving.protocols.v2_messages import InferenceRequest, RequestInput, RequestOutput
from shipyard.serving.runtime import Prediction, ServedModel

_INTEGER = frozenset({"UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64"})
_FLOAT = frozenset({"FP16", "FP32", "FP64"})
SIGNATURE_DATATYPE = {
    "float": "FP64",
    "integer": "INT64",
    "boolean": "BOOL",
    "string": "BYTES",
    "datetime": "BYTES",
}
_MAX_DEPTH = 8
PREDICT = "predict"
PREDICT_PROBA = "predict_proba"


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
    lo: float
    hi: float
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
        # A column the model never reads may be left out (coerce gives it as missing).
        optional = {c.name for c in signature.inputs if c.unused}
        missing = [n for n in names if n not in seen and n not in optional]
        if missing:
            spec = signature.inputs[names.index(missing[0])]
            raise SchemaError(
                f"Input {missing[0]!r} is missing; the model takes {signature.describe()}, "
                "one tensor per column.",
                field=missing[0],
                expected=SIGNATURE_DATATYPE[spec.dtype],
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
        return pd.DataFrame({n: columns[n] for n in names if n in columns}, copy=False)
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
