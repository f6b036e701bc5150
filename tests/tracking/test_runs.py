import pandas as pd
import pytest

from shipyard.store.database import Database
from shipyard.store.run_store import RunStore
from shipyard.tracking.runs import Tracker


@pytest.fixture
def tracker(database: Database) -> Tracker:
    return Tracker(RunStore(database), actor="ann")


def test_run_context_records_everything(tracker: Tracker) -> None:
    data = pd.DataFrame({"x": [1.0, 2.0], "y": [0, 1]})
    with tracker.start_run("exp", name="first") as run:
        assert tracker.active_run is run
        run.log_params({"C": 0.5})
        run.log_metric("acc", 0.8, step=1)
        run.set_tag("team", "ds")
        fp = run.log_dataset(data, source="mem")
    assert tracker.active_run is None
    info = tracker.store.get_run(run.id)
    assert info.status == "FINISHED"
    assert info.created_by == "ann"
    assert info.params == {"C": "0.5"} and info.metrics == {"acc": 0.8}
    assert info.datasets["training"]["content_hash"] == fp.content_hash


def test_exception_marks_run_failed(tracker: Tracker) -> None:
    with pytest.raises(RuntimeError), tracker.start_run("exp") as run:
        raise RuntimeError("boom")
    assert tracker.store.get_run(run.id).status == "FAILED"


def test_nested_runs_track_the_innermost(tracker: Tracker) -> None:
    with tracker.start_run("exp") as outer:
        with tracker.start_run("exp") as inner:
            assert tracker.active_run is inner
        assert tracker.active_run is outer
