"""Same test, same verdict, same score as Evidently 0.7 itself, column by column.

Runs Evidently's DataDriftPreset in its own venv (``bench/.peers/evidently``)
through ``bench/drift.py --child``. Slow (Evidently takes seconds to import),
and skipped when that venv has not been built; build it once with::

    .venv/bin/python bench/_peers.py evidently 'evidently==0.7.*' 'pandas<3'
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
from pathlib import Path
from types import ModuleType

import pytest
from drift_frames import edge_frame

from shipyard.drift import DriftDetector

BENCH = Path(__file__).resolve().parents[2] / "bench"
pytestmark = pytest.mark.slow


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return _load("drift")


@pytest.fixture(scope="module")
def evidently_python(bench: ModuleType) -> Path:
    peers = _load("_peers")
    if not peers.is_peer_built("evidently", bench.EVIDENTLY_REQUIREMENTS):
        pytest.skip(
            "Evidently's peer venv is not built; build it with "
            "`.venv/bin/python bench/_peers.py evidently 'evidently==0.7.*' 'pandas<3'`"
        )
    return peers.peer_python(peers.peer_dir("evidently"))


@pytest.mark.parametrize(
    ("n_ref", "n_cur", "options"),
    [
        (1000, 800, {}),
        (1001, 900, {}),
        (3000, 2000, {"stattest": "psi"}),
        (3000, 2000, {"stattest": "hellinger", "threshold": 0.05}),
    ],
    ids=["ref1000-default", "ref1001-default", "psi", "hellinger"],
)
def test_matches_evidently(bench, evidently_python, tmp_path: Path, n_ref, n_cur, options) -> None:
    ref = edge_frame(n_ref, drift=False, seed=n_ref)
    cur = edge_frame(n_cur, drift=True, seed=n_cur + 7)
    ref_path, cur_path, out = (
        tmp_path / "ref.parquet",
        tmp_path / "cur.parquet",
        tmp_path / "ev.json",
    )
    ref.to_parquet(ref_path)
    cur.to_parquet(cur_path)
    cmd = [str(evidently_python), str(BENCH / "drift.py"), "--child", "evidently"]
    cmd += [str(ref_path), str(cur_path), str(out), json.dumps(options)]
    subprocess.run(cmd, check=True, timeout=600, capture_output=True)
    evidently = json.loads(out.read_text())

    result = DriftDetector(**options).fit(ref).score(cur)
    assert sorted(evidently["columns"]) == sorted(c.column for c in result.columns)
    for col in result.columns:
        theirs = evidently["columns"][col.column]
        assert (col.type, col.stattest, col.drift_detected) == (
            theirs["type"],
            theirs["stattest"],
            theirs["drift_detected"],
        ), col.column
        assert col.threshold == theirs["threshold"]
        assert col.score == pytest.approx(theirs["score"], rel=1e-9, abs=1e-12), col.column
    assert result.n_drifted == evidently["dataset"]["n_drifted"]
    assert result.dataset_drift == evidently["dataset"]["dataset_drift"]
