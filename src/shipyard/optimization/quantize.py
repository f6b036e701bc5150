"""Quantize a compiled ONNX graph: dynamic int8 weights, or float16.

- ``int8``: onnxruntime's dynamic quantization. Weights of matrix products
  (``MatMul``, ``Gemm``: the layers of an MLP) are stored as 8-bit integers and
  activations are quantized on the fly per call; everything else stays float.
- ``fp16``: onnxruntime's float16 converter, with the graph's inputs and outputs
  kept float32 (a caller feeds the same arrays). Operators with no float16
  kernel (the ``ai.onnx.ml`` tree, scaler and encoder operators, ArgMax...)
  are kept float32 behind casts.

Either way the report says which operators changed and which stayed float. A
graph where nothing changes (a tree ensemble has no matrix product) is refused:
a copy of the original is no optimization.

Example:
    >>> data, report = quantize_graph(graph_bytes, "int8")      # doctest: +SKIP
    >>> report.quantized, report.kept_float                     # doctest: +SKIP
    (['MatMul x2'], ['Add x2', 'ArgMax', 'Relu', 'Softmax', ...])
"""

from __future__ import annotations

import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shipyard.errors import InvalidInputError

MODES = ("int8", "fp16")
#: Operators dynamic int8 quantization rewrites (onnxruntime's dynamic op set).
_INT8_OPS = frozenset({"MatMul", "Gemm", "Conv", "Attention", "LSTM", "EmbedLayerNormalization"})


@dataclass(frozen=True)
class QuantizationReport:
    """What a quantization changed: operator types (with counts) quantized and kept float."""

    mode: str
    quantized: list[str]
    kept_float: list[str]

    def describe(self) -> str:
        kind = "int8" if self.mode == "int8" else "float16"
        kept = ", ".join(self.kept_float) or "none"
        return f"{kind}: {', '.join(self.quantized)}; kept float: {kept}"


class NothingToQuantizeError(InvalidInputError):
    """The graph has no operator the chosen quantization can change."""


def quantize_graph(data: bytes, mode: str) -> tuple[bytes, QuantizationReport]:
    """The quantized graph and what changed; NothingToQuantizeError if nothing would."""
    if mode not in MODES:
        raise InvalidInputError(f"--quantize {mode!r}: expected one of {', '.join(MODES)}.")
    import onnx

    proto = onnx.load_model_from_string(data)
    # int8: a linear model's one ml operator becomes a matrix product it can quantize.
    if mode == "int8" and _linear_as_matmul(proto) | _one_opset_per_domain(proto):
        data = bytes(proto.SerializeToString())
    ops = [(n.op_type, n.domain or "ai.onnx") for n in proto.graph.node]
    if mode == "int8":
        changed = [op for op, domain in ops if op in _INT8_OPS and domain == "ai.onnx"]
    else:
        blocked = _fp16_blocked(proto)
        changed = [op for op, _ in ops if op not in blocked]
        # Casts and shape plumbing alone are not a float16 model.
        changed = [op for op in changed if op not in {"Cast", "Identity", "Reshape", "Shape"}]
    kept = [op for op, _ in ops if op not in set(changed)]
    if not changed:
        what = ", ".join(_counted(op for op, _ in ops))
        change = "int8-quantized" if mode == "int8" else "run in float16"
        raise NothingToQuantizeError(
            f"nothing in this graph can be {change}"
            f" (its operators: {what}); tree ensembles are made smaller with --prune or --distill"
        )
    out = _int8(data) if mode == "int8" else _fp16(proto, _fp16_blocked(proto))
    return out, QuantizationReport(mode, _counted(changed), _counted(kept))


def _one_opset_per_domain(proto: Any) -> bool:
    """Drop repeated opset imports (skl2onnx may list the standard one twice), which
    onnxruntime's quantizer refuses; the highest version of each domain is kept."""
    best: dict[str, int] = {}
    for opset in proto.opset_import:
        domain = "" if opset.domain == "ai.onnx" else opset.domain
        best[domain] = max(best.get(domain, 0), opset.version)
    if len(best) == len(proto.opset_import):
        return False
    from onnx import helper

    del proto.opset_import[:]
    proto.opset_import.extend(helper.make_opsetid(d, v) for d, v in best.items())
    return True


_POST = {"SOFTMAX": "Softmax", "LOGISTIC": "Sigmoid", "NONE": "Identity"}


