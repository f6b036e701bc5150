"""Benchmark Shipyard's experiment tracking against MLflow (SQLite back end, its own venv).

Two measurements, each tool in its own process, interleaved A B A B:

- **Logging**: one run logs ``--steps`` x ``--metrics`` points (1,000 x 100 =
  100,000 by default) with the same user code in both tools,
  ``log_metrics({name: value, ...}, step=step)`` once per step, timed from the
  start of the run to the end of ``end_run`` (so Shipyard's background batches
  are all written before the clock stops). Throughput = points / second.
  Shipyard is also timed with one ``log_metric`` call per point.
- **Search**: ``search_runs`` with a metric filter (``metrics.accuracy > 0.9``,
  about 20 % of the runs, ``max_results=1000``) over ``--runs`` runs (10,000)
  of one experiment, each with 2 metrics, 2 params and a tag, returning a
  DataFrame in both tools; median of ``--repeats`` calls after one warm-up.
  Shipyard is measured on SQLite and PostgreSQL (the test server at
  127.0.0.1:5432, in a schema of its own), MLflow on SQLite.

The populated databases are cached under ``bench/.work/tracking`` (populating
MLflow takes minutes). MLflow runs from ``bench/.peers/mlflow``.

    .venv/bin/python bench/tracking.py                          # full size
    .venv/bin/python bench/tracking.py --steps 100 --runs 1000 --repeats 2

The file doubles as the child script (``--child NAME ...``); it must stay
importable by MLflow's venv, so Shipyard is imported lazily.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
WORK_DIR = BENCH_DIR / ".work" / "tracking"
MLFLOW_REQUIREMENTS = ["mlflow==3.17.*", "scikit-learn==1.9.*", "skops"]
POSTGRES_URL = os.environ.get(
    "SHIPYARD_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
FILTER = "metrics.accuracy > 0.9"
MAX_RESULTS = 1000


def _run_row(i: int, rng: random.Random) -> tuple[dict[str, float], dict[str, str], str]:
    metrics = {"accuracy": 0.5 + 0.5 * rng.random(), "loss": rng.random()}
    params = {"C": str(rng.choice([0.01, 0.1, 1.0, 10.0])), "solver": rng.choice(["lbfgs", "saga"])}
    return metrics, params, rng.choice(["risk", "growth", "ops"])


# -- children ---------------------------------------------------------------------------


def child_mlflow_log(uri: str, steps: int, n_metrics: int) -> dict:
    import mlflow

    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("log-bench")
    names = [f"metric_{i}" for i in range(n_metrics)]
    started = time.perf_counter()
    with mlflow.start_run():
        for step in range(steps):
            mlflow.log_metrics({n: step + i / 1000 for i, n in enumerate(names)}, step=step)
    return {"seconds": time.perf_counter() - started}


def child_shipyard_log(db: str, home: str, steps: int, n_metrics: int, per_point: bool) -> dict:
    import shipyard

    shipyard.configure(shipyard.Settings(home=Path(home), db=db))
    names = [f"metric_{i}" for i in range(n_metrics)]
    shipyard.client().runs.get_or_create_experiment("log-bench")  # migrations out of the clock
    started = time.perf_counter()
    with shipyard.start_run("log-bench") as run:
        for step in range(steps):
            if per_point:
                for i, n in enumerate(names):
                    run.log_metric(n, step + i / 1000, step=step)
            else:
                run.log_metrics({n: step + i / 1000 for i, n in enumerate(names)}, step=step)
    seconds = time.perf_counter() - started
    stored = sum(s.steps for s in shipyard.client().runs.metric_summaries(run.id))
    return {"seconds": seconds, "stored": stored}


def child_mlflow_populate(uri: str, n_runs: int) -> dict:
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    exp = client.create_experiment("search-bench")
    rng = random.Random(0)
    started = time.perf_counter()
    for i in range(n_runs):
        metrics, params, team = _run_row(i, rng)
        run = client.create_run(exp, run_name=f"run-{i}")
        now = int(time.time() * 1000)
        client.log_batch(
            run.info.run_id,
            metrics=[Metric(k, v, now, 0) for k, v in metrics.items()],
            params=[Param(k, v) for k, v in params.items()],
            tags=[RunTag("team", team)],
        )
        client.set_terminated(run.info.run_id)
    return {"seconds": time.perf_counter() - started}


def child_mlflow_search(uri: str, repeats: int) -> dict:
    import mlflow

    mlflow.set_tracking_uri(uri)
    times = []
    rows = 0
    for _ in range(repeats + 1):  # the first call warms caches and is not counted
        started = time.perf_counter()
        frame = mlflow.search_runs(
            experiment_names=["search-bench"], filter_string=FILTER, max_results=MAX_RESULTS
        )
        times.append(time.perf_counter() - started)
        rows = len(frame)
    return {"times": times[1:], "rows": rows}


def _children() -> None:
    name, *args = sys.argv[2:]
    if name == "mlflow-log":
        out = child_mlflow_log(args[0], int(args[1]), int(args[2]))
    elif name == "shipyard-log":
        out = child_shipyard_log(args[0], args[1], int(args[2]), int(args[3]), args[4] == "1")
    elif name == "mlflow-populate":
        out = child_mlflow_populate(args[0], int(args[1]))
    elif name == "mlflow-search":
        out = child_mlflow_search(args[0], int(args[1]))
    else:
        raise SystemExit(f"unknown child {name!r}")
    print(json.dumps(out))


# -- the parent -----------------------------------------------------------------------


def _mlflow_python() -> Path:
    sys.path.insert(0, str(BENCH_DIR))
    from _peers import ensure_peer_venv, peer_python

    return Path(peer_python(ensure_peer_venv("mlflow", MLFLOW_REQUIREMENTS)))


def _child(python: Path, *args: object, env: dict[str, str] | None = None) -> dict:
    done = subprocess.run(
        [str(python), __file__, "--child", *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=3600,
    )
    if done.returncode != 0:
        raise RuntimeError(f"child {args[0]} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _stats(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} [{min(values):.3f}-{max(values):.3f}]"


def bench_logging(mlflow_py: Path, steps: int, n_metrics: int, repeats: int) -> list[list[str]]:
    points = steps * n_metrics
    times: dict[str, list[float]] = {"mlflow": [], "shipyard": [], "shipyard-per-point": []}
    for rep in range(repeats):
        with tempfile.TemporaryDirectory(dir=WORK_DIR) as tmp:
            uri = f"sqlite:///{tmp}/mlflow.db"
            # Create MLflow's schema out of the clock, as Shipyard's migrations are.
            _child(mlflow_py, "mlflow-log", uri, 1, 1)
            times["mlflow"].append(
                _child(mlflow_py, "mlflow-log", uri, steps, n_metrics)["seconds"]
            )
            for variant, per_point in (("shipyard", "0"), ("shipyard-per-point", "1")):
                db = f"sqlite:///{tmp}/{variant}.db"
                out = _child(
                    Path(sys.executable),
                    "shipyard-log",
                    db,
                    f"{tmp}/home",
                    steps,
                    n_metrics,
                    per_point,
                )
                assert out["stored"] == points, (
                    f"{variant} stored {out['stored']} of {points} points"
                )
                times[variant].append(out["seconds"])
        print(
            f"  logging rep {rep + 1}: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in times.items())
        )
    base = statistics.median(times["mlflow"])
    rows = []
    for name, label in (
        ("mlflow", "MLflow log_metrics per step"),
        ("shipyard", "Shipyard log_metrics per step"),
        ("shipyard-per-point", "Shipyard log_metric per point"),
    ):
        median = statistics.median(times[name])
        rows.append(
            [
                f"log {points:,} points: {label}",
                f"{_stats(times[name])} s",
                f"{points / median:,.0f} points/s",
                f"{base / median:.1f}x",
            ]
        )
    return rows


def _populate_shipyard(url: str, n_runs: int) -> None:
    from shipyard.clock import utc_now
    from shipyard.store.database import Database
    from shipyard.store.run_store import Point, RunStore

    db = Database(url)
    runs = RunStore(db)
    rng = random.Random(0)
    for i in range(n_runs):
        metrics, params, team = _run_row(i, rng)
        run = runs.create_run("search-bench", name=f"run-{i}", actor="bench")
        now = utc_now()
        runs.log_points(run.id, [Point(k, v, 0, now) for k, v in metrics.items()])
        runs.log_params(run.id, params)
        runs.set_run_tags(run.id, {"team": team})
        runs.end_run(run.id)
    db.close()


def _shipyard_search(url: str, home: Path, repeats: int) -> tuple[list[float], int]:
    import shipyard

    shipyard.configure(shipyard.Settings(home=home, db=url))
    times = []
    rows = 0
    for _ in range(repeats + 1):
        started = time.perf_counter()
        frame = shipyard.search_runs("search-bench", filter=FILTER, max_results=MAX_RESULTS)
        times.append(time.perf_counter() - started)
        rows = len(frame)
    shipyard.client().close()
    return times[1:], rows


def bench_search(mlflow_py: Path, n_runs: int, repeats: int, postgres: bool) -> list[list[str]]:
    import sqlalchemy as sa

    cache = WORK_DIR / f"search-{n_runs}"
    cache.mkdir(parents=True, exist_ok=True)
    mlflow_uri = f"sqlite:///{cache}/mlflow.db"
    if not (cache / "mlflow.done").exists():
        print(f"  populating MLflow with {n_runs:,} runs (cached for next time)...")
        (cache / "mlflow.db").unlink(missing_ok=True)
        took = _child(mlflow_py, "mlflow-populate", mlflow_uri, n_runs)["seconds"]
        print(f"  ... {took:.0f} s")
        (cache / "mlflow.done").touch()
    shipyard_url = f"sqlite:///{cache}/shipyard.db"
    if not (cache / "shipyard.done").exists():
        print(f"  populating Shipyard (SQLite) with {n_runs:,} runs...")
        (cache / "shipyard.db").unlink(missing_ok=True)
        started = time.perf_counter()
        _populate_shipyard(shipyard_url, n_runs)
        print(f"  ... {time.perf_counter() - started:.0f} s")
        (cache / "shipyard.done").touch()
    pg_url = None
    schema = f"bench_tracking_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(POSTGRES_URL) if postgres else None
    if admin is not None:
        with admin.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        pg_url = f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
        print(f"  populating Shipyard (PostgreSQL) with {n_runs:,} runs...")
        started = time.perf_counter()
        _populate_shipyard(pg_url, n_runs)
        print(f"  ... {time.perf_counter() - started:.0f} s")
    try:
        times: dict[str, list[float]] = {"mlflow": [], "sqlite": [], "postgres": []}
        rows: dict[str, int] = {}
        for _ in range(repeats):
            out = _child(mlflow_py, "mlflow-search", mlflow_uri, 3)
            times["mlflow"].append(statistics.median(out["times"]))
            rows["mlflow"] = out["rows"]
            got, rows["sqlite"] = _shipyard_search(shipyard_url, cache / "home", 3)
            times["sqlite"].append(statistics.median(got))
            if pg_url is not None:
                got, rows["postgres"] = _shipyard_search(pg_url, cache / "home-pg", 3)
                times["postgres"].append(statistics.median(got))
    finally:
        if admin is not None:
            with admin.begin() as conn:
                conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()
    base = statistics.median(times["mlflow"])
    out_rows = []
    for name, label in (
        ("mlflow", "MLflow (SQLite)"),
        ("sqlite", "Shipyard (SQLite)"),
        ("postgres", "Shipyard (PostgreSQL)"),
    ):
        if not times[name]:
            continue
        ms = [t * 1000 for t in times[name]]
        out_rows.append(
            [
                f"search {n_runs:,} runs, {FILTER!r}: {label}",
                f"{_stats(ms)} ms",
                f"{rows[name]} rows",
                f"{base / statistics.median(times[name]):.1f}x",
            ]
        )
    return out_rows


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _children()
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--metrics", type=int, default=100)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-postgres", action="store_true", help="Skip the PostgreSQL row.")
    parser.add_argument("--only", choices=["logging", "search"], default=None)
    args = parser.parse_args()
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    mlflow_py = _mlflow_python()
    sys.path.insert(0, str(BENCH_DIR))
    from _peers import peer_versions

    rows: list[list[str]] = []
    if args.only in (None, "logging"):
        print("logging...")
        rows += bench_logging(mlflow_py, args.steps, args.metrics, args.repeats)
    if args.only in (None, "search"):
        print("search...")
        rows += bench_search(mlflow_py, args.runs, args.repeats, not args.no_postgres)
    versions = peer_versions(mlflow_py.parent.parent, ["mlflow", "sqlalchemy"])
    import shipyard

    print()
    print(f"| measurement | time (median [min-max] of {args.repeats}) | figure | vs MLflow |")
    print("| --- | --- | --- | --- |")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print()
    print(
        f"MLflow {versions['mlflow']} (SQLAlchemy {versions['sqlalchemy']}), Shipyard "
        f"{shipyard.__version__}; Python {platform.python_version()}, {os.cpu_count()} cores; "
        f"command: .venv/bin/python bench/tracking.py {' '.join(sys.argv[1:])}"
    )


if __name__ == "__main__":
    main()
