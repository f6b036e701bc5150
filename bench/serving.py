"""Benchmark ``shipyard serve`` against a reference app, MLflow and BentoML, side by side.

Servers (each one uvicorn worker, on 127.0.0.1, started and stopped by PID):

- ``reference``: ``bench/reference_app.py``, a plain FastAPI app (joblib model,
  ``predict`` + ``predict_proba`` per request), started the plain way
  (``uvicorn reference_app:app``, uvicorn's defaults).
- ``mlflow``: ``mlflow models serve -m DIR --env-manager local -w 1`` from MLflow's own
  venv (``bench/.peers/mlflow``; the model saved with ``mlflow.sklearn.save_model`` in
  skops format), scored through ``/invocations`` with ``{"inputs": [[...]]}``; MLflow's
  pyfunc answers ``predict`` only (no probabilities).
- ``bentoml``: a BentoML 1.4 service (``bench/bento_service.py``, own venv
  ``bench/.peers/bentoml``) with adaptive batching on (``batchable=True``,
  ``max_batch_size=64``, ``max_latency_ms=1000``), one worker, answering class and
  probabilities from one ``predict_proba`` call.
- ``shipyard``: the default path: ``log_model(model, name, sample=X)`` with no extra
  argument (which compiles a verified ONNX graph at registration when it verifies),
  then ``shipyard serve MODEL`` with no extra flag (metrics on, the prediction log on
  as an observer, batching on; signature-checked, with probabilities and request ids in
  the answer).
- ``shipyard-original``: the same registered version served with ``--no-onnx`` (the
  original model answers: scikit-learn / LightGBM).

A peer whose venv cannot be built or whose server does not start is reported and
skipped; the others still run.

Models (``--models``), each fitted once on iris:

- ``lr``, ``rf``: LogisticRegression and RandomForest(100 trees) fitted on NumPy
  arrays; the *same fitted objects* are saved with joblib for the reference (and
  MLflow, BentoML) and registered for Shipyard.
- ``lr-df``, ``rf-df``, ``ct-df``, ``lgbm-df``: fitted on a pandas DataFrame, as most
  users do (the estimator remembers its column names): LogisticRegression,
  RandomForest(100), a ``ColumnTransformer`` pipeline (scaled numbers + one-hot of a
  string column ``colour``, then LogisticRegression) and LightGBM (100 trees).
  Shipyard serves the DataFrame-fitted model; the reference serves its twin fitted
  on arrays, as the course's app does (the pipeline then selects columns by
  position). MLflow and BentoML run on the array-fitted models only.

Load: wrk (Debian's ``wrk``) with a small Lua script that POSTs one iris
record to ``/predict``; non-2xx answers count as failures, not throughput. Each
(model, concurrency) point runs every server in turn, interleaved A B A B over
``--reps`` repetitions, after a warm-up; the table shows the median
[min-max] of requests/s and the median p50/p99 latency, and the ratio
shipyard/reference.

    .venv/bin/python bench/serving.py                      # 10 s per point, 3 repetitions
    .venv/bin/python bench/serving.py --duration 5 --reps 1 --models lr

To add a peer, add a :class:`Server` whose ``command`` starts it from its own
venv (see ``bench/_peers.py``) and list it in ``SERVERS``; everything else
(warm-up, interleaving, the table) is shared.

Memory (``--memory``, on by default): ``shipyard serve --workers 1`` and
``--workers 2`` (RandomForest), after a short load, summed over the process
tree as PSS (shared pages split between the processes that share them) and as
plain RSS (shared pages counted once per process).

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
# The pipeline's record: the iris measurements and a string column.
MIXED_RECORD = {**RECORD, "colour": "green"}
COLOURS = ("red", "green", "blue")
MODELS = {
    "lr": "LogisticRegression",
    "rf": "RandomForest(100)",
    "lr-df": "LogisticRegression (DataFrame)",
    "rf-df": "RandomForest(100) (DataFrame)",
    "ct-df": "ColumnTransformer+LR (DataFrame)",
    "lgbm-df": "LightGBM(100) (DataFrame)",
}
#: Models fitted on arrays: the peers (MLflow, BentoML) serve these.
ARRAY_MODELS = ("lr", "rf")
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
    "onnxruntime",
    "skl2onnx",
    "shipyard",
]
MLFLOW_REQUIREMENTS = ["mlflow==3.17.*", "scikit-learn==1.9.*", "skops"]
BENTOML_REQUIREMENTS = ["bentoml==1.4.*", "scikit-learn==1.9.*"]
FEATURES = list(RECORD)
ROW = [RECORD[k] for k in FEATURES]
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
    path: str = "/predict"
    # The JSON body for one model (the same record, in each server's protocol).
    body: Callable[[str], Any] = lambda model: record_of(model)
    # The predicted class in this server's answer, to check all servers agree.
    answer: Callable[[Any], Any] = lambda body: body["prediction"]
    # Builds what the server needs (its venv); returns a reason when it cannot.
    setup: Callable[[list[str]], str | None] = lambda models: None
    # Versions of the packages measured, for the report.
    versions: Callable[[], str] = lambda: ""
    # The models this server runs (None: all).
    models: tuple[str, ...] | None = None


def record_of(model: str) -> dict[str, Any]:
    return MIXED_RECORD if model.startswith("ct") else RECORD


def reference_file(model: str) -> str:
    """The reference serves the array-fitted twin of a DataFrame-fitted model."""
    return model.removesuffix("-df")


def _reference_command(model: str, port: int) -> tuple[list[str], dict[str, str]]:
    argv = [PYTHON, "-m", "uvicorn", "reference_app:app", "--host", "127.0.0.1"]
    env = {"MODEL_PATH": str(WORK_DIR / f"{reference_file(model)}.joblib")}
    if model.startswith("ct"):
        env["MODEL_INPUT"] = "mixed"  # the record carries the string column too
    return [*argv, "--port", str(port)], env


def _shipyard_command(
    model: str, port: int, cli: list[str] | None = None, *, registered: str = "bench"
) -> tuple[list[str], dict[str, str]]:
    """``shipyard serve`` with its defaults (metrics, prediction log, batching), plus ``cli``."""
    argv = [PYTHON, str(Path(__file__)), "--child-shipyard", "serve", f"{registered}-{model}"]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", *(cli or [])]
    return argv, {"SHIPYARD_HOME": str(WORK_DIR / "home"), "SHIPYARD_USER": "bench"}


def _peer_bin(name: str) -> Path:
    from _peers import peer_dir

    return peer_dir(name) / "bin"


def _mlflow_command(model: str, port: int) -> tuple[list[str], dict[str, str]]:
    bin_dir = _peer_bin("mlflow")
    argv = [str(bin_dir / "mlflow"), "models", "serve", "-m", str(WORK_DIR / f"mlflow-{model}")]
    argv += ["--env-manager", "local", "-h", "127.0.0.1", "-p", str(port), "-w", "1"]
    # mlflow starts uvicorn through the shell: the venv's bin must come first on PATH.
    return argv, {"PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}


def _bentoml_command(model: str, port: int) -> tuple[list[str], dict[str, str]]:
    bin_dir = _peer_bin("bentoml")
    argv = [str(bin_dir / "bentoml"), "serve", "bento_service:IrisService"]
    argv += ["--host", "127.0.0.1", "--port", str(port)]
    env = {
        "MODEL_PATH": str(WORK_DIR / f"{model}.joblib"),
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "BENTOML_DO_NOT_TRACK": "true",
        "BENTOML_HOME": str(WORK_DIR / "bentoml-home"),
    }
    return argv, env


def _build_peer(name: str, requirements: list[str]) -> str | None:
    from _peers import ensure_peer_venv

    try:
        ensure_peer_venv(name, requirements)
    except Exception as exc:  # no network, resolver failure: report and go on
        return f"could not build its venv ({type(exc).__name__}: {exc})"
    return None


_MLFLOW_SAVE = """
import sys, joblib, mlflow.sklearn
model = joblib.load(sys.argv[1])
mlflow.sklearn.save_model(model, sys.argv[2], serialization_format="skops",
                          skops_trusted_types=["sklearn.tree._tree.Tree"])
