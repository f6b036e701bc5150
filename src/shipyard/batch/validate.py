"""Check one chunk against a model signature with column-wise masks, keeping the good rows.

:meth:`Signature.coerce <shipyard.registry.signature.Signature.coerce>` stops at
the first broken rule, which is right for one HTTP request and wrong for a
batch of a million rows, where a few bad rows should be set aside and the rest
scored. :func:`check_chunk` applies the same rules (see the signature module:
missing values only where nullable, never infinity, strings are not numbers and
booleans are not numbers) but finds *every* offending row of a chunk at once,
one vectorised pass per column, and returns the clean rows already converted.

One difference is deliberate: CSV has no types, so for a source that delivers
text (``text_numbers=True``) a numeric column is parsed from its text, and only
text that is not a number is an error. A Parquet or SQL column of strings where
the model wants floats is still refused, row by row.

Example:
    >>> import pandas as pd
    >>> from shipyard.registry.signature import ColumnSpec, OutputSpec, Signature
    >>> sig = Signature((ColumnSpec("x", "float"),), OutputSpec("regression", "float"))
    >>> check = check_chunk(pd.DataFrame({"x": ["1.5", "abc", None]}), sig, text_numbers=True)
    >>> check.bad.tolist(), check.reasons
    ([1, 2], ["x: 'abc' is not a number; expected a float", 'x: missing value; expected a float'])
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from shipyard.registry.signature import ColumnSpec, Signature, encode_categories

_ARTICLE = {
    "float": "a float",
    "integer": "an integer",
    "boolean": "a boolean",
    "string": "a string",
    "datetime": "a datetime",
}
_NAN_TEXT = frozenset({"nan", "+nan", "-nan"})
_BOOL_TEXT = {"true": True, "false": False, "1": True, "0": False}


def expected_text(dtype: str) -> str:
    """``"a float"``, ``"an integer"``... for messages."""
    return _ARTICLE.get(dtype, f"a {dtype}")


@dataclass(frozen=True)
class ChunkCheck:
    """The outcome of checking one chunk.

    ``frame`` holds the good rows only, columns in signature order and converted
    to the signature's types; ``good`` is the mask of those rows in the chunk.
    ``bad`` lists the positions (0-based, within the chunk) of the rejected rows
    in order, ``reasons`` one message per bad row naming every broken column,
    and ``fields``/``expected`` the first broken column of each bad row.
    """

    frame: pd.DataFrame
    good: np.ndarray
    bad: np.ndarray
    reasons: list[str]
    fields: list[str]
    expected: list[str]

    @property
    def n_bad(self) -> int:
        return len(self.bad)

    def exclude(
        self, positions: np.ndarray, reasons: list[str], fields: list[str], expected: list[str]
    ) -> ChunkCheck:
        """A copy with more rows (positions within the chunk, now good) set aside.

        Used when the model itself refuses rows that passed the signature, such as
        a category it never saw.
        """
        good = self.good.copy()
        good[positions] = False
        frame = self.frame[good[self.good]]
        merged = sorted(
            zip(
                [*self.bad.tolist(), *positions.tolist()],
                [*self.reasons, *reasons],
                [*self.fields, *fields],
                [*self.expected, *expected],
                strict=True,
            )
        )
        bad, why, field, want = (list(x) for x in zip(*merged, strict=True))
        return ChunkCheck(frame, good, np.asarray(bad, dtype=np.int64), why, field, want)


@dataclass
class _Column:
    """One column converted, plus the rows that broke a rule and why."""

    values: Any
    problems: list[tuple[np.ndarray, Callable[[int], str]]]


def check_chunk(frame: pd.DataFrame, signature: Signature, *, text_numbers: bool) -> ChunkCheck:
    """Find every row of ``frame`` that breaks ``signature``; convert the rest.

    Every column the signature names must be present (the caller checks the
    header once, before reading any data), except one the model never reads
    (``unused``), which is then taken as missing. Row positions are 0-based within the
    chunk; the caller adds the chunk's offset.
    """
    n = len(frame)
    bad_mask = np.zeros(n, dtype=bool)
    columns: dict[str, _Column] = {}
    for spec in signature.inputs:
        if spec.unused and spec.name not in frame:
            # A column the model never reads, left out of the input: missing values.
            raw = pd.Series([None] * n, index=frame.index, name=spec.name, dtype=object)
        else:
            raw = frame[spec.name]
        if isinstance(raw.dtype, pd.CategoricalDtype):
            # A category column (Parquet dictionary, a pandas frame): check its values.
            raw = pd.Series(np.asarray(raw), index=raw.index, name=spec.name)
        col = _CHECKERS[spec.dtype](raw, spec, text_numbers)
        if spec.categorical:
            col.problems += _unknown_category_problem(spec, raw, col)
        columns[spec.name] = col
        for mask, _ in col.problems:
            bad_mask |= mask
    good = ~bad_mask
    if not bad_mask.any():
        out = pd.DataFrame(
            {name: c.values for name, c in columns.items()}, index=frame.index, copy=False
        )
        empty = np.empty(0, dtype=np.int64)
        return ChunkCheck(_finish(out, signature), good, empty, [], [], [])

    out = pd.DataFrame(
        {name: c.values[good] for name, c in columns.items()},
        index=frame.index[good],
        copy=False,
    )
    bad = np.flatnonzero(bad_mask)
    # Messages are built for the bad rows only: detection above is vectorised, and
    # a Python loop over the (few) rejects costs nothing next to it.
    reasons: dict[int, list[str]] = {}
    firsts: dict[int, tuple[str, str]] = {}
    for spec in signature.inputs:
        for mask, describe in columns[spec.name].problems:
            for pos in np.flatnonzero(mask).tolist():
                reasons.setdefault(pos, []).append(describe(pos))
                firsts.setdefault(pos, (spec.name, spec.dtype))
    positions = bad.tolist()
    return ChunkCheck(
        frame=_finish(out, signature),
        good=good,
        bad=bad,
        reasons=["; ".join(reasons[p]) for p in positions],
        fields=[firsts[p][0] for p in positions],
        expected=[firsts[p][1] for p in positions],
    )


def _finish(frame: pd.DataFrame, signature: Signature) -> pd.DataFrame:
    """Give the good rows the dtypes coerce() gives them.

    Integer columns with no missing value left become int64 (float64 + NaN
    otherwise); boolean columns become bool, or pandas "boolean" around a missing value;
    categorical columns the training ``category`` dtype, categories in their order.
    """
    for spec in signature.inputs:
        values = frame[spec.name].to_numpy()
        if spec.categorical:
            frame[spec.name] = encode_categories(spec, values)[0]
        elif spec.dtype == "integer" and values.dtype.kind == "f" and not np.isnan(values).any():
            frame[spec.name] = values.astype(np.int64)
        elif spec.dtype == "boolean" and values.dtype == object:
            typed = pd.array(values, dtype="boolean")
            frame[spec.name] = typed.to_numpy(dtype=bool) if not typed.isna().any() else typed
    return frame


# -- per-dtype checkers -------------------------------------------------------------------


def _short(value: Any) -> str:
    if isinstance(value, np.generic):
        value = value.item()  # 4.5, not np.float64(4.5)
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _missing_problem(
    spec: ColumnSpec, missing: np.ndarray
) -> list[tuple[np.ndarray, Callable[[int], str]]]:
    if spec.nullable or not missing.any():
        return []
    message = f"{spec.name}: missing value; expected {expected_text(spec.dtype)}"
    return [(missing, lambda _pos: message)]


def _wrong_type_problem(
    spec: ColumnSpec, raw: pd.Series, mask: np.ndarray, what: str
) -> list[tuple[np.ndarray, Callable[[int], str]]]:
    if not mask.any():
        return []

    def describe(pos: int) -> str:
        value = raw.iloc[pos]
        if what == "type":
            got = f"got {type(value).__name__} {_short(value)}"
        else:
            got = f"{_short(value)} is not {what}"
        return f"{spec.name}: {got}; expected {expected_text(spec.dtype)}"

    return [(mask, describe)]


def _unknown_category_problem(
    spec: ColumnSpec, raw: pd.Series, col: _Column
) -> list[tuple[np.ndarray, Callable[[int], str]]]:
    """Values of a categorical column outside the training categories (rows not yet flagged)."""
    flagged = np.zeros(len(raw), dtype=bool)
    for mask, _ in col.problems:
        flagged |= mask
    unknown = encode_categories(spec, np.asarray(col.values, dtype=object))[1] & ~flagged
    if not unknown.any():
        return []
    known = list(spec.categories or ())

    def describe(pos: int) -> str:
        return f"{spec.name}: {_short(raw.iloc[pos])} is not one of the model's categories {known}"

    return [(unknown, describe)]


def _is_text_dtype(dtype: Any) -> bool:
    return isinstance(dtype, pd.StringDtype) or pd.api.types.is_object_dtype(dtype)


def _parse_numbers(raw: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Numbers parsed from text: (float64 values, mask of text that is not a number)."""
    try:
        # Arrow's parser is several times faster than pandas' and either parses the
        # whole column or raises; only a chunk holding bad text takes the slow path.
        parsed = pc.cast(pa.array(raw, from_pandas=True), pa.float64())
        return parsed.to_numpy(zero_copy_only=False), np.zeros(len(raw), dtype=bool)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        pass
    values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    suspicious = np.isnan(values) & raw.notna().to_numpy()
    if suspicious.any():
        # "nan" written as text is a missing value, not a parse error.
        idx = np.flatnonzero(suspicious)
        texts = raw.iloc[idx].astype(str).str.strip().str.lower()
        suspicious[idx[texts.isin(_NAN_TEXT).to_numpy()]] = False
    return values, suspicious


