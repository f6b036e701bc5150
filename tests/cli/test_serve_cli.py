"""``shipyard serve``: every serve option is a flag, and every flag reaches the running server.

The servers here are real ``shipyard serve`` processes started through the CLI's
entry point; what they run with is read back from ``GET /admin/status`` and,
for the flags that were once dropped, seen in their behaviour.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

from live_server import ServeProcess, subprocess_env
from shipyard import Shipyard
from shipyard.cli.main import app
from shipyard.config import Settings
from shipyard.quickstart import iris_frame
from shipyard.serving.options import ServeOptions

TOKEN = "serve-flags-token"
RECORD = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
#: A value for every flag, each different from its default.
VALUES: dict[str, Any] = {
    "poll_interval": 0.7,
    "max_body_bytes": 5000,
    "request_timeout": 12.5,
    "trusted_pickle": True,
    "onnx": False,
    "workers": 2,
    "variant": "blue",
    "monitor_interval": 33.0,
    "monitor_window": 120.0,
    "batching": False,
    "max_batch_size": 7,
    "max_wait_ms": 1.5,
    "max_queue": 99,
    "cache": "memory",
    "cache_size": 123,
    "cache_ttl": 45.0,
    "cache_max_bytes": 250_000,
    "prediction_log": False,
    "contract_check": "reject",
    "reject_unknown_fields": True,
    "header_timeout": 7.0,
    "keep_alive_timeout": 3.0,
    "max_connections": 77,
}


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    settings = Settings(home=tmp_path_factory.mktemp("serve-cli") / "home", user="tester")
    client = Shipyard(settings)
    X, y = iris_frame()
    version = client.registry.log_model(
        LogisticRegression(max_iter=500).fit(X, y), "iris", sample=X
    )
    client.registry.set_alias("iris", "production", version.version)
    client.deployments.create("web", "iris", version.version)
    client.close()
    return settings


def _env(settings: Settings) -> dict[str, str]:
    return subprocess_env(settings, importable=Path(__file__).parent) | {
        "SHIPYARD_ADMIN_TOKEN": TOKEN
    }


def _flags(values: dict[str, Any]) -> list[str]:
    """``--name value`` for each option (``--name`` / ``--no-name`` for switches)."""
    argv: list[str] = []
    for name, value in values.items():
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            argv.append(flag if value else "--no-" + flag[2:])
        else:
            argv += [flag, str(value)]
    return argv


def _status(server: ServeProcess) -> dict[str, Any]:
    response = httpx.get(
        server.url + "/admin/status", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
    )
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture
def started() -> Iterator[list[ServeProcess]]:
    servers: list[ServeProcess] = []
    yield servers
    for server in servers:
        server.stop()


def test_every_serve_option_is_a_flag_with_its_default() -> None:
    command = typer.main.get_command(app)
    serve = command.get_command(typer.Context(command), "serve")  # type: ignore[attr-defined]
    params = {p.name: p for p in serve.params}
    defaults = ServeOptions()
    for name in ServeOptions.flag_names():
        assert name in params, f"no flag for ServeOptions.{name}"
        default = params[name].default
        assert str(default) == str(getattr(defaults, name)), name
    # The test's own table covers every option (the deployment flag has its own test).
    assert set(VALUES) | {"deployment"} == set(ServeOptions.flag_names())
    assert all(VALUES[n] != getattr(defaults, n) for n in VALUES)


def test_contract_check_refuses_unknown_modes(settings: Settings) -> None:
    env = {"SHIPYARD_HOME": str(settings.home), "SHIPYARD_USER": "tester"}
    # An unknown model too: were the mode accepted, the command would stop there (exit 1)
    # instead of starting a server in this process.
    argv = ["serve", "no-such-model", "--contract-check", "bogus"]
    result = CliRunner().invoke(app, argv, env=env)
    assert result.exit_code == 2, result.output
    assert "bogus" in result.output
    assert all(mode in result.output for mode in ("off", "reject", "count"))


def test_every_flag_reaches_the_running_server(
    settings: Settings, started: list[ServeProcess]
) -> None:
    server = ServeProcess(_env(settings), "iris", *_flags(VALUES))
    started.append(server)
    server.wait_ready()
    status = _status(server)
    assert status["options"] == ServeOptions(**VALUES).public()
    # --no-onnx: the original model answers, not the ONNX graph compiled at registration.
    assert status["runtime"] == "sklearn"
    with httpx.Client(base_url=server.url, timeout=10) as http:
        # --contract-check reject: past a hard bound of the contract (a length that was
        # never negative) answers 422.
        odd = http.post("/predict", json={**RECORD, "petal_length": -1.0})
        assert odd.status_code == 422 and "petal_length" in odd.text
        # --reject-unknown-fields
        extra = http.post("/predict", json={**RECORD, "customer_id": 1})
        assert extra.status_code == 422 and extra.json()["field"] == "customer_id"
        # --no-prediction-log: /feedback answers 409 saying it needs the log
        off = http.post("/feedback", json={"request_id": "r", "label": 1})
        assert off.status_code == 409 and "needs the prediction log" in off.text
        # --max-body-bytes 5000
        big = http.post("/predict", json=[RECORD] * 100)
        assert big.status_code == 413
        assert http.post("/predict", json=RECORD).status_code == 200
    server.stop()
    assert Shipyard(settings).prediction_log.read("iris", since="1h").empty


def test_defaults_reach_the_running_server(settings: Settings, started: list[ServeProcess]) -> None:
    server = ServeProcess(_env(settings), "iris")
    started.append(server)
    server.wait_ready()
    status = _status(server)
    assert status["options"] == ServeOptions().public()
    # Registered with no extra argument: the verified ONNX graph answers by default.
    assert status["runtime"] == "onnxruntime"


def test_deployment_flag_and_connection_limits_reach_spawned_workers(
    settings: Settings, started: list[ServeProcess]
) -> None:
    """``--deployment`` with several workers starts fresh worker processes."""
    server = ServeProcess(
        _env(settings), "--deployment", "web", "--workers", "2", "--header-timeout", "1"
    )
    started.append(server)
    server.wait_ready()
    options = _status(server)["options"]
    assert (options["deployment"], options["workers"], options["header_timeout"]) == ("web", 2, 1.0)
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # and never the end of the headers
        assert sock.recv(4096) == b""  # closed by the server, not answered


@pytest.mark.parametrize("workers", [1, 2])
def test_a_taken_port_is_one_error_before_anything_loads(settings: Settings, workers: int) -> None:
    """The real command on a port another process listens on: exit 1 with one `Error:`
    line naming the port, no traceback, and no "Serving" announcement before it."""
    import subprocess
    import sys

    shipyard = Path(sys.executable).with_name("shipyard")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [shipyard, "serve", "iris", "--port", str(port), "--workers", str(workers)],
            env=_env(settings),
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 1, done.stderr[-2000:]
    assert "Serving" not in done.stderr and "Traceback" not in done.stderr, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and f"127.0.0.1:{port}" in errors[0], done.stderr
    assert "already in use" in done.stderr and "--port" in done.stderr
