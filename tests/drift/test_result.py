"""DriftResult: counts, the dataset rule and the exact JSON form."""

from __future__ import annotations

import dataclasses

import pytest

from shipyard.drift.result import ColumnDrift, DriftResult, SkippedColumn

COLS = [
    ColumnDrift("a", "numerical", "ks", 0.05, 0.5, False),
    ColumnDrift("b", "categorical", "jensenshannon", 0.1, 0.3, True),
    ColumnDrift("c", "numerical", "wasserstein", 0.1, 0.01, False),
]


def test_counts_and_share() -> None:
    result = DriftResult.from_columns(COLS, drift_share=0.5)
    assert (result.n_columns, result.n_drifted) == (3, 1)
    assert result.share == pytest.approx(1 / 3) and not result.dataset_drift
    assert DriftResult.from_columns(COLS, drift_share=1 / 3).dataset_drift


def test_to_dict_has_exactly_the_documented_keys() -> None:
    skipped = [SkippedColumn("t", "text", "free text")]
    data = DriftResult.from_columns(COLS, drift_share=0.5, skipped=skipped).to_dict()
    assert list(data) == ["columns", "dataset", "skipped"]
    assert list(data["columns"][0]) == [
        "column",
        "type",
        "stattest",
        "threshold",
        "score",
        "drift_detected",
    ]
    assert data["dataset"] == {
        "n_columns": 3,
        "n_drifted": 1,
        "share": pytest.approx(1 / 3),
        "dataset_drift": False,
        "vanished": [],
    }
    assert data["skipped"] == [{"column": "t", "type": "text", "reason": "free text"}]


def test_result_is_frozen_and_sorts_drifted_first() -> None:
    result = DriftResult.from_columns(COLS, drift_share=0.5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.share = 1.0  # type: ignore[misc]
    assert [c.column for c in result.sorted_columns()] == ["b", "a", "c"]
    assert result.drifted_columns == ["b"]
    with pytest.raises(KeyError):
        result.column("zzz")