"""


def _mlflow_setup(models: list[str]) -> str | None:
    reason = _build_peer("mlflow", MLFLOW_REQUIREMENTS)
    if reason:
        return reason
    python = _peer_bin("mlflow") / "python"
    for model in [m for m in models if m in ARRAY_MODELS]:
        target = WORK_DIR / f"mlflow-{model}"
        shutil.rmtree(target, ignore_errors=True)
        done = subprocess.run(
            [str(python), "-c", _MLFLOW_SAVE, str(WORK_DIR / f"{model}.joblib"), str(target)],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            return f"could not save the {model} model: {done.stderr.strip()[-500:]}"
    return None


def _peer_versions(name: str, packages: list[str]) -> Callable[[], str]:
    def versions() -> str:
        from _peers import peer_dir, peer_versions

        try:
            found = peer_versions(peer_dir(name), packages)
        except Exception:
            return f"{name}: not installed"
        return f"{name} venv: " + ", ".join(f"{k} {v}" for k, v in found.items())

    return versions


SERVERS = [
    Server("reference", _reference_command, "/health", cwd=BENCH_DIR),
    Server(
        "mlflow",
        _mlflow_command,
        "/ping",
        path="/invocations",
        body=lambda model: {"inputs": [ROW]},
        answer=lambda body: body["predictions"][0],
        setup=_mlflow_setup,
        versions=_peer_versions("mlflow", ["mlflow", "scikit-learn", "uvicorn", "numpy"]),
        models=ARRAY_MODELS,
    ),
    Server(
        "bentoml",
        _bentoml_command,
        "/readyz",
        cwd=BENCH_DIR,
        body=lambda model: {"features": [ROW]},
        answer=lambda body: int(body[0][0]),
        setup=lambda models: _build_peer("bentoml", BENTOML_REQUIREMENTS),
        versions=_peer_versions("bentoml", ["bentoml", "scikit-learn", "numpy"]),
        models=ARRAY_MODELS,
    ),
    Server("shipyard", _shipyard_command, "/ready"),
    Server(
        "shipyard-original",
        lambda model, port: _shipyard_command(model, port, ["--no-onnx"]),
        "/ready",
    ),
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


def _post(url: str, body: Any) -> Any:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (BentoML's worker lives in a process group of its own)."""
    out = subprocess.run(["ps", "-eo", "pid=,ppid="], capture_output=True, text=True).stdout
    children: dict[int, list[int]] = {}
    for line in out.splitlines():
        child, parent = map(int, line.split())
        children.setdefault(parent, []).append(child)
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def start(server: Server, model: str) -> Running:
    port = _free_port()
    argv, extra = server.command(model, port)
    log = WORK_DIR / f"{server.name}-{model}.log"
    env = {**os.environ, **extra}
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, cwd=server.cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
    running = Running(server, proc, f"http://127.0.0.1:{port}", log)
    deadline = (
        time.monotonic() + 600
    )  # a loaded shared machine can take minutes to import and warm up
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
    """SIGTERM the server, then any of its processes still alive, by PID."""
    below = _descendants(running.proc.pid)
    running.proc.send_signal(signal.SIGTERM)
    try:
        running.proc.wait(30)
    except subprocess.TimeoutExpired:
        running.proc.kill()
        running.proc.wait(10)
    for pid in below:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                break
            time.sleep(0.5)


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


