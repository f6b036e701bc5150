"""How long the ``shipyard`` command takes before it does any work.

Every CLI call pays the start-up: the interpreter, then every module the
command's import chain pulls in. This script times whole processes (what a
user waits for), median of N runs with [min-max] and the CPU time, for:

- ``shipyard --help``
- ``shipyard models list`` on SQLite, in a home holding a few versions
- ``python -c "import shipyard.cli.main"`` (imports only)
- ``python -c "pass"`` (the interpreter alone, the floor)

and lists the heaviest imports of ``shipyard.cli.main`` from ``-X importtime``.
It ends with the two start-up goals, each MET or MISSED by its median:
``shipyard --help`` under 0.4 s and ``shipyard models list`` under 0.8 s.
The machine may be shared: the load average is printed with the figures.

    .venv/bin/python bench/cli_startup.py            # 10 runs each
    .venv/bin/python bench/cli_startup.py --runs 20
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SHIPYARD = str(BIN / "shipyard")

# command label -> the median wall time it must stay under, in seconds
GOALS = {"shipyard --help": 0.4, "shipyard models list (SQLite)": 0.8}

# A home with two models and three versions, made once before timing.
SETUP = """
import sys
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
import shipyard
from shipyard.config import Settings

shipyard.configure(Settings(home=sys.argv[1]))
X, y = load_iris(return_X_y=True, as_frame=True)
for name, runs in (("iris", 2), ("flowers", 1)):
    for c in range(runs):
        model = LogisticRegression(C=1.0 + c, max_iter=300).fit(X, y)
        shipyard.log_model(model, name, sample=X)
"""


def time_command(
    argv: list[str], env: dict[str, str], runs: int
) -> tuple[list[float], list[float]]:
    """(wall seconds, CPU seconds) per run. On a loaded machine the wall time
    includes waiting for a core; the CPU time (user + system) does not."""
    wall, cpu = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL)
        wall.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return wall, cpu


def heaviest_imports(env: dict[str, str], top: int) -> list[tuple[int, str]]:
    """(cumulative microseconds, module) for what ``shipyard.cli.main`` imports
    directly and for every third-party top-level package, slowest first."""
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import shipyard.cli.main"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stderr
    rows: dict[str, int] = {}
    for line in out.splitlines():
        parts = line.split("|")
        if len(parts) != 3 or not parts[1].strip().isdigit():
            continue
        field = parts[2].rstrip()
        name = field.strip()
        depth = (len(field) - len(field.lstrip()) - 1) // 2  # -X importtime indents 2 per level
        direct = depth == 1
        third_party = "." not in name and not name.startswith(("shipyard", "_"))
        if direct or third_party:
            rows[name] = max(rows.get(name, 0), int(parts[1]))
    return sorted(((t, n) for n, t in rows.items()), reverse=True)[:top]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--top", type=int, default=12, help="heaviest imports to list")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="shipyard-cli-bench-") as tmp:
        env = {**os.environ, "SHIPYARD_HOME": tmp, "COLUMNS": "120"}
        subprocess.run([sys.executable, "-c", SETUP, tmp], env=env, check=True)
        cases = {
            "python -c pass (floor)": [sys.executable, "-c", "pass"],
            "import shipyard.cli.main": [sys.executable, "-c", "import shipyard.cli.main"],
            "shipyard --help": [SHIPYARD, "--help"],
            "shipyard models list (SQLite)": [SHIPYARD, "models", "list"],
        }
        results, cpu = {}, {}
        for label, argv in cases.items():
            time_command(argv, env, 1)  # warm the page cache and bytecode
            results[label], cpu[label] = time_command(argv, env, args.runs)
        imports = heaviest_imports(env, args.top)

    print(f"\nCLI start-up, median of {args.runs} runs [min-max], seconds")
    print("| command | wall median | wall min-max | CPU median |")
    print("|---|---|---|---|")
    for label, times in results.items():
        print(
            f"| `{label}` | {statistics.median(times):.3f} | "
            f"{min(times):.3f}-{max(times):.3f} | {statistics.median(cpu[label]):.3f} |"
        )
    print(f"\nGoals (median of {args.runs} runs):")
    for label, goal in GOALS.items():
        median = statistics.median(results[label])
        verdict = "MET" if median < goal else "MISSED"
        print(
            f"  {verdict:6}  `{label}`: {median:.3f} s wall (goal < {goal} s), "
            f"{statistics.median(cpu[label]):.3f} s CPU"
        )
    print(f"\nHeaviest imports of shipyard.cli.main (cumulative ms, top {args.top}):")
    for micros, name in imports:
        print(f"  {micros / 1000:8.1f}  {name}")
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"\nPython {platform.python_version()} on {platform.machine()}, "
        f"{os.cpu_count()} cores, load average {load}; "
        f"command: .venv/bin/python bench/cli_startup.py --runs {args.runs}"
    )


if __name__ == "__main__":
    main()
