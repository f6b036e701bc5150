"""Peer tools (Evidently, NannyML, Feast, MLflow, ...) in their own virtualenvs, for tests.

A module of its own, not ``conftest``: parity tests import it by name. The venvs
are the benchmarks' (``bench/_peers.py``, under ``bench/.peers/``). Under CI
(``CI=true``) a missing venv is built on first use, so CI always compares;
elsewhere the test skips with the command that builds it.
"""

from __future__ import annotations

import importlib.util
import os
import shlex
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


def load_bench(name: str) -> ModuleType:
    """``bench/<name>.py`` as a module (bench/ is not a package)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build_command(name: str, requirements: list[str]) -> str:
    """The command that builds peer ``name``'s venv from ``requirements``."""
    return shlex.join([".venv/bin/python", "bench/_peers.py", name, *requirements])


def peer_venv_python(name: str, requirements: list[str], label: str | None = None) -> Path:
    """The Python of peer ``name``'s venv built from ``requirements``.

    Built on first use under CI; elsewhere a test asking for an unbuilt venv
    skips, naming the command that builds it. ``label`` names the tool in that
    message (default: ``name``).
    """
    peers = load_bench("_peers")
    if os.environ.get("CI", "").lower() == "true":
        return Path(peers.peer_python(peers.ensure_peer_venv(name, requirements)))
    if not peers.is_peer_built(name, requirements):
        pytest.skip(
            f"{label or name}'s peer venv is not built; build it with "
            f"`{build_command(name, requirements)}`"
        )
    return Path(peers.peer_python(peers.peer_dir(name)))