def wrk_script(server: Server, model: str) -> Path:
    """The Lua script posting this server's body (same load, each server's protocol)."""
    script = WORK_DIR / f"wrk-{server.name}-{model}.lua"
    script.write_text(WRK_SCRIPT % json.dumps(server.body(model)))
    return script


def run_wrk(url: str, concurrency: int, duration: float, script: Path) -> dict[str, Any]:
    argv = ["wrk", "-t1", f"-c{concurrency}", f"-d{duration:g}s", "--timeout", "60s"]
    done = subprocess.run(
        [*argv, "-s", str(script), url],
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
    data = run_wrk(running.url + running.server.path, concurrency, duration, script)
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


def _estimator(key: str, *, by_name: bool) -> Any:
    """A fresh estimator for model ``key``; ``by_name``: its pipeline selects columns by name."""
    from lightgbm import LGBMClassifier
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    kind = key.removesuffix("-df")
    if kind == "lr":
        return LogisticRegression(max_iter=1000)
    if kind == "rf":
        return RandomForestClassifier(n_estimators=100, random_state=0)
    if kind == "lgbm":
        return LGBMClassifier(n_estimators=100, verbose=-1, random_state=0)
    numbers: list[Any] = FEATURES if by_name else [0, 1, 2, 3]
    text: list[Any] = ["colour"] if by_name else [4]
    columns = ColumnTransformer(
        [("num", StandardScaler(), numbers), ("cat", OneHotEncoder(handle_unknown="ignore"), text)]
    )
    return make_pipeline(columns, LogisticRegression(max_iter=1000))


def prepare_models(models: list[str]) -> None:
    """Fit each model once; save the array-fitted twin with joblib, register in Shipyard.

    Registration is the default path: ``log_model(model, name, sample=X)`` and nothing
    else (it compiles a verified ONNX graph when one verifies, and says so).
    """
    import joblib
    import numpy as np
    import pandas as pd
    from sklearn.datasets import load_iris

    from shipyard._client import Shipyard
    from shipyard.config import Settings

    X, y = load_iris(return_X_y=True)  # plain arrays: integer classes 0, 1, 2
    colour = np.random.default_rng(0).choice(COLOURS, len(X))
    frame = pd.DataFrame(X, columns=FEATURES)
    home = WORK_DIR / "home"
    shutil.rmtree(home, ignore_errors=True)
    client = Shipyard(Settings(home=home, user="bench"))
    for key in models:
        mixed = key.startswith("ct")
        # The reference's twin, fitted on arrays (an object array when text is in it).
        arrays = np.column_stack([X.astype(object), colour]) if mixed else X
        twin = _estimator(key, by_name=False).fit(arrays, y)
        joblib.dump(twin, WORK_DIR / f"{reference_file(key)}.joblib")
        sample = frame.assign(colour=colour) if mixed else frame
        # An array model registers that very object; a DataFrame model is fitted on names.
        fitted = twin if key in ARRAY_MODELS else _estimator(key, by_name=True).fit(sample, y)
        version = client.registry.log_model(fitted, f"bench-{key}", sample=sample)
        status, detail = version.tags.get("onnx_status"), version.tags.get("onnx_detail")
        print(f"  {version.ref}: ONNX {status} ({detail})", flush=True)
        client.registry.set_alias(f"bench-{key}", "production", version.version)
    client.close()


def check_answers(servers: list[Running], model: str) -> None:
    """Every server must predict the same class for the record before we time it."""
    answers = {
        r.server.name: r.server.answer(_post(r.url + r.server.path, r.server.body(model)))
        for r in servers
    }
    if len(set(map(str, answers.values()))) != 1:
        raise RuntimeError(f"The servers disagree on the {model} record: {answers}")


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


def table(points: list[Point], ours: str = "shipyard") -> str:
    """One row per (model, concurrency, server), with Shipyard's ratio to that server."""
    head = ["model", "c", "server", "req/s", "p50 ms", "p99 ms", "failures", f"{ours} / this"]
    rows = [head]
    for point in points:
        mine = _median([r.rps for r in point.results.get(ours, [])])
        for server in SERVERS:
            results = point.results.get(server.name)
            if not results:
                continue
            rps = _median([r.rps for r in results])
            rows.append(
                [
                    MODELS[point.model],
                    str(point.concurrency),
                    server.name,
                    _rps_cell(results),
                    f"{_median([r.p50_ms for r in results]):.1f}",
                    f"{_median([r.p99_ms for r in results]):.1f}",
                    str(sum(r.failures for r in results)),
                    "-" if server.name == ours else f"{mine / rps:.2f}x",
                ]
            )
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows
    ]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


