"""The periodic monitor job of a server: drift, label coverage and accuracy into ``/metrics``.

Every ``interval`` seconds (``shipyard serve --monitor-interval``, default 60)
the last ``window`` seconds of the prediction log for the served version are
summarized and the gauges of :mod:`~shipyard.monitoring.monitor_metrics` set:

- per-feature drift against the reference profile stored with the version
  (:class:`~shipyard.drift.DriftDetector`, Evidently's default tests), the
  share of drifted features and the dataset verdict;
- label coverage, realized accuracy (labels joined by ``POST /feedback``) and
  CBPE-estimated accuracy, beside the accuracy the version recorded at
  training time.

**Once per version, not per worker.** Every worker of every server serving a
version asks for one lease in the metadata database
(:class:`~shipyard.store.monitor_store.MonitorStore`); the holder computes,
stores the figures there, and renews the lease every ``sync_interval``
seconds, even while it computes. Every worker (the holder too) reads the
stored figures and sets its gauges from them, so all ``/metrics`` agree. A
holder that stops releases the lease; one that dies loses it after
``lease_ttl`` seconds, and the next worker whose run is due takes over.

**Bounded.** The window is never loaded: DuckDB counts it, samples at most
``limits.sample_rows`` rows for the drift tests and sums labels per class
(:func:`~shipyard.monitoring.window.summarize_window`) under a memory limit
and one thread, in a thread of its own running at a lower CPU priority
(Linux), so requests keep being answered while it runs. The holder also
compacts the model's label files (one per flush of the prediction log).

Cheaper figures (the prediction log's queue depth and drops, process CPU and
memory with several workers) are copied every ``sync_interval`` seconds. A
failing run is logged and counted (``shipyard_monitor_errors_total``) and the
next one tries again.

The job takes what it reads and writes, not the whole client: the served
version (anything with a ``current`` :class:`ServedVersion`, such as the
serving runtime), the lease and figures store, the prediction log, the
registry's reference profiles and the Prometheus registry its gauges go to.

Example:
    >>> job = MonitorJob(runtime, store=MonitorStore(metadata), log=log,    # doctest: +SKIP
    ...                  profiles=registry, registry=metrics.registry)
    >>> job.run_once()                                                          # doctest: +SKIP
    >>> job.start(); ...; await job.stop()                                      # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import socket
import sys
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any, Protocol

import numpy as np
from prometheus_client import CollectorRegistry

from shipyard.background import BackgroundTask
from shipyard.clock import SYSTEM_CLOCK, Clock
from shipyard.drift import DriftDetector
from shipyard.errors import ConfigError, NotFoundError
from shipyard.monitoring.compaction import compact_partition
from shipyard.monitoring.log_metrics import PredictionLogMetrics
from shipyard.monitoring.monitor_figures import MonitorFigures, compute_figures, show_figures
from shipyard.monitoring.monitor_metrics import MonitorMetrics
from shipyard.monitoring.performance import baseline_metrics
from shipyard.monitoring.prediction_log import PredictionLog
from shipyard.monitoring.window import WindowLimits, summarize_window
from shipyard.store import records
from shipyard.store.monitor_store import MonitorStore

__all__ = [
    "DEFAULT_MONITOR_INTERVAL",
    "DEFAULT_MONITOR_WINDOW",
    "MonitorJob",
    "ReferenceProfiles",
    "ServedVersion",
    "VersionSource",
]

# The logger name servers configure (the job runs inside ``shipyard serve``).
logger = logging.getLogger("shipyard.serving")

DEFAULT_MONITOR_INTERVAL = 60.0
DEFAULT_MONITOR_WINDOW = 3600.0
#: Fewer logged rows than this in the window and drift is not scored: a
#: handful of requests says nothing about a distribution.
DEFAULT_MIN_ROWS = 30
#: The holder's lease lasts this long after its last renewal, at least.
MIN_LEASE_TTL = 10.0
#: A label partition with this many files is merged into one by the holder.
FEEDBACK_COMPACT_FILES = 8
#: Nice value of the thread that computes (higher is gentler; 0 is the default).
COMPUTE_NICENESS = 10


class ServedVersion(Protocol):
    """The loaded version the job watches (the serving runtime's ``ServedModel``)."""

    @property
    def name(self) -> str: ...
    @property
    def version(self) -> int: ...
    @property
    def ref(self) -> str: ...
    @property
    def record(self) -> records.ModelVersion: ...
    @property
    def classes(self) -> np.ndarray | None: ...


class VersionSource(Protocol):
    """What serves now: ``current`` is None until a version is loaded."""

    @property
    def current(self) -> ServedVersion | None: ...


class ReferenceProfiles(Protocol):
    """Where a version's drift reference comes from (the model registry)."""

    def load(self, version: records.ModelVersion) -> Any: ...


class MonitorJob:
    """Recompute the served version's drift and accuracy gauges from the prediction log.

    Args:
        runtime: the served version is ``runtime.current``.
        store: the lease and the stored figures (the metadata database).
        log: the prediction log whose window is summarized.
        profiles: the reference profile of a version (the model registry).
        registry: the Prometheus registry the job's gauges are registered in;
            ``multiprocess`` when several workers share it.
        interval: seconds between runs; ``window``: seconds of log each run reads.
        min_rows: fewer rows in the window and drift is left unscored.
        sync_interval: seconds between copies of the cheap figures, renewals of the
            lease and reads of the stored figures.
        lease_ttl: seconds a lease outlives its holder's last renewal (default:
            three sync intervals, at least ten seconds).
        limits: sample size, DuckDB memory and threads of one window's summary.
        clock: the time of leases and windows, the timer of runs (inject one in tests).
    """

    def __init__(
        self,
        runtime: VersionSource,
        *,
        store: MonitorStore,
        log: PredictionLog,
        profiles: ReferenceProfiles,
        registry: CollectorRegistry,
        multiprocess: bool = False,
        interval: float = DEFAULT_MONITOR_INTERVAL,
        window: float = DEFAULT_MONITOR_WINDOW,
        min_rows: int = DEFAULT_MIN_ROWS,
        sync_interval: float = 5.0,
        lease_ttl: float | None = None,
        limits: WindowLimits | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if not interval > 0 or not window > 0 or not sync_interval > 0:
            raise ConfigError(
                f"monitor interval, window and sync interval must be > 0 seconds, got "
                f"{interval}, {window} and {sync_interval}."
            )
        self.runtime = runtime
        self.log = log
        self.profiles = profiles
        self.interval = float(interval)
        self.window = timedelta(seconds=window)
        self.min_rows = min_rows
        self.sync_interval = min(float(sync_interval), self.interval)
        ttl = max(3 * self.sync_interval, MIN_LEASE_TTL) if lease_ttl is None else lease_ttl
        self.lease_ttl = timedelta(seconds=ttl)
        self.limits = limits or WindowLimits()
        self.clock = clock
        self.store = store
        self.gauges = MonitorMetrics(registry, multiprocess=multiprocess)
        self.log_metrics = PredictionLogMetrics(log, registry)
        self._detectors: dict[tuple[str, int], DriftDetector | None] = {}
        self._task = BackgroundTask("shipyard-monitor")
        self._executor: ThreadPoolExecutor | None = None
        self._holder: str | None = None
        self._held: str | None = None  # the lease this job holds now, if any
        self._shown: tuple[str, int, datetime] | None = None

    @property
    def holder(self) -> str:
        """This job's name in the lease table: host, process and a random part."""
        if self._holder is None:  # made in the worker, after any fork
            self._holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        return self._holder

    def _key(self, served: ServedVersion) -> str:
        """What the lease and the stored figures are named by: version and window."""
        key = f"{served.name}:{served.version}:{int(self.window.total_seconds())}"
        if len(key) > 200:  # model names may be 255 characters; the columns hold 255
            key = f"{served.name[:150]}~{hashlib.sha256(key.encode()).hexdigest()[:32]}"
        return key

    # -- one run --------------------------------------------------------------

    def sync(self) -> None:
        """Copy the cheap, always-current figures: prediction log counters, process."""
        self.log_metrics.sync()
        self.gauges.process.sync()

    def run_once(self) -> None:
        """One full run, in the calling thread: :meth:`sync`; compute and store the
        figures if this job holds (or can take) the lease; show the stored figures.

        Does nothing but sync while no model is loaded yet.
        """
        self.sync()
        served = self.runtime.current
        if served is None:
            return
        if self.acquire(served):
            self.compute(served)
        self.follow(served)

    def acquire(self, served: ServedVersion) -> bool:
        """Take or renew the lease of ``served``'s figures; True while this job holds it."""
        name = f"monitor:{self._key(served)}"
        if self._held is not None and self._held != name:  # a hot swap: free the old one
            self.store.release(self._held, self.holder)
        held = self.store.acquire(name, self.holder, ttl=self.lease_ttl, now=self.clock.now())
        self._held = name if held else None
        self.gauges.leader.set(int(held))
        return held

    def compute(self, served: ServedVersion) -> None:
        """Summarize the window, compute and store the figures, compact label files."""
        until = self.clock.now()
        try:
            summary = summarize_window(
                self.log.store,
                served.name,
                since=until - self.window,
                until=until,
                version=served.version,
                classifier=served.classes is not None,
                limits=self.limits,
            )
        except Exception:
            self.gauges.errors.labels(stage="window").inc()
            logger.exception("Monitor job: reading the window of %s failed", served.ref)
            return
        baseline = baseline_metrics(served.record.metrics or {}, "classification")
        try:
            figures = compute_figures(
                summary,
                self._detector(served),
                min_rows=self.min_rows,
                baseline_accuracy=baseline.get("accuracy"),
            )
        except Exception:  # a bad window must not stop the accuracy figures
            self.gauges.errors.labels(stage="drift").inc()
            logger.exception("Monitor job: drift of %s failed", served.ref)
            figures = compute_figures(
                summary, None, min_rows=self.min_rows, baseline_accuracy=baseline.get("accuracy")
            )
        self.store.save_snapshot(
            self._key(served),
            model=served.name,
            version=served.version,
            window_seconds=self.window.total_seconds(),
            computed_at=until,
            computed_by=self.holder,
            figures=figures.to_dict(),
        )
        self.gauges.runs.inc()
        self._compact_labels(served.name)

    def follow(self, served: ServedVersion) -> None:
        """Set the gauges from the newest figures stored for ``served`` (by any worker)."""
        snapshot = self.store.snapshot(self._key(served))
        if snapshot is None:
            return
        shown = (served.name, served.version, snapshot.computed_at)
        if shown == self._shown:
            return
        if self._shown is not None and self._shown[:2] != shown[:2]:
            # After a hot swap the old version's figures would linger as if current.
            self.gauges.forget_versions()
        show_figures(
            MonitorFigures.from_dict(snapshot.figures), self.gauges, served.name, served.version
        )
        self.gauges.last_run.set(snapshot.computed_at.timestamp())
        self._shown = shown

    def _detector(self, served: ServedVersion) -> DriftDetector | None:
        key = (served.name, served.version)
        if key not in self._detectors:
            try:
                profile = self.profiles.load(served.record)
            except NotFoundError:
                logger.warning(
                    "Monitor job: %s has no stored reference profile; drift is not scored "
                    "(log the model with sample=... to store one).",
                    served.ref,
                )
                profile = None
            # One thread: the job must leave the cores to the requests.
            detector = None if profile is None else DriftDetector(n_jobs=1).fit(profile)
            self._detectors[key] = detector
        return self._detectors[key]

    def _compact_labels(self, model: str) -> None:
        """Merge label partitions of many small files (one per flush, per worker)."""
        store = self.log.store
        try:
            for partition in store.partitions("feedback", model):
                compact_partition(
                    store, "feedback", model, partition.day, min_files=FEEDBACK_COMPACT_FILES
                )
        except Exception:
            self.gauges.errors.labels(stage="compaction").inc()
            logger.exception("Monitor job: compacting the labels of %s failed", model)

    # -- the periodic task ----------------------------------------------------

    def start(self) -> None:
        """Start the periodic task on the running event loop (idempotent)."""
        self._task.start(self._loop)

    async def stop(self) -> None:
        """Cancel the periodic task, wait for it, and give the lease up."""
        await self._task.stop()
        if self._held is not None:
            held, self._held = self._held, None
            with contextlib.suppress(Exception):  # a database gone at shutdown: it expires
                await asyncio.to_thread(self.store.release, held, self.holder)
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    async def _loop(self) -> None:
        next_run = self.clock.monotonic()  # a first run as soon as the model is loaded
        while True:
            try:
                await asyncio.to_thread(self.sync)
                served = self.runtime.current
                if served is not None:
                    if self.clock.monotonic() >= next_run:
                        next_run = self.clock.monotonic() + self.interval
                        if await asyncio.to_thread(self.acquire, served):
                            await self._compute_holding_lease(served)
                    elif self._held is not None:  # keep it between runs
                        await asyncio.to_thread(self.acquire, served)
                    await asyncio.to_thread(self.follow, served)
            except asyncio.CancelledError:
                raise
            except Exception:
                self.gauges.errors.labels(stage="sync").inc()
                logger.exception("Monitor job: a run failed")
            await asyncio.sleep(self.sync_interval)

    async def _compute_holding_lease(self, served: ServedVersion) -> None:
        """Compute in the job's own low-priority thread, renewing the lease meanwhile."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                1, thread_name_prefix="shipyard-monitor", initializer=_lower_priority
            )
        future = asyncio.get_running_loop().run_in_executor(self._executor, self.compute, served)
        while True:
            done, _ = await asyncio.wait({future}, timeout=self.sync_interval)
            if done:
                future.result()
                return
            await asyncio.to_thread(self.acquire, served)


def _lower_priority() -> None:
    """Run the calling thread at a lower CPU priority (Linux: niceness is per thread)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), COMPUTE_NICENESS)
