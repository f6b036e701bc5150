"""One side of one column, cleaned the way Evidently cleans it before testing.

Evidently replaces +-inf with NaN and drops NaN before every drift test, then
works on the remaining values. :class:`ColumnValues` holds what is left:

- ``n``: how many values there really are (drives test choice: <= 1000 or not);
- ``values``: the values themselves, or a uniform sample of them when they come
  from a bounded :class:`~shipyard.drift.profile.ReferenceProfile`;
- ``keys``/``counts``: exact value counts, when known (categorical columns, and
  numerical ones with few distinct values), so frequency-based tests stay exact
  even when ``values`` is only a sample;
- ``lo``/``hi``/``n_unique``: exact range and distinct count.

Anything not given is computed lazily from ``values``.

    >>> import numpy as np
    >>> v = ColumnValues.from_array(np.array([1.0, np.inf, np.nan, 2.0, 2.0]))
    >>> v.n, v.n_unique, v.value_counts()
    (3, 2, ([1.0, 2.0], array([1, 2])))
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from shipyard.drift.columns import ColumnType
from shipyard.errors import ROWS_SHOWN, SchemaError, rows_text


def to_key(value: Any) -> Any:
    """A plain, hashable, JSON-friendly Python value for a category."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, str | bool | int | float):
        return value
    return str(value)


def _not_numbers(series: pd.Series, column: str, side: str) -> SchemaError:
    """The error for a numerical column holding values that are not numbers, naming the
    first such rows (0-based positions) and the first value: a stray ``abc`` in a CSV
    makes the whole column text, so the dtype alone would not say where to look."""
    present = series.notna().to_numpy()
    # One value at a time: this is the error path, and lists or dicts must not raise here.
    number = np.array([_is_number(v) for v in series.astype(object).tolist()], dtype=bool)
    bad = np.flatnonzero(present & ~number)
    if not len(bad):  # numbers, all written as text
        bad = np.flatnonzero(present)
        what = "numbers written as text"
    else:
        what = "values that are not numbers"
    if not len(bad):
        return SchemaError(
            f"Column '{column}' in the {side} data has dtype {series.dtype}, but it is "
            "numerical: expected numbers.",
            field=column,
            expected="numeric values",
        )
    first = series.iloc[int(bad[0])]
    return SchemaError(
        f"Column '{column}' in the {side} data is numerical but holds {what}: "
        f"{first!r} at {rows_text(bad.tolist())}. Fix those rows, or declare the "
        "column categorical if it holds categories.",
        field=column,
        expected="numeric values",
        rows=[int(r) for r in bad[:ROWS_SHOWN]],
    )


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def _numeric_array(series: pd.Series, column: str, side: str) -> np.ndarray:
    if not (pd.api.types.is_numeric_dtype(series.dtype) or series.dtype == object):
        raise _not_numbers(series, column, side)
    if pd.api.types.is_bool_dtype(series.dtype):
        return series.to_numpy(dtype=np.int64)
    if pd.api.types.is_integer_dtype(series.dtype) and not series.hasnans:
        return series.to_numpy(dtype=np.int64)
    try:
        return series.to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError) as exc:
        raise _not_numbers(series, column, side) from exc


