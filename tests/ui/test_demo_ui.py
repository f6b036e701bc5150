"""``make demo`` (``shipyard quickstart``) ends by printing the UI command, and the UI
over the run it leaves shows the whole story: runs, versions, the canary, the
rollback, the loop and the drift."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from shipyard._client import Shipyard
from shipyard.config import Settings
from shipyard.ui.app import create_app

SHIPYARD = Path(sys.executable).with_name("shipyard")


@pytest.mark.slow
def test_the_demo_prints_the_ui_command_and_the_ui_tells_its_story(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
    env["COLUMNS"] = "200"
    done = subprocess.run(
        [str(SHIPYARD), "quickstart"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    last = done.stdout.strip().splitlines()[-2:]
    found = re.search(r"SHIPYARD_HOME=(\S+) shipyard ui", last[0] + " " + last[1])
    assert found is not None, last
    home = Path(found.group(1))
    if not home.is_absolute():
        home = tmp_path / home
    client = Shipyard(Settings(home=home))
    try:
        http = TestClient(create_app(client), base_url="http://127.0.0.1")
        models = http.get("/models").text
        assert 'data-model="iris"' in models
        deployment = http.get("/deployments/iris")
        assert deployment.status_code == 200
        assert "auto_rollback" in deployment.text or "rollback" in deployment.text
        loop = http.get("/loop").text
        assert "promoted" in loop
        runs = http.get("/runs").text
        assert 'data-run="' in runs
        monitoring = http.get("/monitoring/iris?window=1h").text
        assert 'data-chart="Requests per bucket"' in monitoring
        assert "Drift of sepal_length" in monitoring
    finally:
        client.close()
