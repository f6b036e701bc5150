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


@pytest.fixture(scope="module")
def dated(tmp_path_factory) -> dict[str, Path]:
    """Customers with a tenure and a signup date, in every format; the current ones
    signed up 400 days later (900 distinct days on each side)."""
    root = tmp_path_factory.mktemp("drift_dates")
    rng = np.random.default_rng(0)

    def customers(n: int, first_day: str) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "tenure_months": rng.integers(1, 60, n).astype(float),
                "signup_date": pd.Timestamp(first_day)
                + pd.to_timedelta(rng.integers(0, 900, n), unit="D"),
            }
        )

    paths: dict[str, Path] = {}
    for name, frame in (("train", customers(3000, "2022-01-01")),
                        ("shifted", customers(3000, "2023-02-05"))):  # fmt: skip
        paths[f"{name}.parquet"] = root / f"{name}.parquet"
        frame.to_parquet(paths[f"{name}.parquet"])
        paths[f"{name}.csv"] = root / f"{name}.csv"
        frame.to_csv(paths[f"{name}.csv"], index=False)
        paths[f"{name}.jsonl"] = root / f"{name}.jsonl"
        stamped = frame.assign(signup_date=frame["signup_date"].dt.strftime("%Y-%m-%dT%H:%M:%SZ"))
        stamped.to_json(paths[f"{name}.jsonl"], orient="records", lines=True)
    return paths


@pytest.mark.parametrize(
    ("reference", "current"),
    [
        ("train.parquet", "shifted.parquet"),
        ("train.csv", "shifted.csv"),
        ("train.csv", "shifted.parquet"),
        ("train.parquet", "shifted.csv"),
        ("train.jsonl", "shifted.jsonl"),
        ("train.jsonl", "shifted.csv"),
    ],
)
def test_a_date_column_gets_one_verdict_whatever_the_file_format(
    dated: dict[str, Path], reference: str, current: str
) -> None:
    """CSV and JSON have no date type: a text column of ISO 8601 dates is a datetime
    there too (not tested for drift), as it is when read from Parquet."""
    args = ["drift", "--reference", str(dated[reference]), "--current", str(dated[current])]
    out = runner.invoke(_app(), [*args, "--json", "-"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert [c["column"] for c in data["columns"]] == ["tenure_months"]
    assert [(s["column"], s["type"]) for s in data["skipped"]] == [("signup_date", "datetime")]
    assert data["dataset"]["dataset_drift"] is False


def test_a_stray_word_in_a_number_column_is_named_with_its_rows(
    dated: dict[str, Path], tmp_path: Path
) -> None:
    frame = pd.read_csv(dated["shifted.csv"])
    frame["tenure_months"] = frame["tenure_months"].astype(object)
    frame.loc[[17, 40, 41], "tenure_months"] = ["abc", "abc", "twelve"]
    frame.to_csv(tmp_path / "typo.csv", index=False)
    args = [
        "drift",
        "--reference",
        str(dated["train.csv"]),
        "--current",
        str(tmp_path / "typo.csv"),
    ]
    out = runner.invoke(_app(), args)
    assert out.exit_code == 1
    message = " ".join(out.output.split())
    assert message.startswith("Error: Column 'tenure_months' in the current data"), message
    assert "'abc' at rows 17, 40, 41 (0-based)" in message


@pytest.fixture(scope="module")
def gappy(tmp_path_factory) -> dict[str, Path]:
    """An integer column with 9 distinct values and 10 % missing: ``Int64`` in
    Parquet, float64 with NaN once a CSV has been read."""
    root = tmp_path_factory.mktemp("drift_gappy")
    rng = np.random.default_rng(3)
    paths: dict[str, Path] = {}
    for name, n in (("ref", 2000), ("cur", 1500)):
        rooms = pd.array(rng.integers(1, 10, n), dtype="Int64")
        rooms[rng.random(n) < 0.1] = pd.NA
        frame = pd.DataFrame({"rooms": rooms, "price": rng.normal(size=n)})
        for ext in ("parquet", "csv"):
            paths[f"{name}.{ext}"] = root / f"{name}.{ext}"
        frame.to_parquet(paths[f"{name}.parquet"])
        frame.to_csv(paths[f"{name}.csv"], index=False)
    return paths


@pytest.mark.parametrize("reference", ["ref.parquet", "ref.csv"])
@pytest.mark.parametrize("current", ["cur.parquet", "cur.csv"])
def test_an_integer_column_with_gaps_gets_one_test_whatever_the_file_format(
    gappy: dict[str, Path], reference: str, current: str
) -> None:
    """A CSV has no nullable integer: the same column must not become numerical
    (wasserstein) from a CSV while it is categorical (jensenshannon) from Parquet."""
    args = ["drift", "--reference", str(gappy[reference]), "--current", str(gappy[current])]
    out = runner.invoke(_app(), [*args, "--json", "-"])
    assert out.exit_code == 0, out.output
    columns = {c["column"]: c for c in json.loads(out.output)["columns"]}
    assert columns["rooms"]["type"] == "categorical", columns["rooms"]
    assert columns["rooms"]["stattest"] == "jensenshannon", columns["rooms"]
    assert columns["price"]["type"] == "numerical"


def test_the_untested_hint_names_the_command_line_option(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    notes = pd.DataFrame(
        {"note": [f"note {i}" for i in rng.permutation(400)], "x": rng.normal(size=400)}
    )
    notes.to_csv(tmp_path / "ref.csv", index=False)
    notes.to_csv(tmp_path / "cur.csv", index=False)
    args = ["drift", "--reference", str(tmp_path / "ref.csv"), "--current"]
    out = runner.invoke(_app(), [*args, str(tmp_path / "cur.csv"), "--json", "-"])
    assert out.exit_code == 0, out.output
    (skipped,) = json.loads(out.output)["skipped"]
    assert "--categorical" in skipped["reason"], skipped
