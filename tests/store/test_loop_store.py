"""The loop tables on SQLite and PostgreSQL: claims, cool-downs, steps, checks, two processes."""

from __future__ import annotations

import multiprocessing
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shipyard.errors import InvalidInputError
from shipyard.store.database import Database
from shipyard.store.loop_records import ClaimRefused, LoopRun, LoopRunNotFoundError, json_safe
from shipyard.store.loop_store import LoopStore

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


@pytest.fixture
def store(database: Database) -> LoopStore:
    return LoopStore(database)


def _claim(store: LoopStore, key: str, now: datetime = NOW, **kw: Any) -> Any:
    return store.claim(
        "iris", kw.pop("kind", "schedule"), key, reason="test", actor="a", now=now, **kw
    )


def test_a_trigger_is_claimed_once(store: LoopStore) -> None:
    run = _claim(store, "k1", details={"x": float("nan")}, champion_version=3)
    assert isinstance(run, LoopRun) and run.status == "running" and run.active
    assert (run.model, run.trigger_kind, run.trigger_key) == ("iris", "schedule", "k1")
    assert run.details == {"x": None} and run.champion_version == 3
    assert store.is_claimed("iris", "schedule", "k1")
    store.update_run(run.id, now=NOW, status="promoted", message="done", candidate_version=4)
    again = _claim(store, "k1")  # same trigger: never twice
    assert (
        isinstance(again, ClaimRefused)
        and again.why == "handled"
        and again.run == store.get_run(run.id)
    )
    assert f"handled already by run {run.id} (promoted)" in again.describe()
    other = _claim(store, "k2")
    assert isinstance(other, LoopRun) and other.id != run.id
    # Another model's identical trigger is its own.
    wine = store.claim("wine", "schedule", "k1", reason="r", actor="a", now=NOW)
    assert isinstance(wine, LoopRun)


def test_an_active_run_blocks_claims_until_it_ends_or_goes_stale(store: LoopStore) -> None:
    run = _claim(store, "k1")
    blocked = _claim(store, "k2", kind="drift")
    assert isinstance(blocked, ClaimRefused) and blocked.why == "active"
    assert f"run {run.id} is still running" in blocked.describe()
    later = NOW + timedelta(hours=2)
    assert isinstance(_claim(store, "k2", now=later, stale_after=timedelta(hours=3)), ClaimRefused)
    revived = _claim(store, "k2", now=later, stale_after=timedelta(hours=1))
    assert isinstance(revived, LoopRun)
    dead = store.get_run(run.id)
    assert dead.status == "failed" and "presumably died" in (dead.message or "")
    assert dead.finished_at == later


def test_cooldown_refuses_a_second_run_of_the_same_kind(store: LoopStore) -> None:
    first = _claim(store, "w1", kind="drift", cooldown=timedelta(hours=24))
    assert isinstance(first, LoopRun)
    store.update_run(first.id, now=NOW, status="rejected")
    soon = NOW + timedelta(hours=23)
    cooling = _claim(store, "w2", soon, kind="drift", cooldown=timedelta(hours=24))
    assert isinstance(cooling, ClaimRefused) and cooling.why == "cooling_down"
    assert cooling.until == NOW + timedelta(hours=24)
    assert f"cooling down: run {first.id} (drift, rejected)" in cooling.describe()
    assert "no new drift run before 2026-03-03 12:00 UTC" in cooling.describe()
    assert isinstance(_claim(store, "s1", soon, kind="schedule"), LoopRun)  # others not cooled
    store.update_run(store.last_run("iris", "schedule").id, now=soon, status="failed")  # type: ignore[union-attr]
    late = NOW + timedelta(hours=25)
    assert isinstance(
        _claim(store, "w2", late, kind="drift", cooldown=timedelta(hours=24)), LoopRun
    )


