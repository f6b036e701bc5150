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
    contract = infer_contract(X, range_probability=None)
    assert contract.names == tuple(X.columns)
    assert contract.rows_profiled == 150
    petal = contract.column("petal_length")
    assert petal.dtype == "float" and not petal.nullable
    assert (petal.minimum, petal.maximum) == (X["petal_length"].min(), X["petal_length"].max())
    # Quantiles are observed values (inverted CDF), so ties never put a value "below p01".
    observed = np.quantile(X["petal_length"], [0.01, 0.99], method="inverted_cdf")
    assert (petal.quantiles["p01"], petal.quantiles["p99"]) == tuple(observed)
    assert set(petal.quantiles.values()) <= set(X["petal_length"])
    assert petal.tails == (petal.quantiles["p01"], petal.quantiles["p99"])
    assert (petal.lower_bound, petal.upper_bound) == (0.0, None)  # lengths are never negative


def test_expected_range_extrapolates_the_tails_and_keeps_the_sign(adult) -> None:
    contract = infer_contract(adult)
    age = contract.column("age")  # uniform integers 17..90: a short-tailed column
    assert age.dtype == "integer"
    assert age.minimum < adult["age"].min() and age.maximum > adult["age"].max()
    assert age.minimum == int(age.minimum) and age.maximum == int(age.maximum)
    assert age.maximum < 2 * adult["age"].max()  # past the extremes, not unbounded
    gain = contract.column("capital_gain")  # exponential: a long right tail
    assert (gain.minimum, gain.lower_bound) == (0.0, 0.0)  # no negatives seen: a hard zero
    observed = adult["capital_gain"].max()
    # The long tail reaches further past its maximum than the short one does.
    assert (gain.maximum - observed) / observed > (age.maximum - 90) / 90
    # A column with both signs has no sign bound.
    both = infer_contract(pd.DataFrame({"x": np.linspace(-1.0, 1.0, 50)})).column("x")
    assert (both.lower_bound, both.upper_bound) == (None, None)
    assert both.minimum < -1.0 and both.maximum > 1.0


def test_no_sign_bound_from_a_handful_of_rows() -> None:
    few = infer_contract(pd.DataFrame({"x": [1.0, 2.0, 3.0]}))
    assert few.column("x").lower_bound is None
    assert few.column("x").minimum == 0.0  # the soft range still does not cross zero
    negative = infer_contract(pd.DataFrame({"x": -np.arange(1.0, 31.0)}))
    assert (negative.column("x").lower_bound, negative.column("x").upper_bound) == (None, 0.0)


def test_range_probability_is_checked() -> None:
    with pytest.raises(InvalidInputError, match="range_probability"):
        infer_contract(pd.DataFrame({"x": [1.0, 2.0]}), range_probability=1.5)


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
    contract = infer_contract(adult, strict=True)
    text = contract.to_json()
    data = json.loads(text)
    assert data["format_version"] == 1 and data["strict"] is True
    assert data["columns"][0]["lower_bound"] == 0.0
    assert DataContract.from_json(text) == contract


def test_contracts_stored_before_bounds_and_strict_still_load(adult) -> None:
    data = infer_contract(adult).to_dict()
    del data["strict"]
    for column in data["columns"]:
        del column["lower_bound"], column["upper_bound"]
    contract = DataContract.from_dict(data)
    assert not contract.strict and contract.column("age").lower_bound is None


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
    data = infer_contract(adult).to_dict()
    data["columns"][0]["lower_bound"], data["columns"][0]["upper_bound"] = 5, 1
    with pytest.raises(InvalidInputError, match="lower_bound 5 is above upper_bound 1"):
        DataContract.from_dict(data)
    data = infer_contract(adult).to_dict()
    data["strict"] = "yes"
    with pytest.raises(InvalidInputError, match="strict must be true or false"):
        DataContract.from_dict(data)
    with pytest.raises(InvalidInputError, match="not valid JSON"):
        DataContract.from_json("{oops", source="edited.json")
    with pytest.raises(InvalidInputError, match="more than once"):
        DataContract((ColumnContract("a", "float"), ColumnContract("a", "float")))


def test_categories_are_left_out_for_many_distinct_strings() -> None:
    frame = pd.DataFrame({"id": [f"user-{i}" for i in range(100)]})
    assert infer_contract(frame).column("id").categories is None
