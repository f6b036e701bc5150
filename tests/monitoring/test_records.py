"""The log's table of server events: a feature-backed model's request columns (entity keys,
request-time fields) handed beside the inputs come out exactly as if each request's inputs
had carried them in front."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from shipyard.monitoring.records import INPUT_PREFIX, events_table
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
