"""Checking frames against contracts: counts, example rows, leniency, serving modes."""

from __future__ import annotations

import io
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from shipyard.errors import InvalidInputError, SchemaError
from shipyard.validation.contract_checks import (
    ContractChecker,
    ContractViolationError,
    InputCheckMode,
    check_contract,
    check_serving_input,
)
from shipyard.validation.contracts import infer_contract


def by_kind(result) -> dict[tuple[str, str], object]:  # type: ignore[no-untyped-def]
    return {(v.column, v.expectation): v for v in result.violations}


def test_training_data_passes_its_own_contract(adult) -> None:
    contract = infer_contract(adult)
    result = check_contract(contract, adult)
    assert result.passed, result.violations
    assert result.rows_flagged == 0
    assert result.expectations_checked >= len(adult.columns) * 2


def test_every_violation_is_counted_with_rows_and_values(adult) -> None:
    contract = infer_contract(adult, range_probability=None)
    bad = adult.copy()
    bad.loc[[3, 8, 9], "age"] = [200, 5, 300]  # out of range
    bad.loc[[4, 40], "workclass"] = ["Alien", "Pirate"]  # unknown categories
    bad["hours_per_week"] = bad["hours_per_week"].astype(object)
    bad.loc[7, "hours_per_week"] = "lots"  # wrong type
    bad["capital_gain"] = bad["capital_gain"].astype(object)
    bad.loc[[1, 2, 3, 5, 6, 11, 12], "capital_gain"] = None  # nulls in a non-null column
    result = check_contract(contract, bad)
    found = by_kind(result)
    assert set(found) == {
        ("age", "range"),
        ("workclass", "in_set"),
        ("hours_per_week", "type"),
        ("capital_gain", "not_null"),
    }
    age = found["age", "range"]
    assert (age.count, age.rows, age.values) == (3, (3, 8, 9), (200, 5, 300))
    assert age.checked == len(bad)
    assert found["workclass", "in_set"].values == ("Alien", "Pirate")
    assert found["hours_per_week", "type"].rows == (7,)
    nulls = found["capital_gain", "not_null"]
    assert nulls.count == 7 and nulls.rows == (1, 2, 3, 5, 6)  # at most five examples
    assert result.rows_flagged == len({3, 8, 9, 4, 40, 7, 1, 2, 5, 6, 11, 12})
    assert not result.passed
    assert "3 of 400 values break 'usually between 17 and 90'" in age.message
    # Unusual values warn; wrong types, unknown categories and missing values are errors.
    assert [v.expectation for v in result.warnings] == ["range"]
    assert {v.expectation for v in result.errors} == {"in_set", "type", "not_null"}
    assert result.to_dict()["violations"][0]["severity"] in ("error", "warning")


def test_impossible_values_are_errors_unusual_ones_warnings(adult) -> None:
    contract = infer_contract(adult)
    batch = adult.copy()
    batch.loc[5, "capital_gain"] = -10.0  # never negative in training: impossible
    batch.loc[6, "capital_gain"] = 10 * adult["capital_gain"].max()  # far out: unusual
    result = check_contract(contract, batch)
    found = by_kind(result)
    assert set(found) == {("capital_gain", "bounds"), ("capital_gain", "range")}
    assert found["capital_gain", "bounds"].rows == (5,)  # counted once, as the error it is
    assert found["capital_gain", "bounds"].severity == "error"
    assert found["capital_gain", "range"].rows == (6,)
    assert not result.passed and result.summary().startswith("failed: 1 error, 1 warning")
    only_unusual = adult.copy()
    only_unusual.loc[6, "capital_gain"] = 10 * adult["capital_gain"].max()
    warned = check_contract(contract, only_unusual)
    assert warned.passed and [v.severity for v in warned.violations] == ["warning"]
    assert warned.summary().startswith("passed with 1 warning")
    strict = check_contract(contract, only_unusual, strict=True)
    assert not strict.passed and strict.failing == strict.warnings
    assert not check_contract(replace(contract, strict=True), only_unusual).passed


def test_missing_column_and_extra_columns(adult) -> None:
    contract = infer_contract(adult)
    result = check_contract(contract, adult.drop(columns=["married"]).assign(note="x"))
    [missing] = result.violations
    assert (missing.column, missing.expectation, missing.count) == ("married", "exists", 400)
    assert result.extra_columns == ("note",)


