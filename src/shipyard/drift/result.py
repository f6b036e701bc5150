"""What a drift check found: per-column verdicts and the dataset verdict.

>>> col = ColumnDrift("age", "numerical", "wasserstein", 0.1, 0.31, True)
>>> result = DriftResult.from_columns([col], drift_share=0.5)
>>> result.to_dict()["dataset"]
{'n_columns': 1, 'n_drifted': 1, 'share': 1.0, 'dataset_drift': True, 'vanished': []}
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

#: The ``stattest`` of a column that vanished: the reference has values, the current
#: data has (almost) none left once NaN and +-inf are dropped. Its score is the
#: number of values left, its threshold the fewest a test needs; it always drifts.
VANISHED = "vanished"


@dataclass(frozen=True)
class ColumnDrift:
    """One column's test, score, threshold and verdict."""

    column: str
    type: str
    stattest: str
    threshold: float
    score: float
    drift_detected: bool

    def to_dict(self) -> dict[str, Any]:
        """``{column, type, stattest, threshold, score, drift_detected}``."""
        return {
            "column": self.column,
            "type": self.type,
            "stattest": self.stattest,
            "threshold": self.threshold,
            "score": self.score,
            "drift_detected": self.drift_detected,
        }


@dataclass(frozen=True)
class SkippedColumn:
    """A column that was not tested, and why (its type, or too little data)."""

    column: str
    type: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """``{column, type, reason}``."""
        return {"column": self.column, "type": self.type, "reason": self.reason}


@dataclass(frozen=True)
class DriftResult:
    """The outcome of :meth:`DriftDetector.score <shipyard.drift.DriftDetector.score>`.

    ``share`` is ``n_drifted / n_columns`` over tested columns, and
    ``dataset_drift`` is ``share >= drift_share`` (Evidently's rule), or any
    column :data:`VANISHED`: a feature the model reads that no longer arrives
    breaks its inputs whatever the other columns do.
    """

    columns: tuple[ColumnDrift, ...]
    n_columns: int
    n_drifted: int
    share: float
    dataset_drift: bool
    drift_share: float = 0.5
    skipped: tuple[SkippedColumn, ...] = field(default=())

    @classmethod
    def from_columns(
        cls,
        columns: Iterable[ColumnDrift],
        *,
        drift_share: float,
        skipped: Iterable[SkippedColumn] = (),
    ) -> DriftResult:
        """Count drifted columns and apply the dataset rule."""
        cols = tuple(columns)
        n_drifted = sum(c.drift_detected for c in cols)
        share = n_drifted / len(cols) if cols else 0.0
        return cls(
            columns=cols,
            n_columns=len(cols),
            n_drifted=n_drifted,
            share=share,
            dataset_drift=(bool(cols) and share >= drift_share)
            or any(c.stattest == VANISHED for c in cols),
            drift_share=drift_share,
            skipped=tuple(skipped),
        )

    @property
    def drifted_columns(self) -> list[str]:
        """Names of the columns whose drift was detected."""
        return [c.column for c in self.columns if c.drift_detected]

    @property
    def vanished_columns(self) -> list[str]:
        """Names of the columns with no values left in the current data (see :data:`VANISHED`)."""
        return [c.column for c in self.columns if c.stattest == VANISHED]

    def column(self, name: str) -> ColumnDrift:
        """The verdict for one column (``KeyError`` if it was not tested)."""
        for col in self.columns:
            if col.column == name:
                return col
        raise KeyError(name)

    def sorted_columns(self) -> list[ColumnDrift]:
        """Drifted columns first, each group in the original column order."""
        return sorted(self.columns, key=lambda c: not c.drift_detected)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: ``{"columns": [...], "dataset": {...}, "skipped": [...]}``."""
        return {
            "columns": [c.to_dict() for c in self.columns],
            "dataset": {
                "n_columns": self.n_columns,
                "n_drifted": self.n_drifted,
                "share": self.share,
                "dataset_drift": self.dataset_drift,
                "vanished": self.vanished_columns,
            },
            "skipped": [s.to_dict() for s in self.skipped],
        }
