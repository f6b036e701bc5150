"""Reference and current distributions of each column, for drawing in reports.

Numerical columns get a histogram on bins shared by both sides; categorical
columns, and numerical ones with few distinct values, get the share of each
value. Shares are fractions of each side's values, so sides of different
sizes compare directly. The reference side is the profile's sample, except
for value shares, which come from exact counts when the profile has them.

    >>> import pandas as pd
    >>> from shipyard.drift import DriftDetector
    >>> det = DriftDetector().fit(pd.DataFrame({"c": ["a", "a", "b", "a"]}))
    >>> column_distributions(det, pd.DataFrame({"c": ["a", "b", "b", "b"]}))["c"].labels
    ['a', 'b']
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd

from shipyard.drift._parallel import parallel_map
from shipyard.drift.binning import aligned_counts
from shipyard.drift.columns import ColumnType
from shipyard.drift.values import ColumnValues

if TYPE_CHECKING:
    from shipyard.drift.detector import DriftDetector

HISTOGRAM_BINS = 30
MAX_BARS = 20  # more categories than this: the rest are pooled into "other"
FEW_VALUES = 20  # numerical columns with at most this many values are drawn as bars


@dataclass(frozen=True)
class Distribution:
    """Shares of each side per bin (``histogram``) or per value (``bars``)."""

    kind: Literal["histogram", "bars"]
    reference: list[float]
    current: list[float]
    edges: list[float] | None = None
    labels: list[str] | None = None
    new_in_current: list[bool] | None = None


def _histogram(ref: ColumnValues, cur: ColumnValues) -> Distribution:
    ref_values, cur_values = ref.require_values(), cur.require_values()
    lo = float(min(ref.min, cur.min))
    hi = float(max(ref.max, cur.max))
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    # bins + range, not an array of edges: numpy then bins equal widths arithmetically
    # (the same counts, for np.linspace's edges) instead of sorting a million values.
    span = (lo, hi)
    ref_hist = np.histogram(ref_values, HISTOGRAM_BINS, span)[0] / max(len(ref_values), 1)
    cur_hist, edges = np.histogram(cur_values, HISTOGRAM_BINS, span)
    cur_hist = cur_hist / max(len(cur_values), 1)
    return Distribution("histogram", ref_hist.tolist(), cur_hist.tolist(), edges=edges.tolist())


def _bars(ref: ColumnValues, cur: ColumnValues, *, sort_by_value: bool) -> Distribution:
    keys, ref_counts, cur_counts = aligned_counts(ref, cur)
    ref_share = ref_counts / max(ref_counts.sum(), 1)
    cur_share = cur_counts / max(cur_counts.sum(), 1)
    numeric_keys = all(isinstance(k, int | float) and not isinstance(k, bool) for k in keys)
    if sort_by_value or numeric_keys:
        order = sorted(range(len(keys)), key=lambda i: keys[i])
    else:
        # Biggest first; ties keep a stable, readable order.
        biggest = np.maximum(ref_share, cur_share)
        order = sorted(range(len(keys)), key=lambda i: (-biggest[i], str(keys[i])))
    shown, rest = order[:MAX_BARS], order[MAX_BARS:]
    labels = [str(keys[i]) for i in shown]
    ref_out = [float(ref_share[i]) for i in shown]
    cur_out = [float(cur_share[i]) for i in shown]
    new = [bool(ref_counts[i] == 0) for i in shown]
    if rest:
        labels.append(f"(other {len(rest)})")
        ref_out.append(float(ref_share[rest].sum()))
        cur_out.append(float(cur_share[rest].sum()))
        new.append(False)
    return Distribution("bars", ref_out, cur_out, labels=labels, new_in_current=new)


def distribution(ref: ColumnValues, cur: ColumnValues, column_type: ColumnType) -> Distribution:
    """Plot data for one column."""
    if column_type is ColumnType.NUMERICAL:
        if ref.n_unique <= FEW_VALUES and cur.n_unique <= FEW_VALUES:
            return _bars(ref, cur, sort_by_value=True)
        return _histogram(ref, cur)
    return _bars(ref, cur, sort_by_value=False)


def column_distributions(
    detector: DriftDetector, current: pd.DataFrame, columns: list[str] | None = None
) -> dict[str, Distribution]:
    """Plot data for ``columns`` (default: every testable column) of a fitted detector."""
    detector._check_fitted()
    scored = detector.current_values(current)  # what score() cleaned already, if it saw it
    current = current.rename(columns=str)
    types = detector.column_types_
    names = columns if columns is not None else [c for c, t in types.items() if t.testable]
    names = [c for c in names if c in current.columns and types[c].testable]

    def one(column: str) -> Distribution | None:
        ref = detector.profile_.values(column, types[column])
        ctype = types[column]
        cur = scored.get(column)
        if cur is None:
            cur = ColumnValues.from_series(current[column], ctype, column=column, side="current")
        if ref.n == 0 or cur.n == 0:
            return None
        return distribution(ref, cur, types[column])

    found = parallel_map(one, names, detector.n_jobs)
    return {c: d for c, d in zip(names, found, strict=True) if d is not None}
