"""The log's table of server events: a feature-backed model's request columns (entity keys,
request-time fields) handed beside the inputs come out exactly as if each request's inputs
had carried them in front; a named matrix or validated columns give the table their frames
give."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd
import pytest
from monitoring_support import T0

from shipyard.monitoring.records import INPUT_PREFIX, events_table
from shipyard.registry.signature import ColumnBatch
from shipyard.serving.observer import PredictionEvent


def _event(i: int, inputs: pd.DataFrame, sent: dict[str, Any] | None) -> PredictionEvent:
    return PredictionEvent(
        request_id=f"r{i}",
        timestamp=1_764_000_000.0 + i,
        model="eta",
        version=1,
        variant="default",
        protocol="predict",
        inputs=inputs,
        predictions=np.arange(len(inputs)),
        probabilities=None,
        classes=None,
        latency_seconds=0.001,
        request_columns=sent,
    )


def _inserted(inputs: pd.DataFrame, sent: dict[str, Any]) -> pd.DataFrame:
    """What the server logged before: the request columns inserted in front, per request."""
    out = inputs.copy()
    for position, (name, values) in enumerate(sent.items()):
        out.insert(position, name, values)
    return out


SENT = {
    "ints": [[1001], [1002, 1003], [7]],
    "text": [["a"], ["b", "c"], ["d"]],
    "ints then text": [[1001], ["b", "c"], [7]],  # pandas types each request alone
    "floats and ints": [[1.5], [2, 3], [4.0]],
    "arrays": [np.array([1001]), np.array([1002, 1003]), np.array([7])],
    "arrays of two dtypes": [np.array([1001]), np.array([1.5, 2.0]), np.array([7])],
}


@pytest.mark.parametrize("case", list(SENT))
def test_request_columns_are_logged_in_front_as_if_inserted_per_request(case: str) -> None:
    keys = SENT[case]
    distance = [[3.2], [1.0, 2.0], [9.9]]
    frames = [
        pd.DataFrame({"conv_rate": np.linspace(0, 1, len(k)), "trips": np.arange(len(k))})
        for k in keys
    ]
    handed = [
        _event(i, frame, {"driver_id": k, "trip_distance": d})
        for i, (frame, k, d) in enumerate(zip(frames, keys, distance, strict=True))
    ]
    before = [
        _event(i, _inserted(frame, {"driver_id": k, "trip_distance": d}), None)
        for i, (frame, k, d) in enumerate(zip(frames, keys, distance, strict=True))
    ]
    got, want = events_table(handed), events_table(before)
    inputs = [c for c in got.column_names if c.startswith(INPUT_PREFIX)]
    assert inputs == [
        INPUT_PREFIX + c for c in ("driver_id", "trip_distance", "conv_rate", "trips")
    ]
    assert got.column_names == want.column_names
    assert got.equals(want), (got.to_pandas(), want.to_pandas())


def test_a_flush_mixing_feature_backed_and_plain_events_keeps_each_ones_columns() -> None:
    """A hot swap mid-flush: one event with request columns, one without."""
    frame = pd.DataFrame({"conv_rate": [0.5]})
    handed = [_event(0, frame, {"driver_id": [1001]}), _event(1, frame, None)]
    before = [_event(0, _inserted(frame, {"driver_id": [1001]}), None), _event(1, frame, None)]
    assert events_table(handed).equals(events_table(before))


COLUMNS = pd.Index(["sepal_length", "sepal_width", "petal_length", "petal_width"])


def _matrix_event(request_id: str, matrix: np.ndarray, *, as_frame: bool) -> PredictionEvent:
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
        frames = [_matrix_event(k, MATRICES[k], as_frame=True) for k in batch]
        matrices = [_matrix_event(k, MATRICES[k], as_frame=False) for k in batch]
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
        _matrix_event("one", MATRICES["one"], as_frame=False),
        _matrix_event("two", MATRICES["two"], as_frame=True),
        _matrix_event("three-with-nan", MATRICES["three-with-nan"], as_frame=False),
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


@pytest.mark.parametrize("case", [*SENT, "a field named like an input"])
@pytest.mark.parametrize("form", ["matrix", "columns"])
def test_request_columns_beside_a_matrix_or_columns_give_the_table_frames_give(
    case: str, form: str
) -> None:
    """A feature-backed model's events carry their inputs as the server validated them (a
    named matrix, or columns), no frame per request: the table is the one the same events
    with frames give (which the test above checks against inserting per request)."""
    keys = SENT.get(case, SENT["ints"])
    field = "conv_rate" if case == "a field named like an input" else "driver_id"
    names = pd.Index(["conv_rate", "trips"])
    handed, framed = [], []
    for i, k in enumerate(keys):
        matrix = np.column_stack([np.linspace(0, 1, len(k)), np.arange(len(k), dtype=float)])
        frame = pd.DataFrame(matrix, columns=names)
        event = _event(i, frame, {field: k, "trip_distance": [9.5] * len(k)})
        framed.append(event)
        if form == "matrix":
            handed.append(dataclasses.replace(event, inputs=matrix, input_columns=names))
        else:
            batch = ColumnBatch({n: frame[n].to_numpy() for n in names}, len(k))
            handed.append(dataclasses.replace(event, inputs=batch))
    got, want = events_table(handed), events_table(framed)
    assert got.column_names == want.column_names
    assert got.equals(want), (got.to_pandas(), want.to_pandas())
    if field == "driver_id":
        assert got.column_names.index(INPUT_PREFIX + "driver_id") < got.column_names.index(
            INPUT_PREFIX + "conv_rate"
        )
