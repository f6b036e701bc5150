"""Framework flavors: how each kind of model is saved safely and loaded back.

The registry is a plain dict of flavor objects; :func:`flavor_for_model`
picks one for a model by asking each, most specific first (XGBoost and
LightGBM models are scikit-learn estimators too; pyfunc takes anything
callable, so it comes last).

Example:
    >>> from sklearn.linear_model import LinearRegression
    >>> flavor_for_model(LinearRegression()).name
    'sklearn'
    >>> sorted(FLAVORS)
    ['lightgbm', 'onnx', 'pyfunc', 'sklearn', 'xgboost']
"""

from __future__ import annotations

from typing import Any

from shipyard.errors import InvalidInputError
from shipyard.registry.flavors.base import Flavor, Predictor
from shipyard.registry.flavors.lightgbm import LightGBMFlavor
from shipyard.registry.flavors.onnx import OnnxFlavor
from shipyard.registry.flavors.pyfunc import PyfuncFlavor
from shipyard.registry.flavors.sklearn import SklearnFlavor
from shipyard.registry.flavors.xgboost import XGBoostFlavor

# Detection order matters: most specific first, the pyfunc catch-all last.
_ORDERED: tuple[Flavor, ...] = (
    XGBoostFlavor(),
    LightGBMFlavor(),
    OnnxFlavor(),
    SklearnFlavor(),
    PyfuncFlavor(),
)
FLAVORS: dict[str, Flavor] = {f.name: f for f in _ORDERED}


def get_flavor(name: str) -> Flavor:
    """The flavor called ``name``; InvalidInputError listing the known ones otherwise."""
    try:
        return FLAVORS[name]
    except KeyError:
        raise InvalidInputError(
            f"Unknown flavor {name!r}; Shipyard knows {', '.join(sorted(FLAVORS))}."
        ) from None


def flavor_for_model(model: Any) -> Flavor:
    """The flavor that saves ``model``; InvalidInputError if none does."""
    for flavor in _ORDERED:
        if flavor.handles(model):
            return flavor
    raise InvalidInputError(
        f"Shipyard cannot save a {type(model).__module__}.{type(model).__name__}: it is not "
        "a scikit-learn, XGBoost, LightGBM or ONNX model, nor callable / with a predict "
        "method. Wrap it in an object with predict(X), or export it to ONNX."
    )


__all__ = ["FLAVORS", "Flavor", "Predictor", "flavor_for_model", "get_flavor"]