@dataclass(frozen=True, eq=False)
class ColumnValues:
    """Cleaned values of one column on one side (reference or current)."""

    n: int
    values: np.ndarray | None = None
    keys: list[Any] | None = None
    counts: np.ndarray | None = None
    lo: Any = None
    hi: Any = None
    unique: int | None = None
    integer: bool = False
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    # -- constructors ---------------------------------------------------------

    @classmethod
    def from_array(cls, array: np.ndarray) -> ColumnValues:
        """Numerical values: drop NaN and +-inf, keep the integer dtype if any."""
        array = np.asarray(array)
        if array.dtype.kind == "f":
            finite = np.isfinite(array)
            if not finite.all():  # copy only when something must go
                array = array[finite]
        elif array.dtype.kind == "b":
            array = array.astype(np.int64)
        elif array.dtype.kind not in "iu":
            raise TypeError(f"expected a numeric array, got dtype {array.dtype}")
        return cls(n=int(array.size), values=array, integer=array.dtype.kind in "iu")

    @classmethod
    def from_counts(cls, keys: list[Any], counts: np.ndarray) -> ColumnValues:
        """Categorical values given as exact value counts (zero counts dropped)."""
        counts = np.asarray(counts, dtype=np.int64)
        keep = counts > 0
        kept = [k for k, ok in zip(keys, keep, strict=True) if ok]
        return cls(n=int(counts[keep].sum()), keys=kept, counts=counts[keep], unique=len(kept))

    @classmethod
    def from_series(
        cls, series: pd.Series, column_type: ColumnType, *, column: str = "", side: str = ""
    ) -> ColumnValues:
        """Clean a pandas column as Evidently does and wrap it.

        Numerical columns become a numeric array; categorical ones become value
        counts (computed by pandas, which is fast on Arrow-backed strings).
        """
        if column_type is ColumnType.NUMERICAL:
            return cls.from_array(_numeric_array(series, column or str(series.name), side))
        if pd.api.types.is_float_dtype(series.dtype):
            series = series[np.isfinite(series.to_numpy(dtype=np.float64, na_value=np.nan))]
        counts = series.value_counts(dropna=True, sort=False)
        return cls.from_counts([to_key(k) for k in counts.index.tolist()], counts.to_numpy())

    # -- lazily derived facts -------------------------------------------------

    def require_values(self) -> np.ndarray:
        """The raw values; tests on distributions (KS, Wasserstein) need them."""
        if self.values is None:
            raise TypeError("this test needs the values themselves, not only their counts")
        return self.values

    def sorted_values(self) -> np.ndarray:
        """The values as sorted float64, computed once (tests on CDFs need them)."""
        if "sorted" not in self._cache:
            self._cache["sorted"] = np.sort(self.require_values().astype(np.float64, copy=False))
        return self._cache["sorted"]

    def value_counts(self) -> tuple[list[Any], np.ndarray]:
        """Distinct values and how often each occurs (exact if ``keys`` were given)."""
        if self.keys is not None and self.counts is not None:
            return self.keys, self.counts
        if "vc" not in self._cache:
            values = self.require_values()
            uniq, counts = np.unique(values, return_counts=True)
            self._cache["vc"] = ([to_key(k) for k in uniq.tolist()], counts)
        return self._cache["vc"]

    def distinct(self) -> np.ndarray:
        """Sorted distinct numeric values (from ``keys`` when they are exact)."""
        if "distinct" not in self._cache:
            if self.keys is not None:
                self._cache["distinct"] = np.sort(np.asarray(self.keys))
            else:
                self._cache["distinct"] = np.unique(self.require_values())
        return self._cache["distinct"]

    @property
    def n_unique(self) -> int:
        """Number of distinct values (exact when given, else counted)."""
        if self.unique is not None:
            return self.unique
        if self.keys is not None:
            return len(self.keys)
        return int(self.distinct().size)

    @property
    def min(self) -> Any:
        """Exact minimum of a numerical column."""
        return self.lo if self.lo is not None else self.require_values().min()

    @property
    def max(self) -> Any:
        """Exact maximum of a numerical column."""
        return self.hi if self.hi is not None else self.require_values().max()


def union_n_unique(reference: ColumnValues, current: ColumnValues, *, enough: int = 5) -> int:
    """Distinct values over both sides, as ``pd.concat([ref, cur]).nunique()``.

    Only counted exactly when the reference alone has at most ``enough`` distinct
    values; otherwise the reference count is returned, which is already above
    every cut-off the default test choice uses (2 and 5).
    """
    if reference.n_unique > enough:
        return reference.n_unique
    ref_keys = reference.value_counts()[0]
    cur_keys = current.value_counts()[0]
    return len(set(ref_keys) | set(cur_keys))


def as_values(data: ColumnValues | np.ndarray | pd.Series | list[Any]) -> ColumnValues:
    """Accept raw arrays in the public test functions, as Evidently does."""
    if isinstance(data, ColumnValues):
        return data
    series = data if isinstance(data, pd.Series) else pd.Series(np.asarray(data))
    if pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype):
        return ColumnValues.from_array(series.to_numpy())
    return ColumnValues.from_series(series, ColumnType.CATEGORICAL)