def _object_numbers(raw: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Numbers from a column of Python objects: (float64 values, mask of non-numbers)."""
    kinds = raw.map(_number_kind).to_numpy()
    wrong = kinds == "wrong"
    numbers = pd.to_numeric(raw.where(~wrong, None), errors="coerce")
    # A writable copy: the caller fills in parsed text and blanks out wrong values.
    return np.array(numbers.to_numpy(dtype=np.float64, na_value=np.nan)), wrong


def _number_kind(value: Any) -> str:
    if value is None or value is pd.NA or value is pd.NaT:
        return "missing"
    if isinstance(value, (bool, np.bool_, str, bytes)):
        return "wrong"
    if isinstance(value, (int, float, np.integer, np.floating)):
        return "number"
    # Decimal (SQL NUMERIC) and other number-like types are numbers if float() takes them.
    try:
        float(value)
    except (TypeError, ValueError):
        return "wrong"
    return "number"


def _check_number(raw: pd.Series, spec: ColumnSpec, text_numbers: bool) -> _Column:
    dtype = raw.dtype
    problems: list[tuple[np.ndarray, Callable[[int], str]]] = []
    if spec.dtype == "integer" and isinstance(dtype, np.dtype) and dtype.kind in "iu":
        return _Column(raw.to_numpy(dtype=np.int64), [])  # exact, even past 2**53
    if pd.api.types.is_bool_dtype(dtype):
        values = np.full(len(raw), np.nan)
        problems += _wrong_type_problem(spec, raw, raw.notna().to_numpy(), "type")
    elif pd.api.types.is_numeric_dtype(dtype):
        values = raw.to_numpy(dtype=np.float64, na_value=np.nan)
    elif text_numbers and isinstance(dtype, pd.StringDtype):
        values, not_number = _parse_numbers(raw)
        problems += _wrong_type_problem(spec, raw, not_number, "a number")
    elif pd.api.types.is_object_dtype(dtype):
        values, wrong = _object_numbers(raw)
        if text_numbers:
            # Text from a typeless source: parse it, and blame only what does not parse.
            texts = wrong & raw.map(lambda v: isinstance(v, str)).to_numpy()
            if texts.any():
                parsed, not_number = _parse_numbers(raw[texts])
                values[texts] = parsed
                bad_text = np.zeros(len(raw), dtype=bool)
                bad_text[np.flatnonzero(texts)[not_number]] = True
                wrong = (wrong & ~texts) | bad_text
        problems += _wrong_type_problem(spec, raw, wrong, "type")
        values[wrong] = np.nan
    else:  # strings from a typed source, datetimes, categories of text...
        values = np.full(len(raw), np.nan)
        problems += _wrong_type_problem(spec, raw, raw.notna().to_numpy(), "type")
    flagged = np.zeros(len(raw), dtype=bool)
    for mask, _ in problems:
        flagged |= mask
    nan = np.isnan(values)
    problems += _missing_problem(spec, nan & ~flagged)
    inf = np.isinf(values)
    if inf.any():
        message = f"{spec.name}: infinity; expected a finite {spec.dtype}"
        problems.append((inf, lambda _pos: message))
    if spec.dtype == "integer":
        fractional = ~nan & ~inf & (values != np.round(values))
        if fractional.any():
            problems += _wrong_type_problem(spec, raw, fractional, "an integer")
    return _Column(values, problems)


def _check_boolean(raw: pd.Series, spec: ColumnSpec, text_numbers: bool) -> _Column:
    problems: list[tuple[np.ndarray, Callable[[int], str]]] = []
    missing = raw.isna().to_numpy()
    if raw.dtype == np.bool_:
        return _Column(raw.to_numpy(), [])
    if pd.api.types.is_bool_dtype(raw.dtype):  # pandas "boolean" with NA
        values = raw.to_numpy(dtype=object, na_value=None)
    elif text_numbers and _is_text_dtype(raw.dtype):
        lowered = raw.astype(object).map(
            lambda v: _BOOL_TEXT.get(v.strip().lower()) if isinstance(v, str) else v
        )
        wrong = ~missing & ~lowered.map(lambda v: isinstance(v, (bool, np.bool_))).to_numpy()
        problems += _wrong_type_problem(spec, raw, wrong, "a boolean")
        values = lowered.to_numpy(dtype=object)
    else:
        wrong = ~missing & ~raw.map(lambda v: isinstance(v, (bool, np.bool_))).to_numpy()
        problems += _wrong_type_problem(spec, raw, wrong, "type")
        values = raw.to_numpy(dtype=object)
    problems += _missing_problem(spec, missing)
    return _Column(values, problems)


def _check_string(raw: pd.Series, spec: ColumnSpec, text_numbers: bool) -> _Column:
    problems: list[tuple[np.ndarray, Callable[[int], str]]] = []
    missing = raw.isna().to_numpy()
    if isinstance(raw.dtype, pd.StringDtype):
        values = raw.to_numpy(dtype=object, na_value=np.nan)
    elif pd.api.types.is_object_dtype(raw.dtype):
        wrong = ~missing & ~raw.map(lambda v: isinstance(v, str)).to_numpy()
        problems += _wrong_type_problem(spec, raw, wrong, "type")
        values = raw.to_numpy(dtype=object)
    else:
        problems += _wrong_type_problem(spec, raw, ~missing, "type")
        values = raw.to_numpy(dtype=object)
    problems += _missing_problem(spec, missing)
    return _Column(values, problems)


def _check_datetime(raw: pd.Series, spec: ColumnSpec, text_numbers: bool) -> _Column:
    problems: list[tuple[np.ndarray, Callable[[int], str]]] = []
    missing = raw.isna().to_numpy()
    if pd.api.types.is_datetime64_any_dtype(raw.dtype):
        values = raw.array
    elif _is_text_dtype(raw.dtype):
        parsed = pd.to_datetime(raw, errors="coerce", format="ISO8601")
        wrong = parsed.isna().to_numpy() & ~missing
        problems += _wrong_type_problem(spec, raw, wrong, "an ISO 8601 datetime")
        values = parsed.array
    else:
        problems += _wrong_type_problem(spec, raw, ~missing, "type")
        values = pd.array([pd.NaT] * len(raw), dtype="datetime64[ns]")
    problems += _missing_problem(spec, missing)
    return _Column(values, problems)


_CHECKERS: dict[str, Callable[[pd.Series, ColumnSpec, bool], _Column]] = {
    "float": _check_number,
    "integer": _check_number,
    "boolean": _check_boolean,
    "string": _check_string,
    "datetime": _check_datetime,
}
