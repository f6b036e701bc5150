"""Benchmark ``shipyard predict`` against the model's own ``predict`` on the same rows.

Data: an iris-like Parquet file (real iris rows drawn with replacement plus a
little noise) of 1M and 5M rows, generated once under ``bench/.work/batch/``.
Models: a LogisticRegression and a RandomForest (20 trees), trained on iris and
registered in a private SHIPYARD_HOME there; the very same fitted estimators
are saved with joblib for the reference.

Per size, model and repetition, interleaved (A B A B ...), each in its own process:

- shipyard: ``shipyard predict MODEL --input rows.parquet --output scores.parquet --json``,
  the real CLI: streams the file in chunks, checks every row against the
  signature, scores labels and probabilities (one model pass where the model
  allows), writes Parquet.
- reference: ``joblib.load`` the estimator, ``pd.read_parquet`` the whole file
  into memory, then ``predict`` + ``predict_proba`` on it, as a notebook would.

Reported: rows/s (shipyard: in-process rows/s from its summary, read + check +
predict + write; reference: predict + predict_proba only, the file already in
memory), wall time of the whole process, and peak RSS (``/usr/bin/time -v``, or
``os.wait4`` rusage without it). Flat RSS from 1M to 5M rows is the goal.

    .venv/bin/python bench/batch.py                          # 1M and 5M rows, 3 repetitions
    .venv/bin/python bench/batch.py --sizes 1000000 --repeats 1 --models lr

``--workers 1 2`` (the default) also runs ``shipyard predict --workers N`` for each
N: a local Dask cluster of N worker processes, one partition per 500,000-row row
group. Its rows/s is the job's own (from planning to the published output; the
cluster's start-up shows in the wall time), and its peak RSS is the largest
single process of the tree (``/usr/bin/time`` reports the biggest child), i.e.
the driver or one worker.

The file doubles as the child script (``--child shipyard|reference ...``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
WORK_DIR = BENCH_DIR / ".work" / "batch"
DATA_VERSION = 1  # bump when make_data changes, so cached Parquet is rebuilt
GEN_CHUNK = 500_000
TIME_BIN = Path("/usr/bin/time")
MODELS = {"lr": "LogisticRegression", "rf": "RandomForest(20 trees)"}
# Row groups are GEN_CHUNK rows: a parallel job gets one partition per row group.
PARTITION_ROWS = GEN_CHUNK


# -- children ---------------------------------------------------------------------


def child_shipyard(argv: list[str]) -> None:
    """Run the real root CLI app on ``argv`` (registering predict if main has not yet)."""
    from shipyard.cli.main import app

    if not any(c.name == "predict" for c in app.registered_commands):
        from shipyard.cli.predict import predict_command

        app.command("predict")(predict_command)
    app(argv, prog_name="shipyard")


def child_reference(model_path: str, data_path: str) -> None:
    """The model's own predict + predict_proba on the whole file loaded in memory."""
    import joblib
    import pandas as pd

    model = joblib.load(model_path)
    start = time.perf_counter()
    frame = pd.read_parquet(data_path)
    read = time.perf_counter() - start
    start = time.perf_counter()
    predictions = model.predict(frame)
    probabilities = model.predict_proba(frame)
    predict = time.perf_counter() - start
    assert len(predictions) == len(probabilities) == len(frame)
    print(json.dumps({"rows": len(frame), "read_seconds": read, "predict_seconds": predict}))


# -- data and models --------------------------------------------------------------


