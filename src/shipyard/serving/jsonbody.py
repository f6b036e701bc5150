"""Strict JSON request bodies: duplicate keys refused, huge numbers kept exact.

Two things a plain ``orjson.loads`` gets wrong for a server that must name what
was wrong with its input:

- **Duplicate keys** (``{"x": 1, "x": 9}``): JSON parsers keep the last one
  silently, so two layers that read the same body (a proxy, a WAF, this
  server) can disagree about what it says. They are refused, naming the key.
- **Integers beyond 64 bits** (a 401-digit ``sepal_length``): orjson reads them
  as a rounded float, or fails the whole body as "not valid JSON" when the
  float would be infinite. The body *is* valid JSON; the value is out of range,
  and the signature says so naming the column. So such a body (any record
  holding a float of 2**63 or more in size) is parsed again with the standard
  library, which keeps integers exact.

Finding duplicates without slowing the hot path: every key in a JSON text is
followed by exactly one structural colon, and colons inside strings only add
to the count. So when the keys orjson kept add up to the number of ``:`` bytes
in the body, no key was dropped (kept <= written <= colons). Only when the
counts differ (a colon inside a string value, or a real duplicate) is the body
parsed again with a hook that sees every key.

Example:
    >>> loads_strict(b'{"a": 1, "b": [2, 3]}')
    {'a': 1, 'b': [2, 3]}
    >>> loads_strict(b'{"a": 1, "a": 2}')
    Traceback (most recent call last):
    ...
    shipyard.serving.jsonbody.DuplicateKeyError: Key 'a' is given twice in one JSON object; ...
"""

from __future__ import annotations

import json
from typing import Any

import orjson

from shipyard.errors import InvalidInputError, SchemaError

_TWO_63 = 2.0**63


class DuplicateKeyError(SchemaError):
    """A JSON object in the body has the same key twice (422, naming the key)."""


def loads_strict(body: bytes, *, hint: str = "") -> Any:
    """Parse ``body`` as JSON, refusing duplicate keys and keeping big integers exact.

    ``hint`` is appended to the "not valid JSON" message (what to send instead).
    Raises :class:`InvalidInputError` (400) for text that is not JSON and
    :class:`DuplicateKeyError` (422) for a key given twice in one object.
    """
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        return _loads_exact(body, hint)  # the exact parser's message, or big numbers
    try:
        if _count_keys(value) == body.count(b":"):
            return value
    except _MaybeRounded:
        pass
    return _loads_exact(body, hint)


class _MaybeRounded(Exception):
    """A record holds a float that may be an integer literal orjson could not keep."""


def _count_keys(value: Any) -> int:
    """Keys in every object of ``value``; may undercount (which only costs a re-parse).

    Lists whose first element is not a container are not walked: long tensors of
    numbers stay cheap, and an object hiding later in such a list only makes the
    count short, which sends the body to the exact check. A record value that is
    a float of 2**63 or more in size raises :class:`_MaybeRounded`: orjson turns
    integer literals beyond 64 bits into such floats, rounding them.
    """
    kind = type(value)
    if kind is dict:
        total = len(value)
        for item in value.values():
            item_kind = type(item)
            if item_kind is dict or item_kind is list:
                total += _count_keys(item)
            elif item_kind is float and not -_TWO_63 < item < _TWO_63:
                raise _MaybeRounded
        return total
    if kind is list and value and type(value[0]) in (dict, list):
        return sum(_count_keys(item) for item in value if type(item) in (dict, list))
    return 0


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    record = dict(pairs)
    if len(record) != len(pairs):
        seen: set[str] = set()
        key = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise DuplicateKeyError(
            f"Key {key!r} is given twice in one JSON object; send each key once.",
            field=key,
            expected="each key once",
        )
    return record


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _loads_exact(body: bytes, hint: str) -> Any:
    try:
        return json.loads(
            body, object_pairs_hook=_refuse_duplicates, parse_constant=_refuse_constant
        )
    except DuplicateKeyError:
        raise
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, bad UTF-8, 4300+ digits
        raise InvalidInputError(
            f"The request body is not valid JSON ({exc}).{' ' + hint if hint else ''}"
        ) from None
