"""LightGBM models in LightGBM's own text format (no pickle).

The file is loaded with ``lightgbm.Booster(model_file=...)`` and wrapped so
that it answers like the scikit-learn wrapper did: ``predict`` returns class
labels for classifiers (argmax of the probabilities), ``predict_proba`` one
column per class, ``classes`` the labels the classifier was fitted on.

Example:
    >>> LightGBMFlavor().name
    'lightgbm'
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shipyard.errors import InvalidInputError, ManifestError
from shipyard.registry.flavors.base import (
    OptionalMethod,
    json_classes,
    module_root,
    option_file,
)

MODEL_FILE = "model.txt"
# LightGBM's classification objectives and their aliases.
_CLASSIFICATION = (
    "binary",
    "multiclass",
    "softmax",
    "multiclassova",
    "multiclass_ova",
    "ova",
    "ovr",
)


class LightGBMPredictor:
    """A ``lightgbm.Booster`` with scikit-learn-style predict / predict_proba / classes."""

    accepts_array = True
    predict_proba = OptionalMethod("_predict_proba", flag="_classifier")
    predict_both = OptionalMethod("_predict_both", flag="_classifier")

    def __init__(self, booster: Any, *, classes: list[Any] | None) -> None:
        self.booster = booster
        self.feature_names = tuple(booster.feature_name())
        self.classes = None if classes is None else np.asarray(classes)
        self._classifier = self.classes is not None

    def _predict_proba(self, X: Any) -> np.ndarray:
        raw = np.asarray(self.booster.predict(X))
        return np.column_stack([1.0 - raw, raw]) if raw.ndim == 1 else raw

    def _predict_both(self, X: Any) -> tuple[np.ndarray, np.ndarray]:
        """Labels and probabilities from one pass over the trees."""
        assert self.classes is not None
        proba = self._predict_proba(X)
        return self.classes[proba.argmax(axis=1)], proba

    def predict(self, X: Any) -> np.ndarray:
        if self.classes is None:
            return np.asarray(self.booster.predict(X))
        return self._predict_both(X)[0]

    def category_levels(self, frame: pd.DataFrame) -> dict[str, list[Any]]:
        """The training categories of ``frame``'s category columns, by name.

        LightGBM records the categories of the training frame's ``category`` columns in
        column order, without their names, and pairs them with the category columns of
        whatever frame it predicts on, in order: so does this.
        """
        recorded = self.booster.pandas_categorical or []
        columns = [c for c in frame.columns if isinstance(frame[c].dtype, pd.CategoricalDtype)]
        if len(columns) != len(recorded):
            raise InvalidInputError(
                f"The LightGBM model was trained with {len(recorded)} pandas category "
                f"column(s) ({recorded}), but the sample has {len(columns)} ({columns}). Pass "
                "a sample with the training frame's dtypes, e.g. rows of the training frame "
                "(X_train.head(500))."
            )
        return {str(c): list(levels) for c, levels in zip(columns, recorded, strict=True)}


class LightGBMFlavor:
    """``LGBMClassifier``, ``LGBMRegressor`` (any ``LGBMModel``) and ``Booster``."""

    name = "lightgbm"
    packages: tuple[str, ...] = ("lightgbm",)

    def handles(self, model: Any) -> bool:
        return module_root(model) == "lightgbm"

    def save(self, model: Any, dest: Path, *, trusted_pickle: bool) -> dict[str, Any]:
        import lightgbm as lgb

        if isinstance(model, lgb.LGBMClassifier):
            booster, classes = model.booster_, json_classes(model.classes_)
        elif isinstance(model, lgb.LGBMModel):
            booster, classes = model.booster_, None
        elif isinstance(model, lgb.Booster):
            booster, classes = model, _booster_classes(model)
        else:
            raise InvalidInputError(
                f"The lightgbm flavor saves LGBMClassifier, LGBMRegressor or Booster, not "
                f"{type(model).__name__}."
            )
        booster.save_model(str(dest / MODEL_FILE))
        kind = "classifier" if classes is not None else "regressor"
        return {"format": "text", "file": MODEL_FILE, "kind": kind, "classes": classes}

    def load(self, src: Path, options: dict[str, Any], *, trusted_pickle: bool) -> Any:
        import lightgbm as lgb

        path = option_file(src, options)
        classes = options.get("classes")
        if options.get("kind") == "classifier" and not classes:
            raise ManifestError("A lightgbm classifier package must list its classes.")
        try:
            booster = lgb.Booster(model_file=str(path))
        except lgb.basic.LightGBMError as exc:
            raise ManifestError(f"{path} is not a readable LightGBM model: {exc}") from exc
        return LightGBMPredictor(booster, classes=classes)


def _booster_classes(booster: Any) -> list[int] | None:
    """Classes of a raw Booster: 0..n-1 for classification objectives, else None."""
    objective = str(booster.params.get("objective", ""))
    if objective not in _CLASSIFICATION:
        return None
    n = int(booster.params.get("num_class", 1))
    return list(range(max(n, 2)))


__all__ = ["LightGBMFlavor", "LightGBMPredictor"]
