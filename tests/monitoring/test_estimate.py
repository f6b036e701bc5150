"""Per-chunk CBPE estimates with their band, and direct loss estimation."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_diabetes

from shipyard.errors import InvalidInputError
from shipyard.monitoring.estimate import DirectLossEstimator, estimate_classifier


def test_the_band_holds_the_realized_accuracy_of_labels_drawn_from_the_probabilities() -> None:
    rng = np.random.default_rng(3)
    p1 = rng.uniform(0.05, 0.95, size=2000)
    proba = np.column_stack([1 - p1, p1])
    chosen = proba.argmax(axis=1)
    chunks = estimate_classifier(proba, chosen, chunk_size=400)
    assert [c.rows for c in chunks] == [400] * 5
    y = (rng.uniform(size=2000) < p1).astype(int)  # labels as CBPE assumes them
    for c in chunks:
        low, high = c.band["accuracy"]
        realized = np.mean(chosen[c.start : c.start + c.rows] == y[c.start : c.start + c.rows])
        assert low <= realized <= high
        assert c.band["f1_macro"] is not None and c.band["roc_auc"] is not None
    with pytest.raises(InvalidInputError, match="chunk-size"):
        estimate_classifier(proba, chosen, chunk_size=0)


def test_direct_loss_estimation_follows_the_error_of_a_regressor() -> None:
    X, y = load_diabetes(return_X_y=True, as_frame=True)
    predictions = X["bmi"].to_numpy() * 900 + 150  # a crude model, worse for big bmi
    estimator = DirectLossEstimator().fit(X[:300], predictions[:300], y[:300].to_numpy())
    (chunk,) = estimator.estimate(X[300:], predictions[300:], chunk_size=1000)
    error = y[300:].to_numpy() - predictions[300:]
    assert chunk.metrics["mae"] == pytest.approx(np.mean(np.abs(error)), rel=0.2)
    assert chunk.metrics["rmse"] == pytest.approx(np.sqrt(np.mean(error**2)), rel=0.2)
    with pytest.raises(InvalidInputError, match="at least 20"):
        DirectLossEstimator().fit(X[:5], predictions[:5], y[:5].to_numpy())
    with pytest.raises(InvalidInputError, match="not fitted"):
        DirectLossEstimator().estimate(X, predictions, chunk_size=10)
