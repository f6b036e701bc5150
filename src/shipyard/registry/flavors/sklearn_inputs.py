"""What a fitted scikit-learn model shows it handles at its input columns.

A signature inferred from a small ``sample=`` learns a column's categories and
whether it may be missing from those few rows only, and would then refuse valid
rows the model was trained on. The fitted model often knows better:

- a ``SimpleImputer`` (or ``KNNImputer``, ``IterativeImputer``) whose missing
  value is NaN fills missing values in its columns, so they may be missing;
- a ``OneHotEncoder`` or ``OrdinalEncoder`` knows every category of its columns
  (its ``categories_``: the ones it was fitted on, or given), and encodes a
  missing value when NaN is one of them.

Only steps that see the *raw* input columns count, since a step after a scaler
sees other values: the model itself, the first step of a ``Pipeline``, every
part of a ``ColumnTransformer`` or ``FeatureUnion`` at the input, a search's
best estimator, and an encoder right after an imputer (an imputer leaves the
values it does not fill as they are; a constant it fills in, such as
``"missing"``, is not taken for a category of the data). Columns are named by
the model's ``feature_names_in_`` or, for a model fitted on an array, by the
position of the signature's columns, which is how the model is called.

>>> facts = input_facts(pipeline, ["age", "plan"])              # doctest: +SKIP
>>> facts["age"].nullable, facts["plan"].categories             # doctest: +SKIP
(True, ('basic', 'enterprise', 'pro'))
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from shipyard.registry.flavors.base import module_root
from shipyard.registry.signature import InputFacts

_IMPUTERS = frozenset({"SimpleImputer", "KNNImputer", "IterativeImputer"})
_ENCODERS = frozenset({"OneHotEncoder", "OrdinalEncoder"})

#: One raw input column name per column a step sees, None where it is not a raw
#: column (an imputer's missing-value indicator).
Names = list[str | None]


def input_facts(model: Any, columns: Sequence[str]) -> dict[str, InputFacts]:
    """Facts by input column name; empty when ``model`` is not a scikit-learn model.

    ``columns`` are the signature's input columns, in the order the model gets them.
    """
    if module_root(model) != "sklearn":
        return {}
    fitted = getattr(model, "feature_names_in_", None)
    if fitted is not None:
        names: Names = [str(n) for n in fitted]
    elif getattr(model, "n_features_in_", None) == len(columns):
        names = list(columns)  # fitted on an array: the signature's order is the model's
    else:
        return {}
    facts: dict[str, InputFacts] = {}
    _walk(model, names, {}, facts)
    for name in _unused_columns(model, names):
        facts[name] = InputFacts(nullable=True, unused=True)
    return facts


def _unused_columns(model: Any, names: Names) -> list[str]:
    """The input columns ``model`` provably never reads; empty unless that is certain.

    Certain only for a ``ColumnTransformer`` at the input (the model's first step,
    through searches and target transformers) with ``remainder="drop"`` that picks
    every part's columns by name: a column no part names is dropped unread. The
    ONNX compiler finds the same columns by their absence from the graph's inputs.
    """
    step = model
    while module_root(step) == "sklearn":
        kind = type(step).__name__
        if kind == "Pipeline":
            used = [s for _, s in step.steps if s is not None and s != "passthrough"]
            if not used:
                return []
            step = used[0]
        elif kind.endswith("SearchCV") or kind == "TransformedTargetRegressor":
            attribute = "regressor_" if kind == "TransformedTargetRegressor" else "best_estimator_"
            step = getattr(step, attribute, None)
        else:
            break
    if module_root(step) != "sklearn" or type(step).__name__ != "ColumnTransformer":
        return []
    if getattr(step, "remainder", None) != "drop" or None in names:
        return []
    read: set[str] = set()
    for part, inner, selection in getattr(step, "transformers_", ()):
        if part == "remainder" and isinstance(inner, str) and inner == "drop":
            continue  # what the remainder drops, as positions
        if isinstance(inner, str) and inner == "drop":
            continue  # a part that drops its columns reads nothing
        by_name = isinstance(selection, str) or (
            isinstance(selection, (list, tuple)) and all(isinstance(c, str) for c in selection)
        )
        chosen = _select(names, selection) if by_name else None
        if chosen is None:
            return []  # a column picked by position, mask or callable: not certain
        read.update(c for c in chosen if c is not None)
    return [n for n in names if n is not None and n not in read]


def _walk(step: Any, names: Names, fills: dict[str, Any], facts: dict[str, InputFacts]) -> None:
    """Collect the facts of ``step``, which sees the raw columns ``names``.

    ``fills`` maps a column to the constant an earlier imputer put in its missing
    places (not a value of the data).
    """
    if module_root(step) != "sklearn":
        return
    kind = type(step).__name__
    if kind == "Pipeline":
        for _, inner in step.steps:
            if inner is None or inner == "passthrough":
                continue
            _walk(inner, names, fills, facts)
            if type(inner).__name__ not in _IMPUTERS or module_root(inner) != "sklearn":
                return  # later steps see transformed values
            after = _after_imputer(inner, names, fills)
            if after is None:
                return
            names, fills = after
    elif kind == "ColumnTransformer":
        for _, inner, selection in getattr(step, "transformers_", ()):
            if isinstance(inner, str):  # "drop", "passthrough"
                continue
            chosen = _select(names, selection)
            if chosen is not None:
                _walk(inner, chosen, fills, facts)
    elif kind == "FeatureUnion":
        for _, inner in step.transformer_list:
            if not isinstance(inner, str):
                _walk(inner, names, fills, facts)
    elif kind.endswith("SearchCV") or kind == "TransformedTargetRegressor":
        # The fitted model that predicts, on the same inputs.
        attribute = "regressor_" if kind == "TransformedTargetRegressor" else "best_estimator_"
        inner = getattr(step, attribute, None)
        if inner is not None:
            _walk(inner, names, fills, facts)
    elif kind in _IMPUTERS:
        if _is_nan(getattr(step, "missing_values", None)) and _width(step) == len(names):
            for name in names:
                if name is not None:
                    _add(facts, name, InputFacts(nullable=True))
    elif kind in _ENCODERS:
        categories = getattr(step, "categories_", None)
        if categories is None or len(categories) != len(names):
            return
        for name, known in zip(names, categories, strict=True):
            if name is None:
                continue
            values = list(np.asarray(known, dtype=object))
            missing = any(_is_nan(v) for v in values)
            kept = tuple(v for v in values if not (_is_nan(v) or v is None))
            if name in fills:  # the imputer's constant, e.g. "missing"
                kept = tuple(v for v in kept if v != fills[name])
            _add(facts, name, InputFacts(nullable=missing, categories=kept))


def _after_imputer(
    imputer: Any, names: Names, fills: dict[str, Any]
) -> tuple[Names, dict[str, Any]] | None:
    """The raw columns behind an imputer's output columns, and the constants it filled.

    An imputer drops columns it saw only missing (unless told to keep them) and
    appends indicator columns: its output names say which is which.
    """
    if _width(imputer) != len(names):
        return None
    tokens = [f"in{i}" for i in range(len(names))]
    fitted = getattr(imputer, "feature_names_in_", None)
    try:
        if fitted is not None:
            position = {str(n): i for i, n in enumerate(fitted)}
            out = [str(n) for n in imputer.get_feature_names_out()]
        else:
            position = {t: i for i, t in enumerate(tokens)}
            out = [str(n) for n in imputer.get_feature_names_out(tokens)]
    except (AttributeError, ValueError, TypeError):  # an imputer without output names
        return None
    after: Names = [names[position[n]] if n in position else None for n in out]
    filled = dict(fills)
    constants = getattr(imputer, "statistics_", None)  # the fill used, per input column
    if getattr(imputer, "strategy", None) == "constant" and constants is not None:
        for name, fill in zip(names, list(constants), strict=False):
            if name is not None:
                filled[name] = fill
    return after, filled


def _select(names: Names, selection: Any) -> Names | None:
    """The columns a ``ColumnTransformer`` part takes, as fitted (callables resolved)."""
    if isinstance(selection, str):
        return [selection] if selection in names else None
    if isinstance(selection, (int, np.integer)) and not isinstance(selection, bool):
        return [names[int(selection)]]
    if isinstance(selection, slice):
        if isinstance(selection.start, str) or isinstance(selection.stop, str):
            return None  # a label slice: rare, and its ends are inclusive; not guessed at
        return names[selection]
    chosen = np.asarray(selection)
    if chosen.ndim != 1:
        return None
    if chosen.dtype == bool:
        if len(chosen) != len(names):
            return None
        return [n for n, keep in zip(names, chosen.tolist(), strict=True) if keep]
    if chosen.dtype.kind in "iu":
        return [names[i] for i in chosen.tolist()]
    if all(isinstance(c, str) for c in chosen.tolist()):
        return list(chosen.tolist()) if set(chosen.tolist()) <= set(names) else None
    return None


def _add(facts: dict[str, InputFacts], name: str, new: InputFacts) -> None:
    """Merge what another step shows about ``name`` (a column can feed several)."""
    old = facts.get(name)
    if old is None:
        facts[name] = new
        return
    categories = old.categories
    if new.categories is not None:
        both = set(categories or ()) | set(new.categories)
        categories = tuple(sorted(both, key=lambda v: (type(v).__name__, v)))
    facts[name] = InputFacts(nullable=old.nullable or new.nullable, categories=categories)


def _width(step: Any) -> int | None:
    width = getattr(step, "n_features_in_", None)
    return int(width) if width is not None else None


def _is_nan(value: Any) -> bool:
    """NaN (numpy's or Python's) or pandas' NA: what the signature feeds for a missing value."""
    if isinstance(value, (float, np.floating)):
        return math.isnan(value)
    return type(value).__name__ == "NAType"


__all__ = ["input_facts"]