def _linear_as_matmul(proto: Any) -> bool:
    """Rewrite ``LinearClassifier``/``LinearRegressor`` (``ai.onnx.ml``, which has no
    int8 kernel) as ``MatMul`` + ``Add`` (+ ``Softmax``/``Sigmoid`` and, for labels,
    ``ArgMax`` + ``Gather``): the same arithmetic in standard operators. Only in
    float32 graphs, and only the shapes scikit-learn's converter writes (one
    coefficient row per class or target). Returns whether anything was rewritten."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    if any(
        i.type.tensor_type.elem_type != TensorProto.FLOAT
        for i in proto.graph.input
        if i.type.tensor_type.elem_type != TensorProto.STRING
    ):
        return False
    changed = False
    nodes = []
    for node in proto.graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if node.domain != "ai.onnx.ml" or node.op_type not in (
            "LinearClassifier",
            "LinearRegressor",
        ):
            nodes.append(node)
            continue
        coefficients = np.asarray(attrs.get("coefficients", []), dtype=np.float32)
        intercepts = np.asarray(attrs.get("intercepts", []), dtype=np.float32)
        post = attrs.get("post_transform", b"NONE")
        post = post.decode() if isinstance(post, bytes) else str(post)
        if node.op_type == "LinearClassifier":
            labels = attrs.get("classlabels_ints") or attrs.get("classlabels_strings")
            rows = len(labels or [])
        else:
            labels, rows = None, int(attrs.get("targets", 1))
        if not rows or coefficients.size % rows or len(intercepts) != rows or post not in _POST:
            nodes.append(node)
            continue
        prefix = f"{node.name or node.op_type}_int8able"
        weights = coefficients.reshape(rows, -1).T.copy()
        proto.graph.initializer.extend(
            [
                numpy_helper.from_array(weights, f"{prefix}_W"),
                numpy_helper.from_array(intercepts, f"{prefix}_B"),
            ]
        )
        raw = f"{prefix}_raw"
        scores = node.output[1] if node.op_type == "LinearClassifier" else node.output[0]
        nodes.append(helper.make_node("MatMul", [node.input[0], f"{prefix}_W"], [f"{prefix}_xw"]))
        nodes.append(helper.make_node("Add", [f"{prefix}_xw", f"{prefix}_B"], [raw]))
        if post == "SOFTMAX":
            nodes.append(helper.make_node("Softmax", [raw], [scores], axis=1))
        else:
            nodes.append(helper.make_node(_POST[post], [raw], [scores]))
        if node.op_type == "LinearClassifier":
            assert labels is not None
            if isinstance(labels[0], bytes):
                classes = np.array([c.decode() for c in labels], dtype=object)
            else:
                classes = np.array(labels, dtype=np.int64)
            proto.graph.initializer.append(numpy_helper.from_array(classes, f"{prefix}_classes"))
            nodes.append(helper.make_node("ArgMax", [raw], [f"{prefix}_best"], axis=1, keepdims=0))
            nodes.append(
                helper.make_node(
                    "Gather", [f"{prefix}_classes", f"{prefix}_best"], [node.output[0]], axis=0
                )
            )
        changed = True
    if changed:
        del proto.graph.node[:]
        proto.graph.node.extend(nodes)
        if not any(o.domain in ("", "ai.onnx") for o in proto.opset_import):
            # A graph of ml operators only imports no standard opset; the new nodes need one.
            proto.opset_import.append(helper.make_opsetid("", 17))
    return changed


def _int8(data: bytes) -> bytes:
    import logging

    # onnxruntime logs a suggestion to pre-process on every call, on the root logger:
    # not for our users. Quieted for this call only: the level is the whole process's.
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.ERROR))
    try:
        return _quantize_int8(data)
    finally:
        root.setLevel(level)


def _quantize_int8(data: bytes) -> bytes:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as tmp:
        source, target = Path(tmp) / "source.onnx", Path(tmp) / "int8.onnx"
        source.write_bytes(data)
        import onnx

        try:
            quantize_dynamic(
                source,
                target,
                weight_type=QuantType.QInt8,
                # ml operators (scalers, encoders) have outputs shape inference cannot type.
                extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
            )
        except Exception as exc:  # the quantizer raises bare RuntimeError/ValueError
            raise InvalidInputError(f"int8 quantization failed: {exc}") from exc
        return target.read_bytes()


def _fp16_blocked(proto: Any) -> set[str]:
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST

    blocked = set(DEFAULT_OP_BLOCK_LIST) | {"ArgMax", "ArrayFeatureExtractor"}
    # The ai.onnx.ml operators (trees, scalers, encoders, ZipMap) take float32 or double only.
    blocked |= {n.op_type for n in proto.graph.node if n.domain not in ("", "ai.onnx")}
    return blocked


def _fp16(proto: Any, blocked: set[str]) -> bytes:
    from onnxruntime.transformers.float16 import convert_float_to_float16

    try:
        converted = convert_float_to_float16(
            proto, keep_io_types=True, op_block_list=sorted(blocked), disable_shape_infer=True
        )
    except Exception as exc:  # the converter raises bare errors
        raise InvalidInputError(f"float16 conversion failed: {exc}") from exc
    _sort_nodes(converted.graph)
    data = bytes(converted.SerializeToString())
    try:  # the converter can hand a float16 tensor to an operator that has no such kernel
        import onnxruntime as ort

        ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own error types
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InvalidInputError(
            f"float16 conversion failed: the converted graph does not load ({reason}); "
            "int8 quantization may still apply"
        ) from exc
    return data


def _sort_nodes(graph: Any) -> None:
    """Put nodes in dependency order: the converter appends its input casts at the end,
    and ONNX requires a node's inputs to be produced before it."""
    ready = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    pending = list(graph.node)
    ordered = []
    while pending:
        progressed = False
        for node in list(pending):
            if all(name in ready for name in node.input):
                ordered.append(node)
                ready.update(node.output)
                pending.remove(node)
                progressed = True
        if not progressed:  # a cycle or a missing input: leave the rest as it was
            ordered.extend(pending)
            break
    nodes = [type(n)() for n in ordered]
    for copy_, node in zip(nodes, ordered, strict=True):
        copy_.CopyFrom(node)
    del graph.node[:]
    graph.node.extend(nodes)


def _counted(ops: Any) -> list[str]:
    counts = Counter(ops)
    return [op if n == 1 else f"{op} x{n}" for op, n in sorted(counts.items())]


__all__ = ["MODES", "NothingToQuantizeError", "QuantizationReport", "quantize_graph"]
