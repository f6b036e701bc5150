"""Leases and monitor snapshots on SQLite and PostgreSQL: one holder at a time, expiry."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from shipyard.errors import InvalidInputError
from shipyard.store.database import Database
from shipyard.store.monitor_store import MonitorStore
from shipyard.store.schema import Base

NOW = datetime(2026, 5, 1, 12, tzinfo=UTC)
TTL = timedelta(seconds=30)


@pytest.fixture
def store(database: Database) -> Iterator[MonitorStore]:
    yield MonitorStore(database)


def test_one_holder_until_the_lease_expires_or_is_released(store: MonitorStore) -> None:
    assert store.acquire("monitor:iris:1", "a", ttl=TTL, now=NOW)
    assert not store.acquire("monitor:iris:1", "b", ttl=TTL, now=NOW + timedelta(seconds=29))
    assert store.acquire("monitor:iris:2", "b", ttl=TTL, now=NOW)  # another lease is free
    # The holder renews: the lease now runs 30 s from the renewal.
    assert store.acquire("monitor:iris:1", "a", ttl=TTL, now=NOW + timedelta(seconds=20))
    assert not store.acquire("monitor:iris:1", "b", ttl=TTL, now=NOW + timedelta(seconds=45))
    lease = store.lease("monitor:iris:1")
    assert lease is not None and (lease.holder, lease.acquired_at) == ("a", NOW)
    assert lease.expires_at == NOW + timedelta(seconds=50)
    # "a" died: once its lease ran out, "b" takes over.
    assert store.acquire("monitor:iris:1", "b", ttl=TTL, now=NOW + timedelta(seconds=51))
    assert not store.acquire("monitor:iris:1", "a", ttl=TTL, now=NOW + timedelta(seconds=52))
    store.release("monitor:iris:1", "a")  # not the holder: nothing happens
    assert store.lease("monitor:iris:1").holder == "b"  # type: ignore[union-attr]
    store.release("monitor:iris:1", "b")
    assert store.lease("monitor:iris:1") is None
    assert store.acquire("monitor:iris:1", "a", ttl=TTL, now=NOW + timedelta(seconds=53))


def test_bad_leases_are_refused(store: MonitorStore) -> None:
    with pytest.raises(InvalidInputError, match="1-255 characters"):
        store.acquire("", "a", ttl=TTL, now=NOW)
    with pytest.raises(InvalidInputError, match="positive time"):
        store.acquire("x", "a", ttl=timedelta(0), now=NOW)


def test_snapshots_replace_each_other_and_store_no_nan(store: MonitorStore) -> None:
    assert store.snapshot("iris:1:3600") is None
    for i, accuracy in enumerate((float("nan"), 0.9)):
        store.save_snapshot(
            "iris:1:3600",
            model="iris",
            version=1,
            window_seconds=3600.0,
            computed_at=NOW + timedelta(minutes=i),
            computed_by=f"host:{i}",
            figures={"realized_accuracy": accuracy, "features": [{"score": float("inf")}]},
        )
    snap = store.snapshot("iris:1:3600")
    assert snap is not None
    assert (snap.computed_by, snap.computed_at) == ("host:1", NOW + timedelta(minutes=1))
    assert snap.figures == {"realized_accuracy": 0.9, "features": [{"score": None}]}


def _race(url: str, barrier: Any, queue: Any, holder: str, rounds: int) -> None:
    store = MonitorStore(Database(url))
    barrier.wait()
    won = []
    for i in range(rounds):
        # Each round is a fresh lease: the first insert of its row is the contested step.
        if store.acquire(f"race-{i}", holder, ttl=TTL, now=NOW):
            won.append(i)
    queue.put(won)
    store.db.close()


def test_racing_processes_never_both_hold_a_lease(database_url: str) -> None:
    Database(database_url).engine.dispose()  # migrate once, before the race
    ctx = multiprocessing.get_context("fork")
    barrier, queue = ctx.Barrier(3), ctx.Queue()
    procs = [
        ctx.Process(target=_race, args=(database_url, barrier, queue, f"p{i}", 40))
        for i in range(3)
    ]
    for p in procs:
        p.start()
    results = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    won = sorted(i for r in results for i in r)
    assert won == list(range(40)), results  # every lease has exactly one holder


def test_the_migrations_create_what_the_tables_declare(database_url: str) -> None:
    engine = Database(database_url).engine
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    finally:
        engine.dispose()
    mine = [d for d in diff if "leases" in str(d) or "monitor_snapshots" in str(d)]
    assert mine == []
    assert {"leases", "monitor_snapshots"} <= set(sa.inspect(engine).get_table_names())
