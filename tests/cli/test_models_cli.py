"""The CLI through its real root app: tables for people, JSON for scripts, exit codes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

from shipyard import Shipyard
from shipyard.cli.main import app
from shipyard.config import Settings
from shipyard.quickstart import iris_frame


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A registry with iris:1 and iris:2 (production -> 1) that the CLI finds via env."""
    home = tmp_path / "home"
    monkeypatch.setenv("SHIPYARD_HOME", str(home))
    monkeypatch.setenv("SHIPYARD_USER", "cli-tester")
    monkeypatch.chdir(tmp_path)
    client = Shipyard(Settings(home=home))
    X, y = iris_frame()
    for c in (0.1, 1.0):
        model = LogisticRegression(C=c, max_iter=500).fit(X, y)
        client.registry.log_model(model, "iris", sample=X, metrics={"accuracy": c})
    client.registry.set_alias("iris", "production", 1)
    client.close()
    return home


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def test_models_list_and_json(home: Path) -> None:
    code, out = run("models", "list")
    assert code == 0 and "iris" in out and "production->1" in out
    code, out = run("models", "list", "--json")
    assert json.loads(out)[0]["aliases"] == {"production": 1}


def test_models_versions_and_show(home: Path) -> None:
    code, out = run("models", "versions", "iris", "--json")
    assert code == 0
    assert [v["version"] for v in json.loads(out)] == [1, 2]
    code, out = run("models", "show", "iris")
    assert code == 0
    assert "iris:1" in out and "sepal_length" in out and "setosa" in out
    code, out = run("models", "show", "iris:2", "--json")
    shown = json.loads(out)
    assert shown["manifest"]["version"] == 2
    assert shown["manifest"]["flavor"] == "sklearn"


@pytest.mark.parametrize("ref", ["iris@latest", "models:/iris/latest", "models:/iris/2"])
def test_newest_version_by_every_documented_spelling(home: Path, ref: str) -> None:
    code, out = run("models", "show", ref, "--json")
    assert code == 0, out
    assert json.loads(out)["manifest"]["version"] == 2


def test_error_messages_print_brackets_as_written(home: Path) -> None:
    """Messages are text, not Rich markup: "[x]" is not a style tag to swallow."""
    code, out = run("models", "show", "iris[x]")
    assert code == 1
    assert "'iris[x]' is not a model reference" in " ".join(out.split())


def test_alias_move_is_audited(home: Path) -> None:
    code, out = run("models", "alias", "iris", "production", "2", "--reason", "better")
    assert code == 0 and "version 1 -> version 2" in out
    code, out = run("audit", "--json")
    entry = json.loads(out)[0]
    assert (entry["actor"], entry["from_value"], entry["to_value"], entry["reason"]) == (
        "cli-tester",
        "1",
        "2",
        "better",
    )


def test_errors_exit_1_with_a_clear_message(home: Path) -> None:
    code, out = run("models", "show", "wine")
    assert code == 1
    assert "No model named 'wine'" in out and "iris" in out
    code, out = run("models", "show", "iris:9")
    assert code == 1 and "Versions: 1, 2" in out
    code, out = run("models", "alias", "iris", "latest", "1")
    assert code == 1 and "reserved" in out


def test_archive_and_runs(home: Path) -> None:
    code, _ = run("models", "archive", "iris:2", "--reason", "old")
    assert code == 0
    _, out = run("models", "versions", "iris", "--json")
    assert [v["status"] for v in json.loads(out)] == ["ready", "archived"]
    code, out = run("runs", "list", "--json")
    assert code == 0 and json.loads(out) == []


def test_runs_show_prints_the_dataset_context_and_source(home: Path) -> None:
    client = Shipyard(Settings(home=home))
    X, _ = iris_frame()
    with client.tracker.start_run("exp", name="[fit]") as active:
        active.log_dataset(X, context="training", source="s3://bucket/iris.parquet")
        active.log_param("note", "[v2]")
    client.close()
    code, out = run("runs", "show", active.id)
    assert code == 0, out
    assert "[fit]" in out
    assert "dataset [training] from s3://bucket/iris.parquet: 150 rows, 4 columns" in out
    assert "[v2]" in out  # a table cell is text, not markup


def test_models_show_has_the_params_and_tags_of_the_run_that_made_it(home: Path) -> None:
    client = Shipyard(Settings(home=home))
    X, y = iris_frame()
    with client.tracker.start_run("iris-runs") as tracked:
        tracked.log_params({"C": 0.25, "solver": "lbfgs"})
        tracked.set_tag("owner", "team-flowers")
        model = LogisticRegression(C=0.25, max_iter=500).fit(X, y)
        version = client.registry.log_model(model, "iris", sample=X, run_id=tracked.id)
    client.close()
    code, out = run("models", "show", version.ref)
    assert code == 0, out
    assert "Params" in out and re.search(r"C\s+.?\s*0\.25", out), out
    assert re.search(r"solver\s+.?\s*lbfgs", out), out
    assert f"Tags of run {tracked.id[:12]}" in out and re.search(r"owner\s+.?\s*team-flowers", out)


def test_models_show_says_which_runtime_serves_and_why(home: Path) -> None:
    """Registered with no extra argument, a model is compiled to ONNX and verified on its
    sample; ``optimize=False`` opts out, and ``models show`` says which runtime serves."""
    code, out = run("models", "show", "iris:1")
    flat = " ".join(out.split())
    assert code == 0
    assert "Runtime: onnxruntime" in flat and "verified" in flat and "classes equal" in flat
    assert "--no-onnx" in flat  # how to serve the original instead
    client = Shipyard(Settings(home=home))
    X, y = iris_frame()
    client.registry.log_model(
        LogisticRegression(max_iter=500).fit(X, y), "plain", sample=X, optimize=False
    )
    client.close()
    code, out = run("models", "show", "plain:1")
    flat = " ".join(out.split())
    assert code == 0 and "Runtime: original (sklearn); not optimized" in flat


def test_show_names_the_features_a_version_fetches_and_what_a_request_carries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "features"))
    from driver_data import driver_stats, entity_rows, write_definitions

    home = tmp_path / "features-home"
    monkeypatch.setenv("SHIPYARD_HOME", str(home))
    client = Shipyard(Settings(home=home))
    stats = driver_stats(n_drivers=5, hours=24)
    client.features.apply(write_definitions(tmp_path / "repo", stats, ttl="2h"))
    refs = ["driver_stats:conv_rate", "driver_stats:avg_daily_trips"]
    with client.tracker.start_run("eta") as r:
        train = client.features.training_set(entity_rows(stats, 100), refs).dropna()
        X = train[["conv_rate", "avg_daily_trips"]].astype("float64")
        model = LogisticRegression().fit(X, train["label"])
        client.registry.log_model(model, "eta", sample=X, run_id=r.id, features=r.features)
    client.registry.log_model(model, "plain", sample=X)
    client.close()
    code, out = run("models", "show", "eta:1")
    assert code == 0, out
    flat = " ".join(out.split())
    assert (
        "features: driver_stats:conv_rate, driver_stats:avg_daily_trips (views driver_stats v1);"
        " a request carries driver_id" in flat
    )
    code, out = run("models", "show", "plain:1")
    assert code == 0 and "features:" not in out
