"""Helpers for the serving tests: registered models and real servers on 127.0.0.1.

``LiveServer`` runs uvicorn in a thread on a free port (port 0, read back
after binding); tests talk to it over real HTTP with httpx. Subprocess servers
(SIGTERM, several workers) are started by the tests that need them.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pandas as pd
import uvicorn
from fastapi import FastAPI
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from shipyard.client import Shipyard
from shipyard.config import Settings
from shipyard.quickstart import COURSE_RECORD, iris_frame
from shipyard.serving import ServeOptions, create_app

HERE = Path(__file__).resolve().parent
SRC = HERE.parents[1] / "src"
PYTHON = sys.executable
#: Records the LogisticRegression and the RandomForest agree on.
SETOSA = dict(COURSE_RECORD)
VIRGINICA = {"sepal_length": 7.7, "sepal_width": 3.0, "petal_length": 6.1, "petal_width": 2.3}


@dataclass
class IrisRegistry:
    """A client whose registry holds iris:1 (LogisticRegression), iris:2 (RandomForest)
    and slow:1 (a pyfunc whose latency the request sets); production -> iris:1."""

    client: Shipyard
    settings: Settings
    logistic: int = 1
    forest: int = 2


def register_models(settings: Settings) -> None:
    X, y = iris_frame()
    client = Shipyard(settings)
    logistic = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, y)
    forest = RandomForestClassifier(n_estimators=20, random_state=0).fit(X, y)
    assert client.registry.log_model(logistic, "iris", sample=X).version == 1
    assert client.registry.log_model(forest, "iris", sample=X).version == 2
    client.registry.set_alias("iris", "production", 1)
    sample = pd.DataFrame({"x": [1.0, -1.0], "delay": [0.0, 0.0]})
    client.registry.log_model("serving_slow_model:MODEL", "slow", sample=sample)
    client.registry.set_alias("slow", "production", 1)
    client.close()


def copy_registry(template: Path, home: Path) -> IrisRegistry:
    shutil.copytree(template, home)
    settings = Settings(home=home, user="tester")
    return IrisRegistry(Shipyard(settings), settings)


class LiveServer:
    """A uvicorn server in a background thread, on 127.0.0.1 and a free port."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        config = uvicorn.Config(
            app, host="127.0.0.1", port=0, lifespan="on", log_level="warning", access_log=False
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = ""

    def start(self, *, ready: bool = True, timeout: float = 30.0) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        if ready:
            wait_ready(self.url, timeout=timeout)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)

    def client(self, **kwargs: object) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, **kwargs)  # type: ignore[arg-type]


def wait_ready(url: str, *, timeout: float = 30.0, path: str = "/ready") -> None:
    """Poll ``url + path`` until it answers 200 (or fail after ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = httpx.get(url + path, timeout=5)
            if last.status_code == 200:  # type: ignore[attr-defined]
                return
        except httpx.TransportError as exc:
            last = exc
        time.sleep(0.05)
    raise AssertionError(f"{url}{path} never became ready: {last!r}")


def serve(client: Shipyard, ref: str = "iris", **options: object) -> LiveServer:
    """Start a thread server for ``ref`` (polling every 0.1 s unless told otherwise)."""
    opts = ServeOptions(**{"poll_interval": 0.1, **options})  # type: ignore[arg-type]
    return LiveServer(create_app(client, ref, options=opts)).start()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def subprocess_env(settings: Settings) -> dict[str, str]:
    """Environment for a server subprocess: these settings, and the test model importable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
    env["SHIPYARD_HOME"] = str(settings.home)
    env["SHIPYARD_USER"] = "tester"
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), str(SRC), env.get("PYTHONPATH", "")])
    return env
