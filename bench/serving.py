"""Benchmark ``shipyard serve`` against the course's reference app, side by side.

Servers (each one uvicorn worker, on 127.0.0.1, started and stopped by PID):

- ``reference``: ``bench/reference_app.py``, the course's FastAPI app (joblib model,
  ``predict`` + ``predict_proba`` per request), started the way the course does
  (``uvicorn reference_app:app``, uvicorn's defaults).
- ``shipyard``: ``shipyard serve MODEL`` (metrics on; the model loaded from the
  registry, signature-checked, with probabilities and request ids in the answer).

Models: iris LogisticRegression and RandomForest(100 trees), fitted once on the
course's arrays; the *same fitted objects* are saved with joblib for the
reference and registered in a private Shipyard home for shipyard.

Load: wrk (Debian's ``wrk``) with a small Lua script that POSTs the course's
record to ``/predict``; non-2xx answers count as failures, not throughput. Each
(model, concurrency) point runs every server in turn, interleaved A B A B over
``--reps`` repetitions, after a warm-up; the table shows the median
[min-max] of requests/s and the median p50/p99 latency, and the ratio
shipyard/reference.

    .venv/bin/python bench/serving.py                      # 10 s per point, 3 repetitions
    .venv/bin/python bench/serving.py --duration 5 --reps 1 --models lr

To add a peer (MLflow, BentoML: issue 7), add a :class:`Server` whose
``command`` starts it from its own venv (see ``bench/_peers.py``) and list it
in ``SERVERS``; everything else (warm-up, interleaving, the table) is shared.

The file doubles as the child script that runs the real CLI
(``--child-shipyard serve ...``).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
WORK_DIR = BENCH_DIR / ".work" / "serving"
PYTHON = sys.executable
RECORD = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
MODELS = {"lr": "LogisticRegression", "rf": "RandomForest(100)"}
PACKAGES = [
    "fastapi",
    "starlette",
    "uvicorn",
    "uvloop",
    "httptools",
    "pydantic",
    "scikit-learn",
    "numpy",
    "pandas",
    "orjson",
    "prometheus-client",
    "shipyard",
]
WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = '%s'
wrk.headers["Content-Type"] = "application/json"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests": %%d, "duration_us": %%d, "non2xx": %%d, "connect": %%d, ' ..
    '"read": %%d, "write": %%d, "timeout": %%d, "p50_us": %%d, "p99_us": %%d}\\n',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


# -- the servers ---------------------------------------------------------------------


@dataclass
class Server:
    """How to start one server for one model; ``command`` returns argv and extra env."""

    name: str
    command: Callable[[str, int], tuple[list[str], dict[str, str]]]
    ready_path: str
    cwd: Path = REPO_DIR


def _reference_command(model: str, port: int) -> tuple[list[str], dict[str, str]]:
    argv = [PYTHON, "-m", "uvicorn", "reference_app:app", "--host", "127.0.0.1"]
    return [*argv, "--port", str(port)], {"MODEL_PATH": str(WORK_DIR / f"{model}.joblib")}


def _shipyard_command(model: str, port: int) -> tuple[list[str], dict[str, str]]:
    argv = [PYTHON, str(Path(__file__)), "--child-shipyard", "serve", f"bench-{model}"]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    return argv, {"SHIPYARD_HOME": str(WORK_DIR / "home"), "SHIPYARD_USER": "bench"}


SERVERS = [
    Server("reference", _reference_command, "/health", cwd=BENCH_DIR),
    Server("shipyard", _shipyard_command, "/ready"),
]


@dataclass
class Running:
    server: Server
    proc: subprocess.Popen[bytes]
    url: str
    log: Path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str, timeout: float = 5) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _post(url: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def start(server: Server, model: str) -> Running:
    port = _free_port()
    argv, extra = server.command(model, port)
    log = WORK_DIR / f"{server.name}-{model}.log"
    env = {**os.environ, **extra}
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, cwd=server.cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
    running = Running(server, proc, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + 120
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{server.name} exited early; see {log}:\n{log.read_text()}")
        try:
            if _get(running.url + server.ready_path)[0] == 200:
                return running
        except OSError:
            pass
        if time.monotonic() > deadline:
            stop(running)
            raise RuntimeError(f"{server.name} never became ready; see {log}")
        time.sleep(0.1)


def stop(running: Running) -> None:
    running.proc.send_signal(signal.SIGTERM)
    try:
        running.proc.wait(30)
    except subprocess.TimeoutExpired:
        running.proc.kill()
        running.proc.wait(10)


# -- the load -----------------------------------------------------------------------


@dataclass
class Result:
    server: str
    model: str
    concurrency: int
    rps: float
    p50_ms: float
    p99_ms: float
    failures: int
    requests: int


def run_wrk(url: str, concurrency: int, duration: float, script: Path) -> dict[str, Any]:
    argv = ["wrk", "-t1", f"-c{concurrency}", f"-d{duration:g}s", "--timeout", "60s"]
    done = subprocess.run(
        [*argv, "-s", str(script), url + "/predict"],
        capture_output=True,
        text=True,
        timeout=duration + 120,
        check=True,
    )
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no summary:\n{done.stdout}\n{done.stderr}")
    data: dict[str, Any] = json.loads(line.removeprefix("WRKJSON "))
    return data


def measure(
    running: Running, model: str, concurrency: int, duration: float, script: Path
) -> Result:
    data = run_wrk(running.url, concurrency, duration, script)
    socket_errors = data["connect"] + data["read"] + data["write"] + data["timeout"]
    ok = data["requests"] - data["non2xx"]
    seconds = data["duration_us"] / 1e6
    return Result(
        server=running.server.name,
        model=model,
        concurrency=concurrency,
        rps=ok / seconds,
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        failures=data["non2xx"] + socket_errors,
        requests=data["requests"],
    )


# -- setup --------------------------------------------------------------------------


def prepare_models(models: list[str]) -> None:
    """Fit each model once; save it with joblib and register the same object in Shipyard."""
    import joblib
    import pandas as pd
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    from shipyard.client import Shipyard
    from shipyard.config import Settings
    from shipyard.quickstart import IRIS_FEATURES

    X, y = load_iris(return_X_y=True)  # the course's arrays: integer classes 0, 1, 2
    estimators = {
        "lr": LogisticRegression(max_iter=1000),
        "rf": RandomForestClassifier(n_estimators=100, random_state=0),
    }
    home = WORK_DIR / "home"
    shutil.rmtree(home, ignore_errors=True)
    client = Shipyard(Settings(home=home, user="bench"))
    sample = pd.DataFrame(X, columns=IRIS_FEATURES)
    for key in models:
        estimator = estimators[key].fit(X, y)
        joblib.dump(estimator, WORK_DIR / f"{key}.joblib")
        version = client.registry.log_model(estimator, f"bench-{key}", sample=sample)
        client.registry.set_alias(f"bench-{key}", "production", version.version)
    client.close()


def check_answers(servers: list[Running]) -> None:
    """Every server must predict the same class for the course's record before we time it."""
    answers = {r.server.name: _post(r.url + "/predict", RECORD)["prediction"] for r in servers}
    if len(set(map(str, answers.values()))) != 1:
        raise RuntimeError(f"The servers disagree on the course record: {answers}")


