"""A DataFrame as JSON lines that read back to the same values (``data get --output x.jsonl``).

pandas' ``to_json`` is not lossless: it keeps at most 15 significant digits of a
float (``0.30000000000000004`` becomes ``0.3``), cuts times to milliseconds and
rewrites zone-aware times as UTC ``Z``. Here every value is written as itself:

- floats as Python's shortest round-trip ``repr`` (``0.30000000000000004``,
  ``1.0``, ``1e-07``); float32 as NumPy's shortest repr of the float32; NaN as
  ``null``, infinities as ``Infinity`` / ``-Infinity`` (what Python's ``json``
  writes and reads, and pandas' ``read_json`` reads);
- times as ISO 8601 with as many fractional digits as the column needs (up to
  nanoseconds), a zone-aware time with its own UTC offset
  (``2024-05-01T10:00:00.123456+02:00``), a naive one without any;
- missing values of any type (None, NaN, NaT, NA) as ``null``.

The work is done a column at a time (one format call per value at most, in C
where NumPy or the ``json`` module has one), then joined into lines: about 0.1 µs
a value, never a Python loop over rows that builds a dict per row.

>>> import pandas as pd
>>> frame_lines(pd.DataFrame({"x": [0.1 + 0.2], "s": ["a"]}))
'{"x":0.30000000000000004,"s":"a"}\\n'
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import math
from collections.abc import Iterator
from itertools import repeat
from json.encoder import encode_basestring
from typing import Any, cast

import numpy as np
import pandas as pd

_NULL = "null"
#: Nanoseconds in each unit a pandas time column may have.
_TICK_NS = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}


def frame_lines(frame: pd.DataFrame) -> str:
    """The frame's rows as JSON lines, one object per row, keys in column order."""
    if not len(frame):
        return ""
    if not len(frame.columns):
        return "{}\n" * len(frame)
    parts: list[Iterator[str] | list[str]] = []
    for i in range(len(frame.columns)):
        name = encode_basestring(str(frame.columns[i]))
        parts.append(repeat(("{" if i == 0 else ",") + name + ":"))
        parts.append(column_values(frame.iloc[:, i]))
    parts.append(repeat("}\n"))
    # zip stops at the shortest: the columns' value lists (the prefixes repeat forever).
    return "".join(map("".join, zip(*parts, strict=False)))


def column_values(series: pd.Series) -> list[str]:
    """Each value of ``series`` as JSON text."""
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        codes = series.cat.codes.to_numpy()
        texts = np.array([*column_values(pd.Series(dtype.categories)), _NULL], dtype=object)
        return list(texts[codes])  # code -1 (missing) picks the last one: null
    if isinstance(dtype, pd.DatetimeTZDtype):
        return _zoned_times(series)
    if isinstance(dtype, np.dtype):
        if dtype.kind == "b":
            return np.where(series.to_numpy(), "true", "false").tolist()
        if dtype.kind in "iu":
            return list(map(str, series.to_numpy().tolist()))
        if dtype.kind == "f":
            return _floats(series.to_numpy())
        if dtype.kind == "M":
            return _times(series.to_numpy())
    # Nullable and Arrow-backed types, text, objects: as Python values, nulls masked.
    missing = series.isna().to_numpy(dtype=bool)
    values = series.to_numpy(dtype=object)
    out = list(map(_value, values))
    for i in np.flatnonzero(missing):
        out[i] = _NULL
    return out


def _floats(values: np.ndarray) -> list[str]:
    if values.dtype == np.float64:
        out = list(map(float.__repr__, values.tolist()))
    else:
        # float32 / float16: the shortest digits that read back to the same float32,
        # not the long decimal of its float64 widening (0.1, not 0.10000000149011612),
        # in Python's notation (16777216.0, not NumPy's 1.6777216e+07).
        out = list(map(float.__repr__, map(float, values.astype(str).tolist())))
    for i in np.flatnonzero(~np.isfinite(values)):
        out[i] = _float(float(values[i]))
    return out


