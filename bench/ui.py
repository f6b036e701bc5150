"""Benchmark the web UI's pages on a big store: server time per page, median of 10.

The store (SQLite in a temporary folder, or ``--db URL``):

- 2,000 runs x 20 metrics x 100 steps (4M metric rows), 3 params and a tag each;
- 50 models x 20 versions; the versions of ``bench-00`` are real packages
  (logged through the registry, with a reference profile), the others rows;
- 1,000,000 prediction-log rows of ``bench-00`` over the last 30 days
  (one segment file a day, as a compacted log holds them), 100 rows a request.

Each page is fetched 10 times in-process through the real app (FastAPI's test
client: routing, the stores, the templates, no network), after one warm-up
fetch; the table shows the median and the slowest, against the issue's goals
(300 ms a page, 1 s for monitoring). There is no peer here: MLflow's UI is a
JavaScript app over a JSON API, not server-rendered pages to compare with.

    .venv/bin/python bench/ui.py                     # the full size
    .venv/bin/python bench/ui.py --scale 0.05        # 5%: while developing
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
sys.path[:0] = [str(REPO_DIR / "src")]

from shipyard._client import Shipyard  # noqa: E402
from shipyard.config import Settings  # noqa: E402
from shipyard.monitoring.records import PredictionBatch, events_table  # noqa: E402
from shipyard.store.run_query import RunQuery  # noqa: E402
from shipyard.store.schema import (  # noqa: E402
    ExperimentRow,
    ModelRow,
    ModelVersionRow,
    RunMetricRow,
    RunParamRow,
    RunRow,
    RunTagRow,
)
from shipyard.store.schema_tracking import RunLatestMetricRow  # noqa: E402

REPEATS = 10
GOAL_MS = 300.0
MONITORING_GOAL_MS = 1000.0


def _chunks(rows: list[dict], size: int = 50_000):  # type: ignore[no-untyped-def]
    for i in range(0, len(rows), size):
        yield rows[i : i + size]


def fill_runs(client: Shipyard, n_runs: int, n_metrics: int, n_steps: int) -> list[str]:
    engine = client.database.engine
    now = datetime.now(UTC)
    rng = np.random.default_rng(0)
    ids = [uuid.uuid4().hex for _ in range(n_runs)]
    with engine.begin() as conn:
        conn.execute(
            ExperimentRow.__table__.insert(), [{"id": 1, "name": "bench", "created_at": now}]
        )
        conn.execute(
            RunRow.__table__.insert(),
            [
                {
                    "id": run_id,
                    "experiment_id": 1,
                    "name": f"run-{i:04d}",
                    "status": "FINISHED" if i % 10 else "FAILED",
                    "start_time": now - timedelta(minutes=i),
                    "end_time": now - timedelta(minutes=i) + timedelta(seconds=30),
                    "created_by": "bench",
                }
                for i, run_id in enumerate(ids)
            ],
        )
        conn.execute(
            RunParamRow.__table__.insert(),
            [
                {"run_id": run_id, "key": key, "value": str(value)}
                for i, run_id in enumerate(ids)
                for key, value in (("lr", 10 ** -(i % 4)), ("depth", i % 8), ("seed", i))
            ],
        )
        conn.execute(
            RunTagRow.__table__.insert(),
            [
                {"run_id": r, "key": "team", "value": ("red", "blue")[i % 2]}
                for i, r in enumerate(ids)
            ],
        )
    steps = np.arange(n_steps)
    for run_index, run_id in enumerate(ids):
        base = rng.random(n_metrics)
        rows = [
            {
                "run_id": run_id,
                "key": f"m{k:02d}",
                "value": float(base[k] + 0.001 * s),
                "step": int(s),
                "timestamp": now,
            }
            for k in range(n_metrics)
            for s in steps
        ]
        if run_index % 50 == 0:
            print(f"  runs: {run_index}/{n_runs}", file=sys.stderr, flush=True)
        # The latest value of each metric, as the run store keeps it (the filter reads it).
        latest = [r for r in rows if r["step"] == n_steps - 1]
        with engine.begin() as conn:
            conn.execute(RunMetricRow.__table__.insert(), rows)
            conn.execute(RunLatestMetricRow.__table__.insert(), latest)
    return ids


def fill_models(client: Shipyard, n_models: int, n_versions: int) -> None:
    from sklearn.linear_model import LogisticRegression

    from shipyard.quickstart import iris_frame

    X, y = iris_frame()
    registry = client.registry
    for v in range(n_versions):
        model = LogisticRegression(max_iter=300, C=1.0 + v).fit(X, y)
        registry.log_model(model, "bench-00", sample=X, metrics={"accuracy": 0.9}, optimize=False)
    registry.set_alias("bench-00", "production", n_versions, reason="bench")
    client.deployments.create("web", "bench-00", n_versions, follows="production", reason="bench")
    engine = client.database.engine
    now = datetime.now(UTC)
    with engine.begin() as conn:
        for m in range(1, n_models):
            result = conn.execute(
                ModelRow.__table__.insert(),
                {
                    "name": f"bench-{m:02d}",
                    "description": "bulk",
                    "last_version": n_versions,
                    "archived": False,
                    "created_at": now,
                    "updated_at": now,
                },
            )
            model_id = result.inserted_primary_key[0]
            conn.execute(
                ModelVersionRow.__table__.insert(),
                [
                    {
                        "model_id": model_id,
                        "version": v + 1,
                        "manifest_digest": "0" * 64,
                        "flavor": "sklearn",
                        "status": "ready",
                        "metrics": {"accuracy": 0.9},
                        "created_by": "bench",
                        "created_at": now,
                    }
                    for v in range(n_versions)
                ],
            )


def fill_log(client: Shipyard, n_rows: int, version: int, days: int = 30) -> None:
    from shipyard.quickstart import iris_frame

    X, _ = iris_frame()
    store = client.prediction_log.store
    rng = np.random.default_rng(1)
    now = datetime.now(UTC)
    per_day = n_rows // days
    per_request = 100
    classes = ("setosa", "versicolor", "virginica")
    for d in range(days):
        day_start = datetime.combine(
            (now - timedelta(days=days - 1 - d)).date(), datetime.min.time(), UTC
        )
        batches = []
        for r in range(per_day // per_request):
            at = day_start + timedelta(seconds=float(rng.random() * 86_400))
            if at >= now:
                at = now - timedelta(seconds=float(rng.random() * 3600))
            rows = rng.integers(0, len(X), per_request)
            inputs = X.iloc[rows].reset_index(drop=True)
            if d >= days - 3:  # the last days drift
                inputs = inputs.assign(petal_length=inputs["petal_length"] + 2.0)
            proba = rng.dirichlet((1, 1, 1), per_request)
            batches.append(
                PredictionBatch(
                    request_id=f"d{d}-r{r}",
                    timestamp=at,
                    model="bench-00",
                    version=version,
                    inputs=inputs,
                    predictions=np.asarray(classes)[proba.argmax(axis=1)],
                    probabilities=proba,
                    classes=classes,
                    latency_seconds=float(rng.gamma(2.0, 0.002)),
                    source="online",
                )
            )
        table = events_table(batches)
        store.write_segment("predictions", "bench-00", day_start.date(), table)


def time_pages(
    client: Shipyard, pages: list[tuple[str, str, float]]
) -> list[tuple[str, float, float, float, int]]:
    from fastapi.testclient import TestClient

    from shipyard.ui.app import create_app

    http = TestClient(create_app(client), base_url="http://127.0.0.1")
    out = []
    for label, path, goal in pages:
        first = http.get(path)
        if first.status_code != 200:
            raise SystemExit(f"{path} answered {first.status_code}: {first.text[:400]}")
        times = []
        for _ in range(REPEATS):
            start = time.perf_counter()
            answer = http.get(path)
            times.append((time.perf_counter() - start) * 1000)
            assert answer.status_code == 200
        out.append((label, statistics.median(times), max(times), goal, len(first.content)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="Fraction of the full sizes.")
    parser.add_argument("--db", default=None, help="Metadata database URL (default: SQLite).")
    parser.add_argument("--keep", action="store_true", help="Keep the store's folder (printed).")
    parser.add_argument(
        "--reuse", type=Path, default=None, help="Time the pages of a store kept by --keep."
    )
    args = parser.parse_args()
    n_runs = max(4, int(2000 * args.scale))
    n_models = max(2, int(50 * args.scale))
    n_versions = max(2, int(20 * min(1.0, args.scale * 4)))
    n_rows = max(30_000, int(1_000_000 * args.scale))
    home = args.reuse or Path(tempfile.mkdtemp(prefix="shipyard-bench-ui-"))
    client = Shipyard(Settings(home=home, db=args.db, user="bench"))
    print(f"store: {home}", file=sys.stderr)
    t0 = time.perf_counter()
    if args.reuse is None:
        print(f"filling {n_runs} runs x 20 metrics x 100 steps...", file=sys.stderr)
        ids = fill_runs(client, n_runs, 20, 100)
        print(f"filling {n_models} models x {n_versions} versions...", file=sys.stderr)
        fill_models(client, n_models, n_versions)
        print(f"filling {n_rows} prediction-log rows...", file=sys.stderr)
        fill_log(client, n_rows, n_versions)
    else:
        ids = [r.id for r in client.run_queries.page(RunQuery(limit=2)).runs]
    fill_seconds = time.perf_counter() - t0
    pages = [
        ("models list", "/models", GOAL_MS),
        ("model page (20 versions)", "/models/bench-00", GOAL_MS),
        ("version page", f"/models/bench-00/versions/{n_versions}", GOAL_MS),
        ("runs table, newest 50", "/runs", GOAL_MS),
        (
            "runs sorted by a metric, 4 metric + 2 param columns",
            "/runs?sort=metric:m00&metrics=m00,m01,m02,m03&params=lr,depth",
            GOAL_MS,
        ),
        (
            "runs filtered (MLflow filter, status), page 3",
            "/runs?filter=tags.team%3D%27red%27%20and%20metrics.m00%3E0.3&status=FINISHED&page=3",
            GOAL_MS,
        ),
        ("run page (20 charts x 100 steps)", f"/runs/{ids[0]}", GOAL_MS),
        ("compare 2 runs", f"/compare?run={ids[0]}&run={ids[1]}", GOAL_MS),
        ("deployments", "/deployments", GOAL_MS),
        ("deployment page", "/deployments/web", GOAL_MS),
        ("monitoring, 24 h", "/monitoring/bench-00?window=24h", MONITORING_GOAL_MS),
        ("monitoring, 7 d", "/monitoring/bench-00?window=7d", MONITORING_GOAL_MS),
        ("monitoring, 30 d (all rows)", "/monitoring/bench-00?window=30d", MONITORING_GOAL_MS),
        ("loop", "/loop", GOAL_MS),
        ("audit", "/audit", GOAL_MS),
    ]
    results = time_pages(client, pages)
    backend = "PostgreSQL" if args.db and args.db.startswith("postgres") else "SQLite"
    print(
        f"\nshipyard ui, {backend}: {n_runs} runs x 20 metrics x 100 steps, {n_models} models x "
        f"{n_versions} versions, {n_rows:,} log rows (filled in {fill_seconds:.0f} s); "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    )
    print(f"{'page':58} {'median ms':>10} {'max ms':>8} {'goal ms':>8}  {'KB':>6}")
    failed = 0
    for label, median, worst, goal, size in results:
        mark = "" if median <= goal else "  OVER"
        failed += median > goal
        print(f"{label:58} {median:10.1f} {worst:8.1f} {goal:8.0f}  {size / 1024:6.0f}{mark}")
    print(
        f"{len(results) - failed} of {len(results)} pages within their goal (median of {REPEATS})."
    )
    client.close()


if __name__ == "__main__":
    main()
