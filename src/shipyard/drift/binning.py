"""Binning shared by the divergence tests, matching Evidently 0.7 bit for bit.

Evidently's ``get_binned_data`` (``legacy/calculations/stattests/utils.py``):

- numerical column whose *reference* has more than 20 distinct values:
  ``np.histogram_bin_edges(concat(ref, cur), bins="sturges")``, then the share
  of each side in each bin;
- otherwise (categorical, or few distinct values): the share of each distinct
  value over the union of both sides' values;
- PSI and KL then replace zero shares with ``min(nonzero) / 1e6`` when the
  smallest non-zero share is <= 1e-4, else with ``1e-4`` (Jensen-Shannon does
  not).

The Sturges edges depend only on the combined min, max, size and dtype, so
:func:`sturges_edges` rebuilds them from those four facts without
concatenating the two columns (and from exact profile statistics when the
reference is only a sample).

    >>> sturges_edges(0.0, 1.0, 8, integer=False)
    array([0.  , 0.25, 0.5 , 0.75, 1.  ])
"""

from __future__ import annotations

from typing import Any

import numpy as np

from shipyard.drift.columns import ColumnType
from shipyard.drift.values import ColumnValues

# Evidently: numerical columns with more distinct reference values than this
# are binned by histogram; the others by distinct value.
HISTOGRAM_MIN_UNIQUE = 20


def _unsigned_span(hi: Any, lo: Any) -> Any:
    # numpy's _unsigned_subtract: integer spans are computed unsigned so they
    # cannot overflow the signed type.
    dt = np.result_type(hi, lo)
    if np.issubdtype(dt, np.signedinteger):
        unsigned = np.dtype(dt.str.replace("i", "u"))
        return np.subtract(
            np.asarray(hi, dtype=dt), np.asarray(lo, dtype=dt), dtype=unsigned, casting="unsafe"
        )[()]
    return np.subtract(hi, lo, dtype=dt)


def sturges_edges(lo: Any, hi: Any, size: int, *, integer: bool) -> np.ndarray:
    """The edges ``np.histogram_bin_edges(a, bins="sturges")`` would give.

    ``lo``/``hi`` are ``a.min()``/``a.max()``, ``size`` is ``a.size`` and
    ``integer`` whether ``a`` has an integer dtype. Mirrors numpy's
    ``_get_bin_edges`` step by step.
    """
    dtype = np.int64 if integer else np.float64
    lo = np.asarray(lo, dtype=dtype)[()]
    hi = np.asarray(hi, dtype=dtype)[()]
    first, last = lo, hi
    if first == last:
        first, last = first - 0.5, last + 0.5
    width = _unsigned_span(hi, lo) / (np.log2(size) + 1.0)
    if width:
        if integer and width < 1:
            width = 1
        n_bins = int(np.ceil(_unsigned_span(last, first) / width))
    else:
        n_bins = 1
    bin_type = np.result_type(first, last, np.empty(0, dtype=dtype))
    if np.issubdtype(bin_type, np.integer):
        bin_type = np.result_type(bin_type, float)
    return np.linspace(first, last, n_bins + 1, endpoint=True, dtype=bin_type)


def aligned_counts(
    reference: ColumnValues, current: ColumnValues
) -> tuple[list[Any], np.ndarray, np.ndarray]:
    """Counts of each side over the union of distinct values (zeros filled in)."""
    ref_keys, ref_counts = reference.value_counts()
    cur_keys, cur_counts = current.value_counts()
    index: dict[Any, int] = {k: i for i, k in enumerate(ref_keys)}
    for k in cur_keys:
        index.setdefault(k, len(index))
    ref = np.zeros(len(index), dtype=np.int64)
    cur = np.zeros(len(index), dtype=np.int64)
    ref[[index[k] for k in ref_keys]] = ref_counts
    cur[[index[k] for k in cur_keys]] = cur_counts
    return list(index), ref, cur


def histogram_edges(reference: ColumnValues, current: ColumnValues) -> np.ndarray:
    """Sturges edges over both sides combined (Evidently's numerical binning)."""
    lo = min(reference.min, current.min)
    hi = max(reference.max, current.max)
    integer = reference.integer and current.integer
    return sturges_edges(lo, hi, reference.n + current.n, integer=integer)


def fill_zeroes(shares: np.ndarray) -> np.ndarray:
    """Evidently's ``feel_zeroes``: give empty bins a tiny share so logs stay finite."""
    out = shares.astype(np.float64, copy=True)
    smallest = out[out != 0].min()
    out[out == 0] = smallest / 10**6 if smallest <= 0.0001 else 0.0001
    return out


def binned_shares(
    reference: ColumnValues,
    current: ColumnValues,
    column_type: ColumnType,
    *,
    fill: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """Share of each side per bin, as Evidently's ``get_binned_data``.

    The histogram path counts the reference ``values``, which are a uniform
    sample when the reference came from a bounded profile; the distinct-value
    path uses exact counts whenever they are known.
    """
    if column_type is ColumnType.NUMERICAL and reference.n_unique > HISTOGRAM_MIN_UNIQUE:
        edges = histogram_edges(reference, current)
        ref_values = reference.require_values()
        cur_values = current.require_values()
        ref = np.histogram(ref_values, edges)[0] / len(ref_values)
        cur = np.histogram(cur_values, edges)[0] / len(cur_values)
    else:
        _, ref_counts, cur_counts = aligned_counts(reference, current)
        ref = ref_counts / ref_counts.sum()
        cur = cur_counts / cur_counts.sum()
    if fill:
        ref, cur = fill_zeroes(ref), fill_zeroes(cur)
    return ref, cur
