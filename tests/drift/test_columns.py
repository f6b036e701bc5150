"""Column typing follows Evidently's rule; explicit lists override it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from shipyard.drift.columns import (
    ColumnType,
    infer_column_type,
    resolve_column_types,
    split_names,
)
from shipyard.errors import SchemaError


@pytest.mark.parametrize(
    ("series", "expected"),
    [
        (pd.Series([0.5, 1.5, 1.5]), ColumnType.NUMERICAL),
        # Whole-number floats follow the integer rule: an int column with a gap
        # reads from CSV as float64 with NaN.
        (pd.Series([1.0, 1.0, 1.0]), ColumnType.CATEGORICAL),
        (pd.Series([1.0, 2.0, np.nan]), ColumnType.CATEGORICAL),
        (pd.Series([1, 2, None], dtype="Float64"), ColumnType.CATEGORICAL),
        (pd.Series(np.arange(11, dtype=float)), ColumnType.NUMERICAL),
        (pd.Series([1.0, 2.0, np.inf]), ColumnType.NUMERICAL),
        (pd.Series([np.nan, np.nan]), ColumnType.NUMERICAL),
        (pd.Series(np.arange(10)), ColumnType.CATEGORICAL),  # <= 10 distinct ints
        (pd.Series(np.arange(11)), ColumnType.NUMERICAL),
        (pd.Series(np.arange(3), dtype="uint8"), ColumnType.CATEGORICAL),
        (pd.Series([1, 2, None], dtype="Int64"), ColumnType.CATEGORICAL),
        (pd.Series(["a", "b", "a", "a"]), ColumnType.CATEGORICAL),
        (pd.Series(["a", "b", "c", "a"]), ColumnType.TEXT),  # more than half distinct
        (pd.Series(["a", "b", "a", "a"], dtype=object), ColumnType.CATEGORICAL),
        (pd.Series([True, False]), ColumnType.CATEGORICAL),
        (pd.Series(["x", "y"], dtype="category"), ColumnType.CATEGORICAL),
        (pd.Series(pd.to_datetime(["2024-01-01", "2024-01-02"])), ColumnType.DATETIME),
        (pd.Series([[1], [2]], dtype=object), ColumnType.UNKNOWN),
        (pd.Series([None, None], dtype=object), ColumnType.UNKNOWN),
    ],
)
def test_infer_column_type(series: pd.Series, expected: ColumnType) -> None:
    assert infer_column_type(series) is expected


def test_overrides_win_over_inference() -> None:
    inferred = {"a": ColumnType.NUMERICAL, "b": ColumnType.CATEGORICAL, "c": ColumnType.TEXT}
    types = resolve_column_types(inferred, categorical=["a", "c"], numerical=["b"])
    assert types == {
        "a": ColumnType.CATEGORICAL,
        "b": ColumnType.NUMERICAL,
        "c": ColumnType.CATEGORICAL,
    }


def test_column_in_both_lists_is_rejected() -> None:
    with pytest.raises(SchemaError, match="both categorical and numerical"):
        resolve_column_types({"a": ColumnType.NUMERICAL}, categorical=["a"], numerical=["a"])


def test_override_of_unknown_column_names_it() -> None:
    with pytest.raises(SchemaError, match=r"\['nope'\]") as info:
        resolve_column_types({"a": ColumnType.NUMERICAL}, categorical=["nope"])
    assert info.value.field == "nope"


def test_split_names() -> None:
    assert split_names(" a, b ,,c") == ["a", "b", "c"]
    assert split_names(["a", " b"]) == ["a", "b"]
    assert split_names(None) == []
