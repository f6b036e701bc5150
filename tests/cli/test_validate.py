"""``shipyard validate ...``, ``approve`` and ``reject`` through a root app wired as main's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier
from typer.testing import CliRunner

from shipyard import Shipyard
from shipyard.cli.main import app
from shipyard.config import Settings
from shipyard.quickstart import iris_frame


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """iris:1 (a good model, production) and iris:2 (a stump), plus data files."""
    home = tmp_path / "home"
    monkeypatch.setenv("SHIPYARD_HOME", str(home))
    monkeypatch.setenv("SHIPYARD_USER", "cli-tester")
    monkeypatch.chdir(tmp_path)
    client = Shipyard(Settings(home=home))
    X, y = iris_frame()
    client.registry.log_model(LogisticRegression(max_iter=500).fit(X, y), "iris", sample=X)
    stump = DecisionTreeClassifier(max_depth=1, random_state=0).fit(X, y)
    client.registry.log_model(stump, "iris", sample=X)
    client.registry.set_alias("iris", "production", 1)
    client.close()
    X.to_csv(tmp_path / "train.csv", index=False)
    X.assign(species=y).to_csv(tmp_path / "holdout.csv", index=False)
    bad = X.copy()
    bad.loc[[2, 7], "petal_length"] = [40.0, -3.0]
    bad.to_csv(tmp_path / "bad.csv", index=False)
    return home


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def test_validate_data_exit_codes_json_and_report(home: Path, tmp_path: Path) -> None:
    # log_model inferred a contract from the training sample already.
    code, out = run("validate", "data", "iris:1", "train.csv")
    assert code == 0 and "passed" in out
    code, out = run("validate", "contract", "iris:1", "--infer", "train.csv")
    assert code == 0 and "revision 2" in out

    code, out = run("validate", "data", "iris:1", "train.csv")
    assert code == 0 and "passed" in out
    code, out = run("validate", "data", "iris", "bad.csv", "--json", "--report", "r/out.html")
    assert code == 1
    result = json.loads(out)
    assert result["passed"] is False and result["model"] == "iris:1"
    # -3 cm is impossible (petals were never negative): an error. 40 cm is far past the
    # expected range: a warning on its own, reported beside the error.
    impossible, unusual = result["violations"]
    assert (impossible["column"], impossible["severity"], impossible["rows"]) == (
        "petal_length",
        "error",
        [7],
    )
    assert impossible["expectation"] == "bounds" and impossible["values"] == [-3.0]
    assert (unusual["severity"], unusual["expectation"], unusual["rows"]) == (
        "warning",
        "range",
        [2],
    )
    assert unusual["values"] == [40.0]
    assert (result["errors"], result["warnings"]) == (1, 1)
    html = (tmp_path / "r" / "out.html").read_text()
    assert "petal_length" in html and "FAILED" in html


def test_contract_export_and_import(home: Path, tmp_path: Path) -> None:
    run("validate", "contract", "iris:1", "--infer", "train.csv")
    code, out = run("validate", "contract", "iris:1", "--export", "gx")
    assert code == 0 and json.loads(out)["expectation_suite_name"] == "iris:1"
    code, out = run("validate", "contract", "iris:1", "--export", "pandera")
    assert code == 0 and "DataFrameSchema" in out
    compile(out, "schema.py", "exec")
    code, _ = run("validate", "contract", "iris:1", "-o", "c.json")
    assert code == 0
    edited = json.loads((tmp_path / "c.json").read_text())
    petal = next(c for c in edited["columns"] if c["name"] == "petal_length")
    petal["minimum"], petal["maximum"], petal["lower_bound"] = -5.0, 50.0, None
    (tmp_path / "c.json").write_text(json.dumps(edited))
    code, out = run(
        "validate", "contract", "iris:1", "--import", "c.json", "--reason", "wider petals"
    )
    assert code == 0 and "revision 3" in out
    code, _ = run("validate", "data", "iris:1", "bad.csv")
    assert code == 0
    client = Shipyard(Settings(home=home))
    edits = [a for a in client.audit.log(model="iris") if a.action == "edit_contract"]
    # Newest first: the import above, then the re-inference at the top of the test.
    assert (edits[0].actor, edits[0].reason) == ("cli-tester", "wider petals")
    client.close()
    (tmp_path / "broken.json").write_text('{"columns": [{"name": "x"}]}')
    code, out = run("validate", "contract", "iris:1", "--import", "broken.json")
    assert code == 1 and "has no 'dtype'" in out


def test_validate_model_gates_and_stores(home: Path) -> None:
    code, out = run(
        "validate",
        "model",
        "iris:2",
        "--against",
        "iris:1",
        "--data",
        "holdout.csv",
        "--target",
        "species",
        "--threshold",
        "accuracy>=0.9",
        "--size-budget-mb",
        "50",
        "--json",
    )
    assert code == 1
    report = json.loads(out)
    assert report["passed"] is False and report["champion"] == "iris:1"
    assert [c["passed"] for c in report["checks"]] == [False, True]
    code, out = run(
        "validate", "model", "iris:1", "--data", "holdout.csv", "--target", "species",
        "--threshold", "accuracy>=0.9", "--slice", "petal_width", "--max-slice-gap",
        "accuracy:1.0", "--min-slice-rows", "5", "--latency-budget-ms", "5000",
        "--latency-samples", "3",
    )  # fmt: skip
    assert code == 0, out
    assert "passed" in out and "accuracy by petal_width" in out
    client = Shipyard(Settings(home=home))
    store = client.validation
    assert not store.latest_gate_result("iris", 2).passed
    assert store.latest_gate_result("iris", 1).passed
    client.close()
    code, out = run("validate", "model", "iris:1", "--data", "holdout.csv", "--target", "nope")
    assert code == 1 and "no target column 'nope'" in out


def test_approve_reject_and_policy(home: Path) -> None:
    code, out = run("validate", "policy", "--required-approvals", "1", "--model", "iris")
    assert code == 0 and "needs 1 approval" in out
    code, out = run("validate", "policy", "--model", "iris")
    assert "needs 1 approval(s) (set on the model)" in out
    code, out = run("approve", "iris:2", "--comment", "looks fine", "--json")
    assert code == 0
    status = json.loads(out)
    assert status["approvers"] == ["cli-tester"] and status["ready_for_production"] is True
    code, out = run("reject", "iris:2", "--comment", "stump is too weak")
    assert code == 0 and "rejected by cli-tester" in out and "not yet" in out
    code, out = run("reject", "iris:2")
    assert code == 2  # --comment is required
    code, out = run("approve", "iris:9")
    assert code == 1 and "no version 9" in out


def test_unusual_values_warn_and_strict_fails_on_them(home: Path, tmp_path: Path) -> None:
    X, _ = iris_frame()
    unusual = X.copy()
    unusual.loc[4, "sepal_width"] = 9.5  # twice the widest sepal seen: unusual, not impossible
    unusual.to_csv(tmp_path / "unusual.csv", index=False)
    code, out = run("validate", "data", "iris:1", "unusual.csv")
    assert code == 0, out
    assert "passed with 1 warning" in out and "sepal_width" in out and "warning" in out
    code, out = run("validate", "data", "iris:1", "unusual.csv", "--strict", "--json")
    assert code == 1
    result = json.loads(out)
    assert result["strict"] is True and result["passed"] is False
    # A contract made strict by editing it fails the same file without the flag.
    run("validate", "contract", "iris:1", "-o", "c.json")
    edited = json.loads((tmp_path / "c.json").read_text())
    edited["strict"] = True
    (tmp_path / "c.json").write_text(json.dumps(edited))
    code, out = run("validate", "contract", "iris:1", "--import", "c.json", "--reason", "strict")
    assert code == 0, out
    code, out = run("validate", "data", "iris:1", "unusual.csv")
    assert code == 1 and "strict" in out


def test_held_out_rows_of_the_training_data_pass_their_contract(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """wine trained on 70 %: the other 30 % (magnesium 151 and 162 among them) pass."""
    from sklearn.datasets import load_wine
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    monkeypatch.setenv("SHIPYARD_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    X, y = load_wine(return_X_y=True, as_frame=True)
    X_train, X_test, y_train, _ = train_test_split(X, y, test_size=0.3, random_state=10)
    assert {151.0, 162.0} <= set(X_test["magnesium"]) and X_train["magnesium"].max() == 139
    client = Shipyard(Settings(home=tmp_path / "home"))
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    client.registry.log_model(model.fit(X_train, y_train), "wine", sample=X_train)
    client.close()
    X_test.to_csv(tmp_path / "holdout.csv", index=False)
    code, out = run("validate", "data", "wine:1", "holdout.csv", "--strict")
    assert code == 0, out
    assert "no violations" in out
    broken = X_test.copy()
    broken.iloc[3, broken.columns.get_loc("magnesium")] = -151.0
    broken.to_csv(tmp_path / "broken.csv", index=False)
    code, out = run("validate", "data", "wine:1", "broken.csv")
    assert code == 1 and "magnesium" in out and "at least 0" in out
