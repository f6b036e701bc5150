"""Named ONNX inputs: a request's few rows are cut from one matrix, exactly as column by column."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from shipyard.registry.flavors.onnx import SMALL_FRAME_ROWS, _column, _small_frame_feed

INPUTS: list[tuple[str, Any]] = [
    ("length", np.float32),
    ("count", np.int64),
    ("flag", np.bool_),
    ("colour", np.object_),
    ("band", np.float32),
]


def frame(rows: int) -> pd.DataFrame:
    rng = np.random.default_rng(rows)
    return pd.DataFrame(
        {
            "length": rng.normal(size=rows) * 1e3,
            "count": rng.integers(0, 100, rows),
            "flag": rng.integers(0, 2, rows).astype(bool),
            "colour": pd.array([None, *rng.choice(["red", "blue"], rows - 1)], dtype="string"),
            "band": pd.Categorical(rng.choice([0.5, 1.5], rows), categories=[0.5, 1.5]),
        }
    )


def by_column(X: pd.DataFrame) -> dict[str, np.ndarray]:
    return {name: _column(X[name], dtype).reshape(-1, 1) for name, dtype in INPUTS}


@pytest.mark.parametrize("rows", [1, 7, SMALL_FRAME_ROWS])
def test_the_small_frame_feed_equals_the_column_by_column_feed(rows: int) -> None:
    X = frame(rows)
    fast = _small_frame_feed(X, INPUTS)
    assert fast is not None
    slow = by_column(X)
    assert fast.keys() == slow.keys()
    for name in slow:
        assert fast[name].dtype == slow[name].dtype, name
        assert fast[name].shape == slow[name].shape == (rows, 1)
        assert fast[name].tolist() == slow[name].tolist(), name
    assert fast["colour"][0, 0] == ""  # a missing text is fed as ""


def test_a_value_only_the_column_path_converts_falls_back() -> None:
    X = pd.DataFrame({"count": pd.array([1, None], dtype="Int64")})
    assert _small_frame_feed(X, [("count", np.int64)]) is None
