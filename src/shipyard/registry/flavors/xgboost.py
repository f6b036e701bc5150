"""XGBoost models in XGBoost's own UBJSON format (no pickle).

``XGBClassifier`` and ``XGBRegressor`` load back as themselves; a raw
``Booster`` is wrapped so that classification objectives still offer
``predict_proba`` and ``classes``.

Example:
    >>> XGBoostFlavor().name
    'xgboost'
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shipyard.errors import InvalidInputError, ManifestError
from shipyard.registry.flavors.base import (
    EstimatorPredictor,
    OptionalMethod,
    json_classes,
    module_root,
    option_file,
)

MODEL_FILE = "model.ubj"
_KINDS = ("classifier", "regressor", "booster")


class BoosterPredictor:
    """A raw ``xgboost.Booster`` behind the Predictor interface."""

    accepts_array = True
    predict_proba = OptionalMethod("_predict_proba", flag="_probabilities")
    predict_both = OptionalMethod("_predict_both", flag="_probabilities")

    def __init__(self, booster: Any) -> None:
        self.booster = booster
        self.feature_names = (
            tuple(booster.feature_names) if booster.feature_names is not None else None
        )
        learner = json.loads(booster.save_config())["learner"]
        self.objective: str = learner["objective"]["name"]
        num_class = int(learner["learner_model_param"].get("num_class", "0") or 0)
        self.classes: np.ndarray | None = None
        if self.objective.startswith("binary:"):
            self.classes = np.arange(2)
        elif self.objective.startswith("multi:"):
            self.classes = np.arange(num_class)
        self._probabilities = self.objective in ("binary:logistic", "multi:softprob")

    def _raw(self, X: Any) -> np.ndarray:
        import xgboost as xgb

        # enable_categorical: a pandas category column reaches the trees by category.
        return np.asarray(self.booster.predict(xgb.DMatrix(X, enable_categorical=True)))

    def category_levels(self, frame: pd.DataFrame) -> dict[str, list[Any]]:
        return booster_category_levels(self.booster)

    @staticmethod
    def _proba(raw: np.ndarray) -> np.ndarray:
        return np.column_stack([1.0 - raw, raw]) if raw.ndim == 1 else raw

    def _predict_proba(self, X: Any) -> np.ndarray:
        return self._proba(self._raw(X))

    def _predict_both(self, X: Any) -> tuple[np.ndarray, np.ndarray]:
        """Labels and probabilities from one pass over the trees."""
        raw = self._raw(X)
        return self._labels(raw), self._proba(raw)

    def predict(self, X: Any) -> np.ndarray:
        return self._labels(self._raw(X))

    def _labels(self, raw: np.ndarray) -> np.ndarray:
        if self.objective == "binary:logistic":
            return (raw > 0.5).astype(np.int64)
        if self.objective == "multi:softprob":
            return raw.argmax(axis=1)
        if self.objective == "multi:softmax":
            return raw.astype(np.int64)
        return raw


def booster_category_levels(booster: Any) -> dict[str, list[Any]]:
    """The training categories of a booster's categorical features, by name.

    XGBoost (3.1 and later) saves them with the model and re-codes input by them.
    A categorical feature whose categories an older model did not save maps to an
    empty list: its input must then already carry the training dtype.
    """
    names = booster.feature_names or []
    kinds = booster.feature_types or []
    categorical = [n for n, t in zip(names, kinds, strict=False) if t == "c"]
    if not categorical:
        return {}
    levels: dict[str, list[Any]] = {name: [] for name in categorical}
    try:
        saved = booster.get_categories(export_to_arrow=True).to_arrow()
    except (AttributeError, ValueError, TypeError):  # a model from before XGBoost 3.1
        return levels
    for name, values in saved:
        if name in levels and values is not None:
            levels[name] = values.to_pylist()
    return levels


class XGBoostFlavor:
    """``XGBClassifier``, ``XGBRegressor`` and ``Booster``."""

    name = "xgboost"
    packages: tuple[str, ...] = ("xgboost",)  # resolves to xgboost or xgboost-cpu

    def handles(self, model: Any) -> bool:
        return module_root(model) == "xgboost"

    def save(self, model: Any, dest: Path, *, trusted_pickle: bool) -> dict[str, Any]:
        import xgboost as xgb

        if isinstance(model, xgb.XGBClassifier):
            kind, classes = "classifier", json_classes(model.classes_)
        elif isinstance(model, xgb.XGBRegressor):
            kind, classes = "regressor", None
        elif isinstance(model, xgb.Booster):
            kind, classes = "booster", None
        else:
            raise InvalidInputError(
                f"The xgboost flavor saves XGBClassifier, XGBRegressor or Booster, not "
                f"{type(model).__name__}."
            )
        model.save_model(dest / MODEL_FILE)
        return {"format": "ubj", "file": MODEL_FILE, "kind": kind, "classes": classes}

    def load(self, src: Path, options: dict[str, Any], *, trusted_pickle: bool) -> Any:
        import xgboost as xgb

        path = option_file(src, options)
        kind = options.get("kind")
        if kind not in _KINDS:
            raise ManifestError(f"Unknown xgboost kind {kind!r}; expected one of {_KINDS}.")
        if kind == "booster":
            booster = xgb.Booster()
            booster.load_model(path)
            return BoosterPredictor(booster)
        model = xgb.XGBClassifier() if kind == "classifier" else xgb.XGBRegressor()
        model.load_model(path)
        names = model.get_booster().feature_names
        predictor = EstimatorPredictor(
            model, classes=options.get("classes"), feature_names=names, accepts_array=True
        )
        booster = model.get_booster()
        predictor.category_levels = lambda frame: booster_category_levels(booster)  # type: ignore[attr-defined]
        return predictor


__all__ = ["BoosterPredictor", "XGBoostFlavor", "booster_category_levels"]
