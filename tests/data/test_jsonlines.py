"""JSON lines output (``data get --output x.jsonl``) keeps every value as it was."""

from __future__ import annotations

import datetime as dt
import io
import json
import time
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd

from shipyard import Shipyard
from shipyard.data.jsonlines import frame_lines


def rows(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines()]


def test_floats_are_written_as_their_shortest_round_trip_repr() -> None:
    values = [0.1 + 0.2, 1 / 3, 1.0, -0.0, 1e-07, 1e20, 5e-324, 2.0**70]
    text = frame_lines(pd.DataFrame({"x": values}))
    assert [line.split(":", 1)[1].rstrip("}") for line in text.splitlines()] == list(
        map(repr, values)
    )
    assert [r["x"] for r in rows(text)] == values


def test_nan_and_missing_values_are_null_infinities_as_python_writes_them() -> None:
    frame = pd.DataFrame(
        {
            "f": [float("nan"), float("inf"), -float("inf")],
            "i": pd.array([1, None, 3], dtype="Int64"),
            "s": ["a", None, "b"],
            "o": [None, float("nan"), pd.NA],
        }
    )
    text = frame_lines(frame)
    assert text.splitlines()[0] == '{"f":null,"i":1,"s":"a","o":null}'
    assert text.splitlines()[1] == '{"f":Infinity,"i":null,"s":null,"o":null}'
    assert rows(text)[2]["f"] == -float("inf")


def test_times_keep_their_precision_and_their_own_offset() -> None:
    naive = pd.Series(pd.to_datetime(["2024-05-01 10:00:00.123456", None], format="ISO8601"))
    frame = pd.DataFrame(
        {
            "naive": naive,
            "berlin": naive.dt.tz_localize("Europe/Berlin"),
            "nanos": pd.to_datetime(
                ["2024-01-01T00:00:00.123456789", "2024-01-01"], format="ISO8601"
            ),
            "seconds": pd.to_datetime(["2024-05-01 10:00:00", "2024-12-01 10:00:00"]).tz_localize(
                "Europe/Berlin"
            ),
            "old": pd.Series(np.array(["1500-01-01T00:00:00.5", "2024-01-01"], "datetime64[ms]")),
        }
    )
    first, second = rows(frame_lines(frame))
    assert first["naive"] == "2024-05-01T10:00:00.123456"
    assert first["berlin"] == "2024-05-01T10:00:00.123456+02:00"
    assert first["nanos"] == "2024-01-01T00:00:00.123456789"
    assert (first["seconds"], second["seconds"]) == (
        "2024-05-01T10:00:00+02:00",
        "2024-12-01T10:00:00+01:00",  # winter time: the zone's other offset
    )
    assert first["old"] == "1500-01-01T00:00:00.500"  # outside pandas' nanosecond range
    assert second["naive"] is None and second["berlin"] is None


def test_other_types_are_written_as_json_values() -> None:
    frame = pd.DataFrame(
        {
            "b": [True, False],
            "big": np.array([2**63 + 5, 1], dtype=np.uint64),
            "f32": np.array([0.1, 16777216.0], dtype=np.float32),
            "text": ['q"\\,', "é"],
            "cat": pd.Categorical(["x", None]),
            "mixed": [Decimal("1.10"), dt.date(2024, 1, 2)],
        }
    )
    assert frame_lines(frame).splitlines() == [
        '{"b":true,"big":9223372036854775813,"f32":0.1,"text":"q\\"\\\\,","cat":"x","mixed":1.10}',
        '{"b":false,"big":1,"f32":16777216.0,"text":"é","cat":null,"mixed":"2024-01-02"}',
    ]
    assert frame_lines(frame.iloc[:0]) == ""


def test_many_rows_are_written_column_by_column_in_reasonable_time() -> None:
    n = 200_000
    frame = pd.DataFrame(
        {
            "f": np.random.default_rng(0).random(n),
            "i": np.arange(n),
            "s": ["abc"] * n,
            "t": pd.date_range("2024-01-01", periods=n, freq="s", tz="Europe/Berlin"),
        }
    )
    start = time.perf_counter()
    text = frame_lines(frame)
    # About 1 s on a busy shared machine (pandas' own to_json took longer); a
    # dict-per-row encoder would take several times that.
    assert time.perf_counter() - start < 10
    back = pd.read_json(io.StringIO(text), lines=True, precise_float=True)
    assert back["f"].tolist() == frame["f"].tolist()
    assert len(back) == n


def test_data_get_jsonl_reads_back_the_same_values(client: Shipyard, tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "x": [0.1 + 0.2, 1 / 3],
            "at": pd.to_datetime(
                ["2024-05-01 10:00:00.123456", "2024-05-01 11:00:00"], format="ISO8601"
            ),
        }
    )
    frame["local"] = frame["at"].dt.tz_localize("Europe/Berlin")
    client.data.snapshot(frame, name="precise")
    client.data.write("precise:1", tmp_path / "out.jsonl")
    first, second = rows((tmp_path / "out.jsonl").read_text())
    assert (first["x"], second["x"]) == (0.30000000000000004, 0.3333333333333333)
    assert first["at"] == "2024-05-01T10:00:00.123456"
    assert first["local"] == "2024-05-01T10:00:00.123456+02:00"
    assert second["local"] == "2024-05-01T11:00:00.000000+02:00"
