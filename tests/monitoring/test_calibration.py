"""Per-class isotonic calibration: fitted on labelled reference rows, stored as numbers."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_wine
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import train_test_split

from shipyard.errors import InvalidInputError
from shipyard.monitoring.calibration import Calibration, fit_calibration, needs_calibration


def test_an_underconfident_forest_is_mapped_closer_to_the_truth() -> None:
    X, y = load_breast_cancer(return_X_y=True)
    X_fit, X_rest, y_fit, y_rest = train_test_split(X, y, train_size=0.4, random_state=0)
    X_ref, X_new, y_ref, y_new = train_test_split(X_rest, y_rest, train_size=0.5, random_state=0)
    forest = RandomForestClassifier(30, max_depth=2, random_state=0).fit(X_fit, y_fit)
    calibration = fit_calibration(forest.predict_proba(X_ref), y_ref, classes=("0", "1"))
    assert calibration.binary and calibration.maps[0] is None and calibration.maps[1] is not None
    raw = forest.predict_proba(X_new)
    mapped = calibration.transform(raw)
    np.testing.assert_allclose(mapped.sum(axis=1), 1)
    chosen = raw.argmax(axis=1)
    realized = np.mean(chosen == y_new)
    before = raw[np.arange(len(raw)), chosen].mean()
    after = mapped[np.arange(len(raw)), chosen].mean()
    assert abs(after - realized) < abs(before - realized)


def test_multiclass_maps_round_trip_as_plain_numbers() -> None:
    X, y = load_wine(return_X_y=True)
    forest = RandomForestClassifier(20, max_depth=2, random_state=0).fit(X[::2], y[::2])
    calibration = fit_calibration(forest.predict_proba(X[1::2]), y[1::2], classes=("a", "b", "c"))
    again = Calibration.from_bytes(calibration.to_bytes())
    assert again == calibration
    proba = forest.predict_proba(X[:10])
    np.testing.assert_array_equal(again.transform(proba), calibration.transform(proba))
    with pytest.raises(InvalidInputError, match="3 classes"):
        calibration.transform(proba[:, :2])


def test_separated_scores_get_no_map_and_too_few_rows_are_refused() -> None:
    assert not needs_calibration(np.array([0.0, 1.0] * 50), np.array([0.3, 0.7] * 50))
    assert not needs_calibration(np.array([0.0, 1.0] * 50), np.array([0.1, 0.9] * 50))
    with pytest.raises(InvalidInputError, match="at least 40"):
        fit_calibration(np.array([[0.5, 0.5]] * 10), np.zeros(10, dtype=int), classes=("a", "b"))