#: Issue 13's goals for the default path against the reference, per model:
#: (ratio at 1 client, ratio at 64 clients); p99 at 64 clients at most P99_GOAL_MS.
SPEED_GOALS = {
    "lr": (1.5, 5.0),
    "rf": (1.5, 50.0),
    "lr-df": (1.5, 5.0),
    "rf-df": (1.5, 50.0),
    "ct-df": (1.5, None),
    "lgbm-df": (1.5, None),
}
P99_GOAL_MS = 50.0


def goals(points: list[Point]) -> list[str]:
    """The issue's targets, each MET or MISSED (or not measured) from this run."""

    def get(model: str, c: int, server: str, attr: str) -> float | None:
        for point in points:
            if point.model == model and point.concurrency == c and point.results.get(server):
                return _median([getattr(r, attr) for r in point.results[server]])
        return None

    lines = []

    def check(label: str, ok: bool | None, detail: str) -> None:
        verdict = "not measured" if ok is None else ("MET" if ok else "MISSED")
        lines.append(f"- {label}: {verdict} ({detail})")

    measured = sorted({p.model for p in points}, key=list(MODELS).index)
    for model in measured:
        for c, factor in zip((1, 64), SPEED_GOALS[model], strict=True):
            ours, ref = get(model, c, "shipyard", "rps"), get(model, c, "reference", "rps")
            if ours is None or ref is None:
                continue
            if factor is None:
                lines.append(f"- {MODELS[model]} c={c}: {ours / ref:.1f}x reference (no goal)")
                continue
            check(
                f"{MODELS[model]} c={c} >= {factor:g}x reference",
                ours >= factor * ref,
                f"{ours / ref:.1f}x",
            )
        p99 = get(model, 64, "shipyard", "p99_ms")
        if p99 is not None:
            check(
                f"{MODELS[model]} c=64 p99 <= {P99_GOAL_MS:g} ms",
                p99 <= P99_GOAL_MS,
                f"{p99:.1f} ms",
            )
        for peer in ("mlflow", "bentoml"):
            ours, theirs = get(model, 64, "shipyard", "rps"), get(model, 64, peer, "rps")
            if ours is not None and theirs is not None:
                check(
                    f"{MODELS[model]} c=64 ahead of {peer}",
                    ours > theirs,
                    f"{ours:.0f} vs {theirs:.0f} req/s",
                )
    # Without ONNX (--no-onnx): the original model must still beat the reference.
    for point in points:
        plain, ref = (
            get(point.model, point.concurrency, name, "rps")
            for name in ("shipyard-original", "reference")
        )
        if plain is not None and ref is not None:
            check(
                f"{MODELS[point.model]} c={point.concurrency} shipyard-original >= reference",
                plain >= ref,
                f"{plain / ref:.2f}x",
            )
    return lines


