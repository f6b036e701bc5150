"""A real server's memory stays flat while its monitor summarizes a window of 10M rows.

The rows are written straight into the prediction log's layout (as a batch job
leaves them), staged first and then moved into the log in one step, so the
server's idle figures are measured on the same process just before. Memory is
asserted (psutil on the server's process tree); latency of light traffic is
measured and printed, not asserted (timings belong to bench/monitor_window.py).
"""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import numpy as np
from big_window import light_traffic, metric, write_window
from serving_helpers import IrisRegistry, cli_server

from live_server import process_tree_rss
from shipyard.monitoring.segments import SegmentStore

ROWS = 10_000_000
RSS_ALLOWANCE = 300 * 2**20
IRIS = 'deployment="",model="iris",variant="default",version="1"'
WINDOW_ROWS = ("shipyard_monitor_window_predictions", IRIS)


def stage_window(tmp_path: Path, rows: int) -> list[Path]:
    staging = SegmentStore(tmp_path / "staging")
    write_window(staging, rows)
    return sorted(Path(staging.url).rglob("part-*.parquet"))


def test_a_ten_million_row_window_keeps_the_servers_memory_within_300_mb(
    iris: IrisRegistry, tmp_path: Path
) -> None:
    staged = stage_window(tmp_path, ROWS)
    args = ("iris", "--monitor-interval", "3")
    with cli_server(iris.settings, *args) as (pid, url), httpx.Client(base_url=url) as http:
        light_traffic(http, pid, 3)  # warm up; the monitor runs on a small window
        idle_latency, _ = light_traffic(http, pid, 6)
        idle_rss = process_tree_rss(pid)

        # A batch job's rows appear in the log at once.
        log_root = Path(iris.settings.home) / "predictions" / "iris"
        for part in staged:
            target = log_root / part.parent.name / part.name
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(part, target)
        runs = metric(http, "shipyard_monitor_runs_total") or 0.0

        def two_runs_on_the_big_window() -> bool:
            seen = metric(http, *WINDOW_ROWS) or 0
            return seen >= ROWS and (metric(http, "shipyard_monitor_runs_total") or 0) >= runs + 2

        busy_latency, peak_rss = light_traffic(http, pid, 240, until=two_runs_on_the_big_window)
        assert two_runs_on_the_big_window(), "the monitor never summarized the big window"
        scored = metric(http, "shipyard_dataset_drift_detected", IRIS)
    growth = peak_rss - idle_rss
    p99_idle, p99_busy = np.percentile(idle_latency, 99), np.percentile(busy_latency, 99)
    print(
        f"\n{ROWS:,} rows: idle RSS {idle_rss / 2**20:.0f} MB, peak {peak_rss / 2**20:.0f} MB "
        f"(+{growth / 2**20:.0f} MB); p99 idle {p99_idle * 1e3:.1f} ms, while summarizing "
        f"{p99_busy * 1e3:.1f} ms ({p99_busy / p99_idle:.2f}x, {len(busy_latency)} requests)"
    )
    assert scored is not None  # drift was scored on the big window's sample
    assert growth <= RSS_ALLOWANCE, f"RSS grew by {growth / 2**20:.0f} MB"
