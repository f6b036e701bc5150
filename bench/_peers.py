"""Build and reuse a private virtualenv per peer tool for the benchmarks.

Each peer (Evidently, MLflow, BentoML, ...) gets its own venv under
``bench/.peers/<name>`` so it never leaks into Shipyard's own dependencies.
The venv is built once with the project's pinned ``uv`` and rebuilt only when
the requirement list changes (a stamp file records it).

    >>> from bench._peers import ensure_peer_venv, peer_python
    >>> venv = ensure_peer_venv("evidently", ["evidently==0.7.*", "pandas<3"])
    >>> peer_python(venv)  # doctest: +SKIP
    PosixPath('.../bench/.peers/evidently/bin/python')
"""

from __future__ import annotations

import fcntl
import json
import shutil
import subprocess
import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
PEERS_DIR = BENCH_DIR / ".peers"
REPO_DIR = BENCH_DIR.parent
UV = REPO_DIR / ".venv" / "bin" / "uv"
STAMP_NAME = ".requirements.json"


def peer_dir(name: str) -> Path:
    """Where the venv of peer ``name`` lives (it may not exist yet)."""
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"peer name {name!r} must be a plain folder name, e.g. 'evidently'")
    return PEERS_DIR / name


def peer_python(venv: Path) -> Path:
    """The Python interpreter inside a peer venv."""
    return venv / "bin" / "python"


def is_peer_built(name: str, requirements: list[str] | None = None) -> bool:
    """True when the venv exists and (if given) was built from ``requirements``."""
    venv = peer_dir(name)
    stamp = venv / STAMP_NAME
    if not peer_python(venv).exists() or not stamp.exists():
        return False
    if requirements is None:
        return True
    return json.loads(stamp.read_text()) == sorted(requirements)


def ensure_peer_venv(
    name: str, requirements: list[str], *, python: str = sys.executable, quiet: bool = True
) -> Path:
    """Return ``bench/.peers/<name>``, building it with uv if needed.

    The venv is rebuilt from scratch when its recorded requirement list
    differs from ``requirements``, so changing a pin cannot silently reuse an
    old environment.
    """
    venv = peer_dir(name)
    if is_peer_built(name, requirements):
        return venv
    if not UV.exists():
        raise FileNotFoundError(f"{UV} not found: build the project venv first with `make venv`")
    PEERS_DIR.mkdir(parents=True, exist_ok=True)
    # Test workers (pytest -n 2) may ask for the same peer at once: one builds it while
    # the others wait, then find it built.
    with open(PEERS_DIR / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if is_peer_built(name, requirements):
            return venv
        _build(venv, requirements, python=python, quiet=quiet)
    return venv


def _build(venv: Path, requirements: list[str], *, python: str, quiet: bool) -> None:
    if venv.exists():
        shutil.rmtree(venv)
    flags = ["--quiet"] if quiet else []
    subprocess.run([str(UV), "venv", *flags, "--python", python, str(venv)], check=True)
    subprocess.run(
        [str(UV), "pip", "install", *flags, "--python", str(peer_python(venv)), *requirements],
        check=True,
    )
    # Written last: a half-built venv (interrupted install) has no stamp.
    (venv / STAMP_NAME).write_text(json.dumps(sorted(requirements)))


def peer_versions(venv: Path, packages: list[str]) -> dict[str, str]:
    """Installed versions of ``packages`` inside a peer venv (for the report table)."""
    code = (
        "import json, sys, importlib.metadata as m\n"
        "out = {}\n"
        "for p in sys.argv[1:]:\n"
        "    try: out[p] = m.version(p)\n"
        "    except m.PackageNotFoundError: out[p] = 'missing'\n"
        "print(json.dumps(out))\n"
    )
    done = subprocess.run(
        [str(peer_python(venv)), "-c", code, *packages], check=True, capture_output=True, text=True
    )
    return json.loads(done.stdout)


if __name__ == "__main__":
    # `python bench/_peers.py NAME REQ...` builds a peer venv by hand.
    if len(sys.argv) < 3:
        raise SystemExit("usage: python bench/_peers.py NAME REQUIREMENT [REQUIREMENT...]")
    print(ensure_peer_venv(sys.argv[1], sys.argv[2:], quiet=False))
