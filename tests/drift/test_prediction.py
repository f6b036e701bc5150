"""Prediction drift on real model outputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from shipyard.drift.prediction import model_prediction_drift, prediction_drift, prediction_frame
from shipyard.errors import InvalidInputError


def test_prediction_frame_shapes() -> None:
    assert list(prediction_frame(np.zeros(3)).columns) == ["prediction"]
    assert list(prediction_frame(np.zeros((3, 2)), name="p").columns) == ["p_0", "p_1"]
    assert list(prediction_frame(pd.Series([1, 2], name="score")).columns) == ["score"]
    with pytest.raises(InvalidInputError, match="1-D"):
        prediction_frame(np.zeros((2, 2, 2)))


def test_probability_drift_is_detected() -> None:
    rng = np.random.default_rng(0)
    result = prediction_drift(rng.beta(2, 5, 3000), rng.beta(4, 3, 3000))
    assert result.column("prediction").stattest == "wasserstein"
    assert result.dataset_drift


def test_model_prediction_drift_follows_feature_shift() -> None:
    rng = np.random.default_rng(1)
    X = pd.DataFrame({"a": rng.normal(size=4000), "b": rng.normal(size=4000)})
    y = (X["a"] + 0.5 * X["b"] > 0).astype(int)
    model = LogisticRegression().fit(X, y)
    same = model_prediction_drift(model, X.iloc[:2000], X.iloc[2000:])
    shifted = model_prediction_drift(
        model, X.iloc[:2000], X.iloc[2000:].assign(a=lambda d: d.a + 1)
    )
    assert same.column("prediction").type == "categorical"  # labels 0/1
    assert not same.dataset_drift and shifted.dataset_drift
