"""``shipyard drift --reference MODEL (--current FILE | --window 1h)`` on a real registry."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

from shipyard import Shipyard
from shipyard.cli.main import app
from shipyard.config import Settings
from shipyard.monitoring.records import PredictionBatch
from shipyard.quickstart import iris_frame


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("SHIPYARD_HOME", str(home))
    X, y = iris_frame()
    client = Shipyard(Settings(home=home))
    model = LogisticRegression(max_iter=500).fit(X, y)
    client.registry.log_model(model, "iris", sample=X)
    client.registry.set_alias("iris", "production", 1)
    shifted = X.assign(sepal_length=X["sepal_length"] + 2.0, sepal_width=X["sepal_width"] + 1.5)
    client.prediction_log.write(
        PredictionBatch(
            request_id="job-1",
            timestamp=datetime.now(UTC),
            model="iris",
            version=1,
            inputs=shifted,
            predictions=np.asarray(model.predict(shifted)),
            source="batch",
        )
    )
    client.close()
    X.to_csv(tmp_path / "same.csv", index=False)
    yield home


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["drift", *args])
    return result.exit_code, result.output


def test_window_of_the_prediction_log_against_the_stored_profile(home: Path) -> None:
    code, out = run("--reference", "iris", "--window", "1h")
    assert code == 1, out
    assert "sepal_length" in out and "Dataset drift detected" in out


def test_file_against_the_stored_profile(home: Path, tmp_path: Path) -> None:
    code, out = run("--reference", "iris:1", "--current", str(tmp_path / "same.csv"))
    assert code == 0, out


def test_a_usage_error_exits_2_and_a_bad_reference_1(home: Path, tmp_path: Path) -> None:
    code, out = run("--reference", "iris", "--window", "1h", "--current", "x.csv")
    assert code == 2 and "exactly one" in out  # a usage error
    code, out = run("--reference", "wine", "--window", "1h")
    assert code == 1 and "No model named 'wine'" in out
    code, out = run("--reference", str(tmp_path / "nope.parquet"), "--current", "x.csv")
    assert code == 1 and "nope.parquet': there is no such file" in out, out


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_feature_that_vanished_exits_3_naming_it(home: Path, tmp_path: Path, suffix: str) -> None:
    """A column that became all NaN/inf is drift (exit 1) against a file or the stored
    profile, however few of the columns it is."""
    X, _ = iris_frame()
    current = X.assign(petal_width=np.where(np.arange(len(X)) % 2, np.nan, np.inf))
    reference = tmp_path / f"reference{suffix}"
    path = tmp_path / f"current{suffix}"
    if suffix == ".csv":
        X.to_csv(reference, index=False)
        current.to_csv(path, index=False)  # inf is written as "inf", NaN as an empty field
    else:
        X.to_parquet(reference)
        current.to_parquet(path)
    json_out, html = tmp_path / "drift.json", tmp_path / "drift.html"
    for ref in ("iris", str(reference)):
        code, out = run(
            "--reference",
            ref,
            "--current",
            str(path),
            "--json",
            str(json_out),
            "--report",
            str(html),
        )
        assert code == 1, out
        assert "Vanished" in out and "petal_width" in out
        report = json.loads(json_out.read_text())
        assert report["dataset"]["vanished"] == ["petal_width"]
        assert report["dataset"]["dataset_drift"] is True
        verdict = {c["column"]: c for c in report["columns"]}["petal_width"]
        assert (verdict["stattest"], verdict["drift_detected"]) == ("vanished", True)
        assert "vanished: no values left" in html.read_text()