def _float(value: float) -> str:
    if math.isnan(value):
        return _NULL
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return repr(value)


def _unit(values: np.ndarray, missing: np.ndarray) -> str:
    """The coarsest unit that writes every time of ``values`` exactly (``s`` to ``ns``,
    never finer than the column's own), computed on its own ticks (no conversion
    to nanoseconds, which would overflow before 1677 or after 2262)."""
    native = np.datetime_data(values.dtype)[0]
    if native not in _TICK_NS:
        return str(native)
    ticks = values.view(np.int64)[~missing]
    for unit in ("s", "ms", "us"):
        step = _TICK_NS[unit] // _TICK_NS[native]
        if step < 1:
            break
        if not np.any(ticks % step):
            return unit
    return str(native)


def _times(values: np.ndarray) -> list[str]:
    """Naive times (``datetime64``) as ISO 8601 without an offset, NaT as null."""
    missing = np.isnat(values)
    unit = _unit(values, missing)
    texts = np.datetime_as_string(values, unit=cast(Any, unit)).astype(object)
    out: list[str] = [f'"{t}"' for t in texts.tolist()]
    for i in np.flatnonzero(missing):
        out[i] = _NULL
    return out


def _zoned_times(series: pd.Series) -> list[str]:
    """Zone-aware times as their wall-clock time and their own UTC offset
    (``2024-05-01T10:00:00.123456+02:00``), never converted to UTC."""
    wall = series.dt.tz_localize(None).to_numpy()
    utc = series.dt.tz_convert(None).to_numpy()
    missing = np.isnat(wall)
    unit = _unit(wall, missing)
    texts = np.datetime_as_string(wall, unit=cast(Any, unit)).astype(object)
    # A zone has few offsets (two for daylight saving time): format each once.
    per_second = _TICK_NS["s"] // _TICK_NS[np.datetime_data(wall.dtype)[0]]
    seconds = (wall.view(np.int64) - utc.view(np.int64)) // per_second
    seconds[missing] = 0
    offsets, which = np.unique(seconds, return_inverse=True)
    suffix = np.array([_offset(int(s)) for s in offsets], dtype=object)[which.ravel()]
    out: list[str] = [f'"{t}{s}"' for t, s in zip(texts.tolist(), suffix.tolist(), strict=True)]
    for i in np.flatnonzero(missing):
        out[i] = _NULL
    return out


def _offset(seconds: int) -> str:
    sign = "-" if seconds < 0 else "+"
    hours, rest = divmod(abs(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{sign}{hours:02d}:{minutes:02d}" + (f":{secs:02d}" if secs else "")


def _value(value: Any) -> str:
    """One Python value as JSON text (object, text and nullable columns)."""
    if isinstance(value, str):
        return encode_basestring(value)
    if value is None or value is pd.NA or value is pd.NaT:
        return _NULL
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        if isinstance(value, np.floating) and not isinstance(value, np.float64):
            return _NULL if np.isnan(value) else str(value)
        return _float(float(value))
    if isinstance(value, decimal.Decimal):
        # A decimal's digits as a JSON number, not rounded through a float.
        return str(value) if value.is_finite() else _NULL
    if isinstance(value, pd.Timestamp | pd.Timedelta):
        return _NULL if pd.isna(value) else f'"{value.isoformat()}"'
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return f'"{value.isoformat()}"'
    if isinstance(value, np.datetime64 | np.timedelta64):
        return _value(
            pd.Timestamp(value) if isinstance(value, np.datetime64) else pd.Timedelta(value)
        )
    if isinstance(value, bytes):
        return encode_basestring(value.decode("utf-8", "backslashreplace"))
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, list | tuple):
        return "[" + ",".join(map(_value, value)) + "]"
    if isinstance(value, dict):
        return (
            "{"
            + ",".join(f"{encode_basestring(str(k))}:{_value(v)}" for k, v in value.items())
            + "}"
        )
    return json.dumps(value, default=str, ensure_ascii=False)


__all__ = ["column_values", "frame_lines"]
