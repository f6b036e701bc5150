"""On-demand features: a user's ``module:function`` over request fields and fetched features.

The same call runs on a training set's rows and on a served request's rows,
so the two cannot drift apart: the function takes one pandas DataFrame (the
request fields and the input features it declares, one row per entity row)
and returns a DataFrame with one column per feature it declares.

>>> def ratio(df): return df.assign(per_trip=df["conv_rate"] / df["trip_distance"])[["per_trip"]]
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

import numpy as np
import pandas as pd

from shipyard.errors import InvalidInputError, SchemaError
from shipyard.features.definitions import OnDemandFeatureView

__all__ = ["apply_on_demand", "load_function"]


def load_function(odfv: OnDemandFeatureView) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """Import the view's function; a clear error if the module or the name is missing."""
    module_name, _, attr = odfv.function.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise InvalidInputError(
            f"On-demand view {odfv.name!r}: cannot import module {module_name!r} ({exc}); "
            "it must be importable where training sets are built and models are served: "
            "install it, or put its folder on PYTHONPATH."
        ) from exc
    target: object = module
    for part in attr.split("."):
        target = getattr(target, part, None)
        if target is None:
            raise InvalidInputError(
                f"On-demand view {odfv.name!r}: module {module_name!r} has no {attr!r}."
            )
    if not callable(target):
        raise InvalidInputError(f"On-demand view {odfv.name!r}: {odfv.function} is not callable.")
    return target  # type: ignore[return-value]


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    )


#: What a request field of each declared dtype accepts, value by value.
_ACCEPTS: dict[str, Callable[[object], bool]] = {
    "float32": _is_number,
    "float64": _is_number,
    "int32": lambda v: _is_number(v) and float(v).is_integer(),  # type: ignore[arg-type]
    "int64": lambda v: _is_number(v) and float(v).is_integer(),  # type: ignore[arg-type]
    "string": lambda v: isinstance(v, str),
    "bool": lambda v: isinstance(v, (bool, np.bool_)),
    "timestamp": lambda v: not pd.isna(pd.to_datetime(v, errors="coerce", utc=True)),
}


def _shown(value: object) -> str:
    """``value`` as the client sent it (``True``, not numpy's ``np.True_``)."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def _typed(odfv: OnDemandFeatureView, name: str, dtype: str, column: pd.Series) -> pd.Series:
    """Request field ``name`` checked against its declared ``dtype``, or a clear error.

    A request's JSON can carry anything: "3.5" or true where a number is declared
    is refused here, naming the field, rather than reaching the user's function
    (which would raise, or compute with it). Missing values pass: the function
    decides what they mean.
    """
    values = column.dropna()
    numeric = column.dtype.kind in "iuf"
    if numeric and (dtype.startswith("float") or column.dtype.kind in "iu"):
        return column  # the common case, and every training set's: no value-by-value check
    accepts = _ACCEPTS[dtype]
    wrong = values[~values.map(accepts).astype(bool)] if len(values) else values
    if len(wrong):
        raise SchemaError(
            f"On-demand view {odfv.name!r}: request field {name!r} must be {dtype}, "
            f"got {_shown(wrong.iloc[0])}.",
            field=name,
            expected=dtype,
        )
    return pd.to_numeric(column) if dtype in ("float32", "float64", "int32", "int64") else column


def apply_on_demand(
    odfv: OnDemandFeatureView, frame: pd.DataFrame, wanted: list[str]
) -> pd.DataFrame:
    """The ``wanted`` features of ``odfv`` for each row of ``frame`` (same index)."""
    inputs = [ref.partition(":")[2] for ref in odfv.inputs]
    needed = [*(f.name for f in odfv.request_fields), *inputs]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise InvalidInputError(
            f"On-demand view {odfv.name!r} needs {', '.join(repr(c) for c in missing)}: "
            "give the request fields with the entity rows, and list its input features."
        )
    function = load_function(odfv)
    given = frame[needed].copy()
    for field in odfv.request_fields:
        given[field.name] = _typed(odfv, field.name, field.dtype, given[field.name])
    try:
        out = function(given)
    except Exception as exc:  # the user's function: say whose, never a traceback
        raise InvalidInputError(
            f"On-demand view {odfv.name!r}: {odfv.function} failed on these rows "
            f"({type(exc).__name__}: {exc})."
        ) from exc
    if not isinstance(out, pd.DataFrame) or len(out) != len(frame):
        raise InvalidInputError(
            f"On-demand view {odfv.name!r}: {odfv.function} must return a DataFrame with "
            f"{len(frame)} rows, got {type(out).__name__} of {len(out)} rows."
        )
    absent = [w for w in wanted if w not in out.columns]
    if absent:
        raise InvalidInputError(
            f"On-demand view {odfv.name!r}: {odfv.function} returned no column {absent}."
        )
    result = out[wanted].copy()
    result.index = frame.index
    return result
