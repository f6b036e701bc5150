"""``shipyard runs ...`` through the real root app: tree, show, artifacts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from shipyard import Shipyard
from shipyard.cli.main import app
from shipyard.config import Settings
from shipyard.tracking.search import search_runs


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("SHIPYARD_HOME", str(home))
    monkeypatch.setenv("SHIPYARD_USER", "cli-tester")
    monkeypatch.chdir(tmp_path)
    return home


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def _client(home: Path) -> Shipyard:
    return Shipyard(Settings(home=home))


def test_list_shows_nested_runs_under_their_parent(home: Path) -> None:
    client = _client(home)
    tracker = client.tracker
    with tracker.start_run("search", name="grid") as parent:
        for c in ("cand-a", "cand-b"):
            with tracker.start_run(nested=True, name=c):
                pass
    with tracker.start_run("search", name="alone"):
        pass
    client.close()
    # The real command in a wide terminal: one table row per run.
    env = {**os.environ, "SHIPYARD_HOME": str(home), "COLUMNS": "200"}
    done = subprocess.run(
        [str(Path(sys.executable).with_name("shipyard")), "runs", "list"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    out = done.stdout
    assert done.returncode == 0, done.stderr
    lines = [line for line in out.splitlines() if "search" in line]
    names = [next(n for n in ("grid", "cand-a", "cand-b", "alone") if n in line) for line in lines]
    assert names == ["alone", "grid", "cand-a", "cand-b"]
    assert "├─ cand-a" in out and "└─ cand-b" in out
    code, out = run("runs", "list", "--json")
    listed = {r["name"]: r for r in json.loads(out)}
    assert listed["cand-a"]["parent_id"] == parent.id
    code, out = run("runs", "show", parent.id[:12])
    assert code == 0 and "Nested runs" in out and "cand-a" in out


def test_artifacts_listed_shown_and_downloaded(home: Path, tmp_path: Path) -> None:
    client = _client(home)
    with client.tracker.start_run("iris", name="r") as r:
        r.log_text("hello", "notes/hello.txt")
        r.log_dict({"C": 1}, "config.json")
    client.close()
    code, out = run("runs", "artifacts", r.id[:12])
    assert code == 0, out
    assert "notes/hello.txt" in out and "config.json" in out and "text" in out
    code, out = run("runs", "show", r.id)
    assert code == 0 and "Artifacts" in out and "notes/hello.txt" in out
    code, out = run("runs", "show", r.id, "--json")
    assert [a["path"] for a in json.loads(out)["artifacts"]] == ["config.json", "notes/hello.txt"]
    dest = tmp_path / "dl"
    code, out = run("runs", "artifacts", r.id, "--download", str(dest))
    assert code == 0, out
    assert (dest / "notes" / "hello.txt").read_text() == "hello"
    assert json.loads((dest / "config.json").read_text()) == {"C": 1}


def test_show_lists_the_model_versions_a_run_registered(home: Path) -> None:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    X, y = load_iris(return_X_y=True, as_frame=True)
    model = LogisticRegression(max_iter=500).fit(X, y)
    client = _client(home)
    with client.tracker.start_run("iris", name="trained") as r:
        pass
    with client.tracker.start_run("iris", name="other") as other:
        pass
    for name in ("iris", "flowers"):
        client.registry.log_model(model, name, sample=X.head(20), run_id=r.id, optimize=False)
    client.close()
    code, out = run("runs", "show", r.id)
    assert code == 0, out
    assert "registered as: iris:1, flowers:1" in out
    code, out = run("runs", "show", r.id, "--json")
    assert json.loads(out)["model_versions"] == ["iris:1", "flowers:1"]
    code, out = run("runs", "show", other.id, "--json")
    assert json.loads(out)["model_versions"] == []
    code, out = run("runs", "show", other.id)
    assert "registered as" not in out


def test_artifacts_of_an_unknown_run_is_one_line_error(home: Path) -> None:
    result = CliRunner().invoke(app, ["runs", "artifacts", "deadbeef"])
    assert result.exit_code == 1
    assert "No run with id 'deadbeef'" in result.output
    assert "Traceback" not in result.output


def test_a_prefix_of_several_run_ids_is_refused_listing_them(home: Path) -> None:
    client = _client(home)
    ids = []
    for i in range(17):  # 17 ids among 16 first characters: two share one
        with client.tracker.start_run("prefixes", name=f"r{i}") as r:
            ids.append(r.id)
    shared = next(c for c in sorted({i[0] for i in ids}) if sum(i[0] == c for i in ids) > 1)
    matching = sorted(i for i in ids if i.startswith(shared))
    code, output = run("runs", "show", shared)
    assert code == 1 and "Traceback" not in output
    said = " ".join(output.split())
    assert f"The run id prefix '{shared}' matches" in said and "give more characters" in said
    assert matching[0][:12] in said
    unique = next(i for i in ids if sum(j.startswith(i[:3]) for j in ids) == 1)
    code, output = run("runs", "show", unique[:3])  # one match: that run
    assert code == 0 and unique[:12] in output, output


def test_search_filters_sorts_and_explains_bad_filters(home: Path) -> None:
    client = _client(home)
    for c, acc in [(0.1, 0.8), (1.0, 0.95), (10.0, 0.97)]:
        with client.tracker.start_run("iris", name=f"C={c}") as r:
            r.log_param("C", c)
            r.log_metric("accuracy", acc)
    client.close()
    code, out = run(
        "runs", "search", "metrics.accuracy > 0.9", "-e", "iris", "-o", "metrics.accuracy ASC"
    )
    assert code == 0, out
    assert "C=1.0" in out and "C=10.0" in out and "C=0.1" not in out
    assert out.index("C=1.0") < out.index("C=10.0")
    code, out = run("runs", "search", "params.C = '10.0'", "--json")
    assert [r["run_name"] for r in json.loads(out)] == ["C=10.0"]
    code, out = run("runs", "search", "metrics.accuracy > 0.9", "-n", "1", "--json")
    assert len(json.loads(out)) == 1
    result = CliRunner().invoke(app, ["runs", "search", "metrics.accuracy > high"])
    assert result.exit_code == 1
    assert "Invalid filter at 'high'" in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(app, ["runs", "search", "-e", "nope"])
    assert result.exit_code == 1 and "No experiment named 'nope'" in result.output


def test_search_json_keys_are_the_python_dataframes_columns(home: Path) -> None:
    """`runs search --json` and `shipyard.search_runs` name every field the same way."""
    client = _client(home)
    with client.tracker.start_run("iris", name="with-both") as r:
        r.log_param("C", 1.0)
        r.log_metric("accuracy", 0.9)
        r.set_tag("team", "risk")
    with client.tracker.start_run("iris", name="metric-only") as r:
        r.log_metric("loss", 0.3)
    expected = search_runs(client.run_search, "iris")
    client.close()
    code, out = run("runs", "search", "-e", "iris", "--json")
    assert code == 0, out
    listed = json.loads(out)
    assert [list(r) for r in listed] == [list(expected.columns)] * 2
    by_name = {r["run_name"]: r for r in listed}
    assert by_name["with-both"]["metrics.accuracy"] == 0.9
    assert by_name["with-both"]["params.C"] == "1.0" and by_name["with-both"]["tags.team"] == "risk"
    assert by_name["metric-only"]["metrics.accuracy"] is None
    assert by_name["metric-only"]["params.C"] is None
    assert (
        by_name["metric-only"]["run_id"]
        == expected.set_index("run_name").loc["metric-only", "run_id"]
    )


def test_compare_side_by_side_and_json(home: Path) -> None:
    client = _client(home)
    ids = []
    for c in (0.5, 2.0):
        with client.tracker.start_run("iris", name=f"C={c}") as r:
            r.log_params({"C": c, "solver": "lbfgs"})
            for step in range(4):
                r.log_metric("loss", 1.0 / (step + 1) / c, step=step)
            r.log_metric("accuracy", 0.9 + c / 100)
        ids.append(r.id)
    client.close()
    code, out = run("runs", "compare", ids[0][:12], ids[1][:12])
    assert code == 0, out
    assert "Params (* differs)" in out and "solver" in out
    assert "Stepped metrics" in out and "4 steps" in out and "best 0.125 (min)" in out
    code, out = run("runs", "compare", *ids, "--json")
    data = json.loads(out)
    params = {p["key"]: p for p in data["params"]}
    assert params["C"]["differs"] and not params["solver"]["differs"]
    loss = next(m for m in data["metrics"] if m["key"] == "loss")
    assert loss["values"][ids[1]] == {"last": 0.125, "best": 0.125, "steps": 4, "last_step": 3}
    result = CliRunner().invoke(app, ["runs", "compare", ids[0]])
    assert result.exit_code == 1 and "at least two runs" in result.output
