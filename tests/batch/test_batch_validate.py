"""check_chunk: every bad row found at once, the same rules as Signature.coerce."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from shipyard.batch.validate import check_chunk
from shipyard.registry.signature import ColumnSpec, OutputSpec, Signature


def sig(*columns: ColumnSpec) -> Signature:
    return Signature(columns, OutputSpec("regression", "float"))


def test_clean_typed_rows_come_out_as_coerce_makes_them():
    signature = sig(
        ColumnSpec("f", "float"),
        ColumnSpec("i", "integer"),
        ColumnSpec("b", "boolean"),
        ColumnSpec("s", "string"),
    )
    frame = pd.DataFrame(
        {"s": ["a", "b"], "f": [1.5, 2.0], "i": [1, 2], "b": [True, False], "extra": [0, 0]}
    )
    check = check_chunk(frame, signature, text_numbers=False)
    assert check.n_bad == 0 and check.good.all()
    pd.testing.assert_frame_equal(check.frame, signature.coerce(frame), check_dtype=False)
    assert check.frame["i"].dtype == np.int64
    assert check.frame["b"].dtype == bool


def test_every_broken_rule_is_found_with_its_row_and_reason():
    signature = sig(ColumnSpec("x", "float"), ColumnSpec("n", "integer", nullable=True))
    frame = pd.DataFrame(
        {
            "x": [1.0, np.nan, np.inf, 4.0, -np.inf, 6.0],
            "n": [1.0, 2.0, 3.0, 4.5, np.nan, np.nan],
        }
    )
    check = check_chunk(frame, signature, text_numbers=False)
    assert check.bad.tolist() == [1, 2, 3, 4]
    assert check.reasons == [
        "x: missing value; expected a float",
        "x: infinity; expected a finite float",
        "n: 4.5 is not an integer; expected an integer",
        "x: infinity; expected a finite float",
    ]
    assert check.fields == ["x", "x", "n", "x"]
    assert check.expected == ["float", "float", "integer", "float"]
    # Good rows keep their index; a nullable integer column with a gap stays float + NaN.
    assert check.frame.index.tolist() == [0, 5]
    assert check.frame["n"].tolist()[0] == 1 and np.isnan(check.frame["n"].tolist()[1])


def test_text_numbers_are_parsed_only_for_typeless_sources():
    signature = sig(ColumnSpec("x", "float"))
    text = pd.DataFrame({"x": pd.array(["1.5", "abc", None, "NaN", "2e3"], dtype="str")})
    check = check_chunk(text, signature, text_numbers=True)
    assert check.bad.tolist() == [1, 2, 3]
    assert check.reasons[0] == "x: 'abc' is not a number; expected a float"
    assert check.reasons[1:] == ["x: missing value; expected a float"] * 2  # "NaN" is missing
    assert check.frame["x"].tolist() == [1.5, 2000.0]
    # From a typed source (Parquet, SQL) a string is not a number, however it looks.
    check = check_chunk(text, signature, text_numbers=False)
    assert check.bad.tolist() == [0, 1, 2, 3, 4]
    assert check.reasons[0] == "x: got str '1.5'; expected a float"


def test_mixed_python_objects_from_sql():
    signature = sig(ColumnSpec("x", "float"), ColumnSpec("s", "string", nullable=True))
    frame = pd.DataFrame(
        {
            "x": pd.Series([Decimal("1.25"), 2, True, "3", None], dtype=object),
            "s": pd.Series(["a", None, "c", 4, "e"], dtype=object),
        }
    )
    check = check_chunk(frame, signature, text_numbers=False)
    assert check.bad.tolist() == [2, 3, 4]
    assert check.reasons == [
        "x: got bool True; expected a float",
        "x: got str '3'; expected a float; s: got int 4; expected a string",
        "x: missing value; expected a float",
    ]
    assert check.frame["x"].tolist() == [1.25, 2.0]


@pytest.mark.parametrize(
    ("values", "bad"),
    [
        (pd.array(["true", "False", "1", "maybe", None], dtype="str"), [3, 4]),
        (pd.Series([True, False, 1, None, True], dtype=object), [2, 3]),
    ],
)
def test_booleans(values, bad):
    signature = sig(ColumnSpec("b", "boolean"))
    check = check_chunk(pd.DataFrame({"b": values}), signature, text_numbers=True)
    assert check.bad.tolist() == bad
    assert check.frame["b"].dtype == bool


def test_datetimes_from_text():
    signature = sig(ColumnSpec("t", "datetime"))
    frame = pd.DataFrame({"t": pd.array(["2024-01-02T03:04:05", "yesterday"], dtype="str")})
    check = check_chunk(frame, signature, text_numbers=True)
    assert check.reasons == ["t: 'yesterday' is not an ISO 8601 datetime; expected a datetime"]
    assert check.frame["t"].iloc[0] == pd.Timestamp("2024-01-02 03:04:05")
