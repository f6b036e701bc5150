"""Benchmark the server's monitor job on a big window: memory and request latency.

A batch job that logs millions of rows puts them all in the monitor's window.
This measures what that costs a real ``shipyard serve`` while light traffic
(one ``/predict`` every 20 ms, sequential) keeps coming, interleaved
(A B A B ...):

- idle: the window holds the server's own few thousand rows;
- busy: a batch job's N rows (default 10M, written straight into the
  prediction log's layout) appear in the window at once (the segment files are
  moved in), and the phase lasts until the monitor has summarized that window
  twice; then they are moved out again.

Per phase: p50 / p99 / max latency, and the peak RSS of the server's process
tree (psutil, sampled between requests) against the idle figure.

Then, each in its own process on the same window: the bounded summary the
monitor runs now (``summarize_window`` + drift on its sample) against the full
read it replaced (``PredictionLog.read`` of the window into pandas + drift on
every row), wall time and how far the peak RSS rose above the process's RSS
once its libraries were loaded (``VmHWM``, reset through ``/proc/self/clear_refs``
at that point), with their ratio. The full
read needs about 0.9 GB per million rows, so that comparison covers the last
``--compare-minutes`` of the window (6 of 30 minutes: a fifth of the rows);
the bounded summary also runs on the whole window.

    .venv/bin/python bench/monitor_window.py                 # 10M rows, 3 repetitions
    .venv/bin/python bench/monitor_window.py --rows 3000000 --repeats 1

The file doubles as the child script (``--child summary|full HOME UNTIL MINUTES``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
# The window writer and the server helpers the tests use.
sys.path[:0] = [str(REPO_DIR / "tests" / "serving"), str(REPO_DIR / "tests")]
INTERVAL = 5.0


# -- children ---------------------------------------------------------------------


def child(kind: str, home: str, until_text: str, minutes: str) -> None:
    """Summarize (or fully read) ``minutes`` of iris:1 before ``until`` and score drift;
    print JSON."""

    from shipyard import Shipyard
    from shipyard.config import Settings
    from shipyard.drift import DriftDetector
    from shipyard.monitoring.window import summarize_window

    client = Shipyard(Settings(home=home))
    record = client.registry.resolve("iris:1")
    detector = DriftDetector(n_jobs=1).fit(client.references.load(record))
    until = datetime.fromisoformat(until_text)
    since = until - timedelta(minutes=float(minutes))
    loaded = _status_kb("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # the peak starts again from here
    start = time.perf_counter()
    if kind == "summary":
        log = client.prediction_log
        summary = summarize_window(
            log.store, "iris", since=since, until=until, version=1, classifier=True
        )
        rows, current = summary.n_rows, summary.inputs
    else:  # what the monitor did before: the whole window in memory
        current = client.prediction_log.read_inputs("iris", since, until, version=1)
        rows = len(current)
    result = detector.score(current)
    seconds = time.perf_counter() - start
    peak = _status_kb("VmHWM")
    print(
        json.dumps(
            {
                "rows": rows,
                "seconds": seconds,
                "growth": (peak - loaded) * 1024,
                "drift": result.share,
            }
        )
    )


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


# -- the server side ----------------------------------------------------------------


def register(home: Path) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from shipyard import Shipyard
    from shipyard.config import Settings
    from shipyard.quickstart import iris_frame

    X, y = iris_frame()
    client = Shipyard(Settings(home=home))
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, y)
    client.registry.log_model(model, "iris", sample=X, metrics={"accuracy": 0.97})
    client.registry.set_alias("iris", "production", 1)
    client.close()


def traffic(http: Any, pid: int, seconds: float, until: Any = None) -> dict[str, float]:
    from big_window import light_traffic

    found, peak = light_traffic(http, pid, seconds, until)
    latencies = sorted(found.tolist())
    return {
        "requests": len(latencies),
        "p50_ms": statistics.median(latencies) * 1e3,
        "p99_ms": latencies[int(0.99 * (len(latencies) - 1))] * 1e3,
        "max_ms": latencies[-1] * 1e3,
        "peak_rss": peak,
        "seconds": seconds if until is None else 0.0,
    }


def metric(http: Any, name: str) -> float:
    from big_window import metric as sample

    return sample(http, name, 'model="iris",version="1"') or sample(http, name) or 0.0


def move(files: list[Path], source: Path, target: Path) -> list[Path]:
    moved = []
    for f in files:
        dest = target / f.relative_to(source)
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(f, dest)
        moved.append(dest)
    return moved


def serve_phases(home: Path, staging: Path, rows: int, repeats: int) -> list[dict[str, Any]]:
    import httpx

    from live_server import free_port, process_tree_rss, subprocess_env, wait_ready
    from shipyard.config import Settings

    port = free_port()
    env = subprocess_env(Settings(home=home), importable=BENCH_DIR)
    cmd = [sys.executable, "-m", "shipyard.cli", "serve", "iris", "--port", str(port)]
    cmd += ["--monitor-interval", str(INTERVAL), "--log-level", "warning"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    log_root = home / "predictions"
    files = sorted((staging / "predictions").rglob("part-*.parquet"))
    phases = []
    try:
        wait_ready(url, timeout=120)
        with httpx.Client(base_url=url, timeout=60) as http:
            traffic(http, proc.pid, 5)  # warm up
            for _ in range(repeats):
                idle = traffic(http, proc.pid, 20)
                idle_rss = process_tree_rss(proc.pid)
                phases.append({"phase": "idle", **idle, "idle_rss": idle_rss})
                files = move(files, staging / "predictions", log_root)
                runs = metric(http, "shipyard_monitor_runs_total")

                def summarized_twice(runs: float = runs) -> bool:
                    seen = metric(http, "shipyard_monitor_window_predictions")
                    done = metric(http, "shipyard_monitor_runs_total")
                    return seen >= rows and done >= runs + 2

                started = time.monotonic()
                busy = traffic(http, proc.pid, 600, until=summarized_twice)
                busy["seconds"] = time.monotonic() - started
                phases.append({"phase": "busy", **busy, "idle_rss": idle_rss})
                files = move(files, log_root, staging / "predictions")
                traffic(http, proc.pid, INTERVAL * 2)  # let the monitor see the small window
    finally:
        proc.terminate()
        proc.wait(60)
    return phases


def run_child(kind: str, home: Path, until: datetime, minutes: float) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", kind, str(home), until.isoformat(), str(minutes)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(REPO_DIR / "src")},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--compare-minutes", type=float, default=6.0)
    parser.add_argument("--child", nargs=4, metavar=("KIND", "HOME", "UNTIL", "MINUTES"))
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return

    from big_window import write_window

    from shipyard.monitoring.segments import SegmentStore

    work = Path(tempfile.mkdtemp(prefix="shipyard-bench-monitor-"))
    try:
        home, staging = work / "home", work / "staging"
        register(home)
        started = time.perf_counter()
        end = datetime.now(UTC)
        write_window(SegmentStore(staging), args.rows, end=end)
        print(f"wrote {args.rows:,} rows in {time.perf_counter() - started:.1f} s", flush=True)
        phases = serve_phases(home, staging, args.rows, args.repeats)

        # The window in the log again, for the one-shot comparison.
        move(
            sorted((staging / "predictions").rglob("part-*.parquet")),
            staging / "predictions",
            home / "predictions",
        )
        oneshot: dict[str, list[dict[str, Any]]] = {"whole": [], "summary": [], "full": []}
        for _ in range(args.repeats):
            oneshot["whole"].append(run_child("summary", home, end, 60))
            for kind in ("summary", "full"):
                oneshot[kind].append(run_child(kind, home, end, args.compare_minutes))
        report(args, phases, oneshot)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _spread(values: list[float], fmt: str = "{:.1f}") -> str:
    med = statistics.median(values)
    return f"{fmt.format(med)} [{fmt.format(min(values))}-{fmt.format(max(values))}]"


def report(args: Any, phases: list[dict[str, Any]], oneshot: dict[str, list]) -> None:
    import duckdb

    import shipyard

    mb = 2**20
    print(f"\n## Monitor window of {args.rows:,} rows ({args.repeats} repetitions, interleaved)")
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, shipyard {shipyard.__version__}, duckdb {duckdb.__version__}"
    )
    print(f"command: .venv/bin/python bench/monitor_window.py --rows {args.rows}\n")
    print("| phase | requests | p50 ms | p99 ms | max ms | RSS over idle MB |")
    print("| --- | --- | --- | --- | --- | --- |")
    p99 = {}
    for name in ("idle", "busy"):
        rows = [p for p in phases if p["phase"] == name]
        growth = [(p["peak_rss"] - p["idle_rss"]) / mb for p in rows]
        p99[name] = statistics.median(p["p99_ms"] for p in rows)
        print(
            f"| {name} | {sum(p['requests'] for p in rows)} | "
            f"{_spread([p['p50_ms'] for p in rows])} | {_spread([p['p99_ms'] for p in rows])} | "
            f"{_spread([p['max_ms'] for p in rows])} | {_spread(growth, '{:+.0f}')} |"
        )
    idle_rss = statistics.median(p["idle_rss"] for p in phases) / mb
    print(f"\nidle RSS {idle_rss:.0f} MB; p99 busy / idle: {p99['busy'] / p99['idle']:.2f}x")
    busy_s = [p["seconds"] for p in phases if p["phase"] == "busy"]
    print(f"two monitor runs over the big window took {_spread(busy_s)} s (interval {INTERVAL} s)")
    print("\n| one window, own process | rows | seconds | peak RSS over loaded MB |")
    print("| --- | --- | --- | --- |")
    for kind, label in (
        ("whole", "bounded summary + drift, whole window"),
        ("summary", f"bounded summary + drift, last {args.compare_minutes:g} min (now)"),
        ("full", f"full read + drift, last {args.compare_minutes:g} min (before)"),
    ):
        runs = oneshot[kind]
        print(
            f"| {label} | {runs[0]['rows']:,} | {_spread([r['seconds'] for r in runs])} | "
            f"{_spread([r['growth'] / mb for r in runs], '{:+.0f}')} |"
        )
    ratio = statistics.median(r["growth"] for r in oneshot["full"]) / statistics.median(
        r["growth"] for r in oneshot["summary"]
    )
    print(f"\nfull read / bounded summary, memory for the same window: {ratio:.1f}x")


if __name__ == "__main__":
    main()
