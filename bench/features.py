"""Benchmark the feature store: point-in-time training sets against Feast, online reads.

Data (generated once under ``bench/.work/features/``): synthetic driver statistics,
N drivers with a row in about one hour of three over 30 days (10,000 drivers give
about 2.4 million rows), four features and a created timestamp, in one Parquet file;
M entity rows with random drivers (0.5 % unknown) at random times, with a label.

Training set, each tool in its own process on the same files, interleaved
(A B A B ..., ``--training-repeats`` times; the median with [min-max] is shown):

- shipyard: ``FeatureService.training_set`` (DuckDB ASOF join), as a user calls it;
- feast-duckdb: Feast's ``get_historical_features`` with its DuckDB offline store;
- feast-file: the same with its file (Dask) offline store, on the first
  ``--file-rows`` entity rows only (it needs gigabytes at 100k rows; see
  /work/shared/BENCHMARKING.md), or skipped with ``--file-rows 0``.

Reported: wall time of the training-set call, peak RSS of the process (imports
included, for every tool), rows returned, and whether every value equals the
reference: an independent pandas ``merge_asof`` implementation of the rule over
all rows, itself checked against the row-by-row brute force of the tests on a
sample of 2,000 rows.

Online (in this process, after ``materialize``): ``online()`` of one key, as a
server calls it (definitions cached), p50 and p99 over 2,000 calls (and the p99 of
the calling thread's CPU time: the wall-time tail of a shared machine is scheduling), on SQLite
and on Redis (if one answers at 127.0.0.1:6379).

    .venv/bin/python bench/features.py              # 10k drivers, 1M entity rows
    .venv/bin/python bench/features.py --small      # 500 drivers, 20k entity rows
    .venv/bin/python bench/features.py --only serving   # the serving comparison alone
    .venv/bin/python bench/features.py --only training --file-rows 0   # the training sets alone

The file doubles as the child script (``--child shipyard ...``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
WORK_DIR = BENCH_DIR / ".work" / "features"
sys.path.insert(0, str(BENCH_DIR))
sys.path.insert(0, str(REPO_DIR / "tests" / "features"))

FEATURES = ["conv_rate", "acc_rate", "avg_daily_trips", "rating"]
TTL_SECONDS = 2 * 86400
DATA_VERSION = 2  # 2: the generator shared with the tests and the demo
# -- data ---------------------------------------------------------------------------


def make_data(folder: Path, drivers: int, entities: int) -> None:
    import numpy as np
    import pandas as pd

    from shipyard.features.examples import driver_stats

    stamp = folder / "data.json"
    wanted = {"version": DATA_VERSION, "drivers": drivers, "entities": entities}
    if stamp.exists() and json.loads(stamp.read_text()) == wanted:
        return
    folder.mkdir(parents=True, exist_ok=True)
    # The generator the tests and the demo use: a row in about one hour of three.
    stats = driver_stats(drivers, 30 * 24, seed=14, keep=1 / 3, rating=True)
    stats.to_parquet(folder / "driver_stats.parquet", index=False)
    rng = np.random.default_rng(15)
    hours = pd.date_range("2026-01-01", periods=30 * 24, freq="h", tz="UTC")
    known = np.arange(1001, 1001 + drivers)
    picked = rng.choice(known, entities)
    unknown = rng.random(entities) < 0.005
    picked[unknown] = rng.integers(1, 1000, unknown.sum())
    span = int((hours[-1] - hours[0]).total_seconds()) + 3 * 86400
    at = hours[0] + pd.to_timedelta(rng.integers(0, span, entities), "s")
    frame = pd.DataFrame(
        {"driver_id": picked, "event_timestamp": at, "label": rng.integers(0, 2, entities)}
    )
    frame["row_id"] = np.arange(entities)
    frame.to_parquet(folder / "entities.parquet", index=False)
    stamp.write_text(json.dumps(wanted))


def vector_reference(entities: Any, stats: Any) -> Any:
    """The rule with pandas: newest row at or before, within the TTL, latest created on ties."""
    import pandas as pd

    src = stats.sort_values(["event_timestamp", "created"]).drop_duplicates(
        ["driver_id", "event_timestamp"], keep="last"
    )
    src = src.rename(columns={"event_timestamp": "_feature_ts"})
    left = entities.sort_values("event_timestamp")
    merged = pd.merge_asof(
        left,
        src,
        left_on="event_timestamp",
        right_on="_feature_ts",
        by="driver_id",
        direction="backward",
        allow_exact_matches=True,
    )
    stale = merged["_feature_ts"] < merged["event_timestamp"] - pd.Timedelta(seconds=TTL_SECONDS)
    merged.loc[stale, FEATURES] = None
    return merged.sort_values("row_id").reset_index(drop=True)


def same_values(result: Any, reference: Any) -> tuple[bool, str]:
    """Every row once, in order, every value equal (nulls in the same places)."""
    import numpy as np

    if len(result) != len(reference):
        return False, f"{len(result)} rows, reference {len(reference)}"
    if result["row_id"].tolist() != reference["row_id"].tolist():
        return False, "rows in another order or not all there"
    for feature in FEATURES:
        a = result[feature].astype("float64").to_numpy(na_value=np.nan)
        b = reference[feature].astype("float64").to_numpy(na_value=np.nan)
        if not np.array_equal(a, b, equal_nan=True):
            return (
                False,
                f"{feature}: {int((~((a == b) | (np.isnan(a) & np.isnan(b)))).sum())} differ",
            )
    return True, "all equal"


# -- children -----------------------------------------------------------------------


def child_shipyard(folder: Path, output: Path) -> None:
    import pandas as pd
    from _rss import peak_rss_mb

    from shipyard.config import Settings
    from shipyard.features.examples import definitions_yaml
    from shipyard.features.service import FeatureService

    home = Path(tempfile.mkdtemp(prefix="shipyard-features-bench-"))
    (home / "features.yaml").write_text(
        definitions_yaml(folder / "driver_stats.parquet", f"{TTL_SECONDS}s", rating=True)
    )
    service = FeatureService.from_settings(Settings(home=home / "home", user="bench"))
    service.apply(home / "features.yaml")
    entities = pd.read_parquet(folder / "entities.parquet")
    started = time.perf_counter()
    result = service.training_set(entities, [f"driver_stats:{f}" for f in FEATURES])
    seconds = time.perf_counter() - started
    result.to_parquet(output, index=False)
    peak = peak_rss_mb()  # not ru_maxrss: it starts at the parent's size (see _rss)
    shutil.rmtree(home, ignore_errors=True)
    print(json.dumps({"seconds": seconds, "peak_rss_mb": peak, "rows": len(result)}))


# -- serving: a feature-backed model against the same model with inputs in the request --

WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = '%s'
wrk.headers["Content-Type"] = "application/json"
done = function(summary, latency, requests)
  io.write(string.format('WRKJSON {"requests": %%d, "duration_us": %%d, "non2xx": %%d, ' ..
    '"errors": %%d, "p99_us": %%d}\\n', summary.requests, summary.duration, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(99)))
end
"""