def test_a_failed_run_starts_no_cooldown_and_its_occurrence_is_retried(store: LoopStore) -> None:
    failed = _claim(store, "w1", kind="drift", cooldown=timedelta(hours=24))
    assert isinstance(failed, LoopRun)
    store.update_run(failed.id, now=NOW, status="failed", message="step retrain failed: boom")
    assert not store.is_claimed("iris", "drift", "w1")
    soon = NOW + timedelta(minutes=5)
    retry = _claim(store, "w1", soon, kind="drift", cooldown=timedelta(hours=24))
    assert isinstance(retry, LoopRun) and retry.trigger_key == "w1#retry1"
    store.update_run(retry.id, now=soon, status="failed")
    third = _claim(store, "w1", soon, kind="drift", cooldown=timedelta(hours=24))
    assert isinstance(third, LoopRun) and third.trigger_key == "w1#retry2"
    store.update_run(third.id, now=soon, status="promoted")
    # A run that did not fail uses the occurrence up, and starts the cool-down.
    assert store.is_claimed("iris", "drift", "w1")
    handled = _claim(store, "w1", soon, kind="drift")
    assert isinstance(handled, ClaimRefused) and handled.why == "handled"
    assert handled.run is not None and handled.run.id == third.id
    cooling = _claim(store, "w2", soon, kind="drift", cooldown=timedelta(hours=24))
    assert isinstance(cooling, ClaimRefused) and cooling.why == "cooling_down"
    # The last run of the kind, failed or not, for the drift trigger's check history.
    assert store.last_run("iris", "drift").id == third.id  # type: ignore[union-attr]
    store.update_run(third.id, now=soon, status="failed")
    assert store.last_run("iris", "drift", include_failed=False) is None


def test_steps_and_history(store: LoopStore) -> None:
    run = _claim(store, "k1")
    for name, status in (("validate_data", "succeeded"), ("retrain", "failed")):
        store.record_step(
            run.id,
            name,
            status=status,
            started_at=NOW,
            finished_at=NOW + timedelta(seconds=2),
            duration_s=2.0,
            inputs={"rows": 150},
            outputs={"when": NOW, "score": float("inf")},
            error="boom" if status == "failed" else None,
        )
    store.update_run(run.id, now=NOW, status="failed", message="step retrain failed: boom")
    [got] = store.list_runs("iris")
    assert [s.name for s in got.steps] == ["validate_data", "retrain"]
    assert got.steps[0].outputs == {"when": NOW.isoformat(), "score": None}
    assert got.steps[1].error == "boom" and got.steps[1].duration_s == 2.0
    assert got.finished_at == NOW and not got.active
    assert store.list_runs("iris", status="running") == []
    with pytest.raises(InvalidInputError, match="Step status"):
        store.record_step(run.id, "x", status="odd", started_at=NOW, finished_at=NOW, duration_s=0)
    with pytest.raises(InvalidInputError, match="Run status"):
        store.update_run(run.id, now=NOW, status="odd")
    with pytest.raises(LoopRunNotFoundError, match="No loop run with id 999"):
        store.get_run(999)


def test_checks_newest_first_after_a_time(store: LoopStore) -> None:
    for i in range(4):
        store.record_check("iris", "drift", at=NOW + timedelta(hours=i), positive=i > 0, details={})
    checks = store.recent_checks("iris", "drift", limit=2)
    assert [c.at for c in checks] == [NOW + timedelta(hours=3), NOW + timedelta(hours=2)]
    assert len(store.recent_checks("iris", "drift", limit=10, after=NOW + timedelta(hours=1))) == 2
    assert store.recent_checks("iris", "performance", limit=10) == []


def test_json_safe() -> None:
    import numpy as np

    assert json_safe({"a": np.float64(1.5), "b": np.array([1, 2]), "c": float("-inf")}) == {
        "a": 1.5,
        "b": [1, 2],
        "c": None,
    }


def _race(url: str, barrier: Any, queue: Any, keys: list[str]) -> None:
    store = LoopStore(Database(url))
    barrier.wait()
    won = []
    for key in keys:
        # A refusal also means "the other process has a run active": try again, as a tick would.
        while not store.is_claimed("iris", "schedule", key):
            run = store.claim("iris", "schedule", key, reason="race", actor="p", now=NOW)
            if isinstance(run, LoopRun):
                won.append(key)
                store.update_run(run.id, now=NOW, status="promoted")
    queue.put(won)
    store.db.close()


def test_two_processes_never_claim_the_same_trigger(database_url: str) -> None:
    Database(database_url).engine.dispose()  # migrate once, before the race
    ctx = multiprocessing.get_context("fork")
    barrier, queue = ctx.Barrier(2), ctx.Queue()
    keys = [f"k{i}" for i in range(15)]
    procs = [ctx.Process(target=_race, args=(database_url, barrier, queue, keys)) for _ in range(2)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    assert sorted(results[0] + results[1]) == sorted(keys)
    assert not set(results[0]) & set(results[1])
