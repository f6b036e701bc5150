"""``shipyard serve`` as a real process: SIGTERM drains, several workers share metrics."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from serving_helpers import (
    PYTHON,
    SETOSA,
    IrisRegistry,
    free_port,
    subprocess_env,
    wait_ready,
)

from shipyard.config import Settings
from shipyard.serving.options import ServeOptions
from shipyard.serving.server import app_from_environment, settings_to_json

# The command function exactly as the root CLI registers it (`shipyard serve`).
CLI = (
    "import typer; from shipyard.cli.serve import serve_command; "
    "app = typer.Typer(); app.command()(serve_command); app()"
)


class ServeProcess:
    def __init__(self, iris: IrisRegistry, *args: str, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [PYTHON, "-c", CLI, *args, "--port", str(self.port), "--log-level", "warning"],
            env={**subprocess_env(iris.settings), **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # its own process group: workers included
        )

    def output(self) -> str:
        return self.proc.stdout.read() if self.proc.stdout else ""


@pytest.fixture
def processes() -> Iterator[list[ServeProcess]]:
    started: list[ServeProcess] = []
    yield started
    for server in started:  # never leave a server or its workers behind
        if server.proc.poll() is None:
            server.proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                server.proc.wait(20)
        with contextlib.suppress(ProcessLookupError):  # the group we created, by its id
            os.killpg(server.proc.pid, signal.SIGKILL)
        server.proc.wait(10)


def _until(condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


def _refuses_connections(url: str) -> bool:
    try:
        httpx.get(url + "/health", timeout=2)
    except httpx.TransportError:
        return True
    return False


def test_sigterm_drains_in_flight_requests_then_exits_zero(
    iris: IrisRegistry, processes: list[ServeProcess], tmp_path: Path
) -> None:
    # The slow model marks when the request is inside it and holds it until released.
    gate = tmp_path / "gate"
    gate.mkdir()
    server = ServeProcess(
        iris, "slow", "--poll-interval", "0.2", env={"SHIPYARD_TEST_SLOW_GATE": str(gate)}
    )
    processes.append(server)
    wait_ready(server.url, timeout=60)
    result: dict[str, httpx.Response] = {}

    def slow_request() -> None:
        result["slow"] = httpx.post(
            server.url + "/predict", json={"x": 1.0, "delay": 60}, timeout=90
        )

    worker = threading.Thread(target=slow_request)
    worker.start()
    _until((gate / "entered").exists, "the request never reached the model")
    server.proc.send_signal(signal.SIGTERM)
    # No new connections once draining, while the request is still inside the model.
    _until(lambda: _refuses_connections(server.url), "the draining server kept accepting")
    assert worker.is_alive() and "slow" not in result
    (gate / "release").touch()
    worker.join(30)
    assert result["slow"].status_code == 200
    assert result["slow"].json()["prediction"] == "big"
    assert server.proc.wait(30) == 0, server.output()


def test_several_workers_share_one_metrics_view(
    iris: IrisRegistry, processes: list[ServeProcess]
) -> None:
    server = ServeProcess(iris, "iris", "--workers", "2")
    processes.append(server)
    wait_ready(server.url, timeout=90)
    for _ in range(20):  # a new connection each time: the kernel spreads them
        response = httpx.post(server.url + "/predict", json=SETOSA, timeout=30)
        assert response.status_code == 200
        assert response.json()["version"] == iris.logistic
    text = httpx.get(server.url + "/metrics", timeout=30).text
    counted = sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "shipyard_http_requests_total"
        and sample.labels.get("route") == "/predict"
    )
    assert counted == 20, text
    iris.client.registry.set_alias("iris", "production", iris.forest)
    deadline = time.monotonic() + 30
    versions: set[int] = set()
    while versions != {iris.forest}:  # every worker follows the alias
        assert time.monotonic() < deadline, versions
        versions = {
            httpx.post(server.url + "/predict", json=SETOSA, timeout=30).json()["version"]
            for _ in range(10)
        }
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(60) == 0, server.output()


def test_serve_refuses_an_unknown_reference(iris: IrisRegistry) -> None:
    """Fails before any server starts, with the registry's message (in-process: no server)."""
    from typer.testing import CliRunner

    from shipyard.cli.main import app

    env = {"SHIPYARD_HOME": str(iris.settings.home), "SHIPYARD_USER": "tester"}
    result = CliRunner().invoke(app, ["serve", "nope", "--port", str(free_port())], env=env)
    assert result.exit_code == 1
    assert "nope" in result.output


def test_worker_factory_rebuilds_settings_and_options(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    settings = Settings(home=tmp_path / "h", admin_token="tok", api_keys=["k"], user="u")
    monkeypatch.setenv("SHIPYARD_SERVE_REF", "iris@staging")
    monkeypatch.setenv("SHIPYARD_SERVE_SETTINGS", settings_to_json(settings))
    monkeypatch.setenv("SHIPYARD_SERVE_OPTIONS", ServeOptions(poll_interval=0.5).to_json())
    app = app_from_environment()
    runtime = app.state.runtime
    assert str(runtime.ref) == "iris@staging"
    assert runtime.poll_interval == 0.5
    assert runtime.registry.cache_dir.is_relative_to(tmp_path / "h")
    assert app.title == "Shipyard: iris@staging"


def test_serves_a_read_only_package_folder_without_the_source_registry(
    iris: IrisRegistry, processes: list[ServeProcess], tmp_path: Path
) -> None:
    """What a container built by `shipyard package` runs: `shipyard serve /opt/model`."""
    import shutil

    from shipyard.registry.manifest import Manifest

    version = iris.client.registry.resolve("iris:1")
    folder = tmp_path / "opt-model"
    shutil.copytree(iris.client.registry.package_dir(version), folder)
    before = (folder / "shipyard.json").read_bytes()
    for path in [folder, *folder.rglob("*")]:
        path.chmod(0o555 if path.is_dir() else 0o444)
    empty = IrisRegistry(iris.client, Settings(home=tmp_path / "fresh-home", user="tester"))
    try:
        server = ServeProcess(empty, str(folder))
        processes.append(server)
        wait_ready(server.url, timeout=60)
        answer = httpx.post(server.url + "/predict", json=SETOSA, timeout=10)
        assert answer.status_code == 200, answer.text
        assert answer.json()["prediction"] == "setosa"
        assert (folder / "shipyard.json").read_bytes() == before  # left as it was
        assert Manifest.load(folder).version == 1
    finally:
        for path in [folder, *folder.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
