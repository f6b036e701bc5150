"""The whole story on the embedded defaults: ``shipyard quickstart`` (and ``make demo``).

1. train and register an iris species classifier (two candidates) and a regressor;
2. serve the ``iris`` deployment on a free port of 127.0.0.1 and send it one record;
3. replay traffic and send the labels back (``POST /feedback``);
4. shift the incoming data and detect drift against the reference stored with the
   model version (HTML report);
5. let the closed loop see the drift, retrain on the new data, gate the
   challenger against the champion, canary it under live traffic and promote it;
6. show a bad candidate being stopped by its gates, and a slow one put on
   canary and rolled back automatically by the rollout policy's p99 guard;
7. the feature store: define driver features, build a point-in-time training set,
   train, materialize, serve a model called by driver id, check training/serving
   skew (:mod:`shipyard.demo_features`);
8. print a summary of every step and stop the servers.

Traffic is bounded in count and time and goes only to 127.0.0.1.

Every run starts from nothing, in a fresh folder of its own
(``<home>/quickstart/run-<n>``, SQLite and local files whatever the settings
say), so a second run tells the same story as the first: the loop's drift
trigger is not cooling down from the last run, versions start at 1.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import yaml
from sklearn.model_selection import train_test_split
from sklearn.tree import DecisionTreeClassifier

from shipyard._client import Shipyard
from shipyard.config import Settings
from shipyard.demo_features import feature_act
from shipyard.drift.detector import DriftDetector
from shipyard.drift.report_html import write_html
from shipyard.errors import ShipyardError
from shipyard.loop.config import load_config
from shipyard.loop.controller import LoopController
from shipyard.quickstart import IRIS_RECORD, QuickstartResult, iris_frame, run_quickstart
from shipyard.rollout.records import RolloutPolicy
from shipyard.validation.gates import build_spec
from shipyard.validation.service import validate_model

DEPLOYMENT = "iris"
#: How the incoming data shifts in step 4: a recalibrated sepal sensor.
SHIFT = {"sepal_length": 1.5, "sepal_width": 1.0}
#: Where the runs go, under the configured home.
RUNS_FOLDER = "quickstart"


def fresh_run_settings(settings: Settings) -> Settings:
    """Settings for a new run: an empty folder ``<home>/quickstart/run-<n>`` of its own.

    The database and artifacts are the embedded defaults inside it, whatever
    ``settings`` point at: the demo never writes into a shared registry.
    """
    runs = settings.home / RUNS_FOLDER
    runs.mkdir(parents=True, exist_ok=True)
    taken = [p.name.removeprefix("run-") for p in runs.glob("run-*")]
    n = max((int(t) for t in taken if t.isdigit()), default=0)
    while True:  # mkdir claims the number, even against a demo started at the same moment
        n += 1
        try:
            (runs / f"run-{n}").mkdir()
            break
        except FileExistsError:
            continue
    return settings.model_copy(update={"home": runs / f"run-{n}", "db": None, "artifacts": None})


@dataclass
class Step:
    name: str
    outcome: str
    seconds: float


@dataclass
class DemoResult:
    quickstart: QuickstartResult
    steps: list[Step] = field(default_factory=list)
    reports: dict[str, Path] = field(default_factory=dict)
    first_answer: dict[str, Any] = field(default_factory=dict)
    home: Path | None = None


def run_demo(client: Shipyard, *, say: Callable[[str], None] = print) -> DemoResult:
    """Run every step; the server is stopped whatever happens."""
    home = client.settings.home
    folder = (home / "demo").resolve()
    folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    quick = run_quickstart(client)
    result = DemoResult(quick, home=home)
    _step(result, "train and register", f"{len(quick.versions)} versions", started)

    X, y = iris_frame()
    train, new = train_test_split(X.assign(species=y), test_size=0.5, random_state=1, stratify=y)
    data_path = folder / "iris.csv"
    train.to_csv(data_path, index=False)
    train.drop(columns=["species"]).to_csv(folder / "reference.csv", index=False)
    champion = client.registry.resolve("iris")
    deployments = client.deployments
    # Created from iris@production, the deployment follows that alias: promoting it
    # (the loop's canary, below) moves production with it.
    deployments.create(DEPLOYMENT, "iris", champion.version, reason="demo", follows="production")

    with _server(client, folder) as url, httpx.Client(base_url=url, timeout=30) as http:
        t = time.perf_counter()
        answer = http.post("/predict", json=IRIS_RECORD).json()
        result.first_answer = answer
        say(f"POST {url}/predict {IRIS_RECORD}\n -> {answer}")
        _step(
            result,
            "serve + first request",
            f"{answer['prediction']} (iris:{answer['version']})",
            t,
        )

        t = time.perf_counter()
        labelled = _replay(http, train, labels=True)
        _step(result, "replay traffic + labels", f"{labelled} requests, {labelled} labels", t)

        t = time.perf_counter()
        shifted = new.assign(**{c: new[c] + d for c, d in SHIFT.items()})
        _replay(http, shifted, labels=True)
        _wait_logged(client, 1 + labelled + len(shifted))
        drift_path = folder / "drift.html"
        verdict = _drift_report(client, champion, drift_path)
        result.reports["drift"] = drift_path
        _step(result, "shifted data -> drift", verdict, t)

        t = time.perf_counter()
        # The shifted rows arrived with their labels: the pipeline's data grows.
        pd.concat([train, shifted]).to_csv(data_path, index=False)
        outcome = _run_loop(client, folder, data_path, http, shifted, say)
        _step(result, "loop: retrain, gate, canary", outcome, t)

        t = time.perf_counter()
        _step(result, "bad candidate: gates", _bad_candidate(client, shifted), t)

        t = time.perf_counter()
        _step(result, "bad canary: auto-rollback", _slow_canary(client, http, shifted), t)

    t = time.perf_counter()
    outcome, skew_report = feature_act(client, folder / "features", say)
    result.reports["feature skew"] = skew_report
    _step(result, "feature store: serve by id", outcome, t)
    return result


def _step(result: DemoResult, name: str, outcome: str, started: float) -> None:
    result.steps.append(Step(name, outcome, time.perf_counter() - started))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def _server(client: Shipyard, folder: Path) -> Iterator[str]:
    """``shipyard serve --deployment iris`` in a child process, stopped on the way out."""
    port = _free_port()
    settings = client.settings
    # Exactly this run's stores, whatever the environment or a shipyard.toml say.
    env = {
        **os.environ,
        "SHIPYARD_HOME": str(settings.home.resolve()),
        "SHIPYARD_DB": settings.database_url,
        "SHIPYARD_ARTIFACTS": settings.artifact_url,
    }
    log = (folder / "server.log").open("w")
    command = [
        sys.executable, "-m", "shipyard.cli", "serve", "--deployment", DEPLOYMENT,
        "--port", str(port), "--poll-interval", "0.5", "--log-level", "warning",
    ]  # fmt: skip
    proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, proc, timeout=120)
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()


def _wait_ready(url: str, proc: subprocess.Popen[bytes], *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ShipyardError(f"The demo server exited with status {proc.returncode}.")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(url + "/ready", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise ShipyardError(f"The demo server at {url} was not ready within {timeout:.0f} s.")


def _replay(http: httpx.Client, rows: pd.DataFrame, *, labels: bool) -> int:
    """One request per row (a plain record, as a client sends it), then their labels."""
    features = rows.drop(columns=["species"])
    feedback: list[dict[str, str]] = []
    for record, species in zip(features.to_dict(orient="records"), rows["species"], strict=True):
        answer = http.post("/predict", json=record, headers={"X-User-ID": str(len(feedback))})
        answer.raise_for_status()
        feedback.append({"request_id": answer.json()["request_id"], "label": str(species)})
    if labels:
        http.post("/feedback", json=feedback).raise_for_status()
    return len(feedback)


def _wait_logged(client: Shipyard, rows: int, timeout: float = 60.0) -> None:
    """Wait until the server's prediction log holds ``rows`` rows of the last 10 minutes
    (its writer flushes every second; a request's answer never waits for it)."""
    deadline = time.monotonic() + timeout
    while len(client.prediction_log.read("iris", since="10m", inputs=False)) < rows:
        if time.monotonic() > deadline:
            raise ShipyardError(
                f"The demo server's prediction log did not reach {rows} rows in {timeout:.0f} s."
            )
        time.sleep(0.2)


def _drift_report(client: Shipyard, version: Any, path: Path) -> str:
    reference = client.references.load(version)
    current = client.prediction_log.read_inputs("iris", since="10m")
    current = current.tail(len(current) // 2)  # the shifted half of the window
    detector = DriftDetector().fit(reference)
    drift = detector.score(current[list(reference.columns)])
    write_html(path, drift, detector, current)
    drifted = ", ".join(c.column for c in drift.columns if c.drift_detected) or "none"
    verdict = "drift" if drift.dataset_drift else "no drift"
    return f"{verdict}: {drift.n_drifted}/{drift.n_columns} columns ({drifted})"


def _run_loop(
    client: Shipyard,
    folder: Path,
    data_path: Path,
    http: httpx.Client,
    traffic: pd.DataFrame,
    say: Callable[[str], None],
) -> str:
    config_path = folder / "loop.yaml"
    config_path.write_text(yaml.safe_dump(_loop_config(data_path)))
    [config] = load_config(config_path)
    loop = LoopController(client, [config], source=config_path)
    stop = threading.Event()
    sender = threading.Thread(target=_keep_sending, args=(http.base_url, traffic, stop))
    sender.start()
    try:
        tick = loop.tick_model("iris")
        say(f"loop tick: {tick.summary()}")
        deadline = time.monotonic() + 120
        while tick.run is not None and tick.run.active:
            if time.monotonic() > deadline:
                return f"canary still running after 120 s ({tick.run.status})"
            time.sleep(1.0)
            tick = loop.tick_model("iris")
    finally:
        stop.set()
        sender.join(30)
    if tick.run is None:
        return "; ".join(tick.errors) or tick.summary()
    serving = client.registry.resolve("iris")
    return (
        f"{tick.run.status}: iris:{serving.version} serves; {tick.run.message or tick.run.reason}"
    )


def _keep_sending(url: Any, rows: pd.DataFrame, stop: threading.Event) -> None:
    """Live traffic for the canary: bounded to 3000 requests and 150 seconds."""
    records = rows.drop(columns=["species"]).to_dict(orient="records")
    deadline = time.monotonic() + 150
    with httpx.Client(base_url=str(url), timeout=10) as http:
        for i in range(3000):
            if stop.is_set() or time.monotonic() > deadline:
                return
            with contextlib.suppress(httpx.HTTPError):
                http.post("/predict", json=records[i % len(records)])


def _loop_config(data_path: Path) -> dict[str, Any]:
    return {
        "model": "iris",
        "alias": "production",
        "pipeline": {
            "entry_point": "shipyard.loop.examples:train_iris",
            "params": {"estimator": "random_forest", "n_estimators": 100, "cv": 3},
            "data": {"path": str(data_path)},
            "target": "species",
            "holdout_fraction": 0.3,
        },
        "triggers": [
            {
                # What the champion was trained on vs the last 10 minutes of traffic.
                "kind": "drift",
                "reference": {"path": str(data_path.with_name("reference.csv"))},
                "window": "10m",
                "sustained": 1,
                "cooldown": "1h",
            }
        ],
        "contract": {"ignore": ["tails", "range"]},
        "gates": {"thresholds": ["accuracy>=0.9"]},
        "canary": {
            "deployment": DEPLOYMENT,
            "policy": {"steps": [25, 100], "step_requests": 40, "max_error_rate": 0.05},
        },
    }


def _bad_candidate(client: Shipyard, holdout: pd.DataFrame) -> str:
    """A one-split tree is registered, fails its gates, and cannot take production."""
    X, y = holdout.drop(columns=["species"]), holdout["species"]
    stump = DecisionTreeClassifier(max_depth=1, random_state=0).fit(X, y)
    bad = client.registry.log_model(stump, "iris", sample=X, description="a one-split tree")
    spec = build_spec(thresholds=["accuracy>=0.9"], min_changes=["accuracy:+0"])
    _, report = validate_model(
        client.registry, client.validation, bad.ref, data=holdout, target="species", spec=spec
    )
    try:
        client.registry.set_alias("iris", "production", bad.version)
    except ShipyardError as exc:
        why = " ".join(line.strip(" -") for line in str(exc).splitlines()[1:2])
        return (
            f"{bad.ref} gates {'passed' if report.passed else 'failed'}; production refused: {why}"
        )
    return f"{bad.ref} was NOT blocked (gates passed={report.passed})"


class SlowIris:
    """A candidate that answers right but 300 ms late (say, a slow new feature lookup).

    Registered by import path (``shipyard.demo:SLOW_IRIS``), so no pickle is involved;
    it fits a small model on iris the first time it is used.
    """

    delay = 0.3

    def __init__(self) -> None:
        self._model: Any = None

    def _fitted(self) -> Any:
        if self._model is None:
            from sklearn.linear_model import LogisticRegression

            X, y = iris_frame()
            self._model = LogisticRegression(max_iter=500).fit(X, y)
        return self._model

    @property
    def classes_(self) -> np.ndarray:
        return np.asarray(self._fitted().classes_)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        time.sleep(self.delay)
        return np.asarray(self._fitted().predict_proba(X))

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


SLOW_IRIS = SlowIris()


def _slow_canary(client: Shipyard, http: httpx.Client, traffic: pd.DataFrame) -> str:
    """Canary a slow candidate with a p99 guard: the rollout policy rolls it back."""
    X = traffic.drop(columns=["species"])
    slow = client.registry.log_model(
        "shipyard.demo:SLOW_IRIS", "iris", sample=X.head(5), description="slow candidate"
    )
    deployments = client.deployments
    policy = RolloutPolicy(
        steps=(30.0, 100.0), step_seconds=None, step_requests=40, min_requests=10,
        max_error_rate=0.05, max_p99_seconds=0.15,
    )  # fmt: skip
    deployments.set_canary(DEPLOYMENT, slow.version, policy=policy, reason="demo: slow one")
    records = X.to_dict(orient="records")
    # Traffic until the guard acts, bounded by time rather than a request count: on
    # a busy machine the server may take a while to load the canary, and requests
    # sent before that all go to the primary and prove nothing about the canary.
    deadline = time.monotonic() + 120
    sent = 0
    while time.monotonic() < deadline:
        http.post("/predict", json=records[sent % len(records)])
        sent += 1
        if sent % 10 == 0 and deployments.get(DEPLOYMENT).canary is None:
            break
    state = deployments.get(DEPLOYMENT)
    if state.canary is not None:
        return f"{slow.ref} still on canary after {sent} requests"
    entry = next(
        (e for e in client.audit.log(model="iris", limit=20) if "roll" in e.action),
        None,
    )
    why = f": {entry.reason}" if entry and entry.reason else ""
    return f"{slow.ref} rolled back after {sent} requests; iris:{state.primary} serves{why}"
