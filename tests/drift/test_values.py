"""Cleaning one side of a column as Evidently does: NaN and +-inf dropped."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from shipyard.drift.columns import ColumnType
from shipyard.drift.values import ColumnValues, as_values, union_n_unique
from shipyard.errors import SchemaError


def test_numerical_drops_nan_and_infinities() -> None:
    v = ColumnValues.from_series(
        pd.Series([1.0, np.nan, np.inf, -np.inf, 2.0]), ColumnType.NUMERICAL
    )
    np.testing.assert_array_equal(v.values, [1.0, 2.0])
    assert v.n == 2 and v.n_unique == 2 and v.min == 1.0 and v.max == 2.0


def test_integer_dtype_is_kept_for_binning() -> None:
    v = ColumnValues.from_series(pd.Series([1, 2, 3]), ColumnType.NUMERICAL)
    assert v.integer and v.values.dtype == np.int64


def test_categorical_counts_skip_missing_values() -> None:
    v = ColumnValues.from_series(
        pd.Series(["a", None, "b", "a"], dtype=object), ColumnType.CATEGORICAL
    )
    assert dict(zip(*v.value_counts(), strict=True)) == {"a": 2, "b": 1}
    assert v.n == 3


def test_text_in_a_numerical_column_is_a_schema_error() -> None:
    with pytest.raises(SchemaError, match=r"'price'.*current") as info:
        ColumnValues.from_series(
            pd.Series(["1", "x"]), ColumnType.NUMERICAL, column="price", side="current"
        )
    assert info.value.field == "price"


def test_union_unique_counts_both_sides_when_reference_has_few_values() -> None:
    ref = as_values(np.array([0.0, 1.0, 1.0]))
    assert union_n_unique(ref, as_values(np.array([1.0, 2.0, 3.0]))) == 4
    many = as_values(np.arange(10.0))
    assert union_n_unique(many, as_values(np.array([100.0]))) == 10  # already above 5
