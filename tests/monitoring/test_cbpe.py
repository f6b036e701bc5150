"""CBPE: estimates from a calibrated model's own probabilities match realized performance."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from shipyard.monitoring import cbpe

N = 20_000


def _calibrated(seed: int, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Probabilities, argmax predictions, and labels drawn from those very probabilities."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=2.0, size=(N, k))
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    cumulative = proba.cumsum(axis=1)
    labels = (rng.random((N, 1)) > cumulative).sum(axis=1)  # a draw per row from proba
    return proba, proba.argmax(axis=1), np.minimum(labels, k - 1)


@pytest.mark.parametrize(("seed", "k"), [(10, 2), (11, 3), (12, 4)])
def test_expected_accuracy_matches_realized_on_a_calibrated_model(seed: int, k: int) -> None:
    proba, predicted, labels = _calibrated(seed, k)
    q = proba[np.arange(N), predicted]
    # Given calibrated probabilities, realized accuracy is a sum of independent
    # Bernoulli(q_i) draws over N: its standard deviation is known exactly.
    sd = np.sqrt(np.sum(q * (1 - q))) / N

    estimated = cbpe.expected_accuracy(proba, predicted)
    realized = np.mean(predicted == labels)

    assert estimated == pytest.approx(np.mean(proba.max(axis=1)))
    assert abs(estimated - realized) < 4 * sd  # ~3e-3 here: a 1-in-15,000 miss

    # The same check fails, loudly, when the labels do not follow the probabilities:
    # a test a broken estimator could pass by accident would not see this.
    rng = np.random.default_rng(seed + 100)
    noise = rng.integers(0, k, N)
    assert abs(estimated - np.mean(predicted == noise)) > 40 * sd


@pytest.mark.parametrize(("seed", "k"), [(20, 2), (21, 3)])
def test_expected_f1_and_auc_match_realized_on_a_calibrated_model(seed: int, k: int) -> None:
    proba, predicted, labels = _calibrated(seed, k)

    f1 = skm.f1_score(labels, predicted, average="macro")
    auc = (
        skm.roc_auc_score(labels, proba[:, 1])
        if k == 2
        else skm.roc_auc_score(labels, proba, multi_class="ovr")
    )
    assert cbpe.expected_f1_macro(proba, predicted) == pytest.approx(f1, abs=0.01)
    assert cbpe.expected_roc_auc(proba) == pytest.approx(auc, abs=0.01)

    # Overconfident probabilities (sharpened) must show up as an overestimate.
    sharp = proba**4 / (proba**4).sum(axis=1, keepdims=True)
    assert cbpe.expected_accuracy(sharp, predicted) > np.mean(predicted == labels) + 0.05


def test_expected_f1_is_nannymls_formula_on_a_worked_example() -> None:
    # Binary, positive class 1: p = [0.9, 0.6, 0.3, 0.2], predictions = [1, 1, 0, 0].
    p1 = np.array([0.9, 0.6, 0.3, 0.2])
    proba = np.c_[1 - p1, p1]
    predicted = np.array([1, 1, 0, 0])
    tp, fp, fn = 0.9 + 0.6, 0.1 + 0.4, 0.3 + 0.2  # for class 1
    f1_pos = tp / (tp + 0.5 * (fp + fn))
    tp0, fp0, fn0 = 0.7 + 0.8, 0.3 + 0.2, 0.1 + 0.4  # for class 0
    f1_neg = tp0 / (tp0 + 0.5 * (fp0 + fn0))
    assert cbpe.expected_f1_macro(proba, predicted) == pytest.approx((f1_pos + f1_neg) / 2)
    assert cbpe.expected_accuracy(proba, predicted) == pytest.approx((0.9 + 0.6 + 0.7 + 0.8) / 4)


def test_expected_auc_is_the_chance_an_expected_positive_outranks_a_negative() -> None:
    rng = np.random.default_rng(5)
    p = np.round(rng.random(300), 2)  # ties included
    pairs = p[:, None] * (1 - p[None, :])
    wins = (p[:, None] > p[None, :]) + 0.5 * (p[:, None] == p[None, :])
    # The area under the expected ROC curve is exactly this pairwise sum (every
    # pair, a row with itself included as a tie), an independent computation.
    direct = np.sum(pairs * wins) / (p.sum() * (1 - p).sum())
    assert cbpe.expected_binary_auc(p) == pytest.approx(direct, abs=1e-12)


def test_no_rows_or_no_mass_gives_no_estimate() -> None:
    empty = np.zeros((0, 2))
    assert cbpe.expected_accuracy(empty, np.array([], dtype=int)) is None
    assert cbpe.expected_f1_macro(empty, np.array([], dtype=int)) is None
    assert cbpe.expected_roc_auc(empty) is None
    assert cbpe.expected_binary_auc(np.array([1.0, 1.0])) is None  # no expected negatives
    nan_rows = np.array([[np.nan, np.nan], [0.8, 0.2]])
    assert cbpe.expected_accuracy(nan_rows, np.array([0, 0])) == pytest.approx(0.8)
    # A prediction outside the probability columns counts with its top probability.
    assert cbpe.expected_accuracy(np.array([[0.3, 0.7]]), np.array([-1])) == pytest.approx(0.7)
