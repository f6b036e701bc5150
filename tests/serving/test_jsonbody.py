"""Strict JSON bodies: every duplicate key found, big integers kept exact, orjson's speed kept."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shipyard.errors import InvalidInputError
from shipyard.serving.jsonbody import DuplicateKeyError, loads_strict


@pytest.mark.parametrize(
    ("body", "key"),
    [
        (b'{"a": 1, "a": 2}', "a"),
        (b'{"x": {"b": 1, "b": 1}}', "b"),
        (b'[{"c": 1}, {"c": 1, "c": 2}]', "c"),
        (b'{"t": [1, 2, {"d": 1, "d": 2}]}', "d"),  # an object after scalars in a list
        (b'{"s": "x:y", "e": 1, "e": 2}', "e"),  # a colon in a string beside a duplicate
        (b'{"u": 1, "\\u0075": 2}', "u"),  # the same key, escaped
    ],
)
def test_duplicates_anywhere_are_refused(body: bytes, key: str) -> None:
    with pytest.raises(DuplicateKeyError) as info:
        loads_strict(body)
    assert info.value.field == key


@pytest.mark.parametrize(
    "body",
    [b'{"a": "1:2", "b": {"c": "::"}}', b'[{"a": 1}, {"a": 2}]', b'{"a:b": 1, "a": 2}', b"[]"],
)
def test_colons_in_strings_and_repeated_keys_across_objects_are_fine(body: bytes) -> None:
    assert loads_strict(body) == json.loads(body)


@pytest.mark.parametrize(
    "literal", ["1" * 401, "-" + "1" * 30, str(2**64), str(-(2**63) - 1), str(2**63)]
)
def test_big_integers_stay_exact(literal: str) -> None:
    assert loads_strict(f'{{"x": {literal}}}'.encode()) == {"x": int(literal)}


@pytest.mark.parametrize("body", [b"{nope", b'{"x": NaN}', b'{"x": Infinity}', b"", b"\xff"])
def test_not_json_is_a_400_with_the_hint(body: bytes) -> None:
    with pytest.raises(InvalidInputError, match=r"not valid JSON.*Send this") as info:
        loads_strict(body, hint="Send this.")
    assert not isinstance(info.value, DuplicateKeyError)


_keys = st.text(alphabet="ab:", min_size=1, max_size=3)
_values = st.recursive(
    st.none() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text("a:"),
    lambda inner: st.lists(inner, max_size=4) | st.lists(st.tuples(_keys, inner), max_size=4),
    max_leaves=12,
)


def _render(value: object) -> str:
    """JSON text for ``value``; a list of (key, value) pairs is an object, repeats kept."""
    if isinstance(value, list) and value and all(isinstance(v, tuple) for v in value):
        return "{" + ", ".join(f"{json.dumps(k)}: {_render(v)}" for k, v in value) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_render(v) for v in value) + "]"
    return json.dumps(value)


def _has_duplicate(value: object) -> bool:
    if isinstance(value, list) and value and all(isinstance(v, tuple) for v in value):
        keys = [k for k, _ in value]
        return len(set(keys)) != len(keys) or any(_has_duplicate(v) for _, v in value)
    if isinstance(value, list):
        return any(_has_duplicate(v) for v in value)
    return False


@settings(max_examples=300, deadline=None)
@given(_values)
def test_agrees_with_an_exact_duplicate_check(value: object) -> None:
    text = _render(value).encode()
    if _has_duplicate(value):
        with pytest.raises(DuplicateKeyError):
            loads_strict(text)
    else:
        assert loads_strict(text) == json.loads(text)