def serving_models(folder: Path, home: Path) -> dict[str, dict[str, Any]]:
    """Register ``eta-features`` (fetches by driver_id) and ``eta-inputs`` (the same fitted
    model, features in the request); materialize; return each one's request body."""
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    from shipyard._client import Shipyard
    from shipyard.config import Settings
    from shipyard.features.examples import definitions_yaml

    if home.exists():
        shutil.rmtree(home)
    home.mkdir(parents=True)
    (home / "features.yaml").write_text(
        definitions_yaml(folder / "driver_stats.parquet", "0", rating=True)
    )
    client = Shipyard(Settings(home=home, user="bench"))
    client.features.apply(home / "features.yaml")
    entities = pd.read_parquet(folder / "entities.parquet").head(20_000)
    refs = [f"driver_stats:{f}" for f in FEATURES]
    with client.tracker.start_run("eta") as run:
        train = client.features.training_set(entities, refs).dropna()
        X = train[FEATURES].astype("float64")
        model = LogisticRegression().fit(X, train["label"])
        client.registry.log_model(
            model, "eta-features", sample=X.head(200), run_id=run.id, features=run.features
        )
    client.registry.log_model(model, "eta-inputs", sample=X.head(200))
    client.features.materialize()
    online = client.features.get_online(refs, [{"driver_id": 1001}])[0]
    client.close()
    return {
        "eta-features": {"driver_id": 1001},
        "eta-inputs": {f: float(online[f]) for f in FEATURES},
    }


def _serve(model: str, home: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "SHIPYARD_HOME": str(home), "SHIPYARD_USER": "bench"}
    env.pop("SHIPYARD_ONLINE_STORE", None)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "shipyard.cli", "serve", f"{model}:1", "--host", "127.0.0.1",
             "--port", str(port), "--log-level", "warning"],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    import httpx

    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{model} server exited; see {log}")
        try:
            if httpx.get(url + "/ready", timeout=2).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{model} server never became ready; see {log}")


