"""Benchmark Shipyard's drift detector against Evidently's DataDriftPreset.

Same synthetic data for both (20 numerical + 5 categorical columns, drift
injected in 6 of them), written once to Parquet under ``bench/.work/``. Each
tool runs as a whole process, interleaved A B A B, and we record wall time and
the process's peak RSS (``os.wait4`` rusage); both produce the same things, a
JSON result and an HTML report:

- Shipyard: the real command, ``shipyard drift --reference REF --current CUR
  --json OUT --report HTML`` (interpreter start, imports, Parquet reads, compute,
  both reports);
- Evidently: a Python process in its own venv (``bench/.peers/evidently``) that
  reads both files, runs ``Report([DataDriftPreset()]).run(cur, ref)``, and saves
  ``snapshot.json()`` and ``snapshot.save_html``.

The table ends with a column-by-column comparison of test and verdict, which
must be identical. Evidently's compute alone (``Report.run``) is also shown.

    .venv/bin/python bench/drift.py                     # 10k, 100k and 1M rows
    .venv/bin/python bench/drift.py --sizes 10000 --repeats 3

The file doubles as the child script: ``--child evidently|shipyard REF CUR OUT``
runs one tool on two Parquet files and writes its per-column results as JSON
(``--child evidently --batch CASES.json OUT`` runs several in one process).
It must stay importable by Evidently's venv, so Shipyard is imported lazily.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
WORK_DIR = BENCH_DIR / ".work"
EVIDENTLY_REQUIREMENTS = ["evidently==0.7.*", "pandas<3"]
DATA_VERSION = 1  # bump when make_data changes, so cached Parquet is rebuilt

# Evidently's display names -> Shipyard's test names.
EVIDENTLY_NAMES = {
    "K-S p_value": "ks",
    "chi-square p_value": "chisquare",
    "Z-test p_value": "z",
    "Wasserstein distance (normed)": "wasserstein",
    "Jensen-Shannon distance": "jensenshannon",
    "PSI": "psi",
    "Kullback-Leibler divergence": "kl_div",
    "Hellinger distance": "hellinger",
}


# -- children -------------------------------------------------------------------


def child_evidently(ref_path: str, cur_path: str, options: dict) -> dict:
    """Run Evidently's DataDriftPreset; return per-column test, score, verdict."""
    import pandas as pd
    from evidently import Report
    from evidently.core.datasets import Dataset
    from evidently.presets import DataDriftPreset

    ref = pd.read_parquet(ref_path)
    cur = pd.read_parquet(cur_path)
    started = time.perf_counter()
    preset = DataDriftPreset(
        method=options.get("stattest"),
        threshold=options.get("threshold"),
        drift_share=options.get("drift_share", 0.5),
    )
    snapshot = Report([preset], include_tests=True).run(cur, ref)
    data = snapshot.dict()
    compute = time.perf_counter() - started
    if "outputs" in options:  # the benchmark: what `shipyard drift --json --report` writes
        out = Path(options["outputs"])
        out.with_suffix(".json").write_text(snapshot.json())
        snapshot.save_html(str(out.with_suffix(".html")))

    columns: dict[str, dict] = {}
    dataset: dict = {}
    for metric in data["metrics"]:
        config = metric["config"]
        if config["type"].endswith("ValueDrift"):
            columns[config["column"]] = {
                "stattest": EVIDENTLY_NAMES.get(config["method"], config["method"]),
                "threshold": config["threshold"],
                "score": metric["value"],
            }
        elif config["type"].endswith("DriftedColumnsCount"):
            value = metric["value"]
            dataset = {"n_drifted": int(value["count"]), "share": value["share"]}
    for test in data["tests"]:
        bound = test.get("bound_test") or {}
        params = test["metric_config"]["params"]
        if bound.get("type", "").endswith("ValueDriftBoundTest"):
            columns[params["column"]]["drift_detected"] = test["status"] == "FAIL"
        elif params["type"].endswith("DriftedColumnsCount"):
            dataset["dataset_drift"] = test["status"] == "FAIL"
    definition = Dataset.from_pandas(cur).data_definition
    for name in definition.get_numerical_columns():
        if name in columns:
            columns[name]["type"] = "numerical"
    for name in definition.get_categorical_columns():
        if name in columns:
            columns[name]["type"] = "categorical"
    return {"compute_s": compute, "columns": columns, "dataset": dataset}


def child_shipyard(ref_path: str, cur_path: str, options: dict) -> dict:
    """Run Shipyard's DriftDetector; same output shape as :func:`child_evidently`."""
    import pandas as pd

    from shipyard.drift import DriftDetector
    from shipyard.drift.profile import DEFAULT_MAX_ROWS

    ref = pd.read_parquet(ref_path)
    cur = pd.read_parquet(cur_path)
    started = time.perf_counter()
    detector = DriftDetector(
        stattest=options.get("stattest"),
        threshold=options.get("threshold"),
        drift_share=options.get("drift_share", 0.5),
        max_rows=options.get("max_rows", DEFAULT_MAX_ROWS),
    )
    result = detector.fit(ref).score(cur)
    compute = time.perf_counter() - started
    out = result.to_dict()
    columns = {c.pop("column"): c for c in out["columns"]}
    return {"compute_s": compute, "columns": columns, "dataset": out["dataset"]}


