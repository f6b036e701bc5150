"""Column types for drift detection, inferred the way Evidently 0.7 infers them.

Evidently's rule (``evidently.core.datasets.infer_column_type``):

- float dtypes                       -> numerical
- integer dtypes, <= 10 unique values -> categorical, else numerical
- strings (``str``/``string`` dtype, or ``object`` holding ``str``):
  more unique values than half the non-null count -> text, else categorical
- ``bool`` and ``category``          -> categorical
- datetimes                          -> datetime (not tested for drift)
- anything else                      -> unknown (not tested for drift)

Four deliberate differences. Two for dtypes Evidently silently drops: unsigned
and nullable (``Int64``/``Float64``/``boolean``) dtypes are typed like their
plain counterparts instead of "unknown". And a text column whose every value
is an ISO 8601 date or time (``2024-05-01``, ``2024-05-01T12:00:00Z``) is a
datetime, as it is when the same table comes from Parquet: CSV and JSON have no
date type, so without this the verdict on a date column would depend on the
file format (tested as a category of days from a CSV, not tested from Parquet).
And a float column whose every non-missing value is a whole number is typed like
an integer column (categorical up to 10 distinct values): CSV has no nullable
integer, so an integer column with a missing value reads as float64 with NaN
from a CSV but as ``Int64`` from Parquet, and the file format would otherwise
pick the test (wasserstein from the CSV, jensenshannon from the Parquet).
This is drift's typing only: table readers still hand text to models trained
on text. Evidently infers types on the
*current* frame; Shipyard infers them once on the reference at ``fit`` (learned
state must not flip with each batch). Both agree whenever the two frames share
dtypes and the same side of the 10-unique-values and half-unique rules.

    >>> import pandas as pd
    >>> infer_column_type(pd.Series([1, 2, 3]))
    <ColumnType.CATEGORICAL: 'categorical'>
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from shipyard.errors import SchemaError

# Evidently's INTEGER_CARDINALITY_LIMIT.
INTEGER_CARDINALITY_LIMIT = 10
#: ISO 8601 dates and times, extended format only: ``20240501`` could as well be an
#: id, so digits alone never make a date.
ISO_DATETIME = (
    r"\d{4}-\d{2}-\d{2}"
    r"(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}(?::?\d{2})?)?)?"
)
_ISO_DATETIME = re.compile(ISO_DATETIME)


class ColumnType(enum.StrEnum):
    """What a column holds, which decides the statistical tests allowed on it."""

    NUMERICAL = "numerical"
    CATEGORICAL = "categorical"
    TEXT = "text"
    DATETIME = "datetime"
    UNKNOWN = "unknown"

    @property
    def testable(self) -> bool:
        """True for the two types Shipyard runs drift tests on."""
        return self in (ColumnType.NUMERICAL, ColumnType.CATEGORICAL)


def _is_string_dtype(dtype: object) -> bool:
    return isinstance(dtype, pd.StringDtype) or getattr(dtype, "name", "") in ("string", "str")


def _holds_strings(series: pd.Series) -> bool:
    # Evidently looks at the first and last non-null values only; so do we.
    values = series.dropna()
    if values.empty:
        return False
    return isinstance(values.iloc[0], str) and isinstance(values.iloc[-1], str)


def holds_iso_dates(values: pd.Series | pd.Index) -> bool:
    """Whether ``values`` has a value and every non-null one is text in ISO 8601 form
    that is a real date or time (``2024-02-30`` is not).

    Pass the distinct values when they are at hand: the check reads each once.
    """
    values = values.dropna()
    if values.empty:
        return False
    first = values[0] if isinstance(values, pd.Index) else values.iloc[0]
    # Most text columns fail on their first value, before anything is scanned.
    if not isinstance(first, str) or _ISO_DATETIME.fullmatch(first) is None:
        return False
    text = pd.Series(values, dtype=object)
    if not text.map(lambda v: isinstance(v, str)).all():
        return False
    text = text.astype(str)
    if not text.str.fullmatch(ISO_DATETIME).all():
        return False
    parsed = pd.to_datetime(text, format="ISO8601", utc=True, errors="coerce")
    return bool(parsed.notna().all())


def holds_whole_numbers(values: np.ndarray) -> bool:
    """Whether a float array (missing values already dropped) has a value and every
    one is a whole number, as an integer column read from CSV with a gap is."""
    return bool(values.size) and bool(np.all(np.isfinite(values) & (values == np.floor(values))))


def type_from_summary(
    dtype: object,
    n_unique: int,
    n_non_null: int,
    holds_strings: bool,
    holds_dates: bool = False,
    whole_numbers: bool = False,
) -> ColumnType:
    """Apply Evidently's rule to a dtype plus the two counts it needs.

    ``n_unique`` and ``n_non_null`` are pandas ``nunique()`` and ``count()``
    of the whole column (NaN excluded); ``holds_dates`` is
    :func:`holds_iso_dates` of a text column; ``whole_numbers`` is
    :func:`holds_whole_numbers` of a float column's values, which then follows
    the integer rule (its ``n_unique`` must be counted). Split out from
    :func:`infer_column_type` so a stored profile can re-derive the type.
    """
    if pd.api.types.is_bool_dtype(dtype) or isinstance(dtype, pd.CategoricalDtype):
        return ColumnType.CATEGORICAL
    if pd.api.types.is_float_dtype(dtype) and not whole_numbers:
        return ColumnType.NUMERICAL
    if pd.api.types.is_integer_dtype(dtype) or pd.api.types.is_float_dtype(dtype):
        if n_unique <= INTEGER_CARDINALITY_LIMIT:
            return ColumnType.CATEGORICAL
        return ColumnType.NUMERICAL
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return ColumnType.DATETIME
    if _is_string_dtype(dtype) or (getattr(dtype, "name", "") == "object" and holds_strings):
        if holds_dates:
            return ColumnType.DATETIME
        if n_unique > n_non_null * 0.5:
            return ColumnType.TEXT
        return ColumnType.CATEGORICAL
    return ColumnType.UNKNOWN


def infer_column_type(series: pd.Series) -> ColumnType:
    """Infer one column's type with Evidently's rule (see the module docstring)."""
    dtype = series.dtype
    holds = getattr(dtype, "name", "") == "object" and _holds_strings(series)
    whole = pd.api.types.is_float_dtype(dtype) and holds_whole_numbers(
        series.dropna().to_numpy(dtype=np.float64)
    )
    # Only integers, whole-number floats and strings need counting (and lists in
    # object columns cannot be counted at all).
    needs_counts = pd.api.types.is_integer_dtype(dtype) or _is_string_dtype(dtype) or holds or whole
    n_unique = int(series.nunique()) if needs_counts else 0
    n_non_null = int(series.count()) if needs_counts else 0
    dates = (_is_string_dtype(dtype) or holds) and holds_iso_dates(pd.Index(series.unique()))
    return type_from_summary(dtype, n_unique, n_non_null, holds, dates, whole)


def resolve_column_types(
    inferred: Mapping[str, ColumnType],
    categorical: Iterable[str] | None = None,
    numerical: Iterable[str] | None = None,
) -> dict[str, ColumnType]:
    """Apply explicit ``categorical`` / ``numerical`` overrides to inferred types.

    Overrides win over inference; naming a column in both lists, or a column
    the reference does not have, is a :class:`~shipyard.errors.SchemaError`.

        >>> resolve_column_types({"a": ColumnType.NUMERICAL}, categorical=["a"])
        {'a': <ColumnType.CATEGORICAL: 'categorical'>}
    """
    cat = list(categorical or [])
    num = list(numerical or [])
    both = sorted(set(cat) & set(num))
    if both:
        raise SchemaError(
            f"Columns {both} are listed as both categorical and numerical; list each in one only.",
            field=both[0],
        )
    missing = sorted((set(cat) | set(num)) - set(inferred))
    if missing:
        raise SchemaError(
            f"Columns {missing} were given as categorical/numerical but are not in the "
            f"reference data (it has {sorted(inferred)}).",
            field=missing[0],
            expected="a column of the reference data",
        )
    types = dict(inferred)
    types.update(dict.fromkeys(cat, ColumnType.CATEGORICAL))
    types.update(dict.fromkeys(num, ColumnType.NUMERICAL))
    return types


def split_names(value: str | Sequence[str] | None) -> list[str]:
    """Turn ``"a,b"`` or ``["a", "b"]`` into a clean list of names."""
    if value is None:
        return []
    parts = value.split(",") if isinstance(value, str) else list(value)
    return [p.strip() for p in parts if p and p.strip()]