def _wrk(url: str, body: dict[str, Any], script: Path, seconds: float) -> tuple[float, float, int]:
    script.write_text(WRK_SCRIPT % json.dumps(body))
    done = subprocess.run(
        ["wrk", "-t1", "-c64", f"-d{seconds:g}s", "--timeout", "60s", "-s", str(script),
         url + "/predict"],
        capture_output=True, text=True, check=True, timeout=seconds + 120,
    )  # fmt: skip
    line = next(ln for ln in done.stdout.splitlines() if ln.startswith("WRKJSON "))
    data = json.loads(line.removeprefix("WRKJSON "))
    ok = data["requests"] - data["non2xx"]
    return ok / (data["duration_us"] / 1e6), data["p99_us"] / 1000, data["non2xx"] + data["errors"]


def serving_throughput(folder: Path, seconds: float, repeats: int) -> dict[str, list[Any]]:
    """requests/s and p99 at 64 clients, each server alone, interleaved A B A B."""
    home = folder / "serving-home"
    bodies = serving_models(folder, home)
    servers = {m: _serve(m, home, folder / f"{m}.log") for m in bodies}
    results: dict[str, list[Any]] = {m: [] for m in bodies}
    try:
        for model, (_, url) in servers.items():  # warm-up
            _wrk(url, bodies[model], folder / f"{model}.lua", 3)
        for _ in range(repeats):
            for model, (_, url) in servers.items():
                results[model].append(_wrk(url, bodies[model], folder / f"{model}.lua", seconds))
    finally:
        for proc, _ in servers.values():
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
    return results


# -- parent -------------------------------------------------------------------------


def run_child(command: list[str]) -> dict[str, Any]:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or ["failed"])[-1][:200]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _percentiles(call: Any, n: int = 2000) -> tuple[float, float, float]:
    """p50 and p99 of wall time, and p99 of the calling thread's CPU time (ms): on a
    shared machine the wall-time tail is mostly waiting to be scheduled again (after
    a preemption, or for Redis's answer); the CPU time is what the code itself costs."""
    for i in range(200):  # warm-up
        call(i)
    times, cpu = [], []
    for i in range(n):
        started, started_cpu = time.perf_counter(), time.thread_time()
        call(i)
        times.append((time.perf_counter() - started) * 1000)
        cpu.append((time.thread_time() - started_cpu) * 1000)
    times.sort()
    cpu.sort()
    p99 = int(len(times) * 0.99) - 1
    return statistics.median(times), times[p99], cpu[p99]


def online_latency(folder: Path, redis_url: str | None) -> dict[str, tuple[float, float, float]]:
    """p50 and p99 (ms) of one-key reads: ``get_online`` (records, what ``features get``
    calls) and ``online`` (a DataFrame, what a server builds), definitions cached."""
    from shipyard.config import Settings
    from shipyard.features.examples import definitions_yaml
    from shipyard.features.service import FeatureService

    out: dict[str, tuple[float, float, float]] = {}
    stores = {"sqlite": None}
    if redis_url:
        stores["redis"] = f"{redis_url}?key_prefix=bench-features-{os.getpid()}"
    for name, url in stores.items():
        home = Path(tempfile.mkdtemp(prefix="shipyard-online-bench-"))
        (home / "features.yaml").write_text(
            definitions_yaml(folder / "driver_stats.parquet", "0", rating=True)
        )
        service = FeatureService.from_settings(
            Settings(home=home / "home", user="bench", online_store=url)
        )
        service.apply(home / "features.yaml")
        service.materialize()
        catalog = service.catalog()
        refs = [f"driver_stats:{f}" for f in FEATURES]
        # Called at once, inside this iteration: the loop variables are the current ones.
        out[f"{name}, features get (records)"] = _percentiles(
            lambda i: service.get_online(refs, [{"driver_id": 1001 + i % 400}], catalog=catalog)  # noqa: B023
        )
        out[f"{name}, DataFrame (serving)"] = _percentiles(
            lambda i: service.online(refs, [{"driver_id": 1001 + i % 400}], catalog=catalog)  # noqa: B023
        )
        if name == "redis":
            import redis

            client = redis.Redis.from_url(redis_url)  # type: ignore[arg-type]
            keys = list(client.scan_iter(match=f"bench-features-{os.getpid()}:*"))
            for start in range(0, len(keys), 10_000):
                client.delete(*keys[start : start + 10_000])
        service.close()
        shutil.rmtree(home, ignore_errors=True)
    return out


