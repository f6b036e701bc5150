"""Real servers for tests: uvicorn in a thread, ``shipyard serve`` processes, readiness
polling, free ports, child env.

Shared by the serving, rollout and deploy suites (``tests/`` is on ``sys.path``
through its conftest).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psutil
import uvicorn
from fastapi import FastAPI

from shipyard.config import Settings

SRC = Path(__file__).resolve().parents[1] / "src"


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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def subprocess_env(settings: Settings, *, importable: Path) -> dict[str, str]:
    """Environment for a server subprocess: these settings, and ``importable`` (the
    folder of the suite's test models) plus the source tree on ``PYTHONPATH``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
    env["SHIPYARD_HOME"] = str(settings.home)
    env["SHIPYARD_USER"] = "tester"
    if settings.db:
        env["SHIPYARD_DB"] = str(settings.db)
    env["PYTHONPATH"] = os.pathsep.join([str(importable), str(SRC), env.get("PYTHONPATH", "")])
    return env


class ServeProcess:
    """``shipyard serve ARGS`` run through the CLI's real entry point, on a free port.

    Output goes to a temporary file (a pipe nobody reads could fill up and stall
    the server); :meth:`output` reads it. The process gets its own process group,
    so :meth:`stop` also ends the workers it started.
    """

    def __init__(self, env: dict[str, str], *args: str, log_level: str = "warning") -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - closed by stop()
        self.proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "shipyard.cli", "serve", *args),
                *("--port", str(self.port), "--log-level", log_level),
            ],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 90.0) -> ServeProcess:
        """Wait for ``/ready``; fail with the server's output if it exits first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"shipyard serve exited with {self.proc.returncode}:\n{self.output()}"
                )
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(self.url + "/ready", timeout=5).status_code == 200:
                    return self
            time.sleep(0.1)
        raise AssertionError(f"{self.url}/ready never answered 200:\n{self.output()}")

    def output(self) -> str:
        self._log.seek(0)
        return self._log.read()

    def stop(self) -> None:
        """SIGTERM (drain), then SIGKILL whatever of its process group is left."""
        if self.proc.poll() is None:
            self.proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(20)
        with contextlib.suppress(ProcessLookupError):  # the group this process leads
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self._log.close()


def process_tree_rss(pid: int) -> int:
    """Resident memory of process ``pid`` and every process it started, in bytes."""
    root = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])
