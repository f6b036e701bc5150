"""Contract inference and its JSON form, on iris and census-like frames."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from shipyard.errors import InvalidInputError
from shipyard.quickstart import iris_frame
from shipyard.validation.contracts import ColumnContract, DataContract, infer_contract


def test_iris_contract_types_ranges_quantiles() -> None:
    X, _ = iris_frame()
    contract = infer_contract(X, range_margin=0.0)
    assert contract.names == tuple(X.columns)
    assert contract.rows_profiled == 150
    petal = contract.column("petal_length")
    assert petal.dtype == "float" and not petal.nullable
    assert (petal.minimum, petal.maximum) == (X["petal_length"].min(), X["petal_length"].max())
    assert petal.quantiles["p01"] == pytest.approx(np.quantile(X["petal_length"], 0.01))
    assert petal.quantiles["p99"] == pytest.approx(np.quantile(X["petal_length"], 0.99))
    assert petal.tails == (petal.quantiles["p01"], petal.quantiles["p99"])


def test_margin_widens_ranges_but_keeps_non_negative_columns_non_negative(adult) -> None:
    contract = infer_contract(adult, range_margin=0.1)
    age = contract.column("age")
    span = adult["age"].max() - adult["age"].min()
    assert age.dtype == "integer"
    assert age.minimum == np.floor(adult["age"].min() - 0.1 * span)
    assert age.maximum == np.ceil(adult["age"].max() + 0.1 * span)
    assert contract.column("capital_gain").minimum == 0.0  # exponential: no negatives seen


def test_strings_nans_bools_dates(adult) -> None:
    contract = infer_contract(adult)
    workclass = contract.column("workclass")
    assert workclass.dtype == "string"
    assert workclass.nullable  # the frame has None every 23 rows
    assert workclass.categories == ("Gov", "Private", "Self-emp")
    hours = contract.column("hours_per_week")
    assert hours.nullable and hours.dtype == "float"
    assert not np.isnan(hours.quantiles["p50"])  # quantiles ignore the gaps
    assert contract.column("married").dtype == "boolean"
    assert contract.column("married").minimum is None
    assert contract.column("seen").dtype == "datetime"
    assert not contract.column("age").nullable


def test_json_roundtrip_is_exact(adult) -> None:
    contract = infer_contract(adult)
    text = contract.to_json()
    assert json.loads(text)["format_version"] == 1
    assert DataContract.from_json(text) == contract


def test_edited_contract_errors_name_the_column_and_key(adult) -> None:
    data = infer_contract(adult).to_dict()
    data["columns"][0]["minimum"] = "seventeen"
    with pytest.raises(InvalidInputError, match=r"'age'.*minimum must be a finite number"):
        DataContract.from_dict(data)
    data = infer_contract(adult).to_dict()
    data["columns"][2]["colour"] = "red"
    with pytest.raises(InvalidInputError, match=r"'workclass' has unknown keys \['colour'\]"):
        DataContract.from_dict(data)
    data = infer_contract(adult).to_dict()
    data["columns"][0]["minimum"], data["columns"][0]["maximum"] = 50, 20
    with pytest.raises(InvalidInputError, match="minimum 50 is above maximum 20"):
        DataContract.from_dict(data)
    with pytest.raises(InvalidInputError, match="not valid JSON"):
        DataContract.from_json("{oops", source="edited.json")
    with pytest.raises(InvalidInputError, match="more than once"):
        DataContract((ColumnContract("a", "float"), ColumnContract("a", "float")))


def test_categories_are_left_out_for_many_distinct_strings() -> None:
    frame = pd.DataFrame({"id": [f"user-{i}" for i in range(100)]})
    assert infer_contract(frame).column("id").categories is None