# -- memory -------------------------------------------------------------------------


def _smaps(pid: int) -> tuple[int, int]:
    """(PSS, RSS) of one process in KiB, from /proc/PID/smaps_rollup."""
    values = {"Pss": 0, "Rss": 0}
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            key = line.split(":", 1)[0]
            if key in values:
                values[key] = int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return values["Pss"], values["Rss"]


def measure_memory(model: str, duration: float) -> list[str]:
    """PSS and RSS of ``shipyard serve --workers 1`` and ``--workers 2``, summed per tree."""
    lines = []
    totals: dict[int, tuple[int, int, int]] = {}
    for workers in (1, 2):
        server = Server(
            f"shipyard-w{workers}",
            lambda m, port, w=workers: _shipyard_command(m, port, ["--workers", str(w)]),
            "/ready",
        )
        running = start(server, model)
        try:
            run_wrk(running.url + "/predict", 16, duration, wrk_script(server, model))
            pids = [running.proc.pid, *_descendants(running.proc.pid)]
            pss = sum(_smaps(pid)[0] for pid in pids)
            rss = sum(_smaps(pid)[1] for pid in pids)
            totals[workers] = (pss, rss, len(pids))
        finally:
            stop(running)
    for workers, (pss, rss, n) in totals.items():
        lines.append(
            f"- --workers {workers}: {n} process(es), PSS {pss / 1024:.0f} MiB, "
            f"RSS summed {rss / 1024:.0f} MiB"
        )
    (p1, r1, _), (p2, r2, _) = totals[1], totals[2]
    verdict = "MET" if p2 < 1.6 * p1 else "MISSED"
    lines.append(
        f"- --workers 2 / --workers 1: PSS {p2 / p1:.2f}x ({verdict}: goal < 1.6x); "
        f"RSS summed {r2 / r1:.2f}x (counts shared pages once per process)"
    )
    return lines


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
    parser.add_argument(
        "--models", default=",".join(MODELS), help=f"comma-separated: {', '.join(MODELS)}"
    )
    parser.add_argument(
        "--servers",
        default=",".join(s.name for s in SERVERS),
        help="comma-separated servers to run (default: all)",
    )
    parser.add_argument("--no-memory", action="store_true", help="skip the --workers memory step")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    models = [m for m in args.models.split(",") if m]
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        raise SystemExit(f"unknown models {unknown}; choose from {list(MODELS)}")
    wanted = set(args.servers.split(","))
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    print(f"Preparing models {models} in {WORK_DIR} ...", flush=True)
    prepare_models(models)
    skipped: dict[str, str] = {}
    servers = []
    for server in SERVERS:
        if server.name not in wanted:
            continue
        print(f"Setting up {server.name} ...", flush=True)
        reason = server.setup(models)
        if reason:
            skipped[server.name] = reason
            print(f"  {server.name} skipped: {reason}", flush=True)
        else:
            servers.append(server)
    points: list[Point] = []
    for model in models:
        running: list[Running] = []
        here = [s for s in servers if s.models is None or model in s.models]
        scripts = {server.name: wrk_script(server, model) for server in here}
        try:
            for server in here:
                try:
                    running.append(start(server, model))
                except RuntimeError as exc:
                    skipped[f"{server.name} ({model})"] = str(exc).splitlines()[0]
                    print(f"  {server.name} did not start for {model}: {exc}", flush=True)
            check_answers(running, model)
            for r in running:  # warm-up: first requests, lazy imports, caches
                run_wrk(r.url + r.server.path, 8, args.warmup, scripts[r.server.name])
            model_points = {c: Point(model, c) for c in concurrencies}
            for rep in range(args.reps):
                for c in concurrencies:
                    # Alternate who goes first, so nobody always runs on a cooler machine.
                    order = running if rep % 2 == 0 else running[::-1]
                    for r in order:
                        result = measure(r, model, c, args.duration, scripts[r.server.name])
                        model_points[c].results.setdefault(r.server.name, []).append(result)
                        print(
                            f"  {MODELS[model]:<32} c={c:<3} rep {rep + 1}/{args.reps} "
                            f"{r.server.name:<17} {result.rps:8.1f} req/s  "
                            f"p50 {result.p50_ms:7.1f} ms  p99 {result.p99_ms:8.1f} ms  "
                            f"failures {result.failures}",
                            flush=True,
                        )
            points.extend(model_points.values())
        finally:
            for r in running:
                stop(r)
    memory: list[str] = []
    if not args.no_memory and "shipyard" in wanted and "rf" in models:
        print("Measuring memory of shipyard serve --workers 1 and 2 ...", flush=True)
        memory = measure_memory("rf", min(args.duration, 5.0))
    print()
    print(table(points))
    print()
    print("Goals (issue 13: the default path against the reference):")
    print("\n".join(goals(points)))
    if memory:
        print(f"Memory ({MODELS['rf']}, after load):")
        print("\n".join(memory))
    for name, reason in skipped.items():
        print(f"Not measured: {name}: {reason}")
    print()
    print(environment())
    for server in servers:
        line = server.versions()
        if line:
            print(line)
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
