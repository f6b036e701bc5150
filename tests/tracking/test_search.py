"""``shipyard.search_runs``: a DataFrame with MLflow's columns, through the public API."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import shipyard
from shipyard.config import Settings


@pytest.fixture
def api(database_url: str, tmp_path: Path) -> Iterator[None]:
    shipyard.configure(Settings(home=tmp_path / "home", db=database_url, user="ann"))
    yield
    shipyard.configure(Settings(home=tmp_path / "unused"))


def test_search_runs_returns_a_frame(api: None) -> None:
    for c, acc in [(0.1, 0.8), (1.0, 0.95), (10.0, 0.97)]:
        with shipyard.start_run("iris", name=f"C={c}", tags={"team": "risk"}) as run:
            run.log_param("C", c)
            for step in range(3):
                run.log_metric("accuracy", acc - 0.1 * (2 - step), step=step)
    frame = shipyard.search_runs(
        "iris",
        filter="metrics.accuracy > 0.9 and params.C = '1.0' and tags.team = 'risk'",
        order_by=["metrics.accuracy DESC"],
        max_results=10,
    )
    assert list(frame["run_name"]) == ["C=1.0"]
    assert frame["metrics.accuracy"].dtype == "float64"
    assert frame.loc[0, "metrics.accuracy"] == pytest.approx(0.95)
    assert frame.loc[0, "params.C"] == "1.0" and frame.loc[0, "tags.team"] == "risk"
    assert list(frame.columns[:8]) == [
        "run_id",
        "experiment",
        "run_name",
        "status",
        "start_time",
        "end_time",
        "user_id",
        "parent_run_id",
    ]
    everything = shipyard.search_runs("iris", order_by=["metrics.accuracy DESC"])
    assert list(everything["run_name"]) == ["C=10.0", "C=1.0", "C=0.1"]
    empty = shipyard.search_runs("iris", filter="metrics.accuracy > 2")
    assert empty.empty and "run_id" in empty.columns


def test_a_metric_just_logged_in_an_open_run_is_searchable(api: None) -> None:
    """Points are written in the background; a search from the same process sees them."""
    with shipyard.start_run("open") as run:
        run.log_metric("m", 1.0)
        frame = shipyard.search_runs("open", filter="metrics.m = 1.0")
        assert list(frame["run_id"]) == [run.id]
