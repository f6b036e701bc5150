"""The log's counters in a real Prometheus registry, as /metrics renders them."""

from __future__ import annotations

import threading

from monitoring_support import T0, ManualClock, record
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from shipyard.monitoring.log_metrics import PredictionLogMetrics
from shipyard.monitoring.prediction_log import PredictionLog
from shipyard.monitoring.segments import SegmentStore


def _values(registry: CollectorRegistry) -> dict[str, float]:
    text = generate_latest(registry).decode()
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if not sample.name.endswith("_created")
    }


class _Blocked:
    def __init__(self, store: SegmentStore) -> None:
        self.store, self.entered, self.gate = store, threading.Event(), threading.Event()

    def write_segment(self, kind, model, day, table, *, stage=None):  # type: ignore[no-untyped-def]
        self.entered.set()
        self.gate.wait(timeout=30)
        return self.store.write_segment(kind, model, day, table, stage=stage)


def test_metrics_follow_the_log(store: SegmentStore, clock: ManualClock) -> None:
    sink = _Blocked(store)
    log = PredictionLog(store, sink=sink, flush_interval=0.01, max_queue_rows=5, clock=clock)
    registry = CollectorRegistry()
    metrics = PredictionLogMetrics(log, registry)
    metrics.sync()
    assert _values(registry)["shipyard_prediction_log_dropped_total"] == 0

    log.submit([record(f"r{i}", T0) for i in range(3)])
    assert sink.entered.wait(timeout=10)
    log.submit([record(f"s{i}", T0) for i in range(4)])  # 2 fit, 2 dropped
    metrics.sync()
    values = _values(registry)
    assert values["shipyard_prediction_log_accepted_total"] == 5
    assert values["shipyard_prediction_log_dropped_total"] == 2
    assert values["shipyard_prediction_log_queue_depth"] == 5
    assert values["shipyard_prediction_log_written_total"] == 0

    sink.gate.set()
    log.close()
    metrics.sync()
    metrics.sync()  # syncing twice counts nothing twice
    values = _values(registry)
    assert values["shipyard_prediction_log_written_total"] == 5
    assert values["shipyard_prediction_log_dropped_total"] == 2
    assert values["shipyard_prediction_log_queue_depth"] == 0
    assert values["shipyard_prediction_log_write_errors_total"] == 0
