"""Prometheus metrics of one serving app, and the ``/metrics`` text they render to.

Each app owns its :class:`~prometheus_client.CollectorRegistry`, so tests can
build many apps in one process. With several uvicorn workers, each worker is a
process with its own counters; :mod:`shipyard.serving.server` then points
``PROMETHEUS_MULTIPROC_DIR`` at a fresh folder *before* the workers start, the
client library writes every value to per-process files there, and ``/metrics``
(answered by any one worker) adds them up across workers.

Names follow Prometheus conventions: ``_total`` counters, ``_seconds`` units,
model name and version as labels.

Example:
    >>> m = ServingMetrics()
    >>> m.swap_failures.labels(model="iris").inc()
    >>> b"shipyard_model_swap_failures_total" in m.render()[0]
    True
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as prom_multiprocess
from prometheus_client.metrics_core import Metric

# From half a millisecond (a fast model on loopback) to ten seconds (a timeout).
LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


class ServingMetrics:
    """Every metric the server exports, registered in a registry of its own.

    ``multiprocess_dir`` is set when several workers share one set of metrics
    (see the module docstring); ``render`` then aggregates across processes.
    """

    def __init__(self, *, multiprocess_dir: Path | None = None) -> None:
        self.multiprocess_dir = multiprocess_dir
        self.registry = CollectorRegistry(auto_describe=True)
        #: With several workers, which labelled series are still current (the monitor
        #: job's): the shared files keep a series a worker removed, so it is left out here.
        self.series_filter: Callable[[dict[str, str]], bool] | None = None
        r = self.registry
        self.requests = Counter(
            "shipyard_http_requests",
            "HTTP requests answered, by route template, method and status code.",
            ["route", "method", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "shipyard_http_request_duration_seconds",
            "Time from receiving a request to sending the end of its answer.",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge(
            "shipyard_http_requests_in_flight",
            "Requests being answered right now.",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.predictions = Counter(
            "shipyard_predictions",
            "Rows predicted, by model, version and predicted class ('' for regression).",
            ["model", "version", "class"],
            registry=r,
        )
        self.model_info = Gauge(
            "shipyard_model_info",
            "1 for the model version this server answers with (0 once swapped out).",
            ["model", "version", "ref", "flavor"],
            registry=r,
            multiprocess_mode="max",
        )
        self.model_load_seconds = Gauge(
            "shipyard_model_load_seconds",
            "Time taken to load and warm up the served model version.",
            ["model", "version"],
            registry=r,
            multiprocess_mode="max",
        )
        self.model_ready = Gauge(
            "shipyard_model_ready",
            "1 once a model is loaded and warmed up; 0 before, and while a feature-backed "
            "model's online store cannot be reached (what /ready answers).",
            registry=r,
            multiprocess_mode="min",
        )
        self.online_store_up = Gauge(
            "shipyard_online_store_up",
            "1 while the online feature store a feature-backed model reads answers, 0 while "
            "it cannot be reached (from the last read, or a /ready ping when none came).",
            ["store"],
            registry=r,
            multiprocess_mode="min",
        )
        self.swaps = Counter(
            "shipyard_model_swaps",
            "Times the served version changed (hot swap).",
            ["model"],
            registry=r,
        )
        self.swap_failures = Counter(
            "shipyard_model_swap_failures",
            "Times a new version failed to load or warm up; the old one kept serving.",
            ["model"],
            registry=r,
        )
        self.feature_lookups = Counter(
            "shipyard_feature_lookups",
            "Entity keys looked up in the online feature store, by view and outcome "
            "(found, missing: never materialized, stale: older than the view's TTL).",
            ["view", "outcome"],
            registry=r,
        )
        self.feature_read_requests = Histogram(
            "shipyard_feature_read_requests",
            "Requests of a feature-backed model whose features one online read fetched "
            "(the requests that arrived together share one read per view).",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
            registry=r,
        )
        self.poll_errors = Counter(
            "shipyard_registry_poll_errors",
            "Times the registry could not be read while checking for a new version.",
            ["model"],
            registry=r,
        )

    def render(self) -> tuple[bytes, str]:
        """The Prometheus text exposition and its content type."""
        if self.multiprocess_dir is None:
            return generate_latest(self.registry), CONTENT_TYPE_LATEST
        # Aggregate the per-process files of every worker into one answer.
        collected = CollectorRegistry()
        collector = prom_multiprocess.MultiProcessCollector(None, path=str(self.multiprocess_dir))
        collected.register(_Filtered(collector, self.series_filter))
        return generate_latest(collected), CONTENT_TYPE_LATEST

    def mark_process_dead(self) -> None:
        """Drop this worker's live gauges from the shared folder (worker shutdown)."""
        if self.multiprocess_dir is not None:
            prom_multiprocess.mark_process_dead(os.getpid(), path=str(self.multiprocess_dir))


class _Filtered:
    """A collector passing on another's families, less the samples ``keep`` refuses."""

    def __init__(self, inner: Any, keep: Callable[[dict[str, str]], bool] | None) -> None:
        self.inner = inner
        self.keep = keep

    def collect(self) -> Iterator[Metric]:
        for family in self.inner.collect():
            if self.keep is not None:
                family.samples = [s for s in family.samples if self.keep(s.labels)]
            yield family
