"""deploy/stack/run-local.sh run for real: two replicas behind nginx on PostgreSQL, moto's
S3 API and Redis, answering through nginx; Ctrl+C (SIGTERM here) stops all of it."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest
from sklearn.linear_model import LogisticRegression
from test_stack import _redis_available
from typer.testing import CliRunner

from live_server import SRC
from services import require_service
from shipyard import Shipyard
from shipyard.cli.main import app
from shipyard.config import Settings
from shipyard.deploy.stack import find_nginx
from shipyard.quickstart import IRIS_RECORD, iris_frame


def free_port_block(n: int) -> int:
    """A port with the next ``n - 1`` free too, below the kernel's ephemeral range: a
    block inside it can be taken by any outgoing connection's local port meanwhile."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(10_000, low - n)
        if all(_bindable(base + i) for i in range(n)):
            return base
    raise RuntimeError(f"no block of {n} free ports below {low}")


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


# The stack tests share Redis db 0 (the servers' cache keys) and pick free ports the other
# could take before its processes bind them: they run one after the other, on one worker.
pytestmark = pytest.mark.xdist_group("shared-stack")


SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "stack" / "run-local.sh"


def script_env(tmp_path: Path, **values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHIPYARD_", "STACK_"))}
    bin_dir = str(Path(sys.executable).parent)
    env.update(
        PATH=os.pathsep.join([bin_dir, env.get("PATH", ""), "/usr/sbin"]),
        PYTHON=sys.executable,
        PYTHONPATH=str(SRC),
        SHIPYARD_HOME=str(tmp_path / "home"),
        STACK_DIR=str(tmp_path / "stack"),
        **values,
    )
    return env


def test_a_local_database_is_refused_in_one_line(tmp_path: Path) -> None:
    env = script_env(tmp_path, SHIPYARD_DB="sqlite:///x.db")
    run = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True)
    assert run.returncode == 2
    assert run.stderr.strip().startswith("Error: SHIPYARD_DB: replicas share one database")


@pytest.mark.parametrize("given", [None, "redis://10.0.0.7:6379/3?key_prefix=team"])
def test_every_shipyard_command_of_the_script_reads_one_shared_online_store(
    given: str | None, s3_endpoint: str, aws_env: None, tmp_path: Path
) -> None:
    """Feature-backed models on the stack read one online store, the stack's Redis (db 1,
    not the cache's db 0), unless SHIPYARD_ONLINE_STORE says otherwise: the environment the
    script gives ``shipyard`` (a stand-in here that records it and finds no deployment)."""
    seen = tmp_path / "env.txt"
    fake = tmp_path / "fake-shipyard"
    fake.write_text('#!/bin/sh\nenv > "$FAKE_ENV_OUT"\nexit 1\n')
    fake.chmod(0o755)
    values = {
        "SHIPYARD": str(fake),
        "FAKE_ENV_OUT": str(seen),
        "SHIPYARD_DB": "postgresql+psycopg://nobody@127.0.0.1:1/shipyard",  # never opened
        "SHIPYARD_ARTIFACTS": "s3://run-local-env/artifacts",
        "SHIPYARD_S3_ENDPOINT_URL": s3_endpoint,
    }
    if given is not None:
        values["SHIPYARD_ONLINE_STORE"] = given
    env = script_env(tmp_path, **values)
    run = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True)
    assert run.returncode == 1, run.stderr
    assert "No deployment named web" in run.stderr
    got = dict(line.split("=", 1) for line in seen.read_text().splitlines() if "=" in line)
    assert got["SHIPYARD_ONLINE_STORE"] == (given or "redis://127.0.0.1:6379/1")


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_script_serves_a_deployment_through_nginx(
    postgres_url: str,
    s3_endpoint: str,
    aws_env: None,
    tmp_path: Path,
) -> None:
    require_service(_redis_available(), "Redis is not reachable at 127.0.0.1:6379")
    require_service(find_nginx() is not None, "nginx is not installed")
    port = free_port_block(3)  # nginx on port, replicas on port + 1 and port + 2
    stores = {
        "SHIPYARD_DB": postgres_url,
        "SHIPYARD_ARTIFACTS": "s3://local-stack/artifacts",  # the script makes the bucket
        "SHIPYARD_S3_ENDPOINT_URL": s3_endpoint,
    }
    env = script_env(tmp_path, STACK_REPLICAS="2", STACK_PORT=str(port), **stores)

    # No deployment yet: the script says how to make one, and starts no replica.
    run = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True)
    assert run.returncode == 1, run.stderr
    assert "No deployment named web" in run.stderr and "shipyard deploy web" in run.stderr

    settings = Settings(
        home=tmp_path / "home",
        db=postgres_url,
        user="tester",
        artifacts=stores["SHIPYARD_ARTIFACTS"],
        s3_endpoint_url=s3_endpoint,
    )
    client = Shipyard(settings)
    X, y = iris_frame()
    model = LogisticRegression(max_iter=500).fit(X, y)
    client.registry.log_model(model, "iris", sample=X, optimize=False)
    result = CliRunner().invoke(app, ["deploy", "web", "--model", "iris:1"], env=env)
    assert result.exit_code == 0, result.output
    client.close()

    out = tmp_path / "script.log"
    with out.open("w") as log:
        script = subprocess.Popen(
            ["bash", str(SCRIPT)], env=env, stdout=log, stderr=subprocess.STDOUT, text=True
        )
    try:
        deadline = time.monotonic() + 300
        while "Ctrl+C stops the stack" not in out.read_text():
            assert script.poll() is None, out.read_text()
            assert time.monotonic() < deadline, out.read_text()
            time.sleep(0.2)
        children = psutil.Process(script.pid).children(recursive=True)
        # Every replica reads the stack's Redis as its online store, in another db than
        # the prediction cache it is given.
        serving = [p for p in children if "serve" in p.cmdline()]
        assert len(serving) == 2, [p.cmdline() for p in children]
        for replica in serving:
            command = replica.cmdline()
            assert command[command.index("--cache") + 1] == "redis://127.0.0.1:6379/0"
            assert replica.environ()["SHIPYARD_ONLINE_STORE"] == "redis://127.0.0.1:6379/1"
        replicas = set()
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            for _ in range(20):
                answer = http.post("/predict", json=IRIS_RECORD)
                assert answer.status_code == 200, answer.text
                assert answer.json()["version"] == 1
                replicas.add(answer.headers["x-shipyard-replica"])
        assert replicas == {f"127.0.0.1:{port + 1}", f"127.0.0.1:{port + 2}"}
        assert (tmp_path / "stack" / "prometheus.yml").exists()
    finally:
        script.send_signal(signal.SIGTERM)
        script.wait(60)
    # Every process the script started is gone.
    _, alive = psutil.wait_procs(children, timeout=30)
    assert not alive, alive
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{port}/ready", timeout=2)
