"""A big window of logged predictions, and light traffic to a server while it is monitored.

A batch job that logged millions of rows leaves day-partitioned Parquet segments
under ``<home>/predictions/<model>/date=.../``; :func:`write_window` builds them
with numpy and pyarrow (one segment per million rows, zstd, as the log writes
them) in seconds instead of the minutes scoring them would. :func:`light_traffic`
sends one ``/predict`` every 20 ms and samples the server's memory between them.
Used by the monitor tests and by ``bench/monitor_window.py``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import numpy as np
import pyarrow as pa
from serving_helpers import SETOSA

from live_server import process_tree_rss
from shipyard.monitoring.records import TIMESTAMP
from shipyard.monitoring.segments import SegmentStore

IRIS_CLASSES = ("setosa", "versicolor", "virginica")
IRIS_MEANS = {"sepal_length": 5.8, "sepal_width": 3.1, "petal_length": 3.8, "petal_width": 1.2}


def write_window(
    store: SegmentStore,
    rows: int,
    *,
    model: str = "iris",
    version: int = 1,
    end: datetime | None = None,
    span: timedelta = timedelta(minutes=30),
    chunk: int = 1_000_000,
    seed: int = 0,
    vanished: tuple[str, ...] = (),
) -> str:
    """Log ``rows`` iris-like predictions of one batch job spread over ``span`` before
    ``end`` (default: now); return the job's request id. Features named in
    ``vanished`` are logged as NaN on every row."""
    end = end or datetime.now(UTC)
    start_us = int((end - span).timestamp() * 1e6)
    span_us = int(span.total_seconds() * 1e6)
    job = f"batch-{uuid.uuid4().hex[:12]}"
    rng = np.random.default_rng(seed)
    size = min(chunk, rows)
    # Inputs and outputs are drawn once and reused by every chunk (only row numbers
    # and times differ): drawing them is what would make this slow.
    proba = rng.dirichlet([4.0, 2.0, 2.0], size)
    features = {
        f"in_{name}": pa.array(
            np.full(size, np.nan) if name in vanished else rng.normal(mean, 0.5, size).round(2)
        )
        for name, mean in IRIS_MEANS.items()
    }
    outputs = {"prediction": pa.array(IRIS_CLASSES).take(pa.array(proba.argmax(axis=1)))}
    for j, name in enumerate(IRIS_CLASSES):
        outputs[f"proba_{name}"] = pa.array(proba[:, j])
    for first in range(0, rows, chunk):
        n = min(chunk, rows - first)
        stamps = np.sort(rng.integers(start_us, start_us + span_us, n))
        columns: dict[str, pa.Array] = {
            "request_id": _repeat(job, n),
            "row": pa.array(np.arange(first, first + n, dtype=np.int32)),
            "timestamp": pa.array(stamps, pa.int64()).cast(TIMESTAMP),
            "model": _repeat(model, n),
            "version": pa.array(np.full(n, version, dtype=np.int64)),
            "variant": _repeat("primary", n),
            "source": _repeat("batch", n),
            "latency_seconds": pa.array(np.zeros(n)),
        }
        for name, values in {**features, **outputs}.items():
            columns[name] = values.slice(0, n)
        table = pa.table(columns)
        days = table.column("timestamp").to_numpy().astype("datetime64[D]")
        for day in np.unique(days):
            part = table.filter(pa.array(days == day)) if len(np.unique(days)) > 1 else table
            store.write_segment("predictions", model, day.astype(object), part)
    return job


def _repeat(text: str, n: int) -> pa.Array:
    """``n`` copies of ``text`` as a string column, without ``n`` Python objects."""
    return pa.array([text], pa.string()).take(pa.array(np.zeros(n, dtype=np.int32)))


def metric(http: httpx.Client, name: str, labels: str = "") -> float | None:
    """The value of one sample of ``/metrics`` (``labels`` as Prometheus prints them)."""
    prefix = f"{name}{{{labels}}} " if labels else f"{name} "
    for line in http.get("/metrics").text.splitlines():
        if line.startswith(prefix):
            return float(line.split()[-1])
    return None


def light_traffic(
    http: httpx.Client,
    pid: int,
    seconds: float,
    until: Callable[[], bool] | None = None,
) -> tuple[np.ndarray, int]:
    """One ``/predict`` every 20 ms for ``seconds`` (or until ``until()``, checked each
    second); the latencies in seconds and the peak RSS of server ``pid``'s process tree."""
    latencies, peak, checked = [], 0, 0.0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        sent = time.perf_counter()
        answer = http.post("/predict", json=SETOSA)
        latencies.append(time.perf_counter() - sent)
        assert answer.status_code == 200, answer.text
        peak = max(peak, process_tree_rss(pid))
        if until is not None and time.monotonic() - checked > 1:
            checked = time.monotonic()
            if until():
                break
        time.sleep(0.02)
    return np.array(latencies), peak
