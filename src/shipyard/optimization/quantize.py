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


def _int8(data: bytes) -> bytes:
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    # onnxruntime logs a suggestion to pre-process on every call: not for our users.
    logging.getLogger().setLevel(max(logging.getLogger().level, logging.ERROR))
    with tempfile.TemporaryDirectory() as tmp:
        source, target = Path(tmp) / "source.onnx", Path(tmp) / "int8.onnx"
        source.write_bytes(data)
        quantize_dynamic(source, target, weight_type=QuantType.QInt8)
        return target.read_bytes()


def _fp16_blocked(proto: Any) -> set[str]:
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST

    blocked = set(DEFAULT_OP_BLOCK_LIST) | {"ArgMax", "ArrayFeatureExtractor"}
    # The ai.onnx.ml operators (trees, scalers, encoders, ZipMap) take float32 or double only.
    blocked |= {n.op_type for n in proto.graph.node if n.domain not in ("", "ai.onnx")}
    return blocked


def _fp16(proto: Any, blocked: set[str]) -> bytes:
    from onnxruntime.transformers.float16 import convert_float_to_float16

    converted = convert_float_to_float16(
        proto, keep_io_types=True, op_block_list=sorted(blocked), disable_shape_infer=True
    )
    _sort_nodes(converted.graph)
    return bytes(converted.SerializeToString())


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
