r"""Confidence-based performance estimation (CBPE): performance without labels.

NannyML's CBPE reads a classifier's own probabilities as the chance that each
prediction is right. If the probabilities are *calibrated* -- among rows given
:math:`p_{ik} = 0.8` for class *k*, 80% really are *k* -- then for row *i* the
label :math:`y_i` is a draw with :math:`P(y_i = k) = p_{ik}`, and every count in
the confusion matrix has a known expectation. With :math:`\hat y_i` the
predicted class:

**Accuracy.** :math:`\mathrm{acc} = \frac1n \sum_i [y_i = \hat y_i]`. By
linearity of expectation,

.. math:: E[\mathrm{acc}] = \frac1n \sum_i P(y_i = \hat y_i) = \frac1n \sum_i p_{i\hat y_i},

the mean probability of the predicted class (the mean maximum probability when
predictions are the argmax). This is exact, not an approximation; its standard
deviation is :math:`\sqrt{\sum_i q_i(1-q_i)}/n` with :math:`q_i = p_{i\hat y_i}`.

**F1.** For class *k* (one vs rest) the expected counts are

.. math::
    E[TP_k] = \sum_{\hat y_i = k} p_{ik},\quad
    E[FP_k] = \sum_{\hat y_i = k} (1 - p_{ik}),\quad
    E[FN_k] = \sum_{\hat y_i \ne k} p_{ik},

and CBPE plugs them into :math:`F1_k = TP_k / (TP_k + \tfrac12(FP_k + FN_k))`
(NannyML's ``estimate_f1``). A ratio of expectations is not the expectation of
the ratio; the difference is a delta-method term of order :math:`1/n`, small
for buckets of a few hundred rows. Macro F1 is the mean over classes; for two
classes this module averages both (NannyML's binary ``f1`` is the positive
class alone; ours matches the realized ``f1_macro`` it is shown beside).

**ROC AUC.** Predicting "positive" when the score is at least *t* gives
expected counts :math:`E[TP(t)] = \sum_{s_i \ge t} p_i` and
:math:`E[FP(t)] = \sum_{s_i \ge t} (1 - p_i)`; dividing by the expected
numbers of positives :math:`\sum_i p_i` and negatives :math:`\sum_i (1-p_i)`
gives the expected ROC curve, and CBPE's estimate is the trapezoidal area under
it (NannyML's ``estimate_roc_auc``: sort by score, cumulative sums of
:math:`p` and :math:`1-p`). Equivalently it is the chance that an expected
positive outranks an expected negative,
:math:`\sum_{i,j} p_i (1-p_j) [s_i > s_j] / (\sum p)(\sum (1-p))`, ties
counting one half. Several classes: the mean of one-vs-rest estimates.

Calibration is an assumption here: NannyML recalibrates on labelled reference
data first; Shipyard uses the served probabilities as they are, so the
estimate is as good as the model's calibration. Without probabilities there is
nothing to estimate from, and the report says so.

>>> proba = np.array([[0.9, 0.1], [0.3, 0.7], [0.6, 0.4]])
>>> round(expected_accuracy(proba, np.array([0, 1, 0])), 4)
0.7333
"""

from __future__ import annotations

import numpy as np

__all__ = ["expected_accuracy", "expected_binary_auc", "expected_f1_macro", "expected_roc_auc"]


def _clean(proba: np.ndarray, predicted: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
    proba = np.asarray(proba, dtype=np.float64)
    keep = ~np.isnan(proba).any(axis=1)
    if predicted is None:
        return (proba[keep],)
    return proba[keep], np.asarray(predicted)[keep]


def expected_accuracy(proba: np.ndarray, predicted: np.ndarray) -> float | None:
    """Mean probability of the predicted class; ``predicted`` holds column indices.

    A prediction outside the probability columns (index ``-1``) counts with
    its largest probability, as an argmax prediction would.
    """
    proba, predicted = _clean(proba, predicted)
    if len(proba) == 0:
        return None
    chosen = np.where(predicted >= 0, predicted, proba.argmax(axis=1))
    return float(np.mean(proba[np.arange(len(proba)), chosen]))


def expected_f1_macro(proba: np.ndarray, predicted: np.ndarray) -> float | None:
    """Mean over classes of the F1 computed from expected TP, FP and FN counts."""
    proba, predicted = _clean(proba, predicted)
    if len(proba) == 0:
        return None
    chosen = np.where(predicted >= 0, predicted, proba.argmax(axis=1))
    scores = []
    for k in range(proba.shape[1]):
        p = proba[:, k]
        hit = chosen == k
        tp = p[hit].sum()
        fp = (1 - p[hit]).sum()
        fn = p[~hit].sum()
        denominator = tp + 0.5 * (fp + fn)
        # A class never predicted and with no probability mass is absent, as a
        # class absent from labels and predictions is absent from realized F1.
        if denominator > 0:
            scores.append(tp / denominator)
    return float(np.mean(scores)) if scores else None


def expected_binary_auc(p_positive: np.ndarray, score: np.ndarray | None = None) -> float | None:
    """Area under the expected ROC curve of one class (see the module docstring).

    ``p_positive`` is the calibrated probability of the class, ``score`` what
    the rows are ranked by (the same probabilities unless a calibrator mapped them).
    """
    p = np.asarray(p_positive, dtype=np.float64)
    s = p if score is None else np.asarray(score, dtype=np.float64)
    keep = ~(np.isnan(p) | np.isnan(s))
    p, s = p[keep], s[keep]
    order = np.argsort(-s, kind="stable")
    p, s = p[order], s[order]
    # One point per distinct score: tied rows move the curve together.
    last_of_tie = np.r_[s[1:] != s[:-1], True] if len(s) else np.array([], dtype=bool)
    tps = np.r_[0.0, np.cumsum(p)[last_of_tie]]
    fps = np.r_[0.0, np.cumsum(1 - p)[last_of_tie]]
    if len(p) == 0 or tps[-1] <= 0 or fps[-1] <= 0:
        return None
    return float(np.trapezoid(tps / tps[-1], fps / fps[-1]))


def expected_roc_auc(proba: np.ndarray) -> float | None:
    """Expected ROC AUC from class probabilities: binary, or mean one-vs-rest."""
    (proba,) = _clean(proba)
    if len(proba) == 0:
        return None
    if proba.shape[1] == 2:
        return expected_binary_auc(proba[:, 1])
    estimates = [expected_binary_auc(proba[:, k]) for k in range(proba.shape[1])]
    defined = [e for e in estimates if e is not None]
    return float(np.mean(defined)) if defined else None
