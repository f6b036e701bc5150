"""Data drift detection with Evidently's data-drift preset semantics.

``DriftDetector`` follows scikit-learn's verbs: ``fit(reference)`` learns a
bounded :class:`~shipyard.drift.profile.ReferenceProfile` and the column
types; ``score(current)`` tests every column and returns a
:class:`~shipyard.drift.result.DriftResult`.

Per column, exactly as Evidently 0.7: NaN and +-inf are dropped on both sides;
the test is chosen from the number of reference values left (<= 1000 or not)
and the distinct values over both sides (see
:func:`~shipyard.drift.stattests.default_stattest`), unless one is named; the
dataset drifts when the share of drifted columns is >= ``drift_share``.

Where Evidently would crash or judge nothing meaningful, Shipyard reports
instead. A column whose *current* values are all NaN or +-inf (fewer than 2
left) while the reference has values has vanished: it is reported as drifted
(test ``vanished``) and makes the dataset drift, since a feature that stopped
arriving is the loudest drift there is, never a reason to stay silent. A column
with fewer than 2 values in the *reference* is listed in
``DriftResult.skipped`` ("not enough data"), as are free-text, datetime and
unknown columns (Evidently runs a text-classifier test on text columns;
Shipyard does not, so their verdicts do not count towards the share). An empty
or single-row current frame is an :class:`~shipyard.errors.InvalidInputError`.

    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> ref = pd.DataFrame({"x": rng.normal(size=2000), "c": rng.choice(["a", "b"], 2000)})
    >>> cur = ref.assign(x=ref["x"] + 1)
    >>> result = DriftDetector().fit(ref).score(cur)
    >>> result.drifted_columns, result.dataset_drift
    (['x'], True)
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Self

import numpy as np
import pandas as pd

from shipyard.drift._parallel import parallel_map
from shipyard.drift.columns import ColumnType, resolve_column_types
from shipyard.drift.profile import DEFAULT_MAX_ROWS, ReferenceProfile
from shipyard.drift.result import VANISHED, ColumnDrift, DriftResult, SkippedColumn
from shipyard.drift.stattests import STATTESTS, StatTest, default_stattest, get_stattest
from shipyard.drift.values import ColumnValues, union_n_unique
from shipyard.errors import InvalidInputError, SchemaError, ShipyardError

# Fewer values than this on either side and a column is reported as "not
# enough data" instead of given a verdict no test can support.
MIN_VALUES = 2


_UNTESTED_REASONS = {
    ColumnType.TEXT: "free text (over half its values distinct) is not tested; "
    "list it in categorical=[...] (--categorical on the command line) "
    "to test it as categories",
    ColumnType.DATETIME: "datetime columns are not tested for drift",
    ColumnType.UNKNOWN: "values of this dtype cannot be tested; "
    "list it in categorical=[...] or numerical=[...] "
    "(--categorical or --numerical on the command line) if they can",
}


class NotFittedError(ShipyardError):
    """A detector was used before ``fit``."""


def _per_column(value, column: str):
    """A setting given for every column, or per column in a mapping."""
    if isinstance(value, Mapping):
        return value.get(column)
    return value


class DriftDetector:
    """Detect drift between a reference frame and current frames.

    Args:
        stattest: test name for every column (``"psi"``), or a mapping from
            column to test name; ``None`` picks Evidently's default per column.
        threshold: threshold for every column or per column; ``None`` uses
            each test's default (0.05 for p-values, 0.1 for distances).
        drift_share: share of drifted columns at which the dataset drifts.
        fdr: control the false discovery rate (Benjamini-Hochberg) across
            the p-value tests; their scores become adjusted p-values.
        categorical / numerical: column names whose inferred type to override.
        n_jobs: threads for per-column work (``None``/``-1``: every core).
        max_rows: rows kept in the reference sample (see ``ReferenceProfile``);
            ``None`` keeps all, so every score equals Evidently's exactly.
            Unused when ``fit`` is given a profile, which is bounded already.
        seed: seed of that sample.

        >>> DriftDetector(stattest="psi").fit(pd.DataFrame({"a": [1.0, 2.0]})).column_types_
        {'a': <ColumnType.NUMERICAL: 'numerical'>}
    """

    def __init__(
        self,
        stattest: str | Mapping[str, str] | None = None,
        threshold: float | Mapping[str, float] | None = None,
        drift_share: float = 0.5,
        fdr: bool = False,
        categorical: Sequence[str] | None = None,
        numerical: Sequence[str] | None = None,
        n_jobs: int | None = None,
        max_rows: int | None = DEFAULT_MAX_ROWS,
        seed: int = 0,
    ) -> None:
        self.stattest = stattest
        self.threshold = threshold
        self.drift_share = drift_share
        self.fdr = fdr
        self.categorical = categorical
        self.numerical = numerical
        self.n_jobs = n_jobs
        self.max_rows = max_rows
        self.seed = seed
        # The current side's cleaned values from the last score(), for the frame they came
        # from (held weakly): the report drawn right after reuses them instead of cleaning
        # and counting a million values again.
        self._scored: tuple[weakref.ref[pd.DataFrame], dict[str, ColumnValues]] | None = None

    # -- fit --------------------------------------------------------------------

    def _check_params(self) -> None:
        if not 0 < self.drift_share <= 1:
            raise InvalidInputError(f"drift_share must be in (0, 1], got {self.drift_share}.")
        thresholds = (
            self.threshold.values() if isinstance(self.threshold, Mapping) else [self.threshold]
        )
        for value in thresholds:
            if value is not None and not (np.isfinite(value) and value >= 0):
                raise InvalidInputError(f"threshold must be a number >= 0, got {value}.")

    def fit(self, reference: pd.DataFrame | ReferenceProfile) -> Self:
        """Learn the reference: a bounded profile, column types and tests.

        ``reference`` is a frame, or a stored :class:`ReferenceProfile`.
        """
        self._check_params()
        if isinstance(reference, ReferenceProfile):
            profile = reference
        else:
            profile = ReferenceProfile.from_frame(
                reference, max_rows=self.max_rows, seed=self.seed, n_jobs=self.n_jobs
            )
        inferred = {name: col.type for name, col in profile.columns.items()}
        types = resolve_column_types(inferred, self.categorical, self.numerical)
        for name in (self.stattest, self.threshold):
            if isinstance(name, Mapping):
                unknown = sorted(set(name) - set(types))
                if unknown:
                    raise SchemaError(
                        f"Per-column settings name columns {unknown} that the reference lacks.",
                        field=unknown[0],
                    )
        tests: dict[str, StatTest | None] = {}
        for column, ctype in types.items():
            name = _per_column(self.stattest, column)
            tests[column] = get_stattest(name, ctype, column=column) if name else None
        self.profile_ = profile
        self.column_types_ = types
        self.stattests_ = tests
        self.feature_names_in_ = list(types)
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "profile_"):
            raise NotFittedError(
                "This DriftDetector is not fitted yet: call fit(reference) before score(current)."
            )

    # -- score ------------------------------------------------------------------

    def _check_current(self, current: pd.DataFrame) -> pd.DataFrame:
        if not isinstance(current, pd.DataFrame):
            raise InvalidInputError(
                f"Current data must be a pandas DataFrame, got {type(current).__name__}."
            )
        current = current.rename(columns=str)
        tested = [c for c, t in self.column_types_.items() if t.testable]
        missing = [c for c in tested if c not in current.columns]
        if missing:
            extra = [c for c in current.columns if c not in self.column_types_]
            raise SchemaError(
                f"Current data is missing columns {missing} that the reference has"
                + (f", and has columns {extra} that the reference lacks" if extra else "")
                + ". Compare frames with the same columns.",
                field=missing[0],
                expected="the reference's columns",
            )
        if len(current) < MIN_VALUES:
            raise InvalidInputError(
                f"Current data has {len(current)} row(s); drift tests need at least "
                f"{MIN_VALUES} rows to compare distributions."
            )
        return current

    def current_values(self, current: pd.DataFrame) -> dict[str, ColumnValues]:
        """The cleaned values of ``current`` kept by the last :meth:`score` of that very
        frame (empty for any other frame)."""
        scored = self._scored
        if scored is None or scored[0]() is not current:
            return {}
        return scored[1]

    def _score_column(
        self, column: str, current: pd.DataFrame, kept: dict[str, ColumnValues]
    ) -> ColumnDrift | SkippedColumn:
        ctype = self.column_types_[column]
        ref = self.profile_.values(column, ctype)
        cur = ColumnValues.from_series(current[column], ctype, column=column, side="current")
        kept[column] = cur
        if ref.n < MIN_VALUES:
            return SkippedColumn(
                column,
                ctype.value,
                f"not enough data: {ref.n} value(s) in the reference data after dropping "
                f"NaN/inf (need {MIN_VALUES})",
            )
        if cur.n < MIN_VALUES:
            # The current frame has rows (checked before), but this feature is gone.
            return ColumnDrift(column, ctype.value, VANISHED, float(MIN_VALUES), float(cur.n), True)
        test = self.stattests_[column]
        if test is None:
            test = default_stattest(ctype, ref.n, union_n_unique(ref, cur))
        threshold = _per_column(self.threshold, column)
        threshold = test.default_threshold if threshold is None else float(threshold)
        score, drifted = test(ref, cur, ctype, threshold)
        return ColumnDrift(column, ctype.value, test.name, threshold, score, drifted)

    def score(self, current: pd.DataFrame) -> DriftResult:
        """Test every column of ``current`` against the reference."""
        self._check_fitted()
        given, current = current, self._check_current(current)
        skipped = [
            SkippedColumn(c, t.value, _UNTESTED_REASONS[t])
            for c, t in self.column_types_.items()
            if not t.testable
        ]
        tested = [c for c, t in self.column_types_.items() if t.testable]
        kept: dict[str, ColumnValues] = {}
        outcomes = parallel_map(lambda c: self._score_column(c, current, kept), tested, self.n_jobs)
        self._scored = (weakref.ref(given), kept)
        columns = [o for o in outcomes if isinstance(o, ColumnDrift)]
        skipped += [o for o in outcomes if isinstance(o, SkippedColumn)]
        if not columns:
            reasons = "; ".join(f"{s.column}: {s.reason}" for s in skipped) or "no columns"
            raise InvalidInputError(f"No column could be tested for drift ({reasons}).")
        if self.fdr:
            columns = _adjust_fdr(columns)
        return DriftResult.from_columns(columns, drift_share=self.drift_share, skipped=skipped)


def _adjust_fdr(columns: list[ColumnDrift]) -> list[ColumnDrift]:
    """Benjamini-Hochberg across the p-value tests; distances are left alone."""
    from scipy.stats import false_discovery_control  # heavy import, only when asked

    idx = [
        i
        for i, c in enumerate(columns)
        if c.stattest in STATTESTS and STATTESTS[c.stattest].is_pvalue and np.isfinite(c.score)
    ]
    if not idx:
        return columns
    adjusted = false_discovery_control([columns[i].score for i in idx], method="bh")
    out = list(columns)
    for i, p in zip(idx, adjusted, strict=True):
        test = STATTESTS[out[i].stattest]
        out[i] = replace(
            out[i], score=float(p), drift_detected=test.drifted(float(p), out[i].threshold)
        )
    return out


def score_frames(
    reference: pd.DataFrame | ReferenceProfile, current: pd.DataFrame, **params
) -> DriftResult:
    """One-shot ``DriftDetector(**params).fit(reference).score(current)``."""
    return DriftDetector(**params).fit(reference).score(current)


__all__ = ["ColumnType", "DriftDetector", "NotFittedError", "score_frames"]
