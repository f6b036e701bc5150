"""Same test, same verdict, same score as Evidently 0.7 itself, column by column.

Runs Evidently's DataDriftPreset in its own venv (``bench/.peers/evidently``)
through ``bench/drift.py --child``. Slow (Evidently takes seconds to import).
Under CI (``CI=true``) the venv is built on first use (about a minute, from
PyPI), so CI always compares; elsewhere the tests skip until it is built::

    .venv/bin/python bench/_peers.py evidently 'evidently==0.7.*' 'pandas<3'
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from types import ModuleType

import pytest
from drift_frames import edge_frame

from peers import BENCH, load_bench, peer_venv_python
from shipyard.drift import DriftDetector

# One worker runs them all: Evidently is imported once, its venv built once.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("evidently")]


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return load_bench("drift")


@pytest.fixture(scope="module")
def evidently_python(bench: ModuleType) -> Path:
    return peer_venv_python("evidently", bench.EVIDENTLY_REQUIREMENTS, "Evidently")


CASES = {
    "ref1000-default": (1000, 800, {}),
    "ref1001-default": (1001, 900, {}),
    "psi": (3000, 2000, {"stattest": "psi"}),
    "kl_div": (3000, 2000, {"stattest": "kl_div"}),
    "hellinger": (3000, 2000, {"stattest": "hellinger", "threshold": 0.05}),
    "jensenshannon": (1500, 1500, {"stattest": "jensenshannon"}),
}


def _frames(n_ref: int, n_cur: int):
    return edge_frame(n_ref, drift=False, seed=n_ref), edge_frame(n_cur, drift=True, seed=n_cur + 7)


@pytest.fixture(scope="module")
def evidently_results(bench, evidently_python, tmp_path_factory) -> dict[str, dict]:
    """Every case through one Evidently process: it takes seconds just to import."""
    root = tmp_path_factory.mktemp("evidently_parity")
    cases = []
    for name, (n_ref, n_cur, options) in CASES.items():
        ref, cur = _frames(n_ref, n_cur)
        ref.to_parquet(root / f"{name}_ref.parquet")
        cur.to_parquet(root / f"{name}_cur.parquet")
        cases.append(
            {
                "reference": str(root / f"{name}_ref.parquet"),
                "current": str(root / f"{name}_cur.parquet"),
                "options": options,
            }
        )
    (root / "cases.json").write_text(json.dumps(cases))
    cmd = [str(evidently_python), str(BENCH / "drift.py"), "--child", "evidently", "--batch"]
    cmd += [str(root / "cases.json"), str(root / "out.json")]
    done = subprocess.run(cmd, timeout=900, capture_output=True, text=True)
    assert done.returncode == 0, f"Evidently run failed:\n{done.stderr[-3000:]}"
    return dict(zip(CASES, json.loads((root / "out.json").read_text()), strict=True))


@pytest.mark.parametrize("case", list(CASES))
def test_matches_evidently(evidently_results, case: str) -> None:
    n_ref, n_cur, options = CASES[case]
    ref, cur = _frames(n_ref, n_cur)
    evidently = evidently_results[case]
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
