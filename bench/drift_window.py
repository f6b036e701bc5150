"""Benchmark ``shipyard drift --window 30d`` on a month of prediction logs.

A month of logs: ``--rows`` iris-like rows (default 50M) spread over 30 days in
``--segments`` Parquet segments (default 3,000; day-partitioned as the log writes
them, built with numpy and pyarrow by ``tests/serving/big_window.py``). Measured,
each in its own process:

- shipyard: the real ``shipyard drift --reference iris --window 30d --json -``:
  DuckDB counts the window and draws a uniform sample of 100,000 rows
  (``PredictionLog.sample_inputs``), then the drift tests run on the sample;
- full read (the path ``--window`` used before): ``PredictionLog.read_inputs`` of the
  whole window into pandas, only on ``--compare-rows`` rows (it needs memory in
  proportion to the window; 50M rows do not fit this machine).

Reported: wall time and peak RSS (``/usr/bin/time -v``) of each process.

    .venv/bin/python bench/drift_window.py                                  # 50M rows
    .venv/bin/python bench/drift_window.py --rows 2000000 --segments 300    # quick
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
sys.path[:0] = [str(REPO_DIR / "tests" / "serving"), str(REPO_DIR / "tests")]
TIME_BIN = Path("/usr/bin/time")
SHIPYARD = Path(sys.executable).with_name("shipyard")
DAYS = 30


def child_full(home: str) -> None:
    """The old --window path: the whole window's inputs in pandas."""
    from shipyard import Shipyard
    from shipyard.config import Settings

    client = Shipyard(Settings(home=Path(home)))
    frame = client.prediction_log.read_inputs("iris", since=f"{DAYS}d")
    print(json.dumps({"rows": len(frame)}))


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


def measure(cmd: list[str], env: dict[str, str]) -> dict[str, Any]:
    full = [str(TIME_BIN), "-v", *cmd] if TIME_BIN.exists() else cmd
    started = time.perf_counter()
    proc = subprocess.run(full, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    match = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    rss = int(match.group(1)) / 1024 if match else float("nan")
    if proc.returncode not in (0, 1):  # drift exits 1 when the data drifted
        raise RuntimeError(f"{cmd} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return {"wall": wall, "rss_mb": rss, "stdout": proc.stdout}


def write_month(home: Path, rows: int, segments: int, end: datetime) -> float:
    from big_window import write_window

    from shipyard.monitoring.segments import SegmentStore

    started = time.perf_counter()
    # Each chunk of rows spreads over every day: one segment per day per chunk.
    chunks = max(1, segments // DAYS)
    write_window(
        SegmentStore(home),
        rows,
        end=end,
        span=timedelta(days=DAYS) - timedelta(minutes=5),
        chunk=max(1, -(-rows // chunks)),
    )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000_000)
    parser.add_argument("--segments", type=int, default=3_000)
    parser.add_argument("--compare-rows", type=int, default=2_000_000)
    parser.add_argument("--child-full", metavar="HOME")
    args = parser.parse_args()
    if args.child_full:
        child_full(args.child_full)
        return
    work = Path(tempfile.mkdtemp(prefix="shipyard-bench-drift-"))
    try:
        results = {}
        for label, rows in (("month", args.rows), ("compare", min(args.compare_rows, args.rows))):
            home = work / label
            register(home)
            seconds = write_month(home, rows, args.segments, datetime.now(UTC))
            files = len(list((home / "predictions").rglob("*.parquet")))
            print(f"{label}: wrote {rows:,} rows in {files:,} segments ({seconds:.0f} s)")
            env = {**os.environ, "SHIPYARD_HOME": str(home)}
            command = [str(SHIPYARD), "drift", "--reference", "iris", "--window", f"{DAYS}d"]
            shipyard = measure([*command, "--json", "-"], env)
            payload = json.loads(shipyard["stdout"])
            drifted = payload.get("dataset", {}).get("drift", payload.get("dataset"))
            results[label] = {"rows": rows, "files": files, "shipyard": shipyard}
            print(
                f"  shipyard drift --window {DAYS}d: {shipyard['wall']:.1f} s, "
                f"peak RSS {shipyard['rss_mb']:.0f} MB (drift: {drifted})",
                flush=True,
            )
            if label == "compare":
                full = measure([sys.executable, __file__, "--child-full", str(home)], env)
                results[label]["full"] = full
                print(
                    f"  full read of the window: {full['wall']:.1f} s, "
                    f"peak RSS {full['rss_mb']:.0f} MB",
                    flush=True,
                )
            shutil.rmtree(home, ignore_errors=True)
        print()
        print("| window | segments | reader | wall s | peak RSS MB |")
        print("|---|---|---|---|---|")
        for r in results.values():
            print(
                f"| {r['rows']:,} rows | {r['files']:,} | shipyard drift --window (sample) | "
                f"{r['shipyard']['wall']:.1f} | {r['shipyard']['rss_mb']:.0f} |"
            )
            if "full" in r:
                print(
                    f"| {r['rows']:,} rows | {r['files']:,} | full read (before) | "
                    f"{r['full']['wall']:.1f} | {r['full']['rss_mb']:.0f} |"
                )
        print(f"\nMachine: {platform.processor() or 'cpu'}, {os.cpu_count()} cores")
        print(f"Command: .venv/bin/python bench/drift_window.py {' '.join(sys.argv[1:])}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
