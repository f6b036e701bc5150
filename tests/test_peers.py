"""The peer-venv helper the parity tests share (tests/peers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from peers import BENCH, build_command, load_bench, peer_venv_python
from services import require_service


def test_an_unbuilt_peer_skips_naming_the_command_that_builds_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CI", raising=False)
    requirements = ["nannyml==0.13.1", "statsmodels", "pandas<3"]
    expected = (
        "NannyML's peer venv is not built; build it with `.venv/bin/python bench/_peers.py "
        "never-built nannyml==0.13.1 statsmodels 'pandas<3'`"
    )
    with pytest.raises(pytest.skip.Exception) as info:
        peer_venv_python("never-built", requirements, "NannyML")
    assert str(info.value) == expected
    assert build_command("never-built", requirements) in expected


def test_a_built_peer_gives_its_venvs_python(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever peer the shared bench/.peers holds, built from its recorded requirements."""
    monkeypatch.delenv("CI", raising=False)
    peers = load_bench("_peers")
    folders = [p for p in sorted(peers.PEERS_DIR.glob("[!.]*")) if p.is_dir()]
    built = [p for p in folders if peers.is_peer_built(p.name)]
    require_service(bool(built), "no peer venv is built under bench/.peers")
    import json

    venv = built[0]
    requirements = json.loads((venv / peers.STAMP_NAME).read_text())
    python = peer_venv_python(venv.name, requirements)
    assert python == Path(peers.peer_python(venv)) and python.exists()
    assert Path(__file__).resolve().parents[1] / "bench" == BENCH
