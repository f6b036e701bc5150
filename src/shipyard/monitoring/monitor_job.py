"""The periodic monitor job of a server: drift, label coverage and accuracy into ``/metrics``.

Every ``interval`` seconds (``shipyard serve --monitor-interval``, default 60)
the last ``window`` seconds of the prediction log for each served version are
summarized and the gauges of :mod:`~shipyard.monitoring.monitor_metrics` set.
With ``shipyard serve --deployment NAME`` every variant that serves now is
watched on its own rows (the primary, a canary, each A/B arm and each shadow),
labelled by deployment, variant and version; a variant that stops serving has
its series removed, so the label sets stay bounded. For each:

- per-feature drift against the reference profile stored with the version
  (:class:`~shipyard.drift.DriftDetector`, Evidently's default tests), the
  share of drifted features and the dataset verdict;
- label coverage, realized accuracy (labels joined by ``POST /feedback``) and
  CBPE-estimated accuracy (through the version's stored calibration, when it
  has one: :mod:`~shipyard.monitoring.calibrations`), beside the accuracy the
  version recorded at training time.

**Once per version and variant, not per worker.** Every worker of every server
serving a version asks for one lease in the metadata database
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
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

import numpy as np
from prometheus_client import CollectorRegistry

from shipyard.background import BackgroundTask
from shipyard.clock import SYSTEM_CLOCK, Clock
from shipyard.drift import DriftDetector
from shipyard.errors import ConfigError, NotFoundError, ShipyardError
from shipyard.monitoring.calibration import Calibration
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
    "MonitorTarget",
    "ReferenceProfiles",
    "ServedVersion",
    "VersionCalibrations",
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
    """What serves now: ``current`` is None until a version is loaded.

    A source that serves several versions at once (a deployment) also has
    ``monitor_targets()``, listing every :class:`MonitorTarget` serving now.
    """

    @property
    def current(self) -> ServedVersion | None: ...


@dataclass(frozen=True)
class MonitorTarget:
    """One served version as one variant of one deployment ('' for a plain server)."""

    served: ServedVersion
    deployment: str = ""
    variant: str = "default"

    @property
    def labels(self) -> dict[str, str]:
        return {"deployment": self.deployment, "variant": self.variant}


class VersionCalibrations(Protocol):
    """Where a version's CBPE calibration comes from (None: it has none)."""

    def latest(self, model: str, version: int) -> Calibration | None: ...


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
        calibrations: the CBPE calibration of a version (None: raw probabilities).
        variant: the variant name a plain server logs (``shipyard serve --variant``).
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
        calibrations: VersionCalibrations | None = None,
        variant: str = "default",
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
        self.calibrations = calibrations
        self.variant = variant
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
        self._held: set[str] = set()  # the leases this job holds now
        self._shown: dict[str, datetime] | None = None  # snapshot key -> computed_at
        self._serving: frozenset[tuple[str, str, str, str]] = frozenset()

    @property
    def holder(self) -> str:
        """This job's name in the lease table: host, process and a random part."""
        if self._holder is None:  # made in the worker, after any fork
            self._holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        return self._holder

    def targets(self) -> list[MonitorTarget]:
        """What serves now: every variant of a deployment, or the one served version."""
        listed = getattr(self.runtime, "monitor_targets", None)
        if listed is not None:
            return list(listed())
        served = self.runtime.current
        return [] if served is None else [MonitorTarget(served, "", self.variant)]

    def _key(self, target: MonitorTarget | ServedVersion) -> str:
        """What the lease and the stored figures are named by: version, variant, window.

        A plain server's key is ``model:version:window``; a deployment's variant
        prefixes ``deployment/variant:`` (what ``shipyard deploy status`` reads).
        """
        if not isinstance(target, MonitorTarget):
            target = MonitorTarget(target, "", self.variant)
        served = target.served
        key = f"{served.name}:{served.version}:{int(self.window.total_seconds())}"
        if target.deployment:
            key = f"{target.deployment}/{target.variant}:{key}"
        if len(key) > 200:  # model names may be 255 characters; the columns hold 255
            key = f"{key[:150]}~{hashlib.sha256(key.encode()).hexdigest()[:32]}"
        return key

    # -- one run --------------------------------------------------------------

    def sync(self) -> None:
        """Copy the cheap, always-current figures: prediction log counters, process."""
        self.log_metrics.sync()
        self.gauges.process.sync()

    def run_once(self) -> None:
        """One full run, in the calling thread: :meth:`sync`; for every target, compute
        and store the figures if this job holds (or can take) its lease; show the
        stored figures of every target.

        Does nothing but sync while no model is loaded yet.
        """
        self.sync()
        targets = self.targets()
        if not targets:
            return
        self.release_stale(targets)
        for target in targets:
            if self.acquire(target):
                self.compute(target)
        self.follow(targets)

    def release_stale(self, targets: Sequence[MonitorTarget]) -> None:
        """Give up the leases of targets that no longer serve (a swap, a variant gone)."""
        wanted = {f"monitor:{self._key(t)}" for t in targets}
        for name in sorted(self._held - wanted):
            self.store.release(name, self.holder)
            self._held.discard(name)
        self.gauges.leader.set(int(bool(self._held)))

    def acquire(self, target: MonitorTarget | ServedVersion) -> bool:
        """Take or renew the lease of ``target``'s figures; True while this job holds it."""
        name = f"monitor:{self._key(target)}"
        held = self.store.acquire(name, self.holder, ttl=self.lease_ttl, now=self.clock.now())
        if held:
            self._held.add(name)
        else:
            self._held.discard(name)
        self.gauges.leader.set(int(bool(self._held)))
        return held

    def compute(self, target: MonitorTarget | ServedVersion) -> None:
        """Summarize the window, compute and store the figures, compact label files."""
        if not isinstance(target, MonitorTarget):
            target = MonitorTarget(target, "", self.variant)
        served = target.served
        until = self.clock.now()
        what = f"{served.ref}" + (f" ({target.variant})" if target.deployment else "")
        try:
            summary = summarize_window(
                self.log.store,
                served.name,
                since=until - self.window,
                until=until,
                version=served.version,
                # A plain server watches its version's rows, whoever logged them (a
                # batch job's too). A deployment's variant watches only the rows its
                # servers stamped with the deployment's name and that variant (a
                # version may be both a canary and a shadow in turn): not a batch
                # job's of the same version, which logs "primary" with no deployment.
                variant=target.variant if target.deployment else None,
                deployment=target.deployment or None,
                classifier=served.classes is not None,
                limits=self.limits,
                calibration=self._calibration(served),
            )
        except Exception:
            self.gauges.errors.labels(stage="window").inc()
            logger.exception("Monitor job: reading the window of %s failed", what)
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
            logger.exception("Monitor job: drift of %s failed", what)
            figures = compute_figures(
                summary, None, min_rows=self.min_rows, baseline_accuracy=baseline.get("accuracy")
            )
        self.store.save_snapshot(
            self._key(target),
            model=served.name,
            version=served.version,
            window_seconds=self.window.total_seconds(),
            computed_at=until,
            computed_by=self.holder,
            figures=figures.to_dict(),
        )
        self.gauges.runs.inc()
        self._compact_labels(served.name)

    def follow(self, targets: Sequence[MonitorTarget] | ServedVersion) -> None:
        """Set the gauges from the newest figures stored for every target (by any worker).

        When the set of targets changes (a hot swap, a canary added or gone), every
        per-version series is dropped first: only what serves now is exported.
        """
        if not isinstance(targets, Sequence):
            targets = [MonitorTarget(targets, "", self.variant)]
        self._serving = frozenset(
            (t.served.name, str(t.served.version), t.deployment, t.variant) for t in targets
        )
        found = {}
        for target in targets:
            snapshot = self.store.snapshot(self._key(target))
            if snapshot is not None:
                found[self._key(target)] = (target, snapshot)
        shown = {key: snapshot.computed_at for key, (_, snapshot) in found.items()}
        if shown == self._shown:
            return
        if self._shown is not None and set(self._shown) - set(shown):
            # Figures of what no longer serves would linger as if current.
            self.gauges.forget_versions()
            self._shown = {}
        for key, (target, snapshot) in found.items():
            if self._shown is not None and self._shown.get(key) == snapshot.computed_at:
                continue
            show_figures(
                MonitorFigures.from_dict(snapshot.figures),
                self.gauges,
                target.served.name,
                target.served.version,
                **target.labels,
            )
        if shown:
            self.gauges.last_run.set(max(shown.values()).timestamp())
        self._shown = shown

    def is_current(self, labels: dict[str, str]) -> bool:
        """False for a per-version series of what no longer serves (``/metrics`` with
        several workers leaves those out: the shared files keep them); True otherwise."""
        try:
            key = (labels["model"], labels["version"], labels["deployment"], labels["variant"])
        except KeyError:
            return True  # not a per-version series
        return key in self._serving

    def _calibration(self, served: ServedVersion) -> Calibration | None:
        """The version's stored calibration (read again each run: it may be fitted later)."""
        if self.calibrations is None or served.classes is None:
            return None
        try:
            return self.calibrations.latest(served.name, served.version)
        except ShipyardError:
            logger.exception("Monitor job: the calibration of %s is unreadable", served.ref)
            return None

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
        """Cancel the periodic task, wait for it, and give the leases up."""
        await self._task.stop()
        held, self._held = sorted(self._held), set()
        for name in held:
            with contextlib.suppress(Exception):  # a database gone at shutdown: it expires
                await asyncio.to_thread(self.store.release, name, self.holder)
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    async def _loop(self) -> None:
        next_run = self.clock.monotonic()  # a first run as soon as the model is loaded
        while True:
            try:
                await asyncio.to_thread(self.sync)
                targets = self.targets()
                if targets:
                    await asyncio.to_thread(self.release_stale, targets)
                    due = self.clock.monotonic() >= next_run
                    if due:
                        next_run = self.clock.monotonic() + self.interval
                    for target in targets:
                        if due:
                            if await asyncio.to_thread(self.acquire, target):
                                await self._compute_holding_lease(target, targets)
                        elif f"monitor:{self._key(target)}" in self._held:  # keep it
                            await asyncio.to_thread(self.acquire, target)
                    await asyncio.to_thread(self.follow, targets)
            except asyncio.CancelledError:
                raise
            except Exception:
                self.gauges.errors.labels(stage="sync").inc()
                logger.exception("Monitor job: a run failed")
            await asyncio.sleep(self.sync_interval)

    async def _compute_holding_lease(
        self, target: MonitorTarget, targets: Sequence[MonitorTarget]
    ) -> None:
        """Compute in the job's own low-priority thread, renewing the leases meanwhile."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                1, thread_name_prefix="shipyard-monitor", initializer=_lower_priority
            )
        future = asyncio.get_running_loop().run_in_executor(self._executor, self.compute, target)
        while True:
            done, _ = await asyncio.wait({future}, timeout=self.sync_interval)
            if done:
                future.result()
                return
            for other in targets:
                if f"monitor:{self._key(other)}" in self._held:
                    await asyncio.to_thread(self.acquire, other)


def _lower_priority() -> None:
    """Run the calling thread at a lower CPU priority (Linux: niceness is per thread)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), COMPUTE_NICENESS)
