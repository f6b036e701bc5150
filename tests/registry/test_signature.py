"""Signature inference, serialisation and the coerce boundary."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shipyard.errors import InvalidInputError, SchemaError
from shipyard.registry.signature import (
    ColumnSpec,
    OutputSpec,
    Signature,
    infer_signature,
)

IRIS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
RECORD = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}


@pytest.fixture
def iris_sig() -> Signature:
    sample = pd.DataFrame(
        [[5.1, 3.5, 1.4, 0.2], [6.2, 2.9, 4.3, 1.3], [7.7, 3.0, 6.1, 2.3]], columns=IRIS
    )
    return infer_signature(sample, classes=["setosa", "versicolor", "virginica"])


@pytest.fixture
def mixed_sig() -> Signature:
    sample = pd.DataFrame(
        {
            "amount": [10.5, np.nan, 3.0],
            "count": [1, 2, 3],
            "member": [True, False, True],
            "plan": ["basic", "pro", "basic"],
            "seen": pd.to_datetime(["2024-01-01", "2024-02-01", "2024-03-01"]),
        }
    )
    return infer_signature(sample, predictions=np.array([0.5, 1.5, 2.5]))


# -- inference ---------------------------------------------------------------------------


def test_infer_iris_ranges_and_classes(iris_sig: Signature) -> None:
    assert iris_sig.names == tuple(IRIS)
    first = iris_sig.inputs[0]
    assert (first.dtype, first.nullable, first.minimum, first.maximum) == ("float", False, 5.1, 7.7)
    assert iris_sig.output.task == "classification"
    assert iris_sig.output.classes == ("setosa", "versicolor", "virginica")
    assert iris_sig.output.dtype == "string"


def test_infer_mixed_dtypes(mixed_sig: Signature) -> None:
    by = {c.name: c for c in mixed_sig.inputs}
    assert by["amount"].dtype == "float" and by["amount"].nullable
    assert (by["amount"].minimum, by["amount"].maximum) == (3.0, 10.5)
    assert (by["count"].dtype, by["count"].minimum, by["count"].maximum) == ("integer", 1, 3)
    assert by["member"].dtype == "boolean"
    assert by["plan"].dtype == "string" and by["plan"].categories == ("basic", "pro")
    assert by["seen"].dtype == "datetime"
    assert mixed_sig.output.task == "regression"


def test_infer_many_strings_have_no_categories() -> None:
    sig = infer_signature(pd.DataFrame({"city": [f"c{i}" for i in range(21)]}))
    assert sig.inputs[0].categories is None
    sig = infer_signature(pd.DataFrame({"city": [f"c{i}" for i in range(20)]}))
    assert sig.inputs[0].categories is not None and len(sig.inputs[0].categories) == 20


def test_infer_output_from_integer_predictions() -> None:
    sig = infer_signature(pd.DataFrame({"x": [1.0, 2.0]}), predictions=np.array([1, 0]))
    assert sig.output == OutputSpec("classification", "integer", classes=(0, 1))


def test_infer_refuses_infinity_in_sample() -> None:
    with pytest.raises(InvalidInputError, match="'x' holds infinity"):
        infer_signature(pd.DataFrame({"x": [1.0, np.inf]}))


def test_infer_refuses_unnamed_columns_and_empty_samples() -> None:
    with pytest.raises(InvalidInputError, match="must be strings"):
        infer_signature(pd.DataFrame(np.zeros((2, 2))))
    with pytest.raises(InvalidInputError, match="no rows"):
        infer_signature(pd.DataFrame({"x": []}))


def test_to_dict_is_json_and_round_trips(mixed_sig: Signature, iris_sig: Signature) -> None:
    for sig in (mixed_sig, iris_sig):
        text = json.dumps(sig.to_dict(), allow_nan=False)
        assert Signature.from_dict(json.loads(text)) == sig


def test_from_dict_rejects_malformed() -> None:
    with pytest.raises(InvalidInputError, match="Malformed signature"):
        Signature.from_dict({"inputs": [{"name": "x"}], "output": {}})
    with pytest.raises(InvalidInputError, match="dtype 'decimal'"):
        ColumnSpec("x", "decimal")  # type: ignore[arg-type]


# -- coerce: accepted shapes --------------------------------------------------------------


def test_coerce_record_list_frame_and_array_agree(iris_sig: Signature) -> None:
    row = list(RECORD.values())
    frames = [
        iris_sig.coerce(RECORD),
        iris_sig.coerce([RECORD]),
        iris_sig.coerce(pd.DataFrame([RECORD])),
        iris_sig.coerce(np.array([row])),
        iris_sig.coerce([row]),
        iris_sig.coerce(pd.Series(RECORD)),
    ]
    for frame in frames:
        assert list(frame.columns) == IRIS
        assert frame.dtypes.tolist() == [np.float64] * 4
        assert frame.to_numpy().tolist() == [row]
    assert iris_sig.coerce_array(RECORD).tolist() == [row]


def test_coerce_drops_extra_columns_and_reorders(iris_sig: Signature) -> None:
    shuffled = {"id": 7, **dict(reversed(list(RECORD.items())))}
    frame = iris_sig.coerce([shuffled])
    assert list(frame.columns) == IRIS
    assert frame.iloc[0].tolist() == list(RECORD.values())


def test_coerce_accepts_integers_in_float_columns(iris_sig: Signature) -> None:
    frame = iris_sig.coerce({**RECORD, "sepal_length": 5})
    assert frame["sepal_length"].dtype == np.float64 and frame["sepal_length"].iloc[0] == 5.0


def test_coerce_mixed_types(mixed_sig: Signature) -> None:
    rec = {"amount": None, "count": 4.0, "member": False, "plan": "pro", "seen": "2024-05-01"}
    frame = mixed_sig.coerce([rec, {**rec, "amount": 2.5, "count": 7}])
    assert math.isnan(frame["amount"].iloc[0]) and frame["amount"].iloc[1] == 2.5
    assert frame["count"].dtype == np.int64 and frame["count"].tolist() == [4, 7]
    assert frame["member"].dtype == bool
    assert frame["plan"].tolist() == ["pro", "pro"]
    assert frame["seen"].iloc[0] == pd.Timestamp("2024-05-01")


def test_coerce_keeps_dataframe_index(iris_sig: Signature) -> None:
    df = pd.DataFrame([RECORD, RECORD], index=[10, 20])
    assert iris_sig.coerce(df).index.tolist() == [10, 20]


def test_coerce_array_fast_path_returns_same_array(iris_sig: Signature) -> None:
    arr = np.array([list(RECORD.values())] * 3)
    assert iris_sig.coerce_array(arr) is arr


def test_coerce_array_refuses_string_signature(mixed_sig: Signature) -> None:
    assert not mixed_sig.is_numeric
    with pytest.raises(SchemaError, match="use coerce"):
        mixed_sig.coerce_array({"plan": "pro"})


# -- coerce: errors name the column, the type and the rows ---------------------------------


def test_missing_column_message(iris_sig: Signature) -> None:
    record = {k: v for k, v in RECORD.items() if k != "petal_width"}
    with pytest.raises(SchemaError) as info:
        iris_sig.coerce(record)
    err = info.value
    assert (err.field, err.expected) == ("petal_width", "float")
    assert str(err).startswith("Column 'petal_width' is missing; expected a float.")
    assert "The model takes: sepal_length (float), sepal_width (float)" in str(err)


def test_missing_column_suggests_a_typo(iris_sig: Signature) -> None:
    record = {k: v for k, v in RECORD.items() if k != "petal_width"} | {"petal_widht": 0.2}
    with pytest.raises(SchemaError, match="did you mean 'petal_width'"):
        iris_sig.coerce(record)


def test_missing_in_some_rows_lists_them(iris_sig: Signature) -> None:
    partial = {k: v for k, v in RECORD.items() if k != "sepal_width"}
    with pytest.raises(SchemaError, match=r"missing in row 1 \(0-based\)") as info:
        iris_sig.coerce([RECORD, partial, RECORD])
    assert info.value.rows == [1]


def test_wrong_type_names_column_type_and_rows(iris_sig: Signature) -> None:
    bad = {**RECORD, "sepal_width": "abc"}
    with pytest.raises(SchemaError) as info:
        iris_sig.coerce([RECORD, bad, RECORD, bad])
    err = info.value
    assert (err.field, err.expected, err.rows) == ("sepal_width", "float", [1, 3])
    assert "expects a float, got str 'abc' at rows 1, 3" in str(err)


@pytest.mark.parametrize("value", ["5.1", True, [5.1], {"v": 1}])
def test_float_column_rejects_non_numbers(iris_sig: Signature, value: object) -> None:
    with pytest.raises(SchemaError, match="'petal_length' expects a float"):
        iris_sig.coerce({**RECORD, "petal_length": value})


def test_null_in_non_nullable_column(iris_sig: Signature) -> None:
    for value in (None, float("nan")):
        with pytest.raises(SchemaError, match="'sepal_length' has missing values") as info:
            iris_sig.coerce({**RECORD, "sepal_length": value})
        assert info.value.field == "sepal_length"


def test_null_allowed_in_nullable_column(mixed_sig: Signature) -> None:
    rec = {"amount": None, "count": 1, "member": True, "plan": "basic", "seen": "2024-01-01"}
    assert math.isnan(mixed_sig.coerce(rec)["amount"].iloc[0])
    with pytest.raises(SchemaError, match="'plan' has missing values"):
        mixed_sig.coerce({**rec, "plan": None})


@pytest.mark.parametrize("value", [math.inf, -math.inf])
def test_infinity_is_refused_everywhere(iris_sig: Signature, value: float) -> None:
    with pytest.raises(SchemaError, match="'petal_width' has infinity") as info:
        iris_sig.coerce({**RECORD, "petal_width": value})
    assert info.value.expected == "float"
    arr = np.array([[1.0, 2.0, 3.0, value]])
    with pytest.raises(SchemaError, match="'petal_width' has infinity"):
        iris_sig.coerce_array(arr)
    with pytest.raises(SchemaError, match="'petal_width' has infinity"):
        iris_sig.coerce(pd.DataFrame(arr, columns=IRIS))


@pytest.mark.parametrize(
    ("column", "value", "expected"),
    [
        ("count", 2.5, "an integer"),
        ("count", "3", "an integer"),
        ("member", 1, "a boolean"),
        ("plan", 3, "a string"),
        ("seen", "not a date", "a datetime"),
        ("seen", 12.0, "a datetime"),
    ],
)
def test_typed_columns_reject_wrong_values(
    mixed_sig: Signature, column: str, value: object, expected: str
) -> None:
    rec = {"amount": 1.0, "count": 1, "member": True, "plan": "basic", "seen": "2024-01-01"}
    with pytest.raises(SchemaError, match=f"'{column}' expects {expected}") as info:
        mixed_sig.coerce({**rec, column: value})
    assert info.value.field == column


def test_wrong_array_shapes(iris_sig: Signature) -> None:
    with pytest.raises(SchemaError, match="2-D array with 4 columns") as info:
        iris_sig.coerce(np.zeros((2, 3)))
    assert info.value.expected == "4 columns"
    with pytest.raises(SchemaError, match="Wrap a single row in a list"):
        iris_sig.coerce([5.1, 3.5, 1.4, 0.2])
    with pytest.raises(SchemaError, match="must have 4 values"):
        iris_sig.coerce([[5.1, 3.5, 1.4, 0.2], [1.0]])
    with pytest.raises(SchemaError, match="2-D array with 4 columns"):
        iris_sig.coerce_array(np.zeros((1, 5)))


def test_other_bad_inputs(iris_sig: Signature) -> None:
    with pytest.raises(SchemaError, match="no rows"):
        iris_sig.coerce([])
    with pytest.raises(SchemaError, match="got int"):
        iris_sig.coerce(5)
    with pytest.raises(SchemaError, match=r"row 1 .* is str"):
        iris_sig.coerce([RECORD, "oops"])


def test_integer_column_in_array_must_be_integral() -> None:
    sig = infer_signature(pd.DataFrame({"x": [1.0, 2.0], "n": [1, 2]}))
    assert sig.coerce_array(np.array([[1.5, 3.0]])).tolist() == [[1.5, 3.0]]
    with pytest.raises(SchemaError, match="'n' expects an integer"):
        sig.coerce_array(np.array([[1.5, 3.5]]))


# -- properties ---------------------------------------------------------------------------

finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
records = st.fixed_dictionaries({name: finite | st.integers(-(10**9), 10**9) for name in IRIS})
non_numeric = st.text(min_size=1).filter(lambda s: not _parses_as_float(s))


def _parses_as_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


SIG = Signature(tuple(ColumnSpec(n, "float") for n in IRIS), OutputSpec("regression", "float"))


@settings(max_examples=150, deadline=None)
@given(record=records)
def test_any_valid_record_round_trips(record: dict[str, float]) -> None:
    frame = SIG.coerce(record)
    assert list(frame.columns) == IRIS
    assert frame.iloc[0].tolist() == [float(record[n]) for n in IRIS]
    assert SIG.coerce_array([record]).tolist() == [[float(record[n]) for n in IRIS]]


@settings(max_examples=150, deadline=None)
@given(record=records, column=st.sampled_from(IRIS), text=non_numeric)
def test_any_non_numeric_string_names_its_column(
    record: dict[str, float], column: str, text: str
) -> None:
    bad = {**record, column: text}
    for call in (SIG.coerce, SIG.coerce_array):
        with pytest.raises(SchemaError) as info:
            call(bad)
        assert info.value.field == column
        assert info.value.expected == "float"
        assert f"Column {column!r} expects a float" in str(info.value)


_RANGES = Signature(
    (ColumnSpec("x", "float"), ColumnSpec("n", "integer")), OutputSpec("regression", "float")
)


@pytest.mark.parametrize(
    ("data", "column"),
    [
        ({"x": int("1" * 401), "n": 1}, "x"),  # beyond the largest float: OverflowError before
        ([{"x": 1.0, "n": 1}, {"x": -int("9" * 400), "n": 1}], "x"),
        ({"x": 1.0, "n": 2**63}, "n"),  # one past int64: would wrap to a negative number
        ({"x": 1.0, "n": -(2**63) - 1}, "n"),
        ({"x": 1.0, "n": 1e30}, "n"),  # an integral float far beyond int64
        (pd.DataFrame({"x": [1.0], "n": np.array([2**64 - 1], dtype=np.uint64)}), "n"),
        (pd.DataFrame({"x": [1.0], "n": [2.0**63]}), "n"),
        (pd.DataFrame({"x": [int("1" * 401)], "n": [1]}), "x"),  # as pandas reads a CSV
    ],
    ids=[
        "huge-int-float",
        "huge-negative-row-1",
        "int64-max+1",
        "int64-min-1",
        "1e30",
        "uint64",
        "float-2**63",
        "object-column",
    ],
)
def test_numbers_out_of_range_are_schema_errors_naming_the_column(
    data: object, column: str
) -> None:
    with pytest.raises(SchemaError, match="out of range") as info:
        _RANGES.coerce(data)
    assert info.value.field == column


def test_integers_keep_every_digit_up_to_int64() -> None:
    frame = _RANGES.coerce([{"x": 1.0, "n": 2**60 + 1}, {"x": 2.0, "n": -(2**63)}])
    assert frame["n"].tolist() == [2**60 + 1, -(2**63)]
    assert frame["n"].dtype == np.int64
    assert _RANGES.coerce({"x": 2**53 + 1, "n": 2**63 - 1})["n"].tolist() == [2**63 - 1]
