"""``shipyard ui`` through the real command: it serves, warns when exposed without a
login, and makes password hashes for ``SHIPYARD_UI_USERS``."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest
from argon2 import PasswordHasher

from live_server import free_port, subprocess_env
from shipyard.config import Settings

pytestmark = pytest.mark.slow


def _run_ui(env: dict[str, str], *args: str) -> tuple[str, int]:
    """Start ``shipyard ui ARGS``, fetch /models once it answers, stop it; its output."""
    port = free_port()
    with tempfile.TemporaryFile(mode="w+") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "shipyard.cli", "ui", "--port", str(port), *args],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            deadline, status = time.monotonic() + 60, 0
            while time.monotonic() < deadline and proc.poll() is None:
                with contextlib.suppress(httpx.TransportError):
                    status = httpx.get(f"http://127.0.0.1:{port}/models", timeout=5).status_code
                    break
                time.sleep(0.2)
        finally:
            proc.terminate()
            proc.wait(20)
        log.seek(0)
        return log.read(), status


def test_ui_serves_and_warns_when_exposed_without_login(tmp_path: Path) -> None:
    env = subprocess_env(Settings(home=tmp_path / "home"), importable=tmp_path)
    output, status = _run_ui(env, "--host", "0.0.0.0")
    assert status == 200, output
    assert "no login is configured" in output and "0.0.0.0" in output
    assert "read-only" in output


def test_ui_on_loopback_with_users_does_not_warn(tmp_path: Path) -> None:
    env = subprocess_env(Settings(home=tmp_path / "home"), importable=tmp_path)
    env["SHIPYARD_UI_USERS"] = json.dumps({"ann": PasswordHasher().hash("pw")})
    output, status = _run_ui(env)
    assert status == 200, output
    assert "warning" not in output and "log in to change things" in output


def test_hash_password_prints_only_the_hash_of_the_piped_password(tmp_path: Path) -> None:
    """As the README uses it: ``$(... | shipyard ui --hash-password)`` captures the hash alone."""
    env = subprocess_env(Settings(home=tmp_path / "home"), importable=tmp_path)
    command = [sys.executable, "-m", "shipyard.cli", "ui", "--hash-password"]
    done = subprocess.run(command, env=env, input="s3cret\n", capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    digest = done.stdout.strip()
    assert digest.startswith("$argon2id$") and PasswordHasher().verify(digest, "s3cret")
    empty = subprocess.run(command, env=env, input="", capture_output=True, text=True)
    assert empty.returncode == 1 and "the password is empty" in empty.stderr
    assert "Traceback" not in empty.stderr


def test_bad_users_setting_is_one_clear_line(tmp_path: Path) -> None:
    env = subprocess_env(Settings(home=tmp_path / "home"), importable=tmp_path)
    env["SHIPYARD_UI_USERS"] = '{"ann": "plain-text"}'
    done = subprocess.run(
        [sys.executable, "-m", "shipyard.cli", "ui", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "SHIPYARD_UI_USERS" in done.stderr and "argon2" in done.stderr
    assert "Traceback" not in done.stderr
