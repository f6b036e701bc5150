"""Experiments and runs, run against SQLite and the real PostgreSQL server."""

from __future__ import annotations

import pytest

from shipyard.errors import ConflictError, ExperimentNotFoundError, RunNotFoundError
from shipyard.store.run_store import RunStore


def test_runs_record_params_metrics_tags_and_data(runs: RunStore) -> None:
    run = runs.create_run("iris-exp", name="baseline", actor="ann")
    assert run.status == "RUNNING"
    runs.log_params(run.id, {"C": 1.0, "penalty": "l2"})
    runs.log_metrics(run.id, {"loss": 0.9}, step=0)
    runs.log_metrics(run.id, {"loss": 0.4}, step=1)
    runs.set_run_tags(run.id, {"team": "ds"})
    runs.log_dataset(run.id, "training", {"n_rows": 150, "content_hash": "ab"})
    runs.end_run(run.id)
    loaded = runs.get_run(run.id)
    assert loaded.params == {"C": "1.0", "penalty": "l2"}
    assert loaded.metrics == {"loss": 0.4}
    assert loaded.tags == {"team": "ds"}
    assert loaded.datasets["training"]["n_rows"] == 150
    assert loaded.status == "FINISHED" and loaded.end_time is not None
    assert [p.value for p in runs.metric_history(run.id, "loss")] == [0.9, 0.4]
    assert [r.id for r in runs.list_runs("iris-exp")] == [run.id]


def test_params_are_immutable(runs: RunStore) -> None:
    run = runs.create_run("exp")
    runs.log_params(run.id, {"C": 1})
    runs.log_params(run.id, {"C": 1})  # same value: fine
    with pytest.raises(ConflictError, match="immutable"):
        runs.log_params(run.id, {"C": 2})


def test_unknown_run_and_experiment(runs: RunStore) -> None:
    with pytest.raises(RunNotFoundError):
        runs.get_run("nope")
    with pytest.raises(ExperimentNotFoundError):
        runs.list_runs("nope")


def test_ids_starting_with_a_prefix(runs: RunStore) -> None:
    made = sorted(runs.create_run("exp").id for _ in range(20))
    first = made[0]
    assert runs.ids_starting_with(first[:12]) == [first]
    shared = [r for r in made if r[0] == first[0]]
    assert runs.ids_starting_with(first[0], limit=30) == shared
    assert runs.ids_starting_with(first[0], limit=1) == [first]
    assert runs.ids_starting_with("zz") == []  # ids are hex
    assert runs.ids_starting_with("%") == [] and runs.ids_starting_with("_") == []  # no wildcard
    assert runs.ids_starting_with("") == []
