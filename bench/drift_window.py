"""Benchmark ``shipyard drift --window`` and the monitor job's window on a month of logs.

A month of logs: ``--rows`` iris-like rows (default 50M) spread over 30 days in
``--segments`` Parquet segments (default 3,000; day-partitioned as the log writes
them, built with numpy and pyarrow by ``tests/serving/big_window.py``). The log is
generated once and kept under ``bench/.work/drift_window/`` (with the time it ends):
later runs reuse it and widen the window by the hours since it was written, so
every row stays in it. Measured, each in its own process:

- shipyard drift: the real CLI, ``shipyard drift --reference iris --window 30d
  --json -``: DuckDB counts the window and draws a uniform sample of 100,000 rows
  (``PredictionLog.sample_inputs``), then the drift tests run on the sample;
- monitor window: what the server's monitor job computes per window
  (``summarize_window`` with its default ``WindowLimits``, then ``compute_figures``:
  drift on the sample, label coverage), on the same month;
- full read (the path ``--window`` used before): ``PredictionLog.read_inputs`` of the
  whole window into pandas, only on a ``--compare-rows`` log (it needs memory in
  proportion to the window; 50M rows do not fit this machine).

Reported: wall time of the whole process (start-up included) and its peak RSS
(``VmHWM`` read by the process itself at exit, see ``bench/_rss.py``).

    .venv/bin/python bench/drift_window.py                                  # 50M rows
    .venv/bin/python bench/drift_window.py --rows 2000000 --segments 300    # quick

The file doubles as the child script (``--child cli|monitor|full ...``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
sys.path[:0] = [str(REPO_DIR / "tests" / "serving"), str(REPO_DIR / "tests"), str(BENCH_DIR)]
WORK_DIR = BENCH_DIR / ".work" / "drift_window"
DATA_VERSION = 1  # bump when the generated log changes, so the cache is rebuilt
DAYS = 30


# -- children (each prints one JSON line: its result and its own peak RSS) -------------


def child_cli(argv: list[str]) -> None:
    """The real root CLI app on ``argv``; its peak RSS goes to stderr's last line."""
    from _rss import peak_rss_mb

    from shipyard.cli.main import app

    try:
        app(argv, prog_name="shipyard")
    finally:
        print(json.dumps({"peak_rss_mb": peak_rss_mb()}), file=sys.stderr, flush=True)


def child_monitor(home: str, since: str, until: str) -> None:
    """The monitor job's computation of one window (summary in DuckDB, then figures)."""
    from _rss import peak_rss_mb

    from shipyard import Shipyard
    from shipyard.config import Settings
    from shipyard.drift import DriftDetector
    from shipyard.monitoring.monitor_figures import compute_figures
    from shipyard.monitoring.window import WindowLimits, summarize_window

    client = Shipyard(Settings(home=Path(home)))
    record = client.registry.resolve("iris:1")
    detector = DriftDetector(n_jobs=1).fit(client.references.load(record))
    started = time.perf_counter()
    summary = summarize_window(
        client.prediction_log.store,
        "iris",
        since=datetime.fromisoformat(since),
        until=datetime.fromisoformat(until),
        version=1,
        classifier=True,
        limits=WindowLimits(),
    )
    figures = compute_figures(summary, detector, min_rows=1, baseline_accuracy=None)
    seconds = time.perf_counter() - started
    drift = figures.to_dict().get("drift", {})
    print(
        json.dumps(
            {
                "rows": summary.n_rows,
                "seconds": seconds,
                "drift": drift.get("share", drift.get("dataset")),
                "peak_rss_mb": peak_rss_mb(),
            }
        )
    )


def child_full(home: str) -> None:
    """The old --window path: the whole window's inputs in pandas."""
    from _rss import peak_rss_mb

    from shipyard import Shipyard
    from shipyard.config import Settings

    client = Shipyard(Settings(home=Path(home)))
    frame = client.prediction_log.read_inputs("iris", since=f"{DAYS + 1}d")
    print(json.dumps({"rows": len(frame), "peak_rss_mb": peak_rss_mb()}))


# -- the log -----------------------------------------------------------------------


def register(home: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    from shipyard import Shipyard
    from shipyard.config import Settings
    from shipyard.quickstart import iris_frame

    X, y = iris_frame()
    client = Shipyard(Settings(home=home))
    client.registry.log_model(LogisticRegression(max_iter=500).fit(X, y), "iris", sample=X)
    client.registry.set_alias("iris", "production", 1)
    client.close()


def month(rows: int, segments: int) -> tuple[Path, datetime]:
    """A home with iris:1 and ``rows`` logged over the 30 days before its end (cached)."""
    home = WORK_DIR / f"v{DATA_VERSION}-{rows}-{segments}"
    meta = home / "month.json"
    if meta.exists():
        info = json.loads(meta.read_text())
        print(f"reusing {home} ({info['files']:,} segments, written in {info['seconds']:.0f} s)")
        return home, datetime.fromisoformat(info["end"])
    shutil.rmtree(home, ignore_errors=True)
    register(home)
    # Run in a child: generating leaves a large heap behind in this process.
    end = datetime.now(UTC)
    started = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            "write",
            str(home),
            str(rows),
            str(segments),
            end.isoformat(),
        ],
        check=True,
    )
    seconds = time.perf_counter() - started
    files = len(list((home / "predictions").rglob("*.parquet")))
    meta.write_text(json.dumps({"end": end.isoformat(), "files": files, "seconds": seconds}))
    print(f"wrote {rows:,} rows in {files:,} segments under {home} ({seconds:.0f} s)")
    return home, end


