"""System metrics: CPU and memory sampled in the background as stepped metrics of the run."""

from __future__ import annotations

from collections.abc import Iterator

import psutil
import pytest
from sklearn.datasets import load_digits
from sklearn.ensemble import RandomForestClassifier

from shipyard.errors import InvalidInputError
from shipyard.store.database import Database
from shipyard.store.run_store import RunStore
from shipyard.tracking.runs import Tracker
from shipyard.tracking.system_metrics import sample


@pytest.fixture
def tracker(database: Database) -> Iterator[Tracker]:
    tracker = Tracker(RunStore(database), actor="ann")
    yield tracker
    tracker.writer.close()


def test_a_run_with_system_metrics(tracker: Tracker) -> None:
    X, y = load_digits(return_X_y=True)
    with tracker.start_run("x", system_metrics=True, system_metrics_interval=0.05) as run:
        RandomForestClassifier(n_estimators=30, random_state=0).fit(X, y)
        sampler = run._system
    assert sampler is not None and sampler.samples >= 1  # at least the sample taken at the end
    info = tracker.store.get_run(run.id)
    keys = {
        "system/cpu_utilization_percentage",
        "system/process_cpu_percentage",
        "system/memory_usage_percentage",
        "system/memory_usage_megabytes",
        "system/process_rss_megabytes",
    }
    assert keys <= set(info.metrics)
    history = tracker.store.metric_history(run.id, "system/process_rss_megabytes")
    assert [p.step for p in history] == list(range(sampler.samples))
    assert all(p.value > 10 for p in history)  # a Python process with scikit-learn loaded
    assert 0 <= info.metrics["system/memory_usage_percentage"] <= 100
    total_mb = psutil.virtual_memory().total / 1024 / 1024
    assert 0 < info.metrics["system/memory_usage_megabytes"] <= total_mb


def test_without_the_option_nothing_is_sampled(tracker: Tracker) -> None:
    with tracker.start_run("x") as run:
        pass
    assert tracker.store.get_run(run.id).metrics == {}


def test_one_sample_reads_this_process() -> None:
    process = psutil.Process()
    figures = sample(process)
    assert figures["system/process_rss_megabytes"] == pytest.approx(
        process.memory_info().rss / 1024 / 1024, rel=0.5
    )


def test_a_bad_interval_is_refused(tracker: Tracker) -> None:
    with pytest.raises(InvalidInputError, match="system_metrics_interval=0"):
        tracker.start_run("x", system_metrics=True, system_metrics_interval=0)
    assert tracker.store.list_runs() == []  # refused before any run was made
