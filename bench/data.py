"""Benchmark ``shipyard data snapshot`` against a plain second copy and ``dvc add``.

Data: a synthetic table of N rows (default 10M: an id, an event time, a
category and four float measures), written as ``v1.parquet``, then the same
rows plus 1 % new rows appended as ``v2.parquet`` (the whole file rewritten, as
a daily export is). Both files are zstd Parquet, like Shipyard's chunks, so the
byte counts compare storage schemes rather than codecs.

Per tool, in one run, one after another on the same two files:

- shipyard: ``shipyard data snapshot v1.parquet --name bench`` then the same for
  v2, the real CLI, on a private SHIPYARD_HOME (SQLite + local artifact folder);
  bytes = everything under the artifact folder.
- copy: both files kept (``cp``); bytes = v1 + v2.
- dvc: ``dvc add data.parquet`` in a fresh ``dvc init --no-scm`` folder, then
  the file replaced by v2 and ``dvc add`` again (DVC's own venv,
  ``bench/.peers/dvc``); bytes = the ``.dvc/cache`` folder.

Each tool's one-time set-up is timed apart from its versions, the same way for
both: ``dvc init`` for DVC, and for Shipyard creating its store
(``shipyard data list`` on the fresh SHIPYARD_HOME creates the metadata
database). Every command is a fresh process (start-up included), and Shipyard
syncs each stored chunk to disk (fsync) where DVC's cache copy does not.

Shipyard's own modules are compiled to bytecode first, as a wheel install has
them (DVC's venv has its modules compiled by pip).

Before each timed command the disk is settled (``os.sync()``, outside the
clock): otherwise the gigabyte the previous tool or run left in the page cache
is written back during the next one, and a tool that syncs what it stores
(Shipyard) waits behind it while one that does not (DVC) does not.

Reported: seconds for the set-up and per version, bytes stored for both
versions, and the ratios: bytes / one copy (``v1.parquet``; goal: shipyard <=
1.1x), shipyard time / dvc time for the two versions (goal: < 1, on the median
of the repetitions), and the same with each tool's set-up included. The tools
run ``--repeats`` times (3), interleaved (the order flips every repetition); a
single run is noise-dominated here (``dvc add`` alone varied from 2.9 to 3.5 s
for the two versions between back-to-back runs).

    .venv/bin/python bench/data.py                  # 10M rows, 3 repetitions
    .venv/bin/python bench/data.py --shape mixed    # with text, a time, missing values
    .venv/bin/python bench/data.py --rows 200000 --repeats 1    # quick
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
WORK_DIR = BENCH_DIR / ".work" / "data"
SHIPYARD = Path(sys.executable).with_name("shipyard")
DVC_REQUIREMENTS = ["dvc==3.*"]
sys.path.insert(0, str(BENCH_DIR))


def make_files(rows: int, folder: Path, shape: str = "numeric") -> tuple[Path, Path]:
    """v1 (``rows`` rows) and v2 (v1 plus 1 % appended), generated once per size and shape.

    ``mixed`` adds what real exports have besides numbers: a text column (a city
    out of 40), a time column and a measure with 10 % missing values; its rows
    are hashed and encoded through pandas, not from Arrow (see "Where a snapshot
    spends its time" in the README).
    """
    import numpy as np
    import pandas as pd

    v1, v2 = folder / "v1.parquet", folder / "v2.parquet"
    if v1.exists() and v2.exists():
        return v1, v2
    folder.mkdir(parents=True, exist_ok=True)
    extra = max(1, rows // 100)
    rng = np.random.default_rng(0)
    n = rows + extra
    frame = pd.DataFrame(
        {
            "id": np.arange(n, dtype=np.int64),
            "ts": 1_700_000_000 + np.sort(rng.integers(0, 86_400 * 365, n)),
            "store": rng.integers(0, 500, n).astype(np.int32),
            "price": np.round(rng.gamma(2.0, 10.0, n), 2),
            "qty": rng.integers(1, 20, n).astype(np.int16),
            "score": rng.normal(size=n),
            "discount": np.round(rng.uniform(0, 0.5, n), 3),
        }
    )
    if shape == "mixed":
        cities = np.array([f"city-{i:02d}" for i in range(40)], dtype=object)
        frame["city"] = cities[rng.integers(0, 40, n)]
        frame["at"] = pd.Timestamp("2025-01-01") + pd.to_timedelta(frame["ts"] - 1_700_000_000, "s")
        frame["basket"] = np.where(
            rng.random(n) < 0.1, np.nan, np.round(rng.gamma(3.0, 15.0, n), 2)
        )
    frame.iloc[:rows].to_parquet(v1, compression="zstd", index=False)
    frame.to_parquet(v2, compression="zstd", index=False)
    return v1, v2


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def run_shipyard(v1: Path, v2: Path, work: Path) -> dict[str, object]:
    home = work / "shipyard-home"
    shutil.rmtree(home, ignore_errors=True)
    env = {**os.environ, "SHIPYARD_HOME": str(home), "SHIPYARD_USER": "bench"}
    t0 = time.perf_counter()
    subprocess.run([SHIPYARD, "data", "list", "--json"], env=env, check=True, capture_output=True)
    setup = time.perf_counter() - t0
    times = []
    for path in (v1, v2):
        os.sync()  # settle the disk, outside the clock (see the module doc)
        t0 = time.perf_counter()
        subprocess.run(
            [SHIPYARD, "data", "snapshot", str(path), "--name", "bench", "--json"],
            env=env, check=True, capture_output=True,
        )  # fmt: skip
        times.append(time.perf_counter() - t0)
    artifacts = home / "artifacts"
    stored = folder_bytes(artifacts if artifacts.exists() else home)
    return {"setup": setup, "seconds": times, "bytes": stored}


def run_copy(v1: Path, v2: Path, work: Path) -> dict[str, object]:
    target = work / "copies"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    times = []
    for i, path in enumerate((v1, v2)):
        os.sync()  # settle the disk, outside the clock (see the module doc)
        t0 = time.perf_counter()
        shutil.copyfile(path, target / f"v{i + 1}.parquet")
        times.append(time.perf_counter() - t0)
    return {"setup": 0.0, "seconds": times, "bytes": folder_bytes(target)}


def run_dvc(v1: Path, v2: Path, work: Path) -> dict[str, object]:
    from _peers import ensure_peer_venv

    venv = ensure_peer_venv("dvc", DVC_REQUIREMENTS)
    dvc = venv / "bin" / "dvc"
    repo = work / "dvc-repo"
    shutil.rmtree(repo, ignore_errors=True)
    repo.mkdir(parents=True)
    t0 = time.perf_counter()
    subprocess.run([dvc, "init", "--no-scm", "-q"], cwd=repo, check=True)
    setup = time.perf_counter() - t0
    times = []
    for path in (v1, v2):
        shutil.copyfile(path, repo / "data.parquet")
        os.sync()  # settle the disk, outside the clock (see the module doc)
        t0 = time.perf_counter()
        subprocess.run([dvc, "add", "-q", "data.parquet"], cwd=repo, check=True)
        times.append(time.perf_counter() - t0)
    version = subprocess.run(
        [dvc, "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()
    return {
        "setup": setup,
        "seconds": times,
        "bytes": folder_bytes(repo / ".dvc" / "cache"),
        "version": version,
    }


def med(values: list[float], fmt: str = "{:.2f}") -> str:
    """Median [min-max] of the repetitions (the median alone for one)."""
    text = fmt.format(statistics.median(values))
    if len(values) > 1:
        text += f" [{fmt.format(min(values))}-{fmt.format(max(values))}]"
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument(
        "--repeats", type=int, default=3, help="Repetitions, interleaved (median [min-max])."
    )
    parser.add_argument(
        "--shape",
        choices=["numeric", "mixed"],
        default="numeric",
        help="numeric: 7 number columns; mixed: also text, a time and missing values.",
    )
    parser.add_argument("--json", action="store_true", help="Print the results as JSON too.")
    args = parser.parse_args()
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    print(f"load average at the start: {load}")
    work = WORK_DIR / (str(args.rows) if args.shape == "numeric" else f"{args.rows}-{args.shape}")
    v1, v2 = make_files(args.rows, work, args.shape)
    # As installed from a wheel (pip compiles every module, as it did DVC's): without
    # this, a machine that sets PYTHONDONTWRITEBYTECODE recompiles Shipyard's own
    # modules (an editable install) in every command, about 0.05 s each here.
    compileall.compile_dir(REPO_DIR / "src" / "shipyard", quiet=1)
    one_copy = v1.stat().st_size
    runners = {"shipyard": run_shipyard, "copy": run_copy, "dvc": run_dvc}
    runs: dict[str, list[dict[str, object]]] = {tool: [] for tool in runners}
    for rep in range(args.repeats):
        # Alternate who goes first, so neither always runs on a warmer cache.
        order = list(runners) if rep % 2 == 0 else list(runners)[::-1]
        for tool in order:
            runs[tool].append(runners[tool](v1, v2, work))
    machine = f"{platform.machine()}, {os.cpu_count()} cores, shared machine"
    print(
        f"data versions, {args.rows:,} rows ({args.shape}) then +1 % ({machine}); "
        f"one copy (v1.parquet) = {one_copy:,} bytes; {args.repeats} repetition(s), "
        "interleaved, median [min-max]"
    )
    print(
        f"{'tool':<10}{'setup s':>20}{'v1 s':>20}{'v2 s':>20}"
        f"{'bytes, 2 versions':>20}{'x one copy':>12}"
    )
    for tool, reps in runs.items():
        stored = int(reps[-1]["bytes"])  # type: ignore[call-overload]
        setup = [float(r["setup"]) for r in reps]  # type: ignore[arg-type]
        first = [float(r["seconds"][0]) for r in reps]  # type: ignore[index]
        second = [float(r["seconds"][1]) for r in reps]  # type: ignore[index]
        print(
            f"{tool:<10}{med(setup):>20}{med(first):>20}{med(second):>20}"
            f"{stored:>20,}{stored / one_copy:>12.3f}"
        )
    ratio_bytes = int(runs["shipyard"][-1]["bytes"]) / one_copy  # type: ignore[call-overload]
    ratios, with_setup = [], []
    for ship, dvc in zip(runs["shipyard"], runs["dvc"], strict=True):
        ship_s, dvc_s = sum(ship["seconds"]), sum(dvc["seconds"])  # type: ignore[arg-type]
        ratios.append(ship_s / dvc_s)
        with_setup.append((ship_s + ship["setup"]) / (dvc_s + dvc["setup"]))  # type: ignore[operator]
    ratio_time = statistics.median(ratios)
    print("shipyard time / dvc add time, per repetition: " + ", ".join(f"{r:.2f}" for r in ratios))
    print(
        f"shipyard bytes / one copy = {ratio_bytes:.3f} (goal <= 1.1: "
        f"{'met' if ratio_bytes <= 1.1 else 'MISSED'}); shipyard time / dvc add time = "
        f"{med(ratios)} (goal < 1, on the median: {'met' if ratio_time < 1 else 'MISSED'}); "
        f"with each tool's set-up: {med(with_setup)}; {runs['dvc'][-1]['version']}"
    )
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    print(f"load average at the end: {load}")
    if args.json:
        print(json.dumps({"rows": args.rows, "one_copy": one_copy, "runs": runs}))


if __name__ == "__main__":
    main()