def child_write(home: str, rows: str, segments: str, end: str) -> None:
    from big_window import write_window

    from shipyard.monitoring.segments import SegmentStore

    # Each chunk of rows spreads over every day: one segment per day per chunk.
    chunks = max(1, int(segments) // DAYS)
    write_window(
        SegmentStore(Path(home)),
        int(rows),
        end=datetime.fromisoformat(end),
        span=timedelta(days=DAYS) - timedelta(minutes=5),
        chunk=max(1, -(-int(rows) // chunks)),
    )


# -- measuring -----------------------------------------------------------------------


def measure(args: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Run this file as a child with ``args``; wall time, peak RSS and its output."""
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, __file__, "--child", *args], env=env, capture_output=True, text=True
    )
    wall = time.perf_counter() - started
    if proc.returncode not in (0, 1):  # drift exits 1 when the data drifted
        raise RuntimeError(f"{args} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.startswith("{")]
    rss = next(json.loads(x)["peak_rss_mb"] for x in reversed(lines) if "peak_rss_mb" in x)
    return {"wall": wall, "rss_mb": rss, "stdout": proc.stdout}


def run_window(home: Path, end: datetime, rows: int, full: bool) -> dict[str, Any]:
    env = {**os.environ, "SHIPYARD_HOME": str(home)}
    # The window reaches back to the log's first row however long ago it was written.
    hours = DAYS * 24 + math.ceil((datetime.now(UTC) - end).total_seconds() / 3600) + 1
    window = f"{hours}h"
    cli = measure(["cli", "drift", "--reference", "iris", "--window", window, "--json", "-"], env)
    payload = json.loads(cli["stdout"])
    drifted = payload.get("dataset", {}).get("drift", payload.get("dataset"))
    print(
        f"  shipyard drift --window {window}: {cli['wall']:.1f} s, "
        f"peak RSS {cli['rss_mb']:.0f} MB (drift: {drifted})",
        flush=True,
    )
    since = (end - timedelta(days=DAYS)).isoformat()
    monitor = measure(["monitor", str(home), since, end.isoformat()], env)
    found = json.loads(monitor["stdout"].strip().splitlines()[-1])
    if found["rows"] != rows:
        raise RuntimeError(f"the monitor's window held {found['rows']:,} rows, not {rows:,}")
    print(
        f"  monitor job window ({found['rows']:,} rows): {monitor['wall']:.1f} s "
        f"({found['seconds']:.1f} s summary + figures), peak RSS {monitor['rss_mb']:.0f} MB",
        flush=True,
    )
    result = {"window": window, "cli": cli, "monitor": monitor, "monitor_seconds": found["seconds"]}
    if full:
        result["full"] = measure(["full", str(home)], env)
        print(
            f"  full read of the window: {result['full']['wall']:.1f} s, "
            f"peak RSS {result['full']['rss_mb']:.0f} MB",
            flush=True,
        )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000_000)
    parser.add_argument("--segments", type=int, default=3_000)
    parser.add_argument("--compare-rows", type=int, default=2_000_000)
    parser.add_argument("--child", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    if args.child:
        kind, rest = args.child[0], args.child[1:]
        if kind == "cli":
            child_cli(rest)
        elif kind == "write":
            child_write(*rest)
        elif kind == "monitor":
            child_monitor(*rest)
        else:
            child_full(*rest)
        return
    results = []
    for rows, full in ((args.rows, False), (min(args.compare_rows, args.rows), True)):
        home, end = month(rows, args.segments)
        files = json.loads((home / "month.json").read_text())["files"]
        print(f"{rows:,} rows, {files:,} segments:", flush=True)
        results.append({"rows": rows, "files": files, **run_window(home, end, rows, full)})
    print()
    print("| window | segments | reader | wall s | peak RSS MB |")
    print("|---|---|---|---|---|")
    for r in results:
        head = f"| {r['rows']:,} rows | {r['files']:,} |"
        print(
            f"{head} shipyard drift --window (sample) | {r['cli']['wall']:.1f} | "
            f"{r['cli']['rss_mb']:.0f} |"
        )
        print(
            f"{head} monitor job window (summary + figures) | {r['monitor']['wall']:.1f} | "
            f"{r['monitor']['rss_mb']:.0f} |"
        )
        if "full" in r:
            print(
                f"{head} full read (before) | {r['full']['wall']:.1f} | {r['full']['rss_mb']:.0f} |"
            )
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    print(f"\nMachine: {platform.processor() or 'cpu'}, {os.cpu_count()} cores; load {load}")
    print(f"Command: .venv/bin/python bench/drift_window.py {' '.join(sys.argv[1:])}")


if __name__ == "__main__":
    main()
