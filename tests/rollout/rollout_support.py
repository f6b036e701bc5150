"""Helpers for the rollout tests: a registry of cheap pyfunc models, real servers.

The models live in ``rollout_models.py`` beside this file (pytest puts this
folder on ``sys.path``; server subprocesses get it through ``PYTHONPATH``).
"""

from __future__ import annotations

import os
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

from shipyard.client import Shipyard
from shipyard.config import Settings
from shipyard.rollout.service import Deployments
from shipyard.serving import ServeOptions, create_app

HERE = Path(__file__).resolve().parent
SRC = HERE.parents[1] / "src"
PYTHON = sys.executable
#: The signature sample: x in [-10, 10], so the warm-up record has x = 0.
SAMPLE = pd.DataFrame({"x": [-10.0, 10.0]})
#: Version numbers of model ``m`` as registered by :func:`register`.
GOOD, OTHER, BROKEN, SLOW, GOOD2 = 1, 2, 3, 4, 5


@dataclass
class Registry:
    client: Shipyard
    settings: Settings
    deployments: Deployments


def register(client: Shipyard) -> None:
    for target in ("GOOD", "OTHER", "BROKEN", "SLOW", "GOOD"):
        client.registry.log_model(f"rollout_models:{target}", "m", sample=SAMPLE)


def make_registry(settings: Settings) -> Registry:
    client = Shipyard(settings)
    register(client)
    return Registry(client, settings, Deployments(client.metadata, actor="tester"))


class LiveServer:
    """A uvicorn server in a background thread, on 127.0.0.1 and a free port."""

    def __init__(self, app: FastAPI) -> None:
        config = uvicorn.Config(
            app, host="127.0.0.1", port=0, lifespan="on", log_level="warning", access_log=False
        )
        self.app = app
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = ""

    def start(self, timeout: float = 30.0) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        wait_ready(self.url, timeout=timeout)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def wait_ready(url: str, *, timeout: float = 30.0) -> None:
    """Poll ``url/ready`` until it answers 200 (or fail after ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = httpx.get(url + "/ready", timeout=5)
            if last.status_code == 200:  # type: ignore[attr-defined]
                return
        except httpx.TransportError as exc:
            last = exc
        time.sleep(0.05)
    raise AssertionError(f"{url}/ready never became ready: {last!r}")


def serve_deployment(client: Shipyard, name: str, **options: object) -> LiveServer:
    """A thread server for deployment ``name``, polling the database every 0.1 s."""
    opts = ServeOptions(**{"poll_interval": 0.1, "deployment": name, **options})  # type: ignore[arg-type]
    return LiveServer(create_app(client, name, options=opts)).start()


def subprocess_env(settings: Settings) -> dict[str, str]:
    """Environment for a server subprocess: these settings, the test models importable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
    env["SHIPYARD_HOME"] = str(settings.home)
    env["SHIPYARD_USER"] = "tester"
    if settings.db:
        env["SHIPYARD_DB"] = str(settings.db)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), str(SRC), env.get("PYTHONPATH", "")])
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
