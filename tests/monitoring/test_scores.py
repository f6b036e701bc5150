"""Realized metrics agree with scikit-learn on the same data."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from shipyard.monitoring import scores


def _classification(seed: int, k: int, n: int = 500) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    proba = rng.dirichlet(np.ones(k), size=n)
    # Coarse probabilities: plenty of ties, the case rank-based AUCs get wrong.
    proba = np.round(proba, 1) + 1e-9
    proba /= proba.sum(axis=1, keepdims=True)
    y_true = np.array([rng.choice(k, p=p) for p in proba])
    y_pred = np.where(rng.random(n) < 0.7, proba.argmax(axis=1), rng.integers(0, k, n))
    return y_true, y_pred, proba


@pytest.mark.parametrize(("seed", "k"), [(0, 2), (1, 3), (2, 5)])
def test_classification_metrics_match_sklearn(seed: int, k: int) -> None:
    y_true, y_pred, proba = _classification(seed, k)
    names = [f"c{i}" for i in range(k)]  # compared as text, as the log stores them
    t, p = np.array(names)[y_true], np.array(names)[y_pred]

    assert scores.accuracy(t, p) == pytest.approx(skm.accuracy_score(y_true, y_pred), abs=1e-12)
    assert scores.f1_macro(t, p) == pytest.approx(
        skm.f1_score(y_true, y_pred, average="macro"), abs=1e-12
    )
    expected_auc = (
        skm.roc_auc_score(y_true, proba[:, 1])
        if k == 2
        else skm.roc_auc_score(y_true, proba, multi_class="ovr", average="macro")
    )
    assert scores.roc_auc(t, proba, names) == pytest.approx(expected_auc, abs=1e-12)


def test_f1_macro_counts_classes_seen_only_in_predictions() -> None:
    y_true = np.array(["a", "a", "b", "b"])
    y_pred = np.array(["a", "c", "b", "b"])
    assert scores.f1_macro(y_true, y_pred) == pytest.approx(
        skm.f1_score(y_true, y_pred, average="macro", zero_division=0)
    )


def test_auc_is_undefined_with_a_single_class() -> None:
    proba = np.array([[0.2, 0.8], [0.4, 0.6]])
    assert scores.roc_auc(np.array(["1", "1"]), proba, ["0", "1"]) is None
    three = np.array([[0.6, 0.2, 0.2], [0.1, 0.8, 0.1], [0.5, 0.3, 0.2]])
    # Class "2" never occurs: averaged over the classes that do.
    got = scores.roc_auc(np.array(["0", "1", "0"]), three, ["0", "1", "2"])
    want = np.mean(
        [
            skm.roc_auc_score([1, 0, 1], three[:, 0]),
            skm.roc_auc_score([0, 1, 0], three[:, 1]),
        ]
    )
    assert got == pytest.approx(want)


def test_rows_without_a_usable_score_are_left_out_of_auc() -> None:
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [np.nan, np.nan], [0.5, 0.5]])
    y = np.array(["0", "1", "1", "unknown-class"])
    assert scores.roc_auc(y, proba, ["0", "1"]) == 1.0


def test_regression_metrics_match_sklearn() -> None:
    rng = np.random.default_rng(3)
    y_true = rng.normal(size=300)
    y_pred = y_true + rng.normal(scale=0.3, size=300)
    assert scores.mae(y_true, y_pred) == pytest.approx(skm.mean_absolute_error(y_true, y_pred))
    assert scores.rmse(y_true, y_pred) == pytest.approx(
        np.sqrt(skm.mean_squared_error(y_true, y_pred))
    )


def test_no_labels_means_no_value() -> None:
    empty = np.array([])
    assert scores.accuracy(empty, empty) is None
    assert scores.f1_macro(empty, empty) is None
    assert scores.mae(empty, empty) is None
    assert scores.rmse(empty, empty) is None
