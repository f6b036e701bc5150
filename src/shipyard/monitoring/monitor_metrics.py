"""The monitoring gauges of ``/metrics``: drift, label coverage, accuracy, process CPU and memory.

:class:`~shipyard.monitoring.monitor_job.MonitorJob` fills them; this module only
declares them, in the app's own registry, with Prometheus naming conventions
(``_ratio`` for 0..1 figures, ``_seconds`` and ``_bytes`` base units, ``_total``
counters, no colons). Unknown values (no labels yet, a regressor's accuracy)
are NaN, which PromQL comparisons treat as false, so no alert fires on them.

One worker of one server (whichever holds the monitor's lease) computes the
figures; every worker, of every server, sets the same values from what it
stored. With several workers (``PROMETHEUS_MULTIPROC_DIR``) the gauges keep
the most recent value of a live worker (``livemostrecent``). The process
gauges are summed over live workers: the server's memory is that of all its
workers.

Example:
    >>> from prometheus_client import CollectorRegistry, generate_latest
    >>> m = MonitorMetrics(CollectorRegistry(), multiprocess=False)
    >>> m.label_coverage.labels(model="iris", version="1", deployment="web",
    ...                         variant="canary").set(0.5)
    >>> b"shipyard_label_coverage_ratio" in generate_latest(m.registry)
    True
"""

from __future__ import annotations

from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, ProcessCollector

__all__ = ["MonitorMetrics", "ProcessMetrics"]

_LATEST: Final = "livemostrecent"
#: Every per-version series names the deployment and variant that serve it: a canary,
#: an A/B arm and a shadow are watched beside the primary. A single-model server
#: has an empty ``deployment`` and its ``--variant`` name (``default``).
_MODEL = ["model", "version", "deployment", "variant"]


class MonitorMetrics:
    """Gauges and counters the periodic monitor job sets, registered in ``registry``."""

    def __init__(self, registry: CollectorRegistry, *, multiprocess: bool) -> None:
        self.registry = registry
        r = registry

        def gauge(name: str, doc: str, labels: list[str]) -> Gauge:
            return Gauge(name, doc, labels, registry=r, multiprocess_mode=_LATEST)

        self.feature_drift_score = gauge(
            "shipyard_feature_drift_score",
            "Drift test score of one input feature over the monitor window vs the version's "
            "reference profile (a p-value or a distance; see the stattest label).",
            [*_MODEL, "feature", "stattest"],
        )
        self.feature_drift_detected = gauge(
            "shipyard_feature_drift_detected",
            "1 when the feature's drift test crosses its threshold over the monitor window.",
            [*_MODEL, "feature", "stattest"],
        )
        self.dataset_drift_detected = gauge(
            "shipyard_dataset_drift_detected",
            "1 when the share of drifted features reaches the drift share (0.5 by default).",
            _MODEL,
        )
        self.drifted_features = gauge(
            "shipyard_drifted_features_ratio",
            "Share of tested input features that drifted over the monitor window.",
            _MODEL,
        )
        self.window_predictions = gauge(
            "shipyard_monitor_window_predictions",
            "Prediction rows of the served version logged in the monitor window.",
            _MODEL,
        )
        self.prediction_quantile = gauge(
            "shipyard_window_prediction_quantile",
            "Quantiles of a regressor's predicted values over the monitor window.",
            [*_MODEL, "quantile"],
        )
        self.label_coverage = gauge(
            "shipyard_label_coverage_ratio",
            "Share of the window's predictions that have a ground-truth label.",
            _MODEL,
        )
        self.realized_accuracy = gauge(
            "shipyard_realized_accuracy_ratio",
            "Accuracy on the window's labelled predictions (NaN without labels).",
            _MODEL,
        )
        self.estimated_accuracy = gauge(
            "shipyard_estimated_accuracy_ratio",
            "Accuracy estimated from the model's own probabilities (CBPE) over the window, "
            "after the version's calibration when it has one (see "
            "shipyard_estimate_calibrated).",
            _MODEL,
        )
        self.estimate_calibrated = gauge(
            "shipyard_estimate_calibrated",
            "1 when the estimated accuracy went through the calibration fitted on the "
            "version's labelled reference data, 0 when it read the raw probabilities.",
            _MODEL,
        )
        self.baseline_accuracy = gauge(
            "shipyard_baseline_accuracy_ratio",
            "Accuracy the version recorded at training time (NaN if it recorded none).",
            _MODEL,
        )
        self.last_run = Gauge(
            "shipyard_monitor_last_run_timestamp_seconds",
            "Unix time at which the figures exported now were computed (by any worker).",
            registry=r,
            multiprocess_mode="livemax",
        )
        self.runs = Counter(
            "shipyard_monitor_runs",
            "Monitor runs (drift, coverage, accuracy) this server computed; 0 on servers "
            "whose figures another worker or replica computes.",
            registry=r,
        )
        self.leader = Gauge(
            "shipyard_monitor_leader",
            "1 while this server's worker holds the monitor lease and computes the figures.",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.errors = Counter(
            "shipyard_monitor_errors",
            "Runs of the monitor job that failed; the reason is in the server log.",
            ["stage"],
            registry=r,
        )
        self.process = ProcessMetrics(registry, multiprocess=multiprocess)

    def forget_versions(self) -> None:
        """Drop every per-version series (after a hot swap or a change of variants,
        before the new ones are set), so only what serves now is exported.

        With several workers the shared files keep a dead label set's last value
        until the server restarts; the ``version`` label tells them apart.
        """
        for metric in (
            self.feature_drift_score,
            self.feature_drift_detected,
            self.dataset_drift_detected,
            self.drifted_features,
            self.window_predictions,
            self.prediction_quantile,
            self.label_coverage,
            self.realized_accuracy,
            self.estimated_accuracy,
            self.estimate_calibrated,
            self.baseline_accuracy,
        ):
            metric.clear()


class ProcessMetrics:
    """``process_cpu_seconds_total`` and ``process_resident_memory_bytes``, in every mode.

    One process: prometheus_client's own :class:`ProcessCollector`, read at scrape
    time. Several workers: the multi-process collector only reads the workers'
    files, so each worker copies its figures there on :meth:`sync` (CPU as a
    counter that only grows, memory as a gauge summed over live workers).
    """

    def __init__(self, registry: CollectorRegistry, *, multiprocess: bool) -> None:
        self._seen_cpu = 0.0
        # Unregistered: used only to read /proc the way the client library does.
        self._reader = ProcessCollector(registry=None)
        self.multiprocess = multiprocess
        if not multiprocess:
            ProcessCollector(registry=registry)
            return
        self.cpu = Counter(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds, over the server's workers.",
            registry=registry,
        )
        self.memory = Gauge(
            "process_resident_memory_bytes",
            "Resident memory size in bytes, summed over the server's live workers.",
            registry=registry,
            multiprocess_mode="livesum",
        )

    def sync(self) -> None:
        """Copy this worker's CPU time and memory into the shared files (multi-process)."""
        if not self.multiprocess:
            return
        values = {
            sample.name: sample.value
            for family in self._reader.collect()
            for sample in family.samples
        }
        cpu = values.get("process_cpu_seconds_total")
        if cpu is not None and cpu > self._seen_cpu:
            self.cpu.inc(cpu - self._seen_cpu)
            self._seen_cpu = cpu
        memory = values.get("process_resident_memory_bytes")
        if memory is not None:
            self.memory.set(memory)
