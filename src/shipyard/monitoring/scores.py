"""Realized metrics on labelled predictions, with scikit-learn's definitions.

Implemented on numpy here (the report computes them per time bucket on
arrays it already holds) and tested against :mod:`sklearn.metrics`:

- ``accuracy``: share of exact matches.
- ``f1_macro``: unweighted mean of per-class F1 over the classes that occur
  in the labels or the predictions (``f1_score(average="macro")``).
- ``roc_auc``: binary ROC AUC of the positive class's probability, or for
  several classes the mean of one-vs-rest AUCs
  (``roc_auc_score(multi_class="ovr", average="macro")``); ``None`` when a
  class has no positive or no negative example, where AUC is undefined. With
  several classes, only the classes present in the labels are averaged.
- ``mae`` and ``rmse`` for regression.

Class labels are compared as text (:func:`~shipyard.monitoring.records.class_key`).

>>> accuracy(np.array(["a", "b", "b"]), np.array(["a", "b", "a"]))
0.6666666666666666
>>> roc_auc(np.array(["0", "1", "1"]), np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]), ["0", "1"])
1.0
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["accuracy", "binary_auc", "f1_macro", "mae", "rmse", "roc_auc"]


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float | None:
    """Share of predictions equal to their label; ``None`` without labels."""
    if len(y_true) == 0:
        return None
    return float(np.mean(np.asarray(y_true) == np.asarray(y_pred)))


def f1_macro(y_true: np.ndarray, y_pred: np.ndarray) -> float | None:
    """Macro-averaged F1 over the classes seen in labels or predictions."""
    if len(y_true) == 0:
        return None
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    scores = []
    for cls in np.unique(np.concatenate([y_true, y_pred])):
        is_true, is_pred = y_true == cls, y_pred == cls
        tp = np.sum(is_true & is_pred)
        fp = np.sum(~is_true & is_pred)
        fn = np.sum(is_true & ~is_pred)
        # The class occurs in y_true or y_pred, so the denominator is positive.
        scores.append(2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores))


def binary_auc(positive: np.ndarray, score: np.ndarray) -> float | None:
    """ROC AUC as the Mann-Whitney statistic (ties count one half); ``None`` if undefined."""
    positive = np.asarray(positive, dtype=bool)
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = _average_ranks(np.asarray(score, dtype=np.float64))
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, tied values sharing their mean rank (so a tie counts one half)."""
    order = np.argsort(values, kind="mergesort")
    ordered = values[order]
    starts_group = np.r_[True, ordered[1:] != ordered[:-1]]
    starts = np.flatnonzero(starts_group)
    ends = np.r_[starts[1:], len(values)]
    ranks = np.empty(len(values))
    ranks[order] = ((starts + 1 + ends) / 2.0)[np.cumsum(starts_group) - 1]
    return ranks


def roc_auc(y_true: np.ndarray, proba: np.ndarray, classes: Sequence[str]) -> float | None:
    """ROC AUC from class probabilities (columns in ``classes`` order).

    Rows whose label is not one of ``classes`` or whose probabilities are
    missing are left out: they have no score to rank.
    """
    y_true = np.asarray(y_true)
    proba = np.asarray(proba, dtype=np.float64)
    keep = np.isin(y_true, list(classes)) & ~np.isnan(proba).any(axis=1)
    y_true, proba = y_true[keep], proba[keep]
    if len(classes) == 2:
        return binary_auc(y_true == classes[1], proba[:, 1])
    aucs = [binary_auc(y_true == cls, proba[:, j]) for j, cls in enumerate(classes)]
    defined = [a for a in aucs if a is not None]
    return float(np.mean(defined)) if defined else None


def mae(y_true: np.ndarray, y_pred: np.ndarray) -> float | None:
    """Mean absolute error; ``None`` without labels."""
    if len(y_true) == 0:
        return None
    return float(np.mean(np.abs(np.asarray(y_true, float) - np.asarray(y_pred, float))))


def rmse(y_true: np.ndarray, y_pred: np.ndarray) -> float | None:
    """Root mean squared error; ``None`` without labels."""
    if len(y_true) == 0:
        return None
    diff = np.asarray(y_true, float) - np.asarray(y_pred, float)
    return float(np.sqrt(np.mean(diff * diff)))
