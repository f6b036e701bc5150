"""The monitoring page's figures, per time bucket, read from the prediction log.

Traffic (requests, rows, latency percentiles) and the prediction distribution
are DuckDB aggregates over the day partitions the window touches: no row
reaches Python. Drift is scored per bucket on a bounded reservoir sample of
the window's inputs (:data:`DRIFT_SAMPLE_PER_BUCKET` rows a bucket on
average) against the version's reference profile, the same detector as
``shipyard drift``; a point's link opens the full report of that bucket.

>>> WINDOWS["24h"]
(datetime.timedelta(days=1), datetime.timedelta(seconds=3600))
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from shipyard.monitoring.compaction import dedupe_clause
from shipyard.monitoring.records import INPUT_PREFIX
from shipyard.monitoring.segments import SegmentStore

__all__ = ["WINDOWS", "Buckets", "DriftSeries", "MonitorData", "read_monitor_data"]

#: The window picker: window -> (span, bucket width).
WINDOWS: dict[str, tuple[timedelta, timedelta]] = {
    "1h": (timedelta(hours=1), timedelta(minutes=5)),
    "6h": (timedelta(hours=6), timedelta(minutes=15)),
    "24h": (timedelta(days=1), timedelta(hours=1)),
    "7d": (timedelta(days=7), timedelta(hours=6)),
    "30d": (timedelta(days=30), timedelta(days=1)),
}
DRIFT_SAMPLE_PER_BUCKET = 500
#: Predicted classes drawn one line each; the rest are summed as "other".
MAX_CLASSES = 8
_SCAN = "read_parquet(?, hive_partitioning = true, union_by_name = true)"


@dataclass(frozen=True)
class Buckets:
    """Bucket start times (epoch seconds) of a window."""

    start: datetime
    step: timedelta
    count: int

    def starts(self) -> list[float]:
        first = self.start.timestamp()
        return [first + i * self.step.total_seconds() for i in range(self.count)]

    def bounds(self, i: int) -> tuple[datetime, datetime]:
        return self.start + i * self.step, self.start + (i + 1) * self.step


@dataclass(frozen=True)
class DriftSeries:
    """One feature's drift score per bucket (None: not scored) and its test's threshold."""

    feature: str
    stattest: str
    threshold: float
    scores: list[float | None]
    detected: list[bool | None]


@dataclass
class MonitorData:
    buckets: Buckets
    requests: list[float | None] = field(default_factory=list)
    rows: list[float | None] = field(default_factory=list)
    latency: dict[str, list[float | None]] = field(default_factory=dict)
    predictions: dict[str, list[float | None]] = field(default_factory=dict)
    prediction_kind: str = "classes"  # or "quantiles"
    drift: list[DriftSeries] = field(default_factory=list)
    drift_note: str | None = None
    total_rows: int = 0
    columns: list[str] = field(default_factory=list)


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _bucket_expr(buckets: Buckets) -> str:
    origin = int(buckets.start.timestamp() * 1_000_000)
    width = int(buckets.step.total_seconds() * 1_000_000)
    return f"CAST(floor((epoch_us(timestamp) - {origin}) / {width}) AS BIGINT)"


def _series(frame: pd.DataFrame, column: str, n: int) -> list[float | None]:
    out: list[float | None] = [None] * n
    for b, value in zip(frame["b"], frame[column], strict=True):
        if 0 <= int(b) < n and value is not None and not pd.isna(value):
            out[int(b)] = float(value)
    return out


def read_monitor_data(
    store: SegmentStore,
    model: str,
    buckets: Buckets,
    *,
    version: int | None = None,
    deployment: str | None = None,
    detector: Any | None = None,
    task: str | None = None,
) -> MonitorData:
    """Every figure of the page for ``model`` over ``buckets`` (a version or deployment only)."""
    data = MonitorData(buckets)
    since = buckets.start
    until = buckets.start + buckets.count * buckets.step
    files = store.files(
        "predictions", model, first=since.date(), last=(until - timedelta(microseconds=1)).date()
    )
    n = buckets.count
    if not files:
        data.requests = [0.0] * n
        data.drift_note = "No predictions were logged in this window."
        return data
    with store.connect() as con:
        described = con.execute(f"DESCRIBE SELECT * FROM {_SCAN}", [files]).fetchall()
        names = [row[0] for row in described if row[0] != "date"]
        types = {row[0]: str(row[1]) for row in described}
        data.columns = names
        where = "timestamp >= ? AND timestamp < ?"
        params: list[Any] = [files, since, until]
        if version is not None:
            where += " AND version = ?"
            params.append(version)
        if deployment is not None:
            if "deployment" not in names:
                data.requests = [0.0] * n
                data.drift_note = f"No predictions of deployment {deployment!r} were logged."
                return data
            where += " AND deployment = ?"
            params.append(deployment)
        base = (
            f"(SELECT *, {_bucket_expr(buckets)} AS b FROM {_SCAN} WHERE {where}"
            f"{dedupe_clause('predictions', files)})"
        )
        # A request's rows share its latency: percentiles are over requests, not rows.
        traffic = con.execute(
            f"""
            WITH req AS (
              SELECT b, request_id, variant, max(latency_seconds) AS latency, count(*) AS n
              FROM {base} GROUP BY b, request_id, variant)
            SELECT b, count(*) AS requests, sum(n) AS rows,
                   quantile_cont(latency, 0.5) AS p50, quantile_cont(latency, 0.95) AS p95,
                   quantile_cont(latency, 0.99) AS p99
            FROM req GROUP BY b ORDER BY b
            """,
            params,
        ).df()
        data.requests = [v or 0.0 for v in _series(traffic, "requests", n)]
        data.rows = _series(traffic, "rows", n)
        data.total_rows = int(traffic["rows"].sum()) if len(traffic) else 0
        data.latency = {q: _series(traffic, q, n) for q in ("p50", "p95", "p99")}
        if "prediction" in names:
            _predictions(con, base, params, data, types.get("prediction", ""), task)
        if detector is not None and data.total_rows:
            _drift(con, base, params, data, names, detector)
        elif detector is None:
            data.drift_note = (
                "No drift reference profile for this version: log it with a sample "
                "(`log_model(..., sample=X)`) to see drift here."
            )
    return data


def _predictions(
    con: Any, base: str, params: list[Any], data: MonitorData, dtype: str, task: str | None
) -> None:
    n = data.buckets.count
    numeric = any(t in dtype.upper() for t in ("DOUBLE", "FLOAT", "DECIMAL"))
    if task == "regression" or (task is None and numeric):
        data.prediction_kind = "quantiles"
        frame = con.execute(
            f"""SELECT b, quantile_cont(prediction, 0.05) AS q05,
                   quantile_cont(prediction, 0.5) AS q50, quantile_cont(prediction, 0.95) AS q95
                FROM {base} GROUP BY b ORDER BY b""",
            params,
        ).df()
        data.predictions = {
            "p5": _series(frame, "q05", n),
            "median": _series(frame, "q50", n),
            "p95": _series(frame, "q95", n),
        }
        return
    frame = con.execute(
        f"SELECT b, CAST(prediction AS VARCHAR) AS cls, count(*) AS n FROM {base} "
        "GROUP BY b, cls ORDER BY b",
        params,
    ).df()
    if frame.empty:
        return
    totals = frame.groupby("b")["n"].sum()
    top = frame.groupby("cls")["n"].sum().sort_values(ascending=False).index[:MAX_CLASSES]
    frame["cls"] = frame["cls"].where(frame["cls"].isin(top), "other")
    shares = frame.groupby(["cls", "b"])["n"].sum() / totals
    for cls in [*map(str, top), *(["other"] if "other" in set(frame["cls"]) else [])]:
        per = shares.loc[cls] if cls in shares.index.get_level_values(0) else pd.Series()
        values: list[float | None] = [None] * n
        for b, share in per.items():
            if 0 <= int(b) < n:
                values[int(b)] = float(share)
        data.predictions[str(cls)] = values


def _drift(
    con: Any, base: str, params: list[Any], data: MonitorData, names: list[str], detector: Any
) -> None:
    n = data.buckets.count
    features = [c for c in names if c.startswith(INPUT_PREFIX)]
    wanted = set(detector.column_types_) if hasattr(detector, "column_types_") else None
    features = [c for c in features if wanted is None or c[len(INPUT_PREFIX) :] in wanted]
    if not features:
        data.drift_note = "The log holds no inputs of the reference profile's columns."
        return
    size = DRIFT_SAMPLE_PER_BUCKET * n
    sample = con.execute(
        f"SELECT b, {', '.join(_q(c) for c in features)} FROM {base} "
        f"USING SAMPLE reservoir({size} ROWS) REPEATABLE (7)",
        params,
    ).df()
    sample = sample.rename(columns=lambda c: c[len(INPUT_PREFIX) :] if c != "b" else c)
    series: dict[str, DriftSeries] = {}
    for b, frame in sample.groupby("b"):
        i = int(b)  # type: ignore[call-overload]
        if not 0 <= i < n or len(frame) < 2:
            continue
        result = detector.score(frame.drop(columns="b"))
        for col in result.columns:
            found = series.get(col.column)
            if found is None:
                found = series[col.column] = DriftSeries(
                    col.column, col.stattest, float(col.threshold), [None] * n, [None] * n
                )
            score = float(col.score)
            found.scores[i] = score if np.isfinite(score) else None
            found.detected[i] = bool(col.drift_detected)
    data.drift = [series[k] for k in sorted(series)]
    if not data.drift:
        data.drift_note = "Too few rows in each bucket to test drift."
