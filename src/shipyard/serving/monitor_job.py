"""The periodic monitor job of a server: drift, label coverage and accuracy into ``/metrics``.

Every ``interval`` seconds (``shipyard serve --monitor-interval``, default 60)
each worker reads the last ``window`` seconds of the prediction log for the
version it serves and sets the gauges of
:mod:`~shipyard.serving.monitor_metrics`:

- per-feature drift against the reference profile stored with the version
  (:class:`~shipyard.drift.DriftDetector`, Evidently's default tests), the
  share of drifted features and the dataset verdict;
- label coverage, realized accuracy (labels joined by ``POST /feedback``) and
  CBPE-estimated accuracy (:func:`~shipyard.monitoring.performance`), beside
  the accuracy the version recorded at training time.

Cheaper figures (the prediction log's queue depth and drops, process CPU and
memory with several workers) are copied every ``sync_interval`` seconds.
The work runs in a thread, so requests never wait for it; a failing run is
logged and counted (``shipyard_monitor_errors_total``) and the next one tries
again.

Example:
    >>> job = MonitorJob(client, runtime, metrics, interval=60, window=3600)  # doctest: +SKIP
    >>> job.run_once()                                                          # doctest: +SKIP
    >>> job.start(); ...; await job.stop()                                      # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from shipyard._client import Shipyard
from shipyard.drift import DriftDetector
from shipyard.errors import ConfigError, NotFoundError
from shipyard.monitoring.durations import utc_now
from shipyard.monitoring.log_metrics import PredictionLogMetrics
from shipyard.monitoring.performance import baseline_metrics, performance
from shipyard.monitoring.records import INPUT_PREFIX
from shipyard.serving.metrics import ServingMetrics
from shipyard.serving.monitor_metrics import MonitorMetrics
from shipyard.serving.runtime import ModelRuntime, ServedModel

__all__ = ["DEFAULT_MONITOR_INTERVAL", "DEFAULT_MONITOR_WINDOW", "MonitorJob"]

logger = logging.getLogger("shipyard.serving")

DEFAULT_MONITOR_INTERVAL = 60.0
DEFAULT_MONITOR_WINDOW = 3600.0
#: Fewer logged rows than this in the window and drift is not scored: a
#: handful of requests says nothing about a distribution.
DEFAULT_MIN_ROWS = 30
PREDICTION_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


class MonitorJob:
    """Recompute the served version's drift and accuracy gauges from the prediction log.

    Args:
        client: where the registry (reference profiles, training metrics) and the
            prediction log are.
        runtime: the served version is ``runtime.current``.
        metrics: the app's metrics; the job registers its gauges in their registry.
        interval: seconds between runs; ``window``: seconds of log each run reads.
        min_rows: fewer rows in the window and drift is left unscored.
        sync_interval: seconds between copies of the cheap figures (log, process).
        now: the clock (inject one in tests).
    """

    def __init__(
        self,
        client: Shipyard,
        runtime: ModelRuntime,
        metrics: ServingMetrics,
        *,
        interval: float = DEFAULT_MONITOR_INTERVAL,
        window: float = DEFAULT_MONITOR_WINDOW,
        min_rows: int = DEFAULT_MIN_ROWS,
        sync_interval: float = 5.0,
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        if not interval > 0 or not window > 0 or not sync_interval > 0:
            raise ConfigError(
                f"monitor interval, window and sync interval must be > 0 seconds, got "
                f"{interval}, {window} and {sync_interval}."
            )
        self.client = client
        self.runtime = runtime
        self.interval = float(interval)
        self.window = timedelta(seconds=window)
        self.min_rows = min_rows
        self.sync_interval = min(float(sync_interval), self.interval)
        self.now = now
        self.gauges = MonitorMetrics(
            metrics.registry, multiprocess=metrics.multiprocess_dir is not None
        )
        # The log is opened lazily by the client; only the metric objects exist yet.
        self.log_metrics = PredictionLogMetrics(client.prediction_log, metrics.registry)
        self._detectors: dict[tuple[str, int], DriftDetector | None] = {}
        self._task: asyncio.Task[None] | None = None
        self._measured: tuple[str, int] | None = None

    # -- one run --------------------------------------------------------------

    def sync(self) -> None:
        """Copy the cheap, always-current figures: prediction log counters, process."""
        self.log_metrics.sync()
        self.gauges.process.sync()

    def run_once(self) -> None:
        """One full run: :meth:`sync`, then drift and performance of the served version.

        Does nothing but sync while no model is loaded yet.
        """
        self.sync()
        served = self.runtime.current
        if served is not None:
            self._measure(served)
            self.gauges.last_run.set(time.time())
            self.gauges.runs.inc()

    def _measure(self, served: ServedModel) -> None:
        if self._measured not in (None, (served.name, served.version)):
            # After a hot swap the old version's figures would linger as if current.
            self.gauges.forget_versions()
        self._measured = (served.name, served.version)
        until = self.now()
        since = until - self.window
        labels = {"model": served.name, "version": str(served.version)}
        try:
            self._drift(served, labels, since, until)
        except Exception:  # a bad window must not stop the accuracy figures
            self.gauges.errors.labels(stage="drift").inc()
            logger.exception("Monitor job: drift of %s failed", served.ref)
        try:
            self._performance(served, labels, since, until)
        except Exception:
            self.gauges.errors.labels(stage="performance").inc()
            logger.exception("Monitor job: performance of %s failed", served.ref)

    def _detector(self, served: ServedModel) -> DriftDetector | None:
        key = (served.name, served.version)
        if key not in self._detectors:
            try:
                profile = self.client.registry.reference_profile(served.record)
            except NotFoundError:
                logger.warning(
                    "Monitor job: %s has no stored reference profile; drift is not scored "
                    "(log the model with sample=... to store one).",
                    served.ref,
                )
                profile = None
            # Fitting on the stored profile is cheap, but there is no need to repeat it.
            self._detectors[key] = None if profile is None else DriftDetector().fit(profile)
        return self._detectors[key]

    def _drift(
        self, served: ServedModel, labels: dict[str, str], since: datetime, until: datetime
    ) -> None:
        frame = self.client.prediction_log.read(served.name, since, until, version=served.version)
        self.gauges.window_predictions.labels(**labels).set(len(frame))
        self._prediction_quantiles(frame, labels)
        inputs = [c for c in frame.columns if c.startswith(INPUT_PREFIX)]
        current = frame[inputs].rename(columns=lambda c: c[len(INPUT_PREFIX) :])
        detector = self._detector(served)
        if detector is None or len(current) < self.min_rows:
            return
        result = detector.score(current)
        for column in result.columns:
            tags = {**labels, "feature": column.column, "stattest": column.stattest}
            self.gauges.feature_drift_score.labels(**tags).set(column.score)
            self.gauges.feature_drift_detected.labels(**tags).set(int(column.drift_detected))
        self.gauges.drifted_features.labels(**labels).set(result.share)
        self.gauges.dataset_drift_detected.labels(**labels).set(int(result.dataset_drift))

    def _prediction_quantiles(self, frame: pd.DataFrame, labels: dict[str, str]) -> None:
        """A regressor's predicted values: quantiles over the window (classes are counted
        per request by ``shipyard_predictions_total``)."""
        column = frame.get("prediction")
        if column is None or not pd.api.types.is_float_dtype(column):
            return
        values = column.to_numpy(np.float64)
        values = values[np.isfinite(values)]
        if not len(values):
            return
        for q, v in zip(
            PREDICTION_QUANTILES, np.quantile(values, PREDICTION_QUANTILES), strict=True
        ):
            self.gauges.prediction_quantile.labels(**labels, quantile=str(q)).set(float(v))

    def _performance(
        self, served: ServedModel, labels: dict[str, str], since: datetime, until: datetime
    ) -> None:
        recorded = served.record.metrics or {}
        # One bucket the size of the window: the overall figures are what we export.
        report = performance(
            self.client.prediction_log,
            served.name,
            served.version,
            window=self.window,
            since=since,
            until=until,
            baseline=recorded,
        )
        overall = report.overall
        self.gauges.label_coverage.labels(**labels).set(_number(overall.coverage))
        self.gauges.realized_accuracy.labels(**labels).set(
            _number(overall.realized.get("accuracy"))
        )
        self.gauges.estimated_accuracy.labels(**labels).set(
            _number(overall.estimated.get("accuracy"))
        )
        baseline = baseline_metrics(recorded, "classification").get("accuracy")
        self.gauges.baseline_accuracy.labels(**labels).set(_number(baseline))

    # -- the periodic task ----------------------------------------------------

    def start(self) -> None:
        """Start the periodic task on the running event loop (idempotent)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._loop(), name="shipyard-monitor"
            )

    async def stop(self) -> None:
        """Cancel the periodic task and wait for it."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _loop(self) -> None:
        next_run = time.monotonic()  # a first run as soon as the model is loaded
        while True:
            try:
                if time.monotonic() >= next_run and self.runtime.current is not None:
                    await asyncio.to_thread(self.run_once)
                    next_run = time.monotonic() + self.interval
                else:
                    await asyncio.to_thread(self.sync)
            except asyncio.CancelledError:
                raise
            except Exception:
                self.gauges.errors.labels(stage="sync").inc()
                logger.exception("Monitor job: a run failed")
            await asyncio.sleep(self.sync_interval)


def _number(value: float | None) -> float:
    return math.nan if value is None else float(value)
