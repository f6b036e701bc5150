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

from shipyard.errors import InvalidInputError, ManifestError
from shipyard.registry.flavors.base import (
    EstimatorPredictor,
    json_classes,
    module_root,
    option_file,
)

MODEL_FILE = "model.ubj"
_KINDS = ("classifier", "regressor", "booster")


class BoosterPredictor:
    """A raw ``xgboost.Booster`` behind the Predictor interface."""

    accepts_array = True

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
        if self.objective in ("binary:logistic", "multi:softprob"):
            self.predict_proba = self._predict_proba
            self.predict_both = self._predict_both

    def _raw(self, X: Any) -> np.ndarray:
        import xgboost as xgb

        return np.asarray(self.booster.predict(xgb.DMatrix(X)))

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
        return EstimatorPredictor(
            model, classes=options.get("classes"), feature_names=names, accepts_array=True
        )


__all__ = ["BoosterPredictor", "XGBoostFlavor"]
