"""Per-class isotonic calibration of a classifier's probabilities, for CBPE.

CBPE (:mod:`.cbpe`) reads a probability of 0.8 as "right 8 times in 10". Many
models are not calibrated that way (forests, boosted trees, SVMs), so the
estimate is only as good as the calibration. :func:`fit_calibration` learns,
on labelled reference data (the model gates' holdout, or a labelled file given
once), one monotone map per class from the served probability to the share of
rows that really are that class (isotonic regression, one class against the
rest), and :meth:`Calibration.transform` applies them and renormalizes each
row to sum to one. A binary model has one map, for its second class; the first
gets the complement.

A class whose probabilities are already calibrated keeps them as they are: the
map is fitted only where, in ten stratified 90/10 splits of the reference, the
expected calibration error (ECE, ten equal-count bins) of the held-out rows is
lower with the map than without (and never for a class the model separates
perfectly, AUC > 0.999). This is the rule NannyML applies, so the two give the
same estimates for the same model and reference.

The fitted maps are stored as plain numbers (JSON: breakpoints of a
piecewise-linear function), never as a pickle, so loading one runs no code.

>>> proba = np.array([[0.9, 0.1], [0.2, 0.8]] * 100)
>>> y = np.array([0, 0] * 100)                # the model is overconfident about class 1
>>> calibration = fit_calibration(proba, y, classes=("a", "b"))
>>> calibration.transform(proba)[1].round(2).tolist()
[1.0, 0.0]
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from shipyard.errors import InvalidInputError

__all__ = ["Calibration", "ClassMap", "fit_calibration", "needs_calibration"]

#: Bins of the expected calibration error and splits of the reference that decide.
ECE_BINS = 10
SPLITS = 10
#: A class separated this well needs no map (and a map would only add noise).
SEPARATED_AUC = 0.999
#: Labelled rows below which no map is fitted: too few to learn a curve from.
MIN_ROWS = 40


@dataclass(frozen=True)
class ClassMap:
    """A monotone piecewise-linear map of one class's probability (isotonic fit)."""

    x: tuple[float, ...]
    y: tuple[float, ...]

    def __call__(self, p: np.ndarray) -> np.ndarray:
        # Outside the fitted range the end values hold, as isotonic regression's "clip".
        return np.interp(p, self.x, self.y)


@dataclass(frozen=True)
class Calibration:
    """Maps per class (None: the class was already calibrated); ``classes`` in column order."""

    classes: tuple[str, ...]
    maps: tuple[ClassMap | None, ...]
    rows: int

    @property
    def binary(self) -> bool:
        return len(self.classes) == 2

    @property
    def identity(self) -> bool:
        """True when no class needed a map: the probabilities pass through unchanged."""
        return all(m is None for m in self.maps)

    def transform(self, proba: np.ndarray) -> np.ndarray:
        """Calibrated probabilities, rows summing to one (a row of NaN stays NaN)."""
        proba = np.asarray(proba, dtype=np.float64)
        if proba.ndim != 2 or proba.shape[1] != len(self.classes):
            raise InvalidInputError(
                f"Expected probabilities of {len(self.classes)} classes {list(self.classes)}, "
                f"got an array of shape {proba.shape}."
            )
        if self.binary:
            positive = self.maps[1]
            p = proba[:, 1] if positive is None else positive(proba[:, 1])
            return np.column_stack([1.0 - p, p])
        out = np.column_stack(
            [proba[:, k] if m is None else m(proba[:, k]) for k, m in enumerate(self.maps)]
        )
        total = out.sum(axis=1, keepdims=True)
        uniform = np.full_like(out, 1.0 / out.shape[1])
        return np.divide(out, total, out=uniform, where=total != 0)

    def to_bytes(self) -> bytes:
        return orjson.dumps(
            {
                "kind": "isotonic-per-class",
                "classes": list(self.classes),
                "rows": self.rows,
                "maps": [None if m is None else {"x": m.x, "y": m.y} for m in self.maps],
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> Calibration:
        spec: dict[str, Any] = orjson.loads(data)
        if spec.get("kind") != "isotonic-per-class":
            raise InvalidInputError(f"Unknown calibration kind {spec.get('kind')!r}.")
        maps = tuple(
            None if m is None else ClassMap(tuple(m["x"]), tuple(m["y"])) for m in spec["maps"]
        )
        return cls(tuple(spec["classes"]), maps, int(spec.get("rows", 0)))


def fit_calibration(proba: np.ndarray, y: np.ndarray, *, classes: Sequence[str]) -> Calibration:
    """Fit the per-class maps on reference probabilities ``proba`` and labels ``y``.

    ``y`` holds column indices (0..k-1) of the true classes; rows whose label is
    not one of ``classes`` (index -1) or whose probabilities are missing are left out.
    """
    proba = np.asarray(proba, dtype=np.float64)
    y = np.asarray(y)
    keep = ~np.isnan(proba).any(axis=1) & (y >= 0)
    proba, y = proba[keep], y[keep]
    if len(proba) < MIN_ROWS:
        raise InvalidInputError(
            f"Calibration needs at least {MIN_ROWS} labelled reference rows with "
            f"probabilities; got {len(proba)}."
        )
    columns = [1] if len(classes) == 2 else range(len(classes))
    maps: list[ClassMap | None] = [None] * len(classes)
    for k in columns:
        truth = (y == k).astype(np.float64)
        if needs_calibration(truth, proba[:, k]):
            maps[k] = _isotonic(proba[:, k], truth)
    return Calibration(tuple(str(c) for c in classes), tuple(maps), len(proba))


def needs_calibration(truth: np.ndarray, score: np.ndarray) -> bool:
    """Whether an isotonic map lowers the held-out expected calibration error (see module)."""
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedShuffleSplit

    if len(np.unique(truth)) < 2:
        return False
    if roc_auc_score(truth, score) > SEPARATED_AUC:
        return False
    splits = StratifiedShuffleSplit(n_splits=SPLITS, test_size=0.1, random_state=42)
    held_truth, held_raw, held_mapped = [], [], []
    for train, test in splits.split(score, truth):
        mapped = _isotonic(score[train], truth[train])(score[test])
        held_truth.append(truth[test])
        held_raw.append(score[test])
        held_mapped.append(mapped)
    t, raw, mapped = map(np.concatenate, (held_truth, held_raw, held_mapped))
    return _ece(t, raw) > _ece(t, mapped)


def _isotonic(score: np.ndarray, truth: np.ndarray) -> ClassMap:
    from sklearn.isotonic import IsotonicRegression

    fitted = IsotonicRegression(out_of_bounds="clip", increasing=True).fit(score, truth)
    return ClassMap(
        tuple(float(v) for v in fitted.X_thresholds_),
        tuple(float(v) for v in fitted.y_thresholds_),
    )


def _ece(truth: np.ndarray, score: np.ndarray) -> float:
    """Expected calibration error over equal-count bins of the sorted scores."""
    n = len(score)
    bins = ECE_BINS if n > 2 * ECE_BINS else n // 2
    if bins < 2:
        return 0.0
    width = n // bins
    edges = np.asarray(range(0, n + 1, width))
    edges[-1] = n
    order = score.argsort()
    score, truth = score[order], truth[order]
    total = 0.0
    for left, right in itertools.pairwise(edges):
        if right > left:
            gap = abs(score[left:right].mean() - truth[left:right].mean())
            total += (right - left) / n * gap
    return float(total)
