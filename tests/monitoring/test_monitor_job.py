"""The monitor job alone: no server and no client, only the stores it is given and a clock.

The job's figures through a real server's ``/metrics`` are covered in
``tests/serving/test_app_monitor.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from monitoring_support import T0, ManualClock, record
from prometheus_client import CollectorRegistry

from shipyard.errors import NotFoundError
from shipyard.monitoring.monitor_job import MonitorJob, MonitorTarget
from shipyard.monitoring.prediction_log import PredictionLog
from shipyard.monitoring.segments import SegmentStore
from shipyard.store import records
from shipyard.store.database import Database
from shipyard.store.monitor_store import MonitorStore

VERSION = records.ModelVersion(
    model="iris",
    version=1,
    manifest_digest="0" * 64,
    flavor="sklearn",
    run_id=None,
    status="ready",
    description=None,
    metrics={"accuracy": 0.9},
    data_fingerprint=None,
    created_by="tester",
    created_at=T0,
)


@dataclass
class Served:
    """A loaded version as the job sees it: what the serving runtime's model offers."""

    record: records.ModelVersion
    classes: np.ndarray | None = None

    @property
    def name(self) -> str:
        return self.record.model

    @property
    def version(self) -> int:
        return self.record.version

    @property
    def ref(self) -> str:
        return self.record.ref


@dataclass
class Runtime:
    current: Served | None


class NoProfiles:
    """A registry whose versions stored no reference profile: drift goes unscored."""

    def load(self, version: records.ModelVersion) -> Any:
        raise NotFoundError(f"{version.ref} has no reference profile.")


@pytest.fixture
def log(tmp_path: Path, clock: ManualClock) -> Iterator[PredictionLog]:
    log = PredictionLog(SegmentStore(tmp_path / "log"), clock=clock)
    yield log
    log.close()


def make_job(
    log: PredictionLog, database: Database, clock: ManualClock, **kwargs: Any
) -> tuple[MonitorJob, CollectorRegistry]:
    registry = CollectorRegistry()
    job = MonitorJob(
        Runtime(Served(VERSION, classes=np.array([0, 1, 2]))),
        store=MonitorStore(database),
        log=log,
        profiles=NoProfiles(),
        registry=registry,
        window=3600,
        clock=clock,
        **kwargs,
    )
    return job, registry


def gauge(registry: CollectorRegistry, name: str) -> float | None:
    return registry.get_sample_value(
        name, {"model": "iris", "version": "1", "deployment": "", "variant": "default"}
    )


def test_the_window_and_the_lease_follow_the_injected_clock(
    log: PredictionLog, database: Database, clock: ManualClock
) -> None:
    log.write([record(f"r{i}", T0 - timedelta(minutes=10), prediction=i % 3) for i in range(40)])
    log.flush()
    job, registry = make_job(log, database, clock)
    job.run_once()
    assert gauge(registry, "shipyard_monitor_window_predictions") == 40
    lease = MonitorStore(database).lease("monitor:iris:1:3600")
    assert lease is not None and lease.acquired_at == T0
    assert lease.expires_at == T0 + job.lease_ttl

    clock.advance(hours=2)  # the rows fell out of the one-hour window
    job.run_once()
    assert gauge(registry, "shipyard_monitor_window_predictions") == 0
    assert registry.get_sample_value("shipyard_monitor_last_run_timestamp_seconds") == (
        clock.now().timestamp()
    )


def test_a_second_job_waits_for_the_lease_until_it_expires_on_the_clock(
    log: PredictionLog, database: Database, clock: ManualClock
) -> None:
    first, first_registry = make_job(log, database, clock, lease_ttl=30)
    second, second_registry = make_job(log, database, clock, lease_ttl=30)
    first.run_once()
    second.run_once()
    assert first_registry.get_sample_value("shipyard_monitor_leader") == 1
    assert second_registry.get_sample_value("shipyard_monitor_leader") == 0
    clock.advance(seconds=31)  # the first holder stopped renewing: its lease ran out
    second.run_once()
    assert second_registry.get_sample_value("shipyard_monitor_leader") == 1
    assert second_registry.get_sample_value("shipyard_monitor_runs_total") == 1


