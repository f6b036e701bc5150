"""Prediction drift: the same tests, run on a model's outputs.

A prediction column is just a column: a classifier's labels are categorical,
a regressor's values numerical, class probabilities numerical. These helpers
turn raw model outputs into a frame and run the detector on it, so a shift in
what the model predicts is caught even before ground truth arrives.

    >>> import numpy as np
    >>> ref = np.r_[np.zeros(600), np.ones(600)]
    >>> prediction_drift(ref, np.r_[np.zeros(200), np.ones(1000)]).dataset_drift
    True
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import pandas as pd

from shipyard.drift.detector import DriftDetector
from shipyard.drift.result import DriftResult
from shipyard.errors import InvalidInputError

PREDICTION = "prediction"


class Predictor(Protocol):
    """Anything with a scikit-learn style ``predict``."""

    def predict(self, X: Any) -> Any: ...


def prediction_frame(outputs: Any, *, name: str = PREDICTION) -> pd.DataFrame:
    """Model outputs as a frame.

    1-D outputs become one column ``name``; 2-D outputs (class probabilities)
    become ``name_0 ... name_k``; a DataFrame or Series is kept as it is.
    """
    if isinstance(outputs, pd.DataFrame):
        return outputs
    if isinstance(outputs, pd.Series):
        return outputs.to_frame(name if outputs.name is None else str(outputs.name))
    array = np.asarray(outputs)
    if array.ndim == 1:
        return pd.DataFrame({name: array})
    if array.ndim == 2:
        return pd.DataFrame(array, columns=[f"{name}_{i}" for i in range(array.shape[1])])
    raise InvalidInputError(
        f"Model outputs must be 1-D (one prediction per row) or 2-D (a column per class), "
        f"got an array of shape {array.shape}."
    )


def prediction_drift(
    reference: Any, current: Any, *, name: str = PREDICTION, **detector_options: Any
) -> DriftResult:
    """Drift between two sets of model outputs (arrays, Series or frames).

    ``detector_options`` go to :class:`DriftDetector` (``stattest``,
    ``threshold``, ``categorical=[name]`` to force labels categorical, ...).
    """
    ref = prediction_frame(reference, name=name)
    cur = prediction_frame(current, name=name)
    return DriftDetector(**detector_options).fit(ref).score(cur)


def model_prediction_drift(
    model: Predictor,
    reference_features: pd.DataFrame,
    current_features: pd.DataFrame,
    **detector_options: Any,
) -> DriftResult:
    """Run ``model.predict`` on both feature frames and compare its outputs."""
    return prediction_drift(
        model.predict(reference_features), model.predict(current_features), **detector_options
    )
