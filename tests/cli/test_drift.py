"""``shipyard drift`` on files, through Typer's CliRunner on the real app."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from shipyard.cli.main import app

runner = CliRunner()


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHIPYARD_HOME", str(tmp_path / "home"))


def _app():
    return app


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("drift_cli")
    rng = np.random.default_rng(0)
    n = 1500
    ref = pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "y": rng.normal(size=n),
            "code": rng.integers(0, 30, n),
            "city": rng.choice(["a", "b", "c"], n),
        }
    )
    same = ref.sample(frac=1.0, random_state=1).reset_index(drop=True)
    drifted = ref.assign(x=ref["x"] + 1, y=ref["y"] * 3, city=rng.choice(["a", "z"], n))
    paths = {
        "ref": root / "ref.parquet",
        "same": root / "same.csv",
        "drifted": root / "drifted.parquet",
        "missing_col": root / "missing.parquet",
    }
    ref.to_parquet(paths["ref"])
    same.to_csv(paths["same"], index=False)
    drifted.to_parquet(paths["drifted"])
    ref.drop(columns=["y"]).to_parquet(paths["missing_col"])
    paths["bad_ext"] = root / "data.xlsx"
    paths["bad_ext"].write_text("nope")
    return paths


def test_no_drift_exits_zero_with_a_table(files) -> None:
    out = runner.invoke(
        _app(), ["drift", "--reference", str(files["ref"]), "--current", str(files["same"])]
    )
    assert out.exit_code == 0, out.output
    assert "Drift by column" in out.output and "No dataset drift" in out.output
    for column in ("x", "y", "code", "city"):
        assert column in out.output


def test_drift_exits_one_and_writes_reports(files, tmp_path: Path) -> None:
    html, js = tmp_path / "drift.html", tmp_path / "drift.json"
    args = ["drift", "--reference", str(files["ref"]), "--current", str(files["drifted"])]
    out = runner.invoke(_app(), [*args, "--report", str(html), "--json", str(js)])
    assert out.exit_code == 1, out.output
    assert "Dataset drift detected" in out.output
    data = json.loads(js.read_text())
    assert data["dataset"]["dataset_drift"] is True
    assert {c["column"] for c in data["columns"] if c["drift_detected"]} == {"x", "y", "city"}
    assert "<svg" in html.read_text()


def test_options_reach_the_detector(files) -> None:
    args = ["drift", "--reference", str(files["ref"]), "--current", str(files["drifted"])]
    opts = ["--json", "-", "--categorical", "code", "--stattest", "psi", "--threshold", "0.3"]
    out = runner.invoke(_app(), [*args, *opts, "--drift-share", "0.9"])
    assert out.exit_code == 0, out.output  # 3 of 4 drifted < 0.9: no dataset drift
    data = json.loads(out.output)
    code = next(c for c in data["columns"] if c["column"] == "code")
    assert (code["type"], code["stattest"], code["threshold"]) == ("categorical", "psi", 0.3)


def test_fdr_flag(files) -> None:
    args = ["drift", "--reference", str(files["ref"]), "--current", str(files["same"])]
    out = runner.invoke(_app(), [*args, "--stattest", "jensenshannon", "--fdr", "--json", "-"])
    assert out.exit_code == 0, out.output


@pytest.mark.parametrize(
    ("current", "message"),
    [
        ("nowhere.parquet", "nowhere.parquet': there is no such file"),
        ("bad_ext", "cannot tell its format from the extension '.xlsx'"),
        ("missing_col", "missing columns ['y']"),
    ],
)
def test_errors_exit_one_with_a_clear_message(files, current: str, message: str) -> None:
    path = files.get(current, Path(current))
    out = runner.invoke(_app(), ["drift", "--reference", str(files["ref"]), "--current", str(path)])
    assert out.exit_code == 1
    assert "Error:" in out.output and message in out.output


def test_bad_stattest_is_an_error(files) -> None:
    args = ["drift", "--reference", str(files["ref"]), "--current", str(files["same"])]
    out = runner.invoke(_app(), [*args, "--stattest", "ks"])
    assert out.exit_code == 1 and "does not apply to categorical" in out.output
