"""Estimated performance of a file of inputs, per chunk of rows, before any label exists.

Classifiers: CBPE (:mod:`.cbpe`) on the probabilities the model gives, after
the version's calibration (:mod:`.calibration`) when it has one: accuracy,
macro F1 and ROC AUC per chunk, with a confidence band. These are the
functions the monitor job and ``shipyard monitor performance`` apply to the
prediction log, so the same rows give the same numbers.

**The band.** Under CBPE's assumption each row's label is a draw from its
calibrated probabilities, so the chunk's realized metric is a random variable
around the estimate. The band is the estimate plus or minus three of its
standard deviations, clipped to [0, 1]: exact for accuracy
(:math:`\\sqrt{\\sum_i q_i(1-q_i)}/n`), and from ``draws`` simulated label sets
(fixed seed, so reruns agree) for macro F1 and ROC AUC.

Regressors: direct loss estimation (DLE, as NannyML's): a gradient-boosted
model of the absolute and of the squared error, trained on a labelled
reference with the model's own input columns and its prediction as features
(see :class:`DirectLossEstimator`), estimates MAE and RMSE per chunk. It
needs the labelled reference on every run (the loss models are not stored:
they would be pickles).

>>> chunks = estimate_classifier(proba, predicted, chunk_size=500)    # doctest: +SKIP
>>> chunks[0].to_dict()["accuracy"]                                   # doctest: +SKIP
0.91
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from shipyard.errors import InvalidInputError
from shipyard.monitoring import cbpe
from shipyard.monitoring.calibration import Calibration

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "DLE_MAX_CATEGORIES",
    "ChunkEstimate",
    "DirectLossEstimator",
    "estimate_classifier",
]

DEFAULT_CHUNK_SIZE = 500
#: Simulated label sets per chunk for the band of macro F1 and ROC AUC.
BAND_DRAWS = 200
BAND_SIGMAS = 3.0
_MAX_CELLS = 20_000_000
#: Reference values of a text column that keep their own category in direct loss
#: estimation; with the shared "other" category that makes 255, the most the
#: boosted trees' native categorical splits take per column.
DLE_MAX_CATEGORIES = 254
_EPOCH = pd.Timestamp(0, tz="UTC")


@dataclass(frozen=True)
class ChunkEstimate:
    """Estimated metrics of rows ``[start, start + rows)``; ``band`` holds (low, high)."""

    start: int
    rows: int
    metrics: dict[str, float | None]
    calibrated: bool | None
    band: dict[str, tuple[float, float] | None] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"start": self.start, "rows": self.rows, **self.metrics}
        if self.calibrated is not None:
            out["calibrated"] = self.calibrated
        out["band"] = {k: None if v is None else list(v) for k, v in self.band.items()}
        return out


def estimate_classifier(
    proba: np.ndarray,
    predicted: np.ndarray,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    calibration: Calibration | None = None,
    seed: int = 0,
    draws: int = BAND_DRAWS,
) -> list[ChunkEstimate]:
    """CBPE per chunk: ``proba`` in the calibration's class order, ``predicted`` holds
    column indices of the predicted classes (-1: not a class of the columns).

    ``draws`` simulated label sets give the band of macro F1 and ROC AUC (0: no
    band for them; accuracy's is exact and always given).
    """
    if chunk_size < 1:
        raise InvalidInputError(f"--chunk-size must be at least 1 row, got {chunk_size}.")
    proba = np.asarray(proba, dtype=np.float64)
    if calibration is not None:
        proba = calibration.transform(proba)
    predicted = np.asarray(predicted)
    rng = np.random.default_rng(seed)
    out = []
    for start in range(0, len(proba), chunk_size):
        p, chosen = proba[start : start + chunk_size], predicted[start : start + chunk_size]
        metrics = {
            "accuracy": cbpe.expected_accuracy(p, chosen),
            "f1_macro": cbpe.expected_f1_macro(p, chosen),
            "roc_auc": cbpe.expected_roc_auc(p),
        }
        out.append(
            ChunkEstimate(
                start,
                len(p),
                metrics,
                calibration is not None,
                _bands(p, chosen, metrics, rng, draws),
            )
        )
    return out


def _bands(
    proba: np.ndarray,
    chosen: np.ndarray,
    metrics: dict[str, float | None],
    rng: np.random.Generator,
    draws: int,
) -> dict[str, tuple[float, float] | None]:
    keep = ~np.isnan(proba).any(axis=1)
    proba, chosen = proba[keep], chosen[keep]
    bands: dict[str, tuple[float, float] | None] = dict.fromkeys(metrics)
    if not len(proba):
        return bands
    chosen = np.where(chosen >= 0, chosen, proba.argmax(axis=1))
    q = proba[np.arange(len(proba)), chosen]
    sd = {"accuracy": float(np.sqrt(np.sum(q * (1 - q))) / len(q))}
    # Bounded memory on big chunks: fewer draws (never under 20) past ~20M cells.
    draws = min(draws, max(20, _MAX_CELLS // (len(proba) * proba.shape[1])))
    if draws > 1:
        # ``draws`` label sets, each row's label drawn from its probabilities (one
        # matrix: draws x rows), and the realized F1 and AUC of each.
        u = rng.random((draws, len(proba)))[:, :, None]
        y = np.minimum((u > np.cumsum(proba, axis=1)[None]).sum(axis=2), proba.shape[1] - 1)
        for name, values in (("f1_macro", _f1_draws(y, chosen, proba.shape[1])),
                             ("roc_auc", _auc_draws(y, proba))):  # fmt: skip
            finite = values[np.isfinite(values)]
            if len(finite) > 1:
                sd[name] = float(np.std(finite))
    for name, value in metrics.items():
        if value is not None and name in sd:
            half = BAND_SIGMAS * sd[name]
            bands[name] = (max(0.0, value - half), min(1.0, value + half))
    return bands


def _f1_draws(y: np.ndarray, chosen: np.ndarray, k: int) -> np.ndarray:
    """Macro F1 of each row of ``y`` (draws x rows) against the predictions ``chosen``."""
    total = np.zeros(len(y))
    present = np.zeros(len(y))
    for c in range(k):
        said, truly = chosen == c, y == c
        tp = (truly & said).sum(axis=1)
        fp = said.sum() - tp
        fn = truly.sum(axis=1) - tp
        seen = (tp + fp + fn) > 0
        total += np.where(seen, tp / np.maximum(tp + 0.5 * (fp + fn), 1e-12), 0.0)
        present += seen
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(total / present)


def _auc_draws(y: np.ndarray, proba: np.ndarray) -> np.ndarray:
    """One-vs-rest ROC AUC (mean over classes present) of each row of ``y``, by ranks."""
    from scipy.stats import rankdata

    columns = [1] if proba.shape[1] == 2 else range(proba.shape[1])
    total = np.zeros(len(y))
    present = np.zeros(len(y))
    for c in columns:
        ranks = rankdata(proba[:, c])  # the same for every draw
        positive = y == c
        n_pos = positive.sum(axis=1)
        n_neg = y.shape[1] - n_pos
        defined = (n_pos > 0) & (n_neg > 0)
        u = positive.astype(np.float64) @ ranks - n_pos * (n_pos + 1) / 2
        total += np.where(defined, u / np.maximum(n_pos * n_neg, 1), 0.0)
        present += defined
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(total / present)


class DirectLossEstimator:
    """DLE for a regressor: learn the absolute and squared error on a labelled reference.

    ``fit(inputs, predictions, targets)`` then ``estimate(inputs, predictions,
    chunk_size)`` gives MAE and RMSE per chunk. ``inputs`` are the model's own
    input columns (the caller selects them by the signature: a column the model
    does not read cannot explain its error). The features are those columns plus
    the prediction:

    - numbers and booleans as they are, dates and times as seconds since 1970;
    - any other column (text, ``category``) as categories the boosted trees split
      on natively. They take at most 255 per column, so the reference's
      :data:`DLE_MAX_CATEGORIES` most frequent values keep their own category and
      every other value, and any value the reference never had, shares one
      "other" category. Missing stays missing.
    """

    def __init__(self, *, seed: int = 0) -> None:
        self.seed = seed
        self.columns_: list[str] | None = None
        #: Per text/category column, the code of each kept reference value.
        self.categories_: dict[str, dict[Any, int]] = {}

    def _learn_categories(self, inputs: pd.DataFrame) -> dict[str, dict[Any, int]]:
        out = {}
        for name in inputs.columns:
            column = inputs[name]
            if _number_like(column) or pd.api.types.is_datetime64_any_dtype(column.dtype):
                continue
            try:
                counts = column.astype(object).value_counts(dropna=True)
            except TypeError as exc:  # unhashable values (lists, dicts)
                raise InvalidInputError(
                    f"Direct loss estimation cannot use column {name!r}: its values are "
                    f"neither numbers, times nor categories ({exc})."
                ) from exc
            # Most frequent first; ties in a fixed order so reruns agree.
            ranked = sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))
            out[name] = {v: code for code, (v, _) in enumerate(ranked[:DLE_MAX_CATEGORIES])}
        return out

    def _features(self, inputs: pd.DataFrame, predictions: np.ndarray) -> pd.DataFrame:
        X = {}
        for name in inputs.columns:
            column = inputs[name]
            if name in self.categories_:
                X[name] = _category_codes(column, self.categories_[name])
            elif pd.api.types.is_datetime64_any_dtype(column.dtype):
                stamps = pd.to_datetime(column, utc=True)
                X[name] = ((stamps - _EPOCH) / pd.Timedelta(seconds=1)).to_numpy(
                    np.float64, na_value=np.nan
                )
            else:
                try:
                    X[name] = column.to_numpy(np.float64, na_value=np.nan)
                except (TypeError, ValueError) as exc:
                    raise InvalidInputError(
                        f"Direct loss estimation cannot use column {name!r}: the reference "
                        f"has numbers there but this table does not ({_first_line(exc)})."
                    ) from exc
        X["__prediction__"] = np.asarray(predictions, dtype=np.float64)
        return pd.DataFrame(X, index=pd.RangeIndex(len(inputs)))

    def fit(
        self, inputs: pd.DataFrame, predictions: np.ndarray, targets: np.ndarray
    ) -> DirectLossEstimator:
        from sklearn.ensemble import HistGradientBoostingRegressor

        targets = np.asarray(pd.to_numeric(pd.Series(targets), errors="coerce"), np.float64)
        keep = np.isfinite(targets)
        if keep.sum() < 20:
            raise InvalidInputError(
                "Direct loss estimation needs at least 20 reference rows with a numeric "
                f"target; got {int(keep.sum())}."
            )
        self.categories_ = self._learn_categories(inputs[keep])
        X = self._features(inputs, predictions)[keep]
        error = targets[keep] - np.asarray(predictions, np.float64)[keep]
        self.columns_ = list(inputs.columns)
        categorical = list(self.categories_) or None

        def model() -> Any:
            return HistGradientBoostingRegressor(
                categorical_features=categorical, random_state=self.seed
            )

        try:
            self.absolute_ = model().fit(X, np.abs(error))
            self.squared_ = model().fit(X, error**2)
        except ValueError as exc:  # the booster names the feature it refused
            raise InvalidInputError(
                f"Direct loss estimation cannot learn from the reference: {_first_line(exc)}"
            ) from exc
        return self

    def estimate(
        self, inputs: pd.DataFrame, predictions: np.ndarray, *, chunk_size: int
    ) -> list[ChunkEstimate]:
        if self.columns_ is None:
            raise InvalidInputError("DirectLossEstimator is not fitted; call fit() first.")
        if chunk_size < 1:
            raise InvalidInputError(f"--chunk-size must be at least 1 row, got {chunk_size}.")
        missing = [c for c in self.columns_ if c not in inputs.columns]
        if missing:
            raise InvalidInputError(
                f"The table to estimate on lacks the model's input column(s) {missing}."
            )
        X = self._features(inputs[self.columns_], predictions)
        absolute = np.clip(self.absolute_.predict(X), 0, None)
        squared = np.clip(self.squared_.predict(X), 0, None)
        out = []
        for start in range(0, len(X), chunk_size):
            a, s = absolute[start : start + chunk_size], squared[start : start + chunk_size]
            metrics: dict[str, float | None] = {
                "mae": float(a.mean()),
                "rmse": float(np.sqrt(s.mean())),
            }
            out.append(ChunkEstimate(start, len(a), metrics, None, {}))
        return out


def _number_like(column: pd.Series) -> bool:
    """Numbers and booleans (plain or nullable); a ``category`` column is never one."""
    dtype = column.dtype
    return pd.api.types.is_numeric_dtype(dtype) and not isinstance(dtype, pd.CategoricalDtype)


def _category_codes(column: pd.Series, kept: dict[Any, int]) -> np.ndarray:
    """Codes of ``kept`` values; any other present value is the "other" code; NaN stays."""
    values = column.astype(object)
    present = values.notna().to_numpy()
    codes = values.map(lambda v: kept.get(v, np.nan) if _hashable(v) else np.nan)
    out = codes.to_numpy(np.float64, na_value=np.nan, copy=True)
    out[present & np.isnan(out)] = len(kept)  # the "other" category
    return out


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