# -- report -------------------------------------------------------------------------


@dataclass
class Point:
    model: str
    concurrency: int
    results: dict[str, list[Result]] = field(default_factory=dict)


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _rps_cell(results: list[Result]) -> str:
    values = [r.rps for r in results]
    if len(values) == 1:
        return f"{values[0]:.0f}"
    return f"{_median(values):.0f} [{min(values):.0f}-{max(values):.0f}]"


def table(points: list[Point], baseline: str = "reference") -> str:
    others = [s.name for s in SERVERS if s.name != baseline]
    head = ["model", "c"]
    for name in [baseline, *others]:
        head += [f"{name} req/s", f"{name} p50 ms", f"{name} p99 ms"]
    head += [f"{o}/{baseline} req/s" for o in others] + ["failures"]
    rows = [head]
    for point in points:
        row = [MODELS[point.model], str(point.concurrency)]
        for name in [baseline, *others]:
            results = point.results.get(name, [])
            row += [
                _rps_cell(results),
                f"{_median([r.p50_ms for r in results]):.1f}",
                f"{_median([r.p99_ms for r in results]):.1f}",
            ]
        base = _median([r.rps for r in point.results.get(baseline, [])])
        for other in others:
            ratio = _median([r.rps for r in point.results.get(other, [])]) / base
            row.append(f"{ratio:.2f}x")
        row.append(str(sum(r.failures for rs in point.results.values() for r in rs)))
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows
    ]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def environment() -> str:
    versions = []
    for package in PACKAGES:
        try:
            versions.append(f"{package} {importlib.metadata.version(package)}")
        except importlib.metadata.PackageNotFoundError:
            versions.append(f"{package} missing")
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout
    cpu = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [
            ln.split(":", 1)[1].strip()
            for ln in cpuinfo.read_text().splitlines()
            if ln.startswith("model name")
        ]
        cpu = names[0] if names else cpu
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return "\n".join(
        [
            f"Machine: {cpu}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}; "
            f"load average at the end {load}",
            f"Python {platform.python_version()}; " + ", ".join(versions),
            f"Load generator: {wrk.split(chr(10))[0].strip()}",
            "Command: " + " ".join([Path(sys.executable).name, *sys.argv]),
        ]
    )


