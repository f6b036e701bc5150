"""The JSON report is the result's dict, written as UTF-8 JSON."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from shipyard.drift import DriftDetector
from shipyard.drift.report_json import to_json, write_json


def test_json_round_trips_the_result(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    ref = pd.DataFrame({"x": rng.normal(size=1500), "c": rng.choice(["a", "b", "c"], 1500)})
    result = DriftDetector().fit(ref).score(ref.assign(x=ref["x"] + 2))
    assert json.loads(to_json(result)) == result.to_dict()
    path = write_json(tmp_path / "drift.json", result)
    data = json.loads(path.read_text())
    assert data["dataset"]["n_drifted"] == 1
    assert data["columns"][0] == {
        "column": "x",
        "type": "numerical",
        "stattest": "wasserstein",
        "threshold": 0.1,
        "score": result.column("x").score,
        "drift_detected": True,
    }
