"""Evidently's binning: Sturges edges rebuilt from range and size, zero filling."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from shipyard.drift.binning import binned_shares, fill_zeroes, sturges_edges
from shipyard.drift.columns import ColumnType
from shipyard.drift.values import ColumnValues

floats = st.floats(-1e9, 1e9, allow_nan=False, allow_infinity=False, width=64)


@settings(max_examples=200, deadline=None)
@given(arrays(np.float64, st.integers(1, 400), elements=floats))
def test_sturges_edges_equal_numpy_for_floats(a: np.ndarray) -> None:
    expected = np.histogram_bin_edges(a, bins="sturges")
    got = sturges_edges(a.min(), a.max(), a.size, integer=False)
    assert got.dtype == expected.dtype
    np.testing.assert_array_equal(got, expected)


@settings(max_examples=200, deadline=None)
@given(arrays(np.int64, st.integers(1, 400), elements=st.integers(-(10**12), 10**12)))
def test_sturges_edges_equal_numpy_for_integers(a: np.ndarray) -> None:
    expected = np.histogram_bin_edges(a, bins="sturges")
    np.testing.assert_array_equal(sturges_edges(a.min(), a.max(), a.size, integer=True), expected)


def test_constant_data_gets_one_unit_wide_bin() -> None:
    np.testing.assert_array_equal(sturges_edges(3.0, 3.0, 50, integer=False), [2.5, 3.5])


def test_fill_zeroes_uses_fixed_floor_for_ordinary_shares() -> None:
    np.testing.assert_array_equal(fill_zeroes(np.array([0.5, 0.5, 0.0])), [0.5, 0.5, 0.0001])


def test_fill_zeroes_scales_down_when_shares_are_tiny() -> None:
    out = fill_zeroes(np.array([0.00005, 0.99995, 0.0]))
    assert out[2] == 0.00005 / 10**6


def test_twenty_distinct_reference_values_are_binned_by_value() -> None:
    ref = ColumnValues.from_array(np.arange(20.0).repeat(3))
    cur = ColumnValues.from_array(np.arange(25.0))
    r, c = binned_shares(ref, cur, ColumnType.NUMERICAL, fill=False)
    assert len(r) == 25  # one share per distinct value over both sides
    assert r.sum() == 1 and c.sum() == 1


def test_twenty_one_distinct_reference_values_use_a_histogram() -> None:
    ref = ColumnValues.from_array(np.arange(21.0).repeat(3))
    cur = ColumnValues.from_array(np.arange(25.0))
    r, _ = binned_shares(ref, cur, ColumnType.NUMERICAL, fill=False)
    expected = np.histogram_bin_edges(np.r_[np.arange(21.0).repeat(3), np.arange(25.0)], "sturges")
    assert len(r) == len(expected) - 1
