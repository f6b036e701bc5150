"""Strict JSON request bodies: duplicate keys refused, huge numbers kept exact.

Two things a plain ``orjson.loads`` gets wrong for a server that must name what
was wrong with its input:

- **Duplicate keys** (``{"x": 1, "x": 9}``): JSON parsers keep the last one
  silently, so two layers that read the same body (a proxy, a WAF, this
  server) can disagree about what it says. They are refused, naming the key.
- **Integers beyond 64 bits** (a 401-digit ``sepal_length``): orjson reads them
  as a rounded float, or fails the whole body as "not valid JSON" when the
  float would be infinite. The body *is* valid JSON; the value is out of range,
  and the signature says so naming the column. So a body with 19 or more
  digits in a row is parsed with the standard library, which keeps integers
  exact.

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
from collections.abc import Callable
from typing import Any

import orjson

from shipyard.errors import InvalidInputError, SchemaError

# Any byte that is a digit becomes "0", every other byte a space: a run of 19 zeros then
# marks 19 digits in a row, the shortest integer orjson may turn into a rounded float
# (2**63 has 19 digits). Floats are written with at most 17 significant digits.
_DIGITS = bytes(0x30 if 0x30 <= i <= 0x39 else 0x20 for i in range(256))
_LONG_DIGIT_RUN = b"0" * 19


class DuplicateKeyError(SchemaError):
    """A JSON object in the body has the same key twice (422, naming the key)."""


def loads_strict(body: bytes, *, hint: str | Callable[[], str] = "") -> Any:
    """Parse ``body`` as JSON, refusing duplicate keys and keeping big integers exact.

    ``hint`` is appended to the "not valid JSON" message (what to send instead); a
    function is called only then, so a valid body never pays for building it.
    Raises :class:`InvalidInputError` (400) for text that is not JSON and
    :class:`DuplicateKeyError` (422) for a key given twice in one object.
    """
    if _LONG_DIGIT_RUN in body.translate(_DIGITS):
        return _loads_exact(body, hint)  # maybe an integer orjson would round
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        return _loads_exact(body, hint)  # the exact parser's message
    colons = body.count(b":")
    if _count_keys(value, deep=False) == colons or _count_keys(value, deep=True) == colons:
        return value
    return _loads_exact(body, hint)


def _count_keys(value: Any, *, deep: bool) -> int:
    """Keys in the objects of ``value``; may undercount (which only costs a re-parse).

    ``deep=False`` counts a list of records by their own keys only, without
    looking inside their values: enough for the flat records of ``/predict``,
    in a fraction of the time. Lists whose first element is not a container are
    never walked: long tensors of numbers stay cheap, and an object hiding later
    in such a list only makes the count short, which sends the body to the exact
    check.
    """
    kind = type(value)
    if kind is dict:
        total = len(value)
        for item in value.values():
            if type(item) is dict or type(item) is list:
                total += _count_keys(item, deep=deep)
        return total
    if kind is list and value and type(value[0]) in (dict, list):
        if not deep:
            return sum(len(item) for item in value if type(item) is dict)
        return sum(_count_keys(item, deep=True) for item in value if type(item) in (dict, list))
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


def _loads_exact(body: bytes, hint: str | Callable[[], str]) -> Any:
    try:
        return json.loads(
            body, object_pairs_hook=_refuse_duplicates, parse_constant=_refuse_constant
        )
    except DuplicateKeyError:
        raise
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, bad UTF-8, 4300+ digits
        hint = hint() if callable(hint) else hint
        raise InvalidInputError(
            f"The request body is not valid JSON ({exc}).{' ' + hint if hint else ''}"
        ) from None
