"""Metrics written in background batches: nothing lost at exit, on an exception, on sys.exit.

Each case runs a real Python process that logs and then leaves in its own way;
the parent reads the database afterwards.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from shipyard.clock import utc_now
from shipyard.errors import InvalidInputError, RunNotFoundError
from shipyard.store.database import Database
from shipyard.store.run_store import Point, RunStore
from shipyard.tracking.metric_writer import MetricWriter
from shipyard.tracking.runs import Tracker

STEPS, METRICS = 200, 25  # 5,000 points: several background batches

_PRELUDE = f"""
import sys
from pathlib import Path
from shipyard.store.database import Database
from shipyard.store.run_store import RunStore
from shipyard.tracking.runs import Tracker

tracker = Tracker(RunStore(Database(sys.argv[1])), actor="child")
tracker.writer.max_pending = 1_000
def train(run):
    for step in range({STEPS}):
        run.log_metrics({{f"m{{i}}": step + i / 100 for i in range({METRICS})}}, step=step)
    Path(sys.argv[2]).write_text(run.id)
"""

ENDINGS = {
    # the run is never ended by the script: the exit hook ends it and writes its points
    "normal exit": ("run = tracker.start_run('x')\ntrain(run)\n", 0, "FINISHED"),
    "uncaught exception, run left open": (
        "run = tracker.start_run('x')\ntrain(run)\nraise RuntimeError('boom')\n",
        1,
        "FAILED",
    ),
    "exception inside the with block": (
        "with tracker.start_run('x') as run:\n    train(run)\n    raise ValueError('bad')\n",
        1,
        "FAILED",
    ),
    "sys.exit(0) inside the with block": (
        "with tracker.start_run('x') as run:\n    train(run)\n    sys.exit(0)\n",
        0,
        "FINISHED",
    ),
    "sys.exit(3) inside the with block": (
        "with tracker.start_run('x') as run:\n    train(run)\n    sys.exit(3)\n",
        3,
        "FAILED",
    ),
}


@pytest.mark.parametrize("ending", list(ENDINGS))
def test_no_point_is_lost_however_the_process_ends(
    database_url: str, tmp_path: Path, ending: str
) -> None:
    body, code, status = ENDINGS[ending]
    id_file = tmp_path / "run_id"
    script = _PRELUDE + textwrap.dedent(body)
    done = subprocess.run(
        [sys.executable, "-c", script, database_url, str(id_file)],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == code, done.stderr
    run_id = id_file.read_text()
    db = Database(database_url)
    try:
        runs = RunStore(db)
        run = runs.get_run(run_id)
        assert run.status == status
        assert len(run.metrics) == METRICS
        assert run.metrics["m3"] == pytest.approx(STEPS - 1 + 0.03)
        history = runs.metric_history(run_id, "m7")
        assert [p.step for p in history] == list(range(STEPS))
        total = sum(s.steps for s in runs.metric_summaries(run_id))
        assert total == STEPS * METRICS
    finally:
        db.close()


@pytest.fixture
def tracker(database: Database) -> Iterator[Tracker]:
    tracker = Tracker(RunStore(database), actor="ann")
    yield tracker
    tracker.writer.close()


def test_reads_through_the_run_see_every_queued_point(tracker: Tracker) -> None:
    tracker.writer.interval = 3600  # the thread would not write them for an hour
    with tracker.start_run("x") as run:
        for step in range(10):
            run.log_metric("loss", 1 / (step + 1), step=step)
        assert run.info().metrics == {"loss": pytest.approx(0.1)}
        run.log_metric("loss", 0.01, step=10)
    assert tracker.store.get_run(run.id).metrics == {"loss": pytest.approx(0.01)}


def test_the_latest_value_is_the_highest_step(tracker: Tracker) -> None:
    with tracker.start_run("x") as run:
        run.log_metric("acc", 0.9, step=5)
        run.flush()
        run.log_metric("acc", 0.1, step=2)  # a late point of an earlier step
    assert tracker.store.get_run(run.id).metrics == {"acc": 0.9}
    assert len(tracker.store.metric_history(run.id, "acc")) == 2


def test_bad_metrics_are_refused_when_logged(tracker: Tracker) -> None:
    with tracker.start_run("x") as run:
        with pytest.raises(InvalidInputError, match="'acc' got nan; expected a finite number"):
            run.log_metric("acc", float("nan"))
        with pytest.raises(InvalidInputError, match="'acc' got 'high'; expected a number"):
            run.log_metrics({"acc": "high"})  # type: ignore[dict-item]
        with pytest.raises(InvalidInputError, match="Metric name ''"):
            run.log_metric("", 1.0)


def test_a_failed_write_is_raised_not_swallowed(database: Database) -> None:
    writer = MetricWriter(RunStore(database), interval=3600)
    writer.add("0" * 32, Point("acc", 1.0, 0, utc_now()))
    with pytest.raises(RunNotFoundError, match="0000"):
        writer.flush()
    writer.close()


def test_closing_the_client_writes_what_is_queued(database_url: str, tmp_path) -> None:
    from shipyard import Shipyard
    from shipyard.config import Settings

    client = Shipyard(Settings(home=tmp_path / "home", db=database_url))
    client.tracker.writer.interval = 3600
    run = client.tracker.start_run("x")
    run.log_metrics({"a": 1.0, "b": 2.0}, step=3)
    client.close()
    reopened = Shipyard(Settings(home=tmp_path / "home", db=database_url))
    assert reopened.runs.get_run(run.id).metrics == {"a": 1.0, "b": 2.0}
    run.end()  # not left for the exit hook, after this test's database is gone
    client.database.close()
    reopened.close()