def run_child(argv: list[str]) -> None:
    """``TOOL REF CUR OUT [OPTIONS_JSON]``, or ``TOOL --batch CASES_JSON OUT``.

    A batch runs several cases in one process (Evidently imports once): the
    cases file lists ``{"reference", "current", "options"}`` objects and the
    output is the list of results in the same order.
    """
    tool = argv[0]
    runner = child_evidently if tool == "evidently" else child_shipyard
    if argv[1] == "--batch":
        cases = json.loads(Path(argv[2]).read_text())
        results = [runner(c["reference"], c["current"], c.get("options", {})) for c in cases]
        Path(argv[3]).write_text(json.dumps(results))
        return
    ref_path, cur_path, out_path = argv[1:4]
    options = json.loads(argv[4]) if len(argv) > 4 else {}
    Path(out_path).write_text(json.dumps(runner(ref_path, cur_path, options)))


# -- data -----------------------------------------------------------------------


def make_data(n: int, seed: int = 7):
    """Reference and current frames; drift in num_00..num_03 and cat_0..cat_1."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)

    def frame(drifted: bool):
        cols = {}
        for i in range(20):
            kind = i % 4
            shift = 0.6 if drifted and i < 4 else 0.0
            if kind == 0:
                values = rng.normal(10 + shift, 1, n)
            elif kind == 1:
                values = rng.lognormal(0 + shift, 0.5, n)
            elif kind == 2:
                values = rng.uniform(0, 1, n) + shift / 3
            else:
                values = rng.gamma(2 + shift, 2, n)
            if i % 7 == 3:
                values[rng.random(n) < 0.02] = np.nan  # some missing values
            cols[f"num_{i:02d}"] = values
        for j in range(5):
            levels = [f"level_{k}" for k in range(3 + j)]
            weights = np.linspace(1, 2, len(levels))
            if drifted and j < 2:
                weights = weights[::-1] ** 3
            cols[f"cat_{j}"] = rng.choice(levels, n, p=weights / weights.sum())
        return pd.DataFrame(cols)

    return frame(False), frame(True)


def ensure_data(n: int) -> tuple[Path, Path]:
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    ref_path = WORK_DIR / f"drift_v{DATA_VERSION}_{n}_reference.parquet"
    cur_path = WORK_DIR / f"drift_v{DATA_VERSION}_{n}_current.parquet"
    if not (ref_path.exists() and cur_path.exists()):
        ref, cur = make_data(n)
        ref.to_parquet(ref_path, index=False)
        cur.to_parquet(cur_path, index=False)
    return ref_path, cur_path


# -- measuring ------------------------------------------------------------------


def _shipyard_result(out: Path) -> dict:
    """The CLI's JSON result in the shape :func:`child_evidently` returns."""
    data = json.loads(out.read_text())
    columns = {c.pop("column"): c for c in data["columns"]}
    return {"compute_s": None, "columns": columns, "dataset": data["dataset"]}


def measure(python: Path, tool: str, ref: Path, cur: Path, options: dict) -> dict:
    """Run one whole process; wall time, peak RSS (MB) and its parsed output."""
    out = WORK_DIR / f"out_{tool}_{os.getpid()}.json"
    html = out.with_suffix(".html")
    if tool == "shipyard":
        # The real command, as a user runs it: exit 0 (no drift) or 3 (drift).
        cmd = [str(python.parent / "shipyard"), "drift", "--reference", str(ref)]
        cmd += ["--current", str(cur), "--json", str(out), "--report", str(html)]
        ok = (0, 3)
    else:
        cmd = [str(python), __file__, "--child", tool, str(ref), str(cur), str(out)]
        reports = WORK_DIR / f"evidently_{os.getpid()}"
        cmd.append(json.dumps({**options, "outputs": str(reports)}))
        ok = (0,)
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode not in ok:
        raise SystemExit(f"{tool} failed with exit code {proc.returncode}: {' '.join(cmd)}")
    result = _shipyard_result(out) if tool == "shipyard" else json.loads(out.read_text())
    out.unlink()
    html.unlink(missing_ok=True)
    for suffix in (".json", ".html"):  # Evidently's own reports
        (WORK_DIR / f"evidently_{os.getpid()}").with_suffix(suffix).unlink(missing_ok=True)
    return {"wall": wall, "rss_mb": usage.ru_maxrss / 1024, **result}


def summary(values: list[float], fmt: str = "{:.2f}") -> str:
    median, lo, hi = (fmt.format(v) for v in (statistics.median(values), min(values), max(values)))
    return f"{median} [{lo}-{hi}]"