def ensure_data(rows: int) -> Path:
    """``rows`` iris-like rows in Parquet, written in pieces so generating stays small."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from shipyard.quickstart import iris_frame

    path = WORK_DIR / f"iris-{rows}-v{DATA_VERSION}.parquet"
    if path.exists() and pq.ParquetFile(path).metadata.num_rows == rows:
        return path
    X, _ = iris_frame()
    base = X.to_numpy()
    rng = np.random.default_rng(42)
    tmp = path.with_suffix(".tmp")
    schema = pa.schema([(name, pa.float64()) for name in X.columns])
    with pq.ParquetWriter(tmp, schema) as writer:
        for start in range(0, rows, GEN_CHUNK):
            n = min(GEN_CHUNK, rows - start)
            values = base[rng.integers(0, len(base), n)] + rng.normal(0, 0.05, (n, base.shape[1]))
            writer.write_table(
                pa.table({name: values[:, j].round(3) for j, name in enumerate(X.columns)})
            )
    tmp.replace(path)
    return path


def ensure_models(home: Path) -> dict[str, Path]:
    """Register iris-lr / iris-rf (once) and save the same estimators with joblib."""
    import joblib
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    from shipyard._client import Shipyard
    from shipyard.config import Settings
    from shipyard.quickstart import iris_frame

    estimators = {
        "lr": LogisticRegression(max_iter=1000),
        "rf": RandomForestClassifier(n_estimators=20, random_state=0),
    }
    paths = {key: WORK_DIR / f"iris-{key}.joblib" for key in estimators}
    client = Shipyard(Settings(home=home, user="bench"))
    try:
        if all(p.exists() for p in paths.values()) and all(
            _registered(client, f"iris-{k}@production") for k in estimators
        ):
            return paths
        X, y = iris_frame()
        for key, estimator in estimators.items():
            estimator.fit(X, y)
            version = client.registry.log_model(estimator, f"iris-{key}", sample=X)
            client.registry.set_alias(f"iris-{key}", "production", version.version)
            joblib.dump(estimator, paths[key])
    finally:
        client.close()
    return paths


def _registered(client: Any, ref: str) -> bool:
    from shipyard.errors import NotFoundError

    try:
        client.registry.resolve(ref)
    except NotFoundError:
        return False
    return True


# -- measuring --------------------------------------------------------------------


def measure(cmd: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Run ``cmd``; its wall time, peak RSS (MB) and the JSON it printed last."""
    use_time = TIME_BIN.exists()
    full = [str(TIME_BIN), "-v", *cmd] if use_time else cmd
    start = time.perf_counter()
    proc = subprocess.Popen(
        full, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    if use_time:
        stdout, stderr = proc.communicate()
        status = proc.returncode
        match = re.search(r"Maximum resident set size \(kbytes\): (\d+)", stderr)
        if match is None:
            raise RuntimeError(f"no RSS in /usr/bin/time output:\n{stderr[-2000:]}")
        rss_kb = int(match.group(1))
    else:
        assert proc.stdout is not None and proc.stderr is not None
        _, wait_status, usage = os.wait4(proc.pid, 0)
        stdout, stderr = proc.stdout.read(), proc.stderr.read()
        status = os.waitstatus_to_exitcode(wait_status)
        proc.returncode = status
        rss_kb = usage.ru_maxrss
    wall = time.perf_counter() - start
    if status != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({status}):\n{stdout}\n{stderr[-3000:]}")
    payload = json.loads(stdout[stdout.index("{") :])
    return {"wall": wall, "rss_mb": rss_kb / 1024, **payload}


def run_shipyard(
    model: str, data: Path, env: dict[str, str], workers: int | None = None
) -> dict[str, Any]:
    out = WORK_DIR / f"scores-{model}.parquet"
    argv = ["predict", f"iris-{model}", "--input", str(data), "--output", str(out), "--json"]
    if workers is not None:
        argv += ["--workers", str(workers), "--partition-rows", str(PARTITION_ROWS)]
    result = measure([sys.executable, __file__, "--child", "shipyard", *argv], env)
    if out.is_dir():
        shutil.rmtree(out)
    out.unlink(missing_ok=True)
    if result["rows_scored"] != result["rows_read"]:
        raise RuntimeError(f"shipyard rejected rows on clean data: {result}")
    return {
        "rows_per_s": result["rows_per_second"],
        "wall": result["wall"],
        "rss": result["rss_mb"],
    }


def run_reference(model_path: Path, data: Path, env: dict[str, str]) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", "reference", str(model_path), str(data)]
    result = measure(cmd, env)
    return {
        "rows_per_s": result["rows"] / result["predict_seconds"],
        "rows_per_s_with_read": result["rows"]
        / (result["read_seconds"] + result["predict_seconds"]),
        "wall": result["wall"],
        "rss": result["rss_mb"],
    }


def med(values: list[float], fmt: str) -> str:
    text = fmt.format(statistics.median(values))
    if len(values) > 1:
        text += f" [{fmt.format(min(values))}-{fmt.format(max(values))}]"
    return text


def versions() -> str:
    import numpy
    import pandas
    import pyarrow
    import sklearn

    import shipyard

    return (
        f"python {platform.python_version()}, shipyard {shipyard.__version__}, "
        f"scikit-learn {sklearn.__version__}, pandas {pandas.__version__}, "
        f"pyarrow {pyarrow.__version__}, numpy {numpy.__version__}"
    )


def machine() -> str:
    cpu = platform.processor() or "cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB RAM, {platform.system()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 5_000_000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", nargs="+", choices=sorted(MODELS), default=["lr", "rf"])
    parser.add_argument(
        "--workers",
        type=int,
        nargs="*",
        default=[1, 2],
        help="Also run `shipyard predict --workers N` (a local Dask cluster) for each N.",
    )
    args = parser.parse_args()

    WORK_DIR.mkdir(parents=True, exist_ok=True)
    home = WORK_DIR / "home"
    print("Preparing data and models...", flush=True)
    data = {n: ensure_data(n) for n in args.sizes}
    model_paths = ensure_models(home)
    env = {**os.environ, "SHIPYARD_HOME": str(home), "SHIPYARD_USER": "bench"}
    env.pop("SHIPYARD_DB", None)
    env.pop("SHIPYARD_ARTIFACTS", None)

    results: dict[tuple[int, str, str], list[dict[str, Any]]] = {}
    for rep in range(args.repeats):
        for n in args.sizes:
            for model in args.models:
                # Alternate who goes first, so neither always runs on a warmer cache.
                tools = ["shipyard", *(f"workers-{w}" for w in args.workers), "reference"]
                order = tools if rep % 2 == 0 else tools[::-1]
                for tool in order:
                    if tool == "shipyard":
                        r = run_shipyard(model, data[n], env)
                    elif tool.startswith("workers-"):
                        r = run_shipyard(model, data[n], env, int(tool.split("-")[1]))
                    else:
                        r = run_reference(model_paths[model], data[n], env)
                    results.setdefault((n, model, tool), []).append(r)
                    print(
                        f"  rep {rep + 1} {n:>9,} rows {model} {tool:9s} "
                        f"{r['rows_per_s']:>12,.0f} rows/s  wall {r['wall']:6.1f} s  "
                        f"peak RSS {r['rss']:7.0f} MB",
                        flush=True,
                    )

    header = (
        "| model | rows | tool | rows/s | wall s | peak RSS MB | rows/s ratio shipyard/reference |"
    )
    lines = [header, "|" + "---|" * 7]
    scaling: list[str] = []
    for n in args.sizes:
        for model in args.models:
            ship = results[(n, model, "shipyard")]
            ref = results[(n, model, "reference")]
            ratios = [s["rows_per_s"] / r["rows_per_s"] for s, r in zip(ship, ref, strict=True)]
            runs_by_tool = [("shipyard predict", ship, ratios)]
            for w in args.workers:
                par = results[(n, model, f"workers-{w}")]
                par_ratios = [
                    s["rows_per_s"] / r["rows_per_s"] for s, r in zip(par, ref, strict=True)
                ]
                runs_by_tool.append((f"shipyard predict --workers {w}", par, par_ratios))
            runs_by_tool.append(("model.predict (in memory)", ref, []))
            for tool, runs, tool_ratios in runs_by_tool:
                lines.append(
                    f"| {MODELS[model]} | {n:,} | {tool} | "
                    f"{med([r['rows_per_s'] for r in runs], '{:,.0f}')} | "
                    f"{med([r['wall'] for r in runs], '{:.1f}')} | "
                    f"{med([r['rss'] for r in runs], '{:.0f}')} | "
                    f"{med(tool_ratios, '{:.2f}') if tool_ratios else ''} |"
                )
            if len(args.workers) >= 2:
                lo, hi = min(args.workers), max(args.workers)
                scale = [
                    a["rows_per_s"] / b["rows_per_s"]
                    for a, b in zip(
                        results[(n, model, f"workers-{hi}")],
                        results[(n, model, f"workers-{lo}")],
                        strict=True,
                    )
                ]
                scaling.append(
                    f"{MODELS[model]}, {n:,} rows: --workers {hi} / --workers {lo} = "
                    f"{med(scale, '{:.2f}')}x"
                )
            with_read = [r["rows_per_s_with_read"] for r in ref]
            read_ratios = [s["rows_per_s"] / w for s, w in zip(ship, with_read, strict=True)]
            lines.append(
                f"| {MODELS[model]} | {n:,} | reference incl. pd.read_parquet | "
                f"{med(with_read, '{:,.0f}')} | (same run) | (same run) | "
                f"{med(read_ratios, '{:.2f}')} |"
            )
    print()
    print("\n".join(lines))
    print()
    for line in scaling:
        print(line)
    print()
    print(f"Repetitions: {args.repeats}, interleaved; median [min-max].")
    print(f"Versions: {versions()}")
    print(f"Machine: {machine()}")
    print(f"Peak RSS: {'/usr/bin/time -v' if TIME_BIN.exists() else 'os.wait4 rusage'}")
    print(f"Command: .venv/bin/python bench/batch.py {' '.join(sys.argv[1:])}".rstrip())
    shutil.rmtree(WORK_DIR / "home" / "cache" / "tmp", ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        if sys.argv[2] == "shipyard":
            child_shipyard(sys.argv[3:])
        elif sys.argv[2] == "reference":
            child_reference(*sys.argv[3:5])
        else:
            raise SystemExit(f"unknown child {sys.argv[2]!r}")
    else:
        main()
