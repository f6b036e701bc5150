"""The binary tensor data extension of the Open Inference Protocol, both directions.

Triton's and KServe's official clients send tensors this way by default: the
body starts with the JSON inference request, whose length the
``Inference-Header-Content-Length`` header gives, and the raw bytes of each
input follow, in input order, each input saying how many bytes are its own in
``parameters.binary_data_size`` (and carrying no ``data``). Numbers are
little-endian in their datatype's width, row-major; ``BOOL`` is one byte per
element; ``BYTES`` elements are each a 4-byte little-endian length followed by
that many bytes.

Answers work the same way when the request asks for it
(``parameters.binary_data_output`` for every output, or an output's
``parameters.binary_data``): the JSON answer comes first, its length in the
``Inference-Header-Content-Length`` header, then the bytes of each binary
output in output order.

Example:
    >>> decode_tensor(encode_tensor(np.array([1.5, 2.0]), "FP32"), "FP32", "x", 2).tolist()
    [1.5, 2.0]
    >>> decode_tensor(encode_bytes(["a", "bc"]), "BYTES", "x", 2).tolist()
    ['a', 'bc']
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

import numpy as np

from shipyard.errors import InvalidInputError, SchemaError

HEADER_LENGTH = "inference-header-content-length"
#: Little-endian numpy dtype of each fixed-width datatype.
NUMPY_DTYPES: dict[str, str] = {
    "BOOL": "?",
    "UINT8": "<u1",
    "UINT16": "<u2",
    "UINT32": "<u4",
    "UINT64": "<u8",
    "INT8": "<i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
    "FP16": "<f2",
    "FP32": "<f4",
    "FP64": "<f8",
}
_LENGTH = struct.Struct("<I")


def split_body(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    """The JSON part of a request body and the binary part after it."""
    if header_length is None:
        return body, b""
    try:
        size = int(header_length)
    except ValueError:
        size = -1
    if not 0 <= size <= len(body):
        raise InvalidInputError(
            f"Inference-Header-Content-Length is {header_length!r}, but it must be the length "
            f"in bytes of the JSON at the start of the body (0 to {len(body)})."
        )
    return body[:size], body[size:]


class BinaryInputs:
    """Hands out the binary part of a request body, input by input, in order."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.offset = 0

    def take(self, name: str, size: Any) -> bytes:
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise SchemaError(
                f"Input {name!r} has binary_data_size {size!r}; expected a byte count.",
                field=name,
                expected="a non-negative integer",
            )
        end = self.offset + size
        if end > len(self.data):
            raise SchemaError(
                f"Input {name!r} says it has {size} bytes of binary data, but only "
                f"{len(self.data) - self.offset} are left in the body.",
                field=name,
                expected=f"{size} bytes",
            )
        chunk = self.data[self.offset : end]
        self.offset = end
        return chunk

    def check_all_used(self) -> None:
        left = len(self.data) - self.offset
        if left:
            raise InvalidInputError(
                f"The body holds {left} bytes after the JSON header that no input claims "
                "(binary_data_size). Check Inference-Header-Content-Length and each input's "
                "binary_data_size."
            )


def decode_tensor(raw: bytes, datatype: str, name: str, count: int) -> np.ndarray:
    """The ``count`` elements of one input's raw bytes (strings for ``BYTES``)."""
    if datatype == "BYTES":
        values = _decode_bytes(raw, name)
        if len(values) != count:
            raise SchemaError(
                f"Input {name!r} holds {len(values)} BYTES elements, but its shape needs {count}.",
                field=name,
                expected=f"{count} values",
            )
        return np.array(values, dtype=object)
    dtype = np.dtype(NUMPY_DTYPES[datatype])
    if len(raw) != count * dtype.itemsize:
        raise SchemaError(
            f"Input {name!r} has {len(raw)} bytes of {datatype} data; its shape needs {count} "
            f"values of {dtype.itemsize} bytes, {count * dtype.itemsize} in all.",
            field=name,
            expected=f"{count * dtype.itemsize} bytes",
        )
    return np.frombuffer(raw, dtype=dtype)


def _decode_bytes(raw: bytes, name: str) -> list[str]:
    values: list[str] = []
    offset = 0
    while offset < len(raw):
        if offset + 4 > len(raw):
            raise SchemaError(
                f"Input {name!r}: the BYTES data ends inside an element's 4-byte length.",
                field=name,
                expected="4-byte length, then the element",
            )
        (size,) = _LENGTH.unpack_from(raw, offset)
        offset += 4
        if offset + size > len(raw):
            raise SchemaError(
                f"Input {name!r}: BYTES element {len(values)} says it has {size} bytes, "
                f"but only {len(raw) - offset} are left.",
                field=name,
                expected=f"{size} bytes",
            )
        try:
            values.append(raw[offset : offset + size].decode("utf-8"))
        except UnicodeDecodeError:
            raise SchemaError(
                f"Input {name!r}: BYTES element {len(values)} is not UTF-8 text.",
                field=name,
                expected="UTF-8 text",
                rows=[len(values)],
            ) from None
        offset += size
    return values


def encode_tensor(values: np.ndarray, datatype: str) -> bytes:
    """The raw bytes of an output tensor in ``datatype``, row-major."""
    if datatype == "BYTES":
        return encode_bytes([str(v) for v in values.ravel().tolist()])
    return np.ascontiguousarray(values, dtype=NUMPY_DTYPES[datatype]).tobytes()


def encode_bytes(values: Sequence[str]) -> bytes:
    """``BYTES`` elements, each a 4-byte little-endian length and its UTF-8 bytes."""
    parts: list[bytes] = []
    for value in values:
        data = value.encode("utf-8")
        parts.append(_LENGTH.pack(len(data)))
        parts.append(data)
    return b"".join(parts)
