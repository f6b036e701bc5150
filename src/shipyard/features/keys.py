"""Entity keys of a request checked against the type they had in the training set.

A feature-backed model's manifest records each join key's type (``int64``,
``float64``, ``bool`` or ``string``). A key of another type would look up nothing
and be refused as "never materialized", which sends the user hunting for a
materialization problem; so it is refused first, naming the key and the type.
The rules are the model signature's (:mod:`shipyard.registry.signature`), so a
key is accepted exactly when a model input column of that type would accept it:
``1304`` and ``1304.0`` for an int64 key (as the integer 1304), never the string
``"1304"``, a boolean, a fraction or a list.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from shipyard.errors import SchemaError
from shipyard.registry.signature import ColumnSpec, DType, OutputSpec, Signature

__all__ = ["check_keys"]

#: Manifest key type -> the signature dtype with the same acceptance rules.
_SIGNATURE_DTYPES: dict[str, DType] = {
    "int64": "integer",
    "float64": "float",
    "bool": "boolean",
    "string": "string",
}
#: Values that need no conversion, per key type: the hot path skips the converter.
_PLAIN: dict[str, type] = {"int64": int, "float64": float, "bool": bool, "string": str}
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


@lru_cache(maxsize=256)
def _signature(key: str, dtype: DType) -> Signature:
    return Signature((ColumnSpec(key, dtype),), OutputSpec("other", "float"))


def check_keys(rows: list[dict[str, Any]], key_types: Mapping[str, str]) -> None:
    """Convert each row's keys to their declared type in place (``1304.0`` -> ``1304``),
    or raise a :class:`SchemaError` naming the key, the record and the expected type."""
    for name, declared in key_types.items():
        dtype = _SIGNATURE_DTYPES.get(declared)
        if dtype is None:
            continue
        plain = _PLAIN[declared]
        for i, row in enumerate(rows):
            value = row.get(name)
            if value is None or _plain(value, plain):
                continue
            row[name] = _converted(name, declared, dtype, value, i if len(rows) > 1 else None)


def _plain(value: Any, plain: type) -> bool:
    """Whether ``value`` is already of its key's type (an int64 key: an int that fits)."""
    kind: type = type(value)
    if kind is not plain:
        return False
    number: int = value if kind is int else 0
    return _INT64_MIN <= number <= _INT64_MAX


def _converted(name: str, declared: str, dtype: DType, value: Any, record: int | None) -> Any:
    try:
        batch = _signature(name, dtype).coerce_columns({name: value})
    except SchemaError as exc:
        where = f"record {record}: " if record is not None else ""
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
        raise SchemaError(
            f"{where}entity key {name!r} must be {declared} ({_WANTED[declared]}, its type "
            f"in the training set), got {type(value).__name__} {shown}.",
            field=name,
            expected=declared,
        ) from exc
    converted = batch.columns[name][0]
    return converted.item() if hasattr(converted, "item") else converted


_WANTED = {
    "int64": "a 64-bit integer",
    "float64": "a finite number",
    "bool": "true or false",
    "string": "a string",
}
