"""Model signatures: what a model takes and what it returns, checked at the boundary.

A :class:`Signature` is inferred once from a training sample and stored in the
package manifest. At predict time :meth:`Signature.coerce` turns whatever the
caller sent (a DataFrame, one record, a list of records, a 2-D array) into a
DataFrame with the columns in signature order and the right dtypes, or raises
one :class:`~shipyard.errors.SchemaError` naming the column, the expected type
and the offending rows. Everything after that trusts its input.

Rules, stated once:

- Extra columns are dropped: clients often send ids or timestamps alongside
  the features, and a model only ever sees the columns it was trained on.
- ``None``/``NaN`` are *missing*; they are allowed only in columns whose
  sample had missing values, or where the fitted model shows it fills them
  (``nullable``, see :meth:`Signature.widened`). Infinity is never allowed.
- A column the fitted model provably never reads (``unused``: a by-name
  ``ColumnTransformer`` with ``remainder="drop"`` leaves it out) may be missing
  or absent; an absent one is passed on as missing values of its dtype, since a
  ``ColumnTransformer`` fitted on a DataFrame still looks the column up.
- Numbers are not strings and strings are not numbers: ``"5.1"`` in a float
  column is an error, not a silent conversion. Booleans are not numbers either.
- ``minimum``/``maximum``/``categories`` describe the sample (text
  ``categories`` also list what the model's encoders know; monitoring and
  drift read them); they are not enforced here, because a value the sample
  merely did not contain is not an error.
- The exception: a pandas ``category`` column (``categorical``), which boosters
  such as LightGBM and XGBoost split on by category code. Its ``categories`` are
  the training dtype's, in their order; input values (strings from JSON or CSV,
  or a ``category`` column with the same or other categories) become a column of
  that very dtype, so every category keeps its code, and a value outside it is
  an error naming the column and the categories, since the dtype cannot hold it.

Example:
    >>> import pandas as pd
    >>> sig = infer_signature(pd.DataFrame({"sepal_length": [5.1, 4.9], "petal_width": [0.2, 1.3]}))
    >>> sig.coerce({"sepal_length": 5.0, "petal_width": 0.4, "id": 7}).columns.tolist()
    ['sepal_length', 'petal_width']
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from functools import cached_property
from typing import Any, Literal, cast, get_args

import numpy as np
import pandas as pd

from shipyard.errors import InvalidInputError, SchemaError, rows_text

DType = Literal["float", "integer", "boolean", "string", "datetime"]
Task = Literal["classification", "regression", "other"]

DTYPES: tuple[str, ...] = get_args(DType)
TASKS: tuple[str, ...] = get_args(Task)
MAX_CATEGORIES = 20
_ARTICLE = {"float": "a float", "integer": "an integer", "boolean": "a boolean"}
_NUMERIC: frozenset[str] = frozenset({"float", "integer", "boolean"})
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
#: Integers up to this size convert to float exactly (and never overflow).
_FLOAT_EXACT_INT = 2**53


def _expected(dtype: str) -> str:
    return _ARTICLE.get(dtype, f"a {dtype}")


def _py(value: Any) -> Any:
    """A numpy scalar as the plain Python value JSON understands."""
    return value.item() if isinstance(value, np.generic) else value


@dataclass(frozen=True)
class ColumnSpec:
    """One input column: its name, type, and what the sample showed.

    Example:
        >>> ColumnSpec("petal_width", "float", minimum=0.1, maximum=2.5).dtype
        'float'
    """

    name: str
    dtype: DType
    nullable: bool = False
    minimum: float | None = None
    maximum: float | None = None
    categories: tuple[Any, ...] | None = None
    #: A pandas ``category`` column: ``categories`` are its dtype's, in order, and
    #: inputs are converted to that dtype (see the module's rules).
    categorical: bool = False
    #: The fitted model provably never reads this column (a by-name
    #: ``ColumnTransformer`` with ``remainder="drop"`` leaves it out): it is nullable
    #: and may be absent from the input, which then gets it as missing values.
    unused: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise InvalidInputError(f"Column names must be non-empty strings, got {self.name!r}.")
        if self.dtype not in DTYPES:
            raise InvalidInputError(
                f"Column {self.name!r} has dtype {self.dtype!r}; expected one of {DTYPES}."
            )
        if self.categorical and not self.categories:
            raise InvalidInputError(f"Column {self.name!r} is categorical but lists no categories.")

    @cached_property
    def pandas_dtype(self) -> pd.CategoricalDtype | None:
        """The training ``category`` dtype of a categorical column (None otherwise)."""
        if not self.categorical:
            return None
        return pd.CategoricalDtype(list(self.categories or ()))


@dataclass(frozen=True)
class OutputSpec:
    """What ``predict`` returns: the task, the value type, the classes if any.

    Example:
        >>> OutputSpec("classification", "integer", classes=(0, 1, 2)).names
        ('prediction',)
    """

    task: Task
    dtype: DType
    classes: tuple[Any, ...] | None = None
    names: tuple[str, ...] = ("prediction",)

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise InvalidInputError(f"Output task {self.task!r} is not one of {TASKS}.")
        if self.dtype not in DTYPES:
            raise InvalidInputError(f"Output dtype {self.dtype!r} is not one of {DTYPES}.")


# -- per-column converters ----------------------------------------------------------------
#
# A converter takes one raw column (a Series, a 1-D ndarray or a list) and returns a 1-D
# array of the column's dtype, raising SchemaError on the first rule it breaks. Typed
# arrays take vectorised fast paths; Python lists (JSON bodies) take one strict loop.


class _Converter:
    def __init__(self, spec: ColumnSpec, others: str) -> None:
        self.spec = spec
        self.others = others  # "sepal_length (float), ..." for messages

    def __call__(self, values: Any) -> Any:
        raise NotImplementedError

    def scalar(self, value: Any) -> Any:
        """Convert one value of a single record (the per-request hot path)."""
        return self([value])[0]

    # -- errors --
    def wrong_type(self, values: Sequence[Any], rows: list[int]) -> SchemaError:
        spec = self.spec
        first = values[rows[0]]
        return SchemaError(
            f"Column {spec.name!r} expects {_expected(spec.dtype)}, got "
            f"{type(first).__name__} {_short(first)} at {rows_text(rows)}.",
            field=spec.name,
            expected=spec.dtype,
            rows=rows,
        )

    def out_of_range(self, values: Sequence[Any], rows: list[int], expected: str) -> SchemaError:
        spec = self.spec
        return SchemaError(
            f"Column {spec.name!r} has {_short(values[rows[0]])} at {rows_text(rows)}, which "
            f"is out of range: expected {expected}.",
            field=spec.name,
            expected=spec.dtype,
            rows=rows,
        )

    def check_nulls(self, mask: np.ndarray) -> None:
        if not self.spec.nullable and mask.any():
            rows = np.flatnonzero(mask).tolist()
            raise SchemaError(
                f"Column {self.spec.name!r} has missing values (None/NaN) at "
                f"{rows_text(rows)}; expected {_expected(self.spec.dtype)}. The training "
                "sample had no missing values there, so the model may not handle them.",
                field=self.spec.name,
                expected=self.spec.dtype,
                rows=rows,
            )


class _FloatConverter(_Converter):
    def __call__(self, values: Any) -> np.ndarray:
        arr = _numeric_array(values)
        if arr is None:
            items = _as_list(values)
            arr = np.empty(len(items), dtype=np.float64)
            bad: list[int] = []
            huge: list[int] = []
            for i, v in enumerate(items):
                t = type(v)
                try:
                    if t is float or t is int:
                        arr[i] = v
                    elif v is None or v is pd.NA:
                        arr[i] = np.nan
                    elif isinstance(v, (float, int, np.floating, np.integer)) and not isinstance(
                        v, (bool, np.bool_)
                    ):
                        arr[i] = v
                    else:
                        bad.append(i)
                except OverflowError:  # an integer beyond the largest float (1.8e308)
                    huge.append(i)
            if bad:
                raise self.wrong_type(items, bad)
            if huge:
                raise self.out_of_range(items, huge, "a finite float (at most about 1.8e308)")
        finite = np.isfinite(arr)
        if not finite.all():
            self.check_nulls(np.isnan(arr))
            inf = np.isinf(arr)
            if inf.any():
                rows = np.flatnonzero(inf).tolist()
                raise SchemaError(
                    f"Column {self.spec.name!r} has infinity at {rows_text(rows)}; "
                    "expected a finite float.",
                    field=self.spec.name,
                    expected="float",
                    rows=rows,
                )
        return arr

    def scalar(self, value: Any) -> float:
        t = type(value)
        if t is float and math.isfinite(value):
            return float(value)
        if t is int and -_FLOAT_EXACT_INT <= value <= _FLOAT_EXACT_INT:
            return float(value)
        return float(self([value])[0])


class _IntegerConverter(_Converter):
    """Integers stay int64; a nullable column with a missing value becomes float64 + NaN.

    Values outside the int64 range are refused: converting them would wrap around.
    """

    def __call__(self, values: Any) -> np.ndarray:
        arr = _numeric_array(values, keep_int=True)
        if arr is not None and arr.dtype.kind in "iu":
            if arr.dtype.kind == "u" and arr.size and arr.max() > _INT64_MAX:
                rows = np.flatnonzero(arr > _INT64_MAX).tolist()
                raise self.out_of_range(arr.tolist(), rows, "a 64-bit integer")
            return arr.astype(np.int64, copy=False)
        if arr is None:
            items = _as_list(values)
            bad: list[int] = []
            huge: list[int] = []
            exact = True  # only integers: build int64 directly, without a float round trip
            for i, v in enumerate(items):
                if v is None or v is pd.NA:
                    exact = False
                elif isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)):
                    if not _INT64_MIN <= v <= _INT64_MAX:
                        huge.append(i)
                elif isinstance(v, (float, np.floating)) and (
                    math.isnan(v) or float(v).is_integer()
                ):
                    exact = False  # 3.0 from a JSON client is the integer 3
                else:
                    bad.append(i)
            if bad:
                raise self.wrong_type(items, bad)
            if huge:
                raise self.out_of_range(items, huge, "a 64-bit integer")
            if exact:
                return np.array(items, dtype=np.int64)
            arr = np.array(
                [np.nan if v is None or v is pd.NA else float(v) for v in items], dtype=np.float64
            )
        nan = np.isnan(arr)
        self.check_nulls(nan)
        fractional = ~nan & (np.isinf(arr) | (arr != np.round(arr)))
        if fractional.any():
            rows = np.flatnonzero(fractional).tolist()
            raise self.wrong_type(arr.tolist(), rows)
        # 2**63 itself is a float64 but not an int64; -2**63 is both.
        huge_rows = ~nan & ((arr >= 2.0**63) | (arr < -(2.0**63)))
        if huge_rows.any():
            rows = np.flatnonzero(huge_rows).tolist()
            raise self.out_of_range(arr.tolist(), rows, "a 64-bit integer")
        return arr if nan.any() else arr.astype(np.int64)

    def scalar(self, value: Any) -> int | float:
        if type(value) is int and _INT64_MIN <= value <= _INT64_MAX:
            return value
        return _py(self([value])[0])


class _BooleanConverter(_Converter):
    """Only real booleans; a nullable column with a missing value becomes pandas 'boolean'."""

    def __call__(self, values: Any) -> Any:
        if isinstance(values, (pd.Series, np.ndarray)) and values.dtype == np.bool_:
            return np.asarray(values)
        items = _as_list(values)
        nulls = np.zeros(len(items), dtype=bool)
        bad: list[int] = []
        for i, v in enumerate(items):
            if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
                nulls[i] = True
            elif not isinstance(v, (bool, np.bool_)):
                bad.append(i)
        if bad:
            raise self.wrong_type(items, bad)
        self.check_nulls(nulls)
        if nulls.any():
            return pd.array(
                [None if n else bool(v) for v, n in zip(items, nulls, strict=True)], "boolean"
            )
        return np.array(items, dtype=bool)


class _StringConverter(_Converter):
    """Only real strings; missing values become NaN as in a pandas string column."""

    def __call__(self, values: Any) -> np.ndarray:
        if isinstance(values, pd.Series) and isinstance(values.dtype, pd.StringDtype):
            self.check_nulls(values.isna().to_numpy())
            return values.to_numpy(dtype=object, na_value=np.nan)
        items = _as_list(values)
        out = np.empty(len(items), dtype=object)
        nulls = np.zeros(len(items), dtype=bool)
        bad: list[int] = []
        for i, v in enumerate(items):
            if isinstance(v, str):
                out[i] = v
            elif v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
                out[i] = np.nan
                nulls[i] = True
            else:
                bad.append(i)
        if bad:
            raise self.wrong_type(items, bad)
        self.check_nulls(nulls)
        return out


class _DatetimeConverter(_Converter):
    """Datetimes, or ISO 8601 strings (JSON has no datetime type)."""

    def __call__(self, values: Any) -> Any:
        if isinstance(values, pd.Series) and pd.api.types.is_datetime64_any_dtype(values):
            self.check_nulls(values.isna().to_numpy())
            return values.array
        items = _as_list(values)
        bad = [
            i
            for i, v in enumerate(items)
            if not (
                v is None
                or v is pd.NaT
                or v is pd.NA
                or isinstance(v, (str, datetime, date, np.datetime64))
                or (isinstance(v, float) and math.isnan(v))
            )
        ]
        if bad:
            raise self.wrong_type(items, bad)
        nulls = np.array([v is None or v is pd.NaT or v is pd.NA or v != v for v in items])
        self.check_nulls(nulls)
        parsed = []
        for i, v in enumerate(items):
            try:
                parsed.append(pd.NaT if nulls[i] else pd.Timestamp(v))
            except (ValueError, TypeError) as exc:
                raise self.wrong_type(items, [i]) from exc
        try:
            return pd.DatetimeIndex(parsed).array
        except (ValueError, TypeError) as exc:  # e.g. mixed time zones
            raise SchemaError(
                f"Column {self.spec.name!r} mixes time zones ({exc}); send every value in one "
                "time zone, or all without one.",
                field=self.spec.name,
                expected="datetime",
            ) from exc


class _CategoricalConverter(_Converter):
    """The column's own type first, then the training ``category`` dtype, categories in order.

    A value outside the categories is refused: the dtype has no code for it, and
    pandas would silently turn it into a missing value.
    """

    def __init__(self, spec: ColumnSpec, others: str) -> None:
        super().__init__(spec, others)
        self.inner = _CONVERTERS[spec.dtype](spec, others)
        self.dtype = spec.pandas_dtype

    def __call__(self, values: Any) -> pd.Categorical:
        if isinstance(values, pd.Series) and isinstance(values.dtype, pd.CategoricalDtype):
            if same_categories(values.dtype, self.dtype):
                self.check_nulls(values.isna().to_numpy())
                return values.array
            values = pd.Series(np.asarray(values), index=values.index)  # re-encode by value
        plain = self.inner(values)
        encoded, unknown = encode_categories(self.spec, plain)
        if unknown.any():
            rows = np.flatnonzero(unknown).tolist()
            first = plain[rows[0]]
            raise SchemaError(
                f"Column {self.spec.name!r} has {_short(_py(first))} at {rows_text(rows)}, "
                f"which is not one of the categories the model was trained with: "
                f"{list(self.spec.categories or ())}.",
                field=self.spec.name,
                expected=f"one of {list(self.spec.categories or ())}",
                rows=rows,
            )
        return encoded


def same_categories(dtype: Any, other: pd.CategoricalDtype | None) -> bool:
    """Whether ``dtype`` is a category dtype with exactly ``other``'s categories, in order.

    pandas calls two unordered category dtypes equal when they hold the same
    categories in *any* order (and ``astype`` between them keeps the old order),
    but a booster reads a category's position: here order counts.
    """
    return (
        isinstance(dtype, pd.CategoricalDtype)
        and other is not None
        and dtype.categories.equals(other.categories)
    )


def encode_categories(spec: ColumnSpec, values: Any) -> tuple[pd.Categorical, np.ndarray]:
    """``values`` as ``spec``'s training category dtype, and the mask of values outside it.

    Values are matched by value, so every category keeps its training code whatever
    order the input's own categories were in. Outside values become missing in the
    result; the mask says where, so that callers refuse them.

    >>> spec = ColumnSpec("band", "string", categories=("low", "mid", "high"), categorical=True)
    >>> cat, unknown = encode_categories(spec, np.array(["high", "huge", None], dtype=object))
    >>> cat.codes.tolist(), unknown.tolist()
    ([2, -1, -1], [False, True, False])
    """
    dtype = spec.pandas_dtype
    assert dtype is not None, "encode_categories takes a categorical column"
    codes = dtype.categories.get_indexer(values)
    unknown = (codes < 0) & ~pd.isna(values)
    codes[unknown] = -1
    return pd.Categorical.from_codes(codes, dtype=dtype), np.asarray(unknown)


_CONVERTERS: dict[str, type[_Converter]] = {
    "float": _FloatConverter,
    "integer": _IntegerConverter,
    "boolean": _BooleanConverter,
    "string": _StringConverter,
    "datetime": _DatetimeConverter,
}


def _numeric_array(values: Any, *, keep_int: bool = False) -> np.ndarray | None:
    """A float64 (or int) view of an already-typed numeric column, else None (slow path)."""
    if isinstance(values, pd.Series):
        dtype = values.dtype
        if pd.api.types.is_bool_dtype(dtype) or not pd.api.types.is_numeric_dtype(dtype):
            return None
        if keep_int and dtype.kind in "iu":
            return values.to_numpy()
        return values.to_numpy(dtype=np.float64, na_value=np.nan)
    if isinstance(values, np.ndarray) and values.dtype.kind in "iuf":
        if keep_int and values.dtype.kind in "iu":
            return values
        return values.astype(np.float64, copy=False)
    return None


def _as_list(values: Any) -> list[Any]:
    if isinstance(values, list):
        return values
    if isinstance(values, pd.Series):
        return values.tolist()
    return list(values)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# -- the signature ------------------------------------------------------------------------

_MISSING = object()


class ColumnBatch:
    """Validated rows as one array per input column, in signature order.

    What :meth:`Signature.coerce_columns` returns: the arrays :meth:`Signature.coerce`
    puts into its DataFrame, without building it. A model fed one named input per
    column (the ONNX graph of a ``ColumnTransformer`` pipeline) takes them as they
    are; building a one-row DataFrame per request cost more than the rest of the
    request. :meth:`frame` is the DataFrame ``coerce`` would have returned.
    """

    __slots__ = ("columns", "rows")

    def __init__(self, columns: dict[str, np.ndarray], rows: int) -> None:
        self.columns = columns
        self.rows = rows

    def __len__(self) -> int:
        return self.rows

    def frame(self) -> pd.DataFrame:
        """The DataFrame of these rows, as :meth:`Signature.coerce` builds it."""
        return pd.DataFrame(self.columns, index=pd.RangeIndex(self.rows), copy=False)

    @classmethod
    def concat(cls, parts: Sequence[ColumnBatch]) -> ColumnBatch:
        """The rows of ``parts`` one after the other (same columns)."""
        if len(parts) == 1:
            return parts[0]
        names = parts[0].columns
        return cls(
            {name: np.concatenate([p.columns[name] for p in parts]) for name in names},
            sum(p.rows for p in parts),
        )


@dataclass(frozen=True)
class InputFacts:
    """What a fitted model shows it handles at one input column, beyond its sample.

    A sample of a few rows may hold no missing value and only some categories of a
    column the model was fitted on in full. ``nullable``: the model fills or encodes
    missing values there (an imputer, an encoder that learnt a missing category);
    ``categories``: the non-missing values an encoder of that column knows (None:
    nothing known); ``unused``: the model provably never reads the column. See
    :meth:`Signature.widened`.

    Example:
        >>> InputFacts(nullable=True, categories=("basic", "pro")).nullable
        True
    """

    nullable: bool = False
    categories: tuple[Any, ...] | None = None
    unused: bool = False


def union_categories(
    seen: tuple[Any, ...] | None, known: tuple[Any, ...] | None
) -> tuple[Any, ...] | None:
    """The sorted union of two string category lists; None (no fixed set) past the limit.

    ``seen`` None means the column already has no fixed set (more than
    ``MAX_CATEGORIES`` distinct values), which ``known`` cannot narrow. The limit is
    the one inference uses: a column with more distinct values has no categories.

    >>> union_categories(("basic", "pro"), ("enterprise", "pro"))
    ('basic', 'enterprise', 'pro')
    """
    if seen is None or known is None:
        return seen
    both = set(seen) | set(known)
    return tuple(sorted(both)) if len(both) <= MAX_CATEGORIES else None


@dataclass(frozen=True)
class Signature:
    """The inputs a model takes and the output it returns.

    Converters are built once here so that :meth:`coerce` only converts.

    Example:
        >>> sig = Signature((ColumnSpec("x", "float"),), OutputSpec("regression", "float"))
        >>> sig.coerce_array([{"x": 1.5}]).tolist()
        [[1.5]]
    """

    inputs: tuple[ColumnSpec, ...]
    output: OutputSpec
    _converters: tuple[_Converter, ...] = field(init=False, repr=False, compare=False)
    _all_float: bool = field(init=False, repr=False, compare=False)
    _names: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "inputs", tuple(self.inputs))
        if not self.inputs:
            raise InvalidInputError("A signature needs at least one input column.")
        names = [c.name for c in self.inputs]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise InvalidInputError(f"Signature lists columns more than once: {dupes}.")
        described = self.describe()
        converters = tuple(
            (_CategoricalConverter if c.categorical else _CONVERTERS[c.dtype])(c, described)
            for c in self.inputs
        )
        object.__setattr__(self, "_converters", converters)
        object.__setattr__(self, "_all_float", all(c.dtype == "float" for c in self.inputs))
        object.__setattr__(self, "_names", tuple(names))

    # -- description --
    @property
    def names(self) -> tuple[str, ...]:
        """Input column names, in order."""
        return self._names

    @property
    def is_numeric(self) -> bool:
        """True when every input is a float, integer or boolean (see :meth:`coerce_array`).

        A categorical column is not numeric, even with integer categories: it must
        reach the model as a ``category`` column.
        """
        return all(c.dtype in _NUMERIC and not c.categorical for c in self.inputs)

    def describe(self) -> str:
        """``"sepal_length (float), sepal_width (float), ..."`` for messages."""
        return ", ".join(f"{c.name} ({c.dtype})" for c in self.inputs)

    def widened(self, facts: Mapping[str, InputFacts]) -> Signature:
        """This signature, widened to what the fitted model shows it handles.

        A column becomes nullable where the model fills or encodes missing values;
        a text column's categories gain the ones the model's encoder knows (past
        ``MAX_CATEGORIES`` the column has no fixed set, as inference decides). Only
        plain text columns take categories, and only text ones; a pandas ``category``
        column keeps its training dtype. A column the model never reads becomes
        ``unused``: nullable, and optional in the input. Nothing is ever narrowed.
        """
        inputs = []
        for spec in self.inputs:
            fact = facts.get(spec.name)
            if fact is None:
                inputs.append(spec)
                continue
            categories = spec.categories
            known = fact.categories
            if (
                spec.dtype == "string"
                and not spec.categorical
                and known is not None
                and all(isinstance(v, str) for v in known)
            ):
                categories = union_categories(spec.categories, known)
            inputs.append(
                replace(
                    spec,
                    nullable=spec.nullable or fact.nullable or fact.unused,
                    categories=categories,
                    unused=spec.unused or fact.unused,
                )
            )
        return Signature(tuple(inputs), self.output)

    def with_category_dtypes(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``frame`` with its categorical columns as the training ``category`` dtypes.

        Values are matched by value (a category column listing its categories in
        another order keeps its meaning); other columns are left as they are.
        """
        changed = {
            c.name: encode_categories(c, np.asarray(frame[c.name], dtype=object))[0]
            for c in self.inputs
            if c.categorical
            and c.name in frame
            and not same_categories(frame[c.name].dtype, c.pandas_dtype)
        }
        return frame.assign(**changed) if changed else frame

    # -- serialisation --
    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict; :meth:`from_dict` reverses it."""
        return {
            "inputs": [
                {
                    "name": c.name,
                    "dtype": c.dtype,
                    "nullable": c.nullable,
                    "minimum": _py(c.minimum),
                    "maximum": _py(c.maximum),
                    "categories": None if c.categories is None else [_py(v) for v in c.categories],
                    **({"categorical": True} if c.categorical else {}),
                    **({"unused": True} if c.unused else {}),
                }
                for c in self.inputs
            ],
            "output": {
                "task": self.output.task,
                "dtype": self.output.dtype,
                "classes": None
                if self.output.classes is None
                else [_py(v) for v in self.output.classes],
                "names": list(self.output.names),
            },
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Signature:
        """Rebuild a signature from :meth:`to_dict` output; InvalidInputError if malformed."""
        try:
            inputs = tuple(
                ColumnSpec(
                    name=c["name"],
                    dtype=c["dtype"],
                    nullable=bool(c.get("nullable", False)),
                    minimum=c.get("minimum"),
                    maximum=c.get("maximum"),
                    categories=None if c.get("categories") is None else tuple(c["categories"]),
                    categorical=bool(c.get("categorical", False)),
                    unused=bool(c.get("unused", False)),
                )
                for c in data["inputs"]
            )
            out = data["output"]
            output = OutputSpec(
                task=out["task"],
                dtype=out["dtype"],
                classes=None if out.get("classes") is None else tuple(out["classes"]),
                names=tuple(out.get("names") or ("prediction",)),
            )
        except (KeyError, TypeError) as exc:
            raise InvalidInputError(
                f"Malformed signature: missing or wrong-typed key {exc}. Expected "
                '{"inputs": [{"name", "dtype", ...}], "output": {"task", "dtype", ...}}.'
            ) from exc
        return cls(inputs, output)

    # -- the boundary --
    def coerce(self, data: Any) -> pd.DataFrame:
        """Validate ``data`` once and return it as a DataFrame in signature order.

        Accepts a DataFrame, one record (dict or Series), a list of records, or a 2-D
        array / list of lists whose columns are in signature order. Extra columns are
        dropped. Raises :class:`SchemaError` naming the column, the expected type and
        the offending rows.
        """
        if isinstance(data, Mapping):
            values = self._record(data)
            if self._all_float:
                # One float row: a single 2-D block is pandas' cheapest constructor.
                row = [conv.scalar(v) for conv, v in zip(self._converters, values, strict=True)]
                return pd.DataFrame(np.array([row], dtype=np.float64), columns=list(self.names))
            cols = {
                c.name: conv([v])
                for c, conv, v in zip(self.inputs, self._converters, values, strict=True)
            }
            return pd.DataFrame(cols, index=pd.RangeIndex(1), copy=False)
        raw, index = self._raw_columns(data)
        cols = {
            c.name: conv(raw[c.name]) for c, conv in zip(self.inputs, self._converters, strict=True)
        }
        return pd.DataFrame(cols, index=index, copy=False)

    def coerce_columns(self, data: Mapping[str, Any] | Sequence[Any]) -> ColumnBatch:
        """:meth:`coerce` of a record or a list of rows, as one array per column.

        The same checks in the same order (so the same errors), without the DataFrame.
        """
        if isinstance(data, Mapping):
            values = self._record(data)
            cols = {
                c.name: conv([v])
                for c, conv, v in zip(self.inputs, self._converters, values, strict=True)
            }
            return ColumnBatch(cols, 1)
        raw, index = self._raw_columns(data)
        cols = {
            c.name: conv(raw[c.name]) for c, conv in zip(self.inputs, self._converters, strict=True)
        }
        return ColumnBatch(cols, len(index))

    def coerce_array(self, data: Any) -> np.ndarray:
        """Like :meth:`coerce` but return a float64 matrix (numeric signatures only).

        Booleans become 0.0/1.0 and missing values NaN. A float64 2-D array that is
        already valid is returned as is, without a copy.
        """
        if not self.is_numeric:
            bad = next(c for c in self.inputs if c.dtype not in _NUMERIC)
            raise SchemaError(
                f"coerce_array needs numeric inputs, but column {bad.name!r} is a "
                f"{bad.dtype}; use coerce() for this model.",
                field=bad.name,
                expected="float",
            )
        if isinstance(data, Mapping):
            row = [
                conv.scalar(v) for conv, v in zip(self._converters, self._record(data), strict=True)
            ]
            return np.array([row], dtype=np.float64)
        if isinstance(data, np.ndarray) and data.ndim == 2 and data.dtype.kind in "fiu":
            self._check_width(data.shape)
            arr = data.astype(np.float64, copy=False)
            if not (self._all_float and np.isfinite(arr).all()):
                # Something needs a closer look: the converters find and name it.
                for j, conv in enumerate(self._converters):
                    conv(arr[:, j])
            return arr
        raw, _ = self._raw_columns(data)
        cols = [conv(raw[c.name]) for c, conv in zip(self.inputs, self._converters, strict=True)]
        return np.column_stack([np.asarray(c, dtype=np.float64) for c in cols])

    # -- shape of the input --
    def _record(self, record: Mapping[str, Any]) -> list[Any]:
        values = [record.get(name, _MISSING) for name in self.names]
        for i, (spec, value) in enumerate(zip(self.inputs, values, strict=True)):
            if value is _MISSING:
                if not spec.unused:
                    raise self._missing(spec, present=record.keys())
                values[i] = None  # the converter makes it the column's missing value
        return values

    def _missing(
        self, spec: ColumnSpec, *, present: Any, rows: list[int] | None = None
    ) -> Exception:
        where = f" in {rows_text(rows)}" if rows else ""
        extra = [str(k) for k in present if k not in self.names]
        hint = ""
        close = difflib.get_close_matches(spec.name, extra, n=1)
        if close:
            hint = f" Got {close[0]!r}: did you mean {spec.name!r}?"
        elif extra:
            hint = f" Also got unexpected column(s): {', '.join(map(repr, extra[:5]))}."
        return SchemaError(
            f"Column {spec.name!r} is missing{where}; expected {_expected(spec.dtype)}. "
            f"The model takes: {self.describe()}.{hint}",
            field=spec.name,
            expected=spec.dtype,
            rows=rows,
        )

    def _check_width(self, shape: tuple[int, ...]) -> None:
        if len(shape) != 2 or shape[1] != len(self.inputs):
            got = f"shape {shape}" if len(shape) != 1 else f"a 1-D array of {shape[0]} values"
            wrap = " Wrap a single row in a list: [[...]]." if len(shape) == 1 else ""
            raise SchemaError(
                f"Expected a 2-D array with {len(self.inputs)} columns ({self.describe()}), "
                f"got {got}.{wrap}",
                expected=f"{len(self.inputs)} columns",
            )
        if shape[0] == 0:
            raise SchemaError("The input has no rows; send at least one record.")

    def _raw_columns(self, data: Any) -> tuple[Mapping[str, Any], pd.Index]:
        """Split ``data`` into one raw column per input, plus the row index to keep."""
        if isinstance(data, pd.DataFrame):
            if len(data) == 0:
                raise SchemaError("The input has no rows; send at least one record.")
            dupes = sorted(set(data.columns[data.columns.duplicated()]) & set(self.names))
            if dupes:
                raise SchemaError(
                    f"The input has column {dupes[0]!r} more than once; send it once.",
                    field=dupes[0],
                )
            for spec in self.inputs:
                if spec.name not in data.columns and not spec.unused:
                    raise self._missing(spec, present=data.columns)
            absent = [None] * len(data)
            return {
                name: data[name] if name in data.columns else absent for name in self.names
            }, data.index
        if isinstance(data, pd.Series):
            return self._raw_columns([data.to_dict()])
        if isinstance(data, np.ndarray):
            self._check_width(data.shape)
            return {n: data[:, j] for j, n in enumerate(self.names)}, pd.RangeIndex(len(data))
        if isinstance(data, (list, tuple)):
            if not data:
                raise SchemaError("The input has no rows; send at least one record.")
            if isinstance(data[0], Mapping):
                return self._record_columns(data), pd.RangeIndex(len(data))
            if isinstance(data[0], (list, tuple, np.ndarray)):
                try:
                    arr = np.array(data, dtype=object)
                except ValueError:
                    arr = None  # ragged rows
                if arr is None or arr.ndim != 2:
                    widths = sorted({len(r) for r in data if isinstance(r, (list, tuple))})
                    raise SchemaError(
                        f"Every row must have {len(self.inputs)} values ({self.describe()}); "
                        f"got rows of {widths} values.",
                        expected=f"{len(self.inputs)} columns",
                    )
                self._check_width(arr.shape)
                return {n: arr[:, j].tolist() for j, n in enumerate(self.names)}, pd.RangeIndex(
                    len(arr)
                )
            self._check_width((len(data),))
        raise SchemaError(
            "Expected a DataFrame, a record (dict), a list of records, or a 2-D array; "
            f"got {type(data).__name__}.",
        )

    def _record_columns(self, records: Sequence[Any]) -> dict[str, list[Any]]:
        bad = [i for i, r in enumerate(records) if not isinstance(r, Mapping)]
        if bad:
            raise SchemaError(
                f"Expected a list of records (dicts); {rows_text(bad)} "
                f"{'is' if len(bad) == 1 else 'are'} {type(records[bad[0]]).__name__}.",
                rows=bad,
            )
        out: dict[str, list[Any]] = {}
        for spec in self.inputs:
            name = spec.name
            values = [r.get(name, _MISSING) for r in records]
            if _MISSING in values and spec.unused:
                values = [None if v is _MISSING else v for v in values]
            elif _MISSING in values:
                rows = [i for i, v in enumerate(values) if v is _MISSING]
                everywhere = len(rows) == len(values)
                raise self._missing(
                    spec,
                    present={k for r in records for k in r},
                    rows=None if everywhere else rows,
                )
            out[name] = values
        return out


# -- inference ----------------------------------------------------------------------------


def infer_signature(
    sample: pd.DataFrame,
    *,
    predictions: Any = None,
    classes: Sequence[Any] | np.ndarray | None = None,
) -> Signature:
    """Infer a signature from a sample of the training data.

    Each column's dtype, nullability (any missing value in the sample) and, for
    numbers, the range of its finite values; string columns with at most 20
    distinct values get ``categories``. The output comes from ``predictions`` (the
    model's predictions on ``sample``) and ``classes``: with classes the task is
    classification; float predictions mean regression; otherwise "other".
    A sample holding infinity is refused: predict-time input may never hold it.

    Example:
        >>> sig = infer_signature(pd.DataFrame({"x": [1.0, None]}), classes=["a", "b"])
        >>> sig.inputs[0].nullable, sig.output.task
        (True, 'classification')
    """
    if not isinstance(sample, pd.DataFrame):
        raise InvalidInputError(
            f"The sample must be a pandas DataFrame, got {type(sample).__name__}."
        )
    if len(sample) == 0:
        raise InvalidInputError(
            "The sample has no rows; pass the training data (or a large sample of it)."
        )
    names = [c for c in sample.columns if not isinstance(c, str)]
    if names:
        raise InvalidInputError(
            f"Sample column names must be strings, got {names[:5]}; name the columns "
            "(e.g. pd.DataFrame(X, columns=[...]))."
        )
    if not sample.columns.is_unique:
        raise InvalidInputError("The sample has duplicate column names.")
    inputs = tuple(_infer_column(str(name), sample[name]) for name in sample.columns)
    return Signature(inputs, infer_output(predictions, classes))


# pandas' infer_dtype names for the values of an object column (or of categories).
_INFERRED_DTYPES: dict[str, str] = {
    "string": "string",
    "empty": "string",
    "boolean": "boolean",
    "integer": "integer",
    "floating": "float",
    "mixed-integer-float": "float",
    "datetime": "datetime",
    "datetime64": "datetime",
    "date": "datetime",
}


def _infer_column(name: str, s: pd.Series) -> ColumnSpec:
    nullable = bool(s.isna().any())
    dtype = s.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        if len(dtype.categories) == 0:
            raise InvalidInputError(
                f"Sample column {name!r} is a category column with no categories; give it "
                "the categories the model was trained with."
            )
        inner = pd.api.types.infer_dtype(dtype.categories, skipna=True)
        inner_dtype = _INFERRED_DTYPES.get(inner)
        if inner_dtype not in ("string", "integer", "float"):
            raise InvalidInputError(
                f"Sample column {name!r} is a category column whose categories are "
                f"{inner} values; Shipyard takes category columns of strings or numbers. "
                f"Convert them first, e.g. X[{name!r}] = X[{name!r}].astype(str)"
                ".astype('category') (pd.cut(..., labels=[...]) names the bins)."
            )
        cats = tuple(_py(v) for v in dtype.categories)
        return ColumnSpec(
            name, cast(DType, inner_dtype), nullable, categories=cats, categorical=True
        )
    if pd.api.types.is_bool_dtype(dtype):
        kind: str = "boolean"
    elif pd.api.types.is_datetime64_any_dtype(dtype):
        kind = "datetime"
    elif pd.api.types.is_integer_dtype(dtype):
        kind = "integer"
    elif pd.api.types.is_float_dtype(dtype):
        kind = "float"
    else:
        inferred = pd.api.types.infer_dtype(s, skipna=True)
        if inferred not in _INFERRED_DTYPES:
            raise InvalidInputError(
                f"Sample column {name!r} holds values of mixed or unsupported type "
                f"({inferred}); convert it to one of {DTYPES} first."
            )
        kind = _INFERRED_DTYPES[inferred]
    values = s.dropna()
    if kind in ("float", "integer") and len(values):
        arr = np.asarray(values, dtype=np.float64)
        if np.isinf(arr).any():
            raise InvalidInputError(
                f"Sample column {name!r} holds infinity. Predict-time input may not hold it, "
                "so replace it with NaN (missing) or a finite value before training."
            )
        lo, hi = arr.min(), arr.max()
        if kind == "integer":
            return ColumnSpec(name, "integer", nullable, int(lo), int(hi))
        return ColumnSpec(name, "float", nullable, float(lo), float(hi))
    if kind == "string":
        uniques = values.unique()
        few = len(uniques) <= MAX_CATEGORIES
        seen = tuple(sorted(str(v) for v in uniques)) if few else None
        return ColumnSpec(name, "string", nullable, categories=seen)
    return ColumnSpec(name, cast(DType, kind), nullable)


def _dtype_of_values(arr: np.ndarray) -> DType:
    kind = arr.dtype.kind
    if kind == "b":
        return "boolean"
    if kind in "iu":
        return "integer"
    if kind == "f":
        return "float"
    if kind == "M":
        return "datetime"
    if kind == "O" and len(arr) and all(isinstance(v, (bool, np.bool_)) for v in arr):
        return "boolean"
    if (
        kind == "O"
        and len(arr)
        and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in arr)
    ):
        return "integer"
    return "string"


def infer_output(predictions: Any, classes: Any) -> OutputSpec:
    """The output a model's ``predictions`` (and ``classes``) show: see :func:`infer_signature`.

    >>> infer_output([0.5, 1.5], None).task
    'regression'
    """
    if classes is not None:
        cls = np.asarray(classes)
        return OutputSpec(
            "classification", _dtype_of_values(cls), tuple(_py(v) for v in cls.tolist())
        )
    if predictions is None:
        return OutputSpec("other", "float")
    arr = np.asarray(predictions)
    if arr.ndim == 2 and arr.shape[1] > 1:
        names = tuple(f"output_{i}" for i in range(arr.shape[1]))
        return OutputSpec("other", _dtype_of_values(arr.ravel()), names=names)
    arr = arr.ravel()
    dtype = _dtype_of_values(arr)
    if dtype == "float":
        return OutputSpec("regression", "float")
    if dtype in ("integer", "string", "boolean"):
        uniques = sorted({_py(v) for v in arr.tolist()}, key=lambda v: (str(type(v)), v))
        return OutputSpec("classification", dtype, tuple(uniques))
    return OutputSpec("other", dtype)


__all__ = [
    "DTYPES",
    "ColumnBatch",
    "ColumnSpec",
    "DType",
    "InputFacts",
    "OutputSpec",
    "Signature",
    "Task",
    "encode_categories",
    "infer_output",
    "infer_signature",
    "rows_text",
    "same_categories",
    "union_categories",
]
