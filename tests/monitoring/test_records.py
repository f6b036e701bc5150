"""The log's table for served events: a named matrix gives the same table as frames."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd
from monitoring_support import T0

from shipyard.monitoring.records import events_table
from shipyard.registry.signature import ColumnBatch
from shipyard.serving.observer import PredictionEvent

COLUMNS = pd.Index(["sepal_length", "sepal_width", "petal_length", "petal_width"])


def _event(request_id: str, matrix: np.ndarray, *, as_frame: bool) -> PredictionEvent:
    n = len(matrix)
    rng = np.random.default_rng(len(request_id) + n)
    proba = rng.dirichlet(np.ones(3), size=n)
    return PredictionEvent(
        request_id=request_id,
        timestamp=T0.timestamp() + n,
        model="iris",
        version=2,
        variant="default",
        protocol="predict",
        inputs=pd.DataFrame(matrix, columns=COLUMNS) if as_frame else matrix,
        predictions=np.array(["setosa", "versicolor", "virginica"], dtype=object)[
            proba.argmax(axis=1)
        ],
        probabilities=proba,
        classes=("setosa", "versicolor", "virginica"),
        latency_seconds=0.001 * n,
        input_columns=None if as_frame else COLUMNS,
    )


MATRICES = {
    "one": np.array([[5.1, 3.5, 1.4, 0.2]]),
    "three-with-nan": np.array(
        [[6.7, 3.0, 5.2, 2.3], [np.nan, 2.9, 4.3, 1.3], [4.9, np.nan, 1.5, np.nan]]
    ),
    "two": np.array([[1e300, -0.0, 0.0, 7.0], [5.0, 3.4, 1.5, 0.2]]),
}


def test_a_named_matrix_gives_the_table_its_frame_gives() -> None:
    for batch in (["one"], ["three-with-nan"], ["one", "three-with-nan", "two"]):
        frames = [_event(k, MATRICES[k], as_frame=True) for k in batch]
        matrices = [_event(k, MATRICES[k], as_frame=False) for k in batch]
        expected = events_table(frames)
        got = events_table(matrices)
        assert got.equals(expected), batch
        assert (
            got.column("in_sepal_width").null_count == expected.column("in_sepal_width").null_count
        )


def test_mixed_events_fall_back_to_frames_with_the_same_names() -> None:
    # A frame among matrices, or columns named differently: built frame by frame,
    # the matrices taking their own column names.
    mixed = [
        _event("one", MATRICES["one"], as_frame=False),
        _event("two", MATRICES["two"], as_frame=True),
        _event("three-with-nan", MATRICES["three-with-nan"], as_frame=False),
    ]
    frames = [
        dataclasses.replace(e, inputs=pd.DataFrame(e.inputs, columns=COLUMNS), input_columns=None)
        for e in mixed
    ]
    assert events_table(mixed).equals(events_table(frames))
    renamed = dataclasses.replace(mixed[2], input_columns=pd.Index(["a", "b", "c", "d"]))
    table = events_table([mixed[0], renamed])
    assert table.column("in_a").to_pylist()[1:] == [6.7, None, 4.9]
    assert table.column("in_sepal_length").to_pylist()[:1] == [5.1]


def _mixed_event(request_id: str, colours: list[Any], *, as_frame: bool) -> PredictionEvent:
    n = len(colours)
    batch = ColumnBatch(
        {
            "sepal_length": np.linspace(4.0, 7.0, n),
            "colour": np.array(colours, dtype=object),
        },
        n,
    )
    return PredictionEvent(
        request_id=request_id,
        timestamp=T0.timestamp(),
        model="iris",
        version=2,
        variant="default",
        protocol="predict",
        inputs=batch.frame() if as_frame else batch,
        predictions=np.zeros(n, dtype=np.int64),
        probabilities=None,
        classes=None,
        latency_seconds=0.001,
    )


def test_validated_columns_give_the_table_their_frames_give() -> None:
    # Text throughout (one frame for all events), then a missing text (frame by frame:
    # a column of only missing values has another type than one with text).
    for colours in (
        [["green"], ["red", "blue"], ["never-seen"]],
        [["green"], [np.nan], ["red", np.nan]],
    ):
        frames = [_mixed_event(f"r{i}", c, as_frame=True) for i, c in enumerate(colours)]
        batches = [_mixed_event(f"r{i}", c, as_frame=False) for i, c in enumerate(colours)]
        expected = events_table(frames)
        got = events_table(batches)
        assert got.equals(expected), colours
        assert got.schema == expected.schema