def test_csv_is_read_leniently_numbers_as_text_still_count(adult) -> None:
    contract = infer_contract(adult)
    assert check_contract(contract, pd.read_csv(io.StringIO(adult.to_csv(index=False)))).passed
    edited = adult.astype({"hours_per_week": object})
    edited.loc[5, "hours_per_week"] = "forty"
    frame = pd.read_csv(io.StringIO(edited.to_csv(index=False)))
    assert not pd.api.types.is_numeric_dtype(frame["hours_per_week"])  # one word: all text
    result = check_contract(contract, frame)
    kinds = {(v.column, v.expectation): v for v in result.violations}
    assert list(kinds) == [("hours_per_week", "type")]
    assert kinds["hours_per_week", "type"].count == 1
    assert kinds["hours_per_week", "type"].values == ("forty",)


def test_integer_column_rejects_fractions_and_booleans() -> None:
    contract = infer_contract(pd.DataFrame({"n": [1, 2, 3, 4]}), range_probability=None)
    frame = pd.DataFrame({"n": pd.Series([1, 2.5, True, 3], dtype=object)})
    [bad_type] = check_contract(contract, frame).violations
    assert bad_type.rows == (1, 2)


def test_tail_share_is_checked_only_on_large_batches() -> None:
    rng = np.random.default_rng(1)
    train = pd.DataFrame({"x": rng.normal(0, 1, 2000)})
    contract = infer_contract(train, range_probability=1e-12)
    shifted = pd.DataFrame({"x": rng.normal(2.0, 1, 200)})  # within range, but in the tail
    [tails] = check_contract(contract, shifted).violations
    assert tails.expectation == "tails" and tails.severity == "warning"
    assert tails.count == int((shifted["x"] > contract.column("x").quantiles["p99"]).sum())
    assert check_contract(contract, shifted.head(20)).passed  # too few rows to judge tails
    assert check_contract(contract, pd.DataFrame({"x": rng.normal(0, 1, 500)})).passed


def test_tail_share_above_the_limit_by_chance_alone_is_not_a_violation() -> None:
    """12 % past p01..p99 in 50 rows, against a contract from 60 rows: chance explains it."""
    train = pd.DataFrame({"x": np.arange(60.0)})
    contract = infer_contract(train, range_probability=1e-12)
    tails = contract.column("x").tails
    assert tails is not None
    batch = np.full(50, 30.0)
    batch[:6] = tails[1] + 1.0  # 6 of 50 = 12 % above p99
    assert not check_contract(contract, pd.DataFrame({"x": batch})).violations
    batch[:20] = tails[1] + 1.0  # 40 %: no chance
    [tail] = check_contract(contract, pd.DataFrame({"x": batch})).violations
    assert tail.expectation == "tails" and tail.count == 20


def test_serving_modes(adult) -> None:
    contract = infer_contract(adult, range_probability=None)
    checker = ContractChecker(contract)
    ok = adult.head(2)
    bad = adult.head(3).copy()
    bad.loc[1, "age"] = -4  # never negative in training: an error
    unusual = adult.head(3).copy()
    unusual.loc[2, "age"] = 150  # past the expected range: a warning
    assert check_serving_input(checker, bad, "off").ok
    counted = check_serving_input(checker, bad, InputCheckMode.COUNT)
    assert counted.counts() == {("age", "bounds"): 1}
    assert counted.row_flags.tolist() == [False, True, False]
    assert check_serving_input(checker, ok, "count").ok
    with pytest.raises(ContractViolationError, match="'age'") as info:
        check_serving_input(checker, bad, "reject")
    assert isinstance(info.value, SchemaError)  # the HTTP layer maps it to 422
    assert info.value.field == "age" and info.value.rows == [1]
    # A warning is answered in reject mode too, and counted as in count mode...
    warned = check_serving_input(checker, unusual, "reject")
    assert warned.counts() == {("age", "range"): 1}
    assert warned.row_flags.tolist() == [False, False, True]
    # ...unless the contract is strict.
    strict = ContractChecker(replace(contract, strict=True))
    with pytest.raises(ContractViolationError, match="usually between"):
        check_serving_input(strict, unusual, "reject")
    with pytest.raises(ValueError):
        check_serving_input(checker, ok, "sometimes")


def test_not_a_frame_is_refused(adult) -> None:
    with pytest.raises(InvalidInputError, match="DataFrame"):
        check_contract(infer_contract(adult), [{"age": 3}])  # type: ignore[arg-type]