# -- main ---------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measurement")
    parser.add_argument("--reps", type=int, default=3, help="repetitions (interleaved)")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of load before timing")
    parser.add_argument("--concurrency", default="1,8,64", help="comma-separated connections")
    parser.add_argument("--models", default="lr,rf", help=f"comma-separated: {', '.join(MODELS)}")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    models = [m for m in args.models.split(",") if m]
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        raise SystemExit(f"unknown models {unknown}; choose from {list(MODELS)}")
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    print(f"Preparing models {models} in {WORK_DIR} ...", flush=True)
    prepare_models(models)
    script = Path(tempfile.mkdtemp()) / "predict.lua"
    script.write_text(WRK_SCRIPT % json.dumps(RECORD))
    points: list[Point] = []
    for model in models:
        running = [start(server, model) for server in SERVERS]
        try:
            check_answers(running)
            for r in running:  # warm-up: first requests, lazy imports, caches
                run_wrk(r.url, 8, args.warmup, script)
            model_points = {c: Point(model, c) for c in concurrencies}
            for rep in range(args.reps):
                for c in concurrencies:
                    # Alternate who goes first, so neither always runs on a cooler machine.
                    order = running if rep % 2 == 0 else running[::-1]
                    for r in order:
                        result = measure(r, model, c, args.duration, script)
                        model_points[c].results.setdefault(r.server.name, []).append(result)
                        print(
                            f"  {MODELS[model]:<20} c={c:<3} rep {rep + 1}/{args.reps} "
                            f"{r.server.name:<10} {result.rps:8.1f} req/s  "
                            f"p50 {result.p50_ms:7.1f} ms  p99 {result.p99_ms:8.1f} ms  "
                            f"failures {result.failures}",
                            flush=True,
                        )
            points.extend(model_points.values())
        finally:
            for r in running:
                stop(r)
    print()
    print(table(points))
    print()
    print(environment())
    if args.json:
        raw = [
            vars(result)
            for point in points
            for results in point.results.values()
            for result in results
        ]
        args.json.write_text(json.dumps(raw, indent=2))


def child_shipyard(argv: list[str]) -> None:
    """Run the real root CLI on ``argv`` (registering ``serve`` if main has not yet)."""
    from shipyard.cli.main import app

    if not any(c.name == "serve" for c in app.registered_commands):
        from shipyard.cli.serve import serve_command

        app.command("serve")(serve_command)
    app(argv, prog_name="shipyard")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child-shipyard":
        child_shipyard(sys.argv[2:])
    else:
        main()
