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

import pandas as pd

from shipyard.errors import InvalidInputError
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
            "it must be importable where training sets are built and models are served."
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
    out = function(frame[needed].copy())
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
