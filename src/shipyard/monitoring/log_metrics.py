"""The prediction log's counters as Prometheus metrics, in the server's own registry.

The log counts in plain integers (:meth:`PredictionLog.stats`); this mirrors
them into ``prometheus_client`` metrics whenever :meth:`PredictionLogMetrics.sync`
runs. Call it from a periodic task in every worker and just before rendering
``/metrics``. It works in multi-process mode too (``PROMETHEUS_MULTIPROC_DIR``):
counters only ever grow by what the worker's log counted since the last sync,
and the queue-depth gauge sums over live workers.

>>> from prometheus_client import CollectorRegistry, generate_latest
>>> registry = CollectorRegistry()
>>> metrics = PredictionLogMetrics(log, registry)       # doctest: +SKIP
>>> metrics.sync()                                      # doctest: +SKIP
>>> b"shipyard_prediction_log_dropped_total" in generate_latest(registry)  # doctest: +SKIP
True
"""

from __future__ import annotations

import threading

from prometheus_client import CollectorRegistry, Counter, Gauge

from shipyard.monitoring.prediction_log import PredictionLog

__all__ = ["PredictionLogMetrics"]


class PredictionLogMetrics:
    """``shipyard_prediction_log_{accepted,written,dropped,write_errors}_total``,
    ``shipyard_prediction_log_queue_depth`` and
    ``shipyard_feedback_labels_{written,dropped}_total`` for one log, registered in
    ``registry``."""

    def __init__(self, log: PredictionLog, registry: CollectorRegistry) -> None:
        self.log = log
        self._lock = threading.Lock()
        self._seen = dict.fromkeys(
            ("accepted", "written", "dropped", "write_errors", "labels_written", "labels_dropped"),
            0,
        )
        self._counters = {
            "accepted": Counter(
                "shipyard_prediction_log_accepted",
                "Prediction rows queued for the prediction log.",
                registry=registry,
            ),
            "written": Counter(
                "shipyard_prediction_log_written",
                "Prediction rows written to the prediction log.",
                registry=registry,
            ),
            "dropped": Counter(
                "shipyard_prediction_log_dropped",
                "Prediction rows lost: the log's queue was full, it was closed, or a write failed.",
                registry=registry,
            ),
            "write_errors": Counter(
                "shipyard_prediction_log_write_errors",
                "Failed attempts to write a prediction log segment.",
                registry=registry,
            ),
            "labels_written": Counter(
                "shipyard_feedback_labels_written",
                "Ground-truth labels (POST /feedback) written beside the prediction log.",
                registry=registry,
            ),
            "labels_dropped": Counter(
                "shipyard_feedback_labels_dropped",
                "Queued ground-truth labels lost because their segment could not be written.",
                registry=registry,
            ),
        }
        self.queue_depth = Gauge(
            "shipyard_prediction_log_queue_depth",
            "Rows (predictions and labels) accepted but not yet written.",
            registry=registry,
            multiprocess_mode="livesum",
        )

    def sync(self) -> None:
        """Bring the metrics up to the log's current counts."""
        stats = self.log.stats()
        now = {
            "accepted": stats.accepted_total,
            "written": stats.written_total,
            "dropped": stats.dropped_total,
            "write_errors": stats.write_errors_total,
            "labels_written": stats.labels_written_total,
            "labels_dropped": stats.labels_dropped_total,
        }
        with self._lock:
            for name, value in now.items():
                # A forked worker's log starts again at zero: never count backwards.
                delta = value - self._seen[name]
                if delta > 0:
                    self._counters[name].inc(delta)
                self._seen[name] = value
            self.queue_depth.set(stats.queue_depth)