def print_serving(serving: dict[str, list[Any]]) -> None:
    print(
        "\n| serving at 64 clients (wrk, 1 worker) | requests/s: median (runs) | p99 | failures |"
    )
    print("|---|---:|---:|---:|")
    rps = {}
    for model, results in serving.items():
        rps[model] = statistics.median(r[0] for r in results)
        p99 = statistics.median(r[1] for r in results)
        runs_text = ", ".join(f"{r[0]:.0f}" for r in results)
        failures = sum(r[2] for r in results)
        print(f"| {model} | {rps[model]:.0f} ({runs_text}) | {p99:.1f} ms | {failures} |")
    ratio = rps["eta-features"] / rps["eta-inputs"]
    print(f"\nfeature-backed / inputs in the request: {ratio:.2f}x the requests/s")


def serving_only(args: argparse.Namespace) -> None:
    """``--only serving``: the same data and servers as the full run, nothing else."""
    if not shutil.which("wrk"):
        raise SystemExit("--only serving needs wrk on the PATH")
    folder = WORK_DIR / f"d{args.drivers}-e{args.entities}"
    print(f"data: {args.drivers} drivers, {args.entities} entity rows in {folder}", flush=True)
    make_data(folder, args.drivers, args.entities)
    print_serving(serving_throughput(folder, args.serving_seconds or 15.0, args.repeats))
    print(
        f"\n{platform.machine()}, {os.cpu_count()} cores; "
        f"`{' '.join(['.venv/bin/python', 'bench/features.py', *sys.argv[1:]])}`"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--small", action="store_true", help="500 drivers, 20k entity rows")
    parser.add_argument("--drivers", type=int, default=10_000)
    parser.add_argument("--entities", type=int, default=1_000_000)
    parser.add_argument(
        "--file-rows",
        type=int,
        default=100_000,
        help="entity rows given to Feast's file store (0: skip it)",
    )
    parser.add_argument(
        "--serving-seconds",
        type=float,
        default=15.0,
        help="seconds of wrk load per serving run (0: skip serving)",
    )
    parser.add_argument("--repeats", type=int, default=2, help="serving runs per server")
    parser.add_argument(
        "--training-repeats", type=int, default=3, help="training-set runs per tool, interleaved"
    )
    parser.add_argument(
        "--only",
        choices=["serving", "training"],
        help="run one part alone (serving: the two servers under wrk, no training sets, no "
        "Feast; training: the training sets against Feast, no online reads, no serving)",
    )
    parser.add_argument("--child", choices=["shipyard"])
    parser.add_argument("--folder")
    parser.add_argument("--output")
    args = parser.parse_args()
    if args.child:
        child_shipyard(Path(args.folder), Path(args.output))
        return
    if args.small:
        args.drivers, args.entities, args.file_rows = 500, 20_000, min(args.file_rows, 5_000)
        args.serving_seconds = min(args.serving_seconds, 5.0)
    if args.only == "serving":
        serving_only(args)
        return

    import pandas as pd
    from _peers import ensure_peer_venv, peer_python, peer_versions
    from driver_data import reference
    from feast_runner import FEAST_REQUIREMENTS

    folder = WORK_DIR / f"d{args.drivers}-e{args.entities}"
    print(f"data: {args.drivers} drivers, {args.entities} entity rows in {folder}", flush=True)
    make_data(folder, args.drivers, args.entities)
    stats = pd.read_parquet(folder / "driver_stats.parquet")
    entities = pd.read_parquet(folder / "entities.parquet")
    expected = vector_reference(entities, stats)
    sample = entities.sample(min(2000, len(entities)), random_state=0).sort_values("row_id")
    brute = reference(
        sample, stats, keys=["driver_id"], features=FEATURES, ttl=pd.Timedelta(seconds=TTL_SECONDS)
    )
    ok, why = same_values(
        pd.DataFrame(brute).assign(row_id=sample["row_id"].to_numpy()),
        expected.set_index("row_id").loc[sample["row_id"]].reset_index(),
    )
    print(f"reference (merge_asof) against the brute force on 2,000 rows: {why}", flush=True)
    assert ok, why

    feast = peer_python(ensure_peer_venv("feast", FEAST_REQUIREMENTS))
    runs: dict[str, dict[str, Any]] = {}
    out = folder / "out"
    out.mkdir(exist_ok=True)
    feast_args = [
        "--stats",
        str(folder / "driver_stats.parquet"),
        "--ttl-seconds",
        str(TTL_SECONDS),
        "--features",
        ",".join(FEATURES),
    ]
    commands = {
        "shipyard": [
            sys.executable, __file__, "--child", "shipyard", "--folder", str(folder),
            "--output", str(out / "shipyard.parquet"),
        ],
        "feast-duckdb": [
            str(feast), str(BENCH_DIR / "feast_runner.py"), *feast_args,
            "--entities", str(folder / "entities.parquet"), "--store", "duckdb",
            "--output", str(out / "feast-duckdb.parquet"),
        ],
    }  # fmt: skip
    every: dict[str, list[dict[str, Any]]] = {name: [] for name in commands}
    for _ in range(args.training_repeats):  # interleaved: A B A B ...
        for name, command in commands.items():
            every[name].append(run_child(command))
            print(f"{name}:", every[name][-1], flush=True)
    for name, results in every.items():
        good = [r for r in results if "error" not in r]
        if not good:
            runs[name] = results[-1]
            continue
        runs[name] = {
            "seconds": statistics.median(r["seconds"] for r in good),
            "peak_rss_mb": statistics.median(r["peak_rss_mb"] for r in good),
            "rows": good[-1]["rows"],
            "all_seconds": [r["seconds"] for r in good],
            "all_peak": [r["peak_rss_mb"] for r in good],
        }
    if args.file_rows:
        subset = folder / f"entities-{args.file_rows}.parquet"
        entities.head(args.file_rows).to_parquet(subset, index=False)
        runs["feast-file"] = run_child(
            [
                str(feast),
                str(BENCH_DIR / "feast_runner.py"),
                *feast_args,
                "--entities",
                str(subset),
                "--store",
                "file",
                "--output",
                str(out / "feast-file.parquet"),
            ]
        )
        print("feast-file:", runs["feast-file"], flush=True)

    checks = {}
    for name, run in runs.items():
        if "error" in run:
            checks[name] = "error"
            continue
        result = pd.read_parquet(out / f"{name}.parquet")
        want = expected if name != "feast-file" else expected.head(args.file_rows)
        checks[name] = same_values(result, want)[1]

    redis_url = "redis://127.0.0.1:6379/0"
    try:
        import redis

        redis.Redis.from_url(redis_url, socket_connect_timeout=1).ping()
    except Exception:
        redis_url = None  # type: ignore[assignment]
    latency = {} if args.only == "training" else online_latency(folder, redis_url)
    serving = (
        serving_throughput(folder, args.serving_seconds, args.repeats)
        if (args.serving_seconds and shutil.which("wrk") and args.only != "training")
        else {}
    )

    versions = peer_versions(feast.parent.parent, ["feast", "duckdb", "pandas"])
    import duckdb

    print()
    print(
        f"## Feature store ({args.drivers} drivers, {len(stats):,} feature rows, "
        f"{args.entities:,} entity rows)"
    )
    print("| training set | entity rows | wall time | peak RSS | rows | values vs reference |")
    print("|---|---:|---:|---:|---:|---|")
    for name, run in runs.items():
        rows = args.file_rows if name == "feast-file" else args.entities
        if "error" in run:
            print(f"| {name} | {rows:,} | failed: {run['error']} | | | |")
            continue
        spread = ""
        if len(run.get("all_seconds", [])) > 1:
            spread = f" [{min(run['all_seconds']):.2f}-{max(run['all_seconds']):.2f}]"
        print(
            f"| {name} | {rows:,} | {run['seconds']:.2f} s{spread} | {run['peak_rss_mb']:.0f} MB "
            f"| {run['rows']:,} | {checks[name]} |"
        )
    ship, fd = runs.get("shipyard", {}), runs.get("feast-duckdb", {})
    if "seconds" in ship and "seconds" in fd:
        print(
            f"\nshipyard vs feast-duckdb: {fd['seconds'] / ship['seconds']:.1f}x faster, "
            f"{ship['peak_rss_mb'] / fd['peak_rss_mb']:.2f}x the peak memory"
        )
    if latency:
        print("\n| online read, one key, in process | p50 | p99 | p99 of CPU time |")
        print("|---|---:|---:|---:|")
    for name, (p50, p99, cpu99) in latency.items():
        print(f"| {name} | {p50:.3f} ms | {p99:.3f} ms | {cpu99:.3f} ms |")
    if serving:
        print_serving(serving)
    print(
        f"\nFeast {versions['feast']} (its venv: duckdb {versions['duckdb']}, pandas "
        f"{versions['pandas']}); Shipyard's duckdb {duckdb.__version__}; "
        f"{platform.machine()}, {os.cpu_count()} cores; "
        f"`{' '.join(['.venv/bin/python', 'bench/features.py', *sys.argv[1:]])}`"
    )


if __name__ == "__main__":
    main()