def compare_columns(ev: dict, sy: dict) -> tuple[list[str], bool, float]:
    lines = [f"  {'column':<8} {'evidently':<28} {'shipyard':<28} {'|score diff|':>12}  same"]
    identical, worst = True, 0.0
    for name in sorted(set(ev["columns"]) | set(sy["columns"])):
        e, s = ev["columns"].get(name), sy["columns"].get(name)
        if e is None or s is None:
            identical = False
            left, right = ("missing" if x is None else "ok" for x in (e, s))
            lines.append(f"  {name:<8} {left:<28} {right:<28}")
            continue
        same = e["stattest"] == s["stattest"] and e["drift_detected"] == s["drift_detected"]
        diff = abs(float(e["score"]) - float(s["score"]))
        worst = max(worst, diff)
        identical &= same
        left = f"{e['stattest']} {e['score']:.4f} {'DRIFT' if e['drift_detected'] else 'ok'}"
        right = f"{s['stattest']} {s['score']:.4f} {'DRIFT' if s['drift_detected'] else 'ok'}"
        lines.append(f"  {name:<8} {left:<28} {right:<28} {diff:>12.2e}  {'yes' if same else 'NO'}")
    identical &= ev["dataset"].get("dataset_drift") == sy["dataset"]["dataset_drift"]
    return lines, identical, worst


def versions(python: Path, packages: list[str]) -> str:
    code = (
        "import importlib.metadata as m, sys\n"
        "print(', '.join(f'{p} {m.version(p)}' for p in sys.argv[1:]))"
    )
    cmd = [str(python), "-c", code, *packages]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        # Children take raw positional arguments (JSON included); no argparse.
        run_child(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="10000,100000,1000000", help="rows per side, e.g. 10000")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    sys.path.insert(0, str(BENCH_DIR))
    from _peers import ensure_peer_venv, peer_python

    ev_python = peer_python(ensure_peer_venv("evidently", EVIDENTLY_REQUIREMENTS))
    sy_python = Path(sys.executable)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    rows, details = [], []
    for n in sizes:
        ref, cur = ensure_data(n)
        runs: dict[str, list[dict]] = {"evidently": [], "shipyard": []}
        for rep in range(args.repeats):
            for tool, python in (("evidently", ev_python), ("shipyard", sy_python)):
                run = measure(python, tool, ref, cur, {})
                runs[tool].append(run)
                compute = "" if run["compute_s"] is None else f"compute={run['compute_s']:7.2f}s "
                print(
                    f"n={n:>8} rep={rep} {tool:<9} wall={run['wall']:7.2f}s "
                    f"{compute}rss={run['rss_mb']:7.0f}MB",
                    flush=True,
                )
        ev, sy = runs["evidently"], runs["shipyard"]
        lines, identical, worst = compare_columns(ev[-1], sy[-1])
        ev_wall, sy_wall = [r["wall"] for r in ev], [r["wall"] for r in sy]
        ev_cmp = [r["compute_s"] for r in ev]
        ev_rss, sy_rss = [r["rss_mb"] for r in ev], [r["rss_mb"] for r in sy]
        rows.append(
            f"| {n:>9,} | {summary(ev_wall)} | {summary(sy_wall)} | "
            f"{statistics.median(ev_wall) / statistics.median(sy_wall):5.1f}x | "
            f"{summary(ev_cmp)} | "
            f"{summary(ev_rss, '{:.0f}')} | {summary(sy_rss, '{:.0f}')} | "
            f"{statistics.median(sy_rss) / statistics.median(ev_rss):.2f} | "
            f"{'yes' if identical else 'NO'} | {worst:.1e} |"
        )
        details.append((n, lines))

    for n, lines in details:
        print(f"\nColumns at n={n:,} (last repetition):")
        print("\n".join(lines))
    print(
        "\nDrift preset, 20 numerical + 5 categorical columns, n rows per side, "
        f"median [min-max] of {args.repeats} interleaved runs"
    )
    print(
        "| rows/side | Evidently wall s | Shipyard wall s | speed-up | Evidently compute s | "
        "Evidently peak RSS MB | Shipyard peak RSS MB | RSS ratio | same test+verdict | "
        "max score diff |"
    )
    print("|" + "---|" * 10)
    print("\n".join(rows))
    common = ["pandas", "numpy", "scipy", "pyarrow"]
    print(f"\nEvidently venv: {versions(ev_python, ['evidently', *common])}")
    print(f"Shipyard venv:  {versions(sy_python, ['shipyard', *common])}")
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    models = [ln.split(":", 1)[1].strip() for ln in cpuinfo if ln.startswith("model name")]
    cpu = models[0] if models else platform.processor()
    py_version = platform.python_version()
    print(f"Machine: {cpu}, {os.cpu_count()} cores, Python {py_version}, {platform.system()}")
    flags = f"--sizes {args.sizes} --repeats {args.repeats}"
    print(f"Command: .venv/bin/python bench/drift.py {flags}")
    print("Shipyard profile: the reference sampled to 100,000 rows (the default).")
    print(
        "wall = whole process (interpreter start, imports, Parquet reads, compute, JSON and "
        "HTML reports): `shipyard drift --json --report` against Evidently's Report.run + "
        "json + save_html; Evidently compute = Report.run only."
    )
    print(f"Load average at the end: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