def test_stop_ends_the_periodic_task_and_gives_the_lease_up(
    log: PredictionLog, database: Database, clock: ManualClock
) -> None:
    job, registry = make_job(log, database, clock, interval=3600)

    async def scenario() -> None:
        job.start()
        job.start()  # idempotent: still one task
        while registry.get_sample_value("shipyard_monitor_runs_total") != 1:
            await asyncio.sleep(0.01)  # the first run is due at once, in a thread
        tasks = [t for t in asyncio.all_tasks() if t.get_name() == "shipyard-monitor"]
        assert len(tasks) == 1
        await job.stop()
        assert tasks[0].done()

    asyncio.run(scenario())
    lease = MonitorStore(database).lease("monitor:iris:1:3600")
    assert lease is None or lease.holder != job.holder


@dataclass
class Deployed:
    """A deployment's runtime as the job sees it: the variants serving now."""

    targets: list[MonitorTarget]

    @property
    def current(self) -> Served | None:
        return self.targets[0].served if self.targets else None

    def monitor_targets(self) -> list[MonitorTarget]:
        return list(self.targets)


def test_each_variant_has_its_own_window_lease_and_series_until_it_stops_serving(
    log: PredictionLog, database: Database, clock: ManualClock
) -> None:
    canary_version = records.ModelVersion(**{**VERSION.__dict__, "version": 2})
    primary = MonitorTarget(Served(VERSION, np.array([0, 1, 2])), "web", "primary")
    canary = MonitorTarget(Served(canary_version, np.array([0, 1, 2])), "web", "canary")
    shadow = MonitorTarget(Served(canary_version, np.array([0, 1, 2])), "web", "shadow:2")
    # As a deployment's server logs them: stamped with the deployment's name.
    rows = [
        replace(record(f"p{i}", T0 - timedelta(minutes=5), version=1), variant="primary")
        for i in range(30)
    ]
    rows += [
        replace(record(f"c{i}", T0 - timedelta(minutes=5), version=2), variant="canary")
        for i in range(10)
    ]
    rows += [replace(r, variant="shadow:2", version=2) for r in rows[:30]]
    rows = [replace(r, deployment="web") for r in rows]
    # A batch job of the primary's version: "primary", no deployment; not web's traffic.
    rows += [
        replace(record(f"job{i}", T0 - timedelta(minutes=5), version=1), source="batch")
        for i in range(7)
    ]
    log.write(rows)
    log.flush()
    runtime = Deployed([primary, canary, shadow])
    registry = CollectorRegistry()
    store = MonitorStore(database)
    job = MonitorJob(runtime, store=store, log=log, profiles=NoProfiles(), registry=registry,
                     window=3600, clock=clock)  # fmt: skip

    def window_rows(variant: str, version: str) -> float | None:
        labels = {"model": "iris", "version": version, "deployment": "web", "variant": variant}
        return registry.get_sample_value("shipyard_monitor_window_predictions", labels)

    job.run_once()
    assert window_rows("primary", "1") == 30
    assert window_rows("canary", "2") == 10
    assert window_rows("shadow:2", "2") == 30
    assert store.lease("monitor:web/shadow:2:iris:2:3600") is not None
    shown = {"model": "iris", "version": "2", "deployment": "web", "variant": "shadow:2"}
    assert job.is_current(shown) and job.is_current({"route": "/predict"})

    runtime.targets = [primary, canary]  # the shadow was removed
    job.run_once()
    assert window_rows("shadow:2", "2") is None
    assert window_rows("canary", "2") == 10
    assert not job.is_current(shown)
    assert store.lease("monitor:web/shadow:2:iris:2:3600") is None  # given up at once
