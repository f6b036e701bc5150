"""``shipyard deploy ...``, ``promote`` and ``rollback`` through the real root app.

The last tests check that deployments and aliases tell one story: promoting a
deployment that follows an alias moves it, on scikit-learn models of the wine
data, with a real server following ``wine`` (its production alias).
"""

from __future__ import annotations

import json
import random
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sklearn.datasets import load_wine
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier
from typer.testing import CliRunner

from live_server import LiveServer
from shipyard import Shipyard
from shipyard.cli.main import app
from shipyard.config import Settings
from shipyard.monitoring.feedback import record_feedback
from shipyard.monitoring.records import PredictionRecord
from shipyard.serving import ServeOptions, create_app

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "rollout"))
from rollout_support import GOOD, GOOD2, OTHER, register

runner = CliRunner()


def use_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private home the CLI reads from the environment, as a user's shell would."""
    home = tmp_path / "home"
    monkeypatch.setenv("SHIPYARD_HOME", str(home))
    monkeypatch.setenv("SHIPYARD_USER", "cli-tester")
    monkeypatch.delenv("SHIPYARD_DB", raising=False)
    return home


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = use_home(tmp_path, monkeypatch)
    client = Shipyard(Settings(home=home))
    register(client)
    client.close()
    return home


def run(*args: str, code: int = 0) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, result.output
    return result.output


def status(name: str = "web") -> dict:  # type: ignore[type-arg]
    return json.loads(run("deploy", "status", name, "--json"))


def test_deploy_canary_promote_rollback(home: Path) -> None:
    run("deploy", "web", "--model", "m:1")
    run("deploy", "web", "--model", "m:2", "--canary", "10", "--shadow", "m:5")
    web = status()
    assert [(v["name"], v["version"], v["weight"]) for v in web["variants"]] == [
        ("primary", GOOD, 90.0),
        ("canary", OTHER, 10.0),
    ]
    assert web["shadows"] == [GOOD2]
    assert "deploy_shadows" in [c["action"] for c in web["changes"]]
    out = run("promote", "web")
    assert "m:2" in out and status()["primary"] == OTHER
    run("rollback", "web", "--reason", "pager went off")
    assert status()["primary"] == GOOD
    out = run("rollback", "web", code=1)
    assert "no previous primary to roll back to" in out
    assert status()["primary"] == GOOD


def test_bad_input_is_a_clear_error_and_changes_nothing(home: Path) -> None:
    assert "No deployment named 'web'" in run("deploy", "status", "web", code=1)
    run("deploy", "web", "--model", "m:1")
    before = status()
    assert "add up to 100 %, got 90" in run("deploy", "web", "--split", "1=50,2=40", code=1)
    assert "no version 42" in run("deploy", "web", "--model", "m:42", "--canary", "5", code=1)
    run("models", "archive", "m:4", "--reason", "old")
    assert "archived" in run("deploy", "web", "--model", "m:4", "--canary", "5", code=1)
    assert "VERSION=WEIGHT" in run("deploy", "web", "--split", "1:50", code=1)
    after = status()
    assert after["revision"] == before["revision"] == 1


def test_gate_failing_version_needs_force_and_reason(home: Path) -> None:
    run("deploy", "web", "--model", "m:1")
    client = Shipyard(Settings(home=home))
    client.validation.save_gate_result(
        "m",
        OTHER,
        passed=False,
        report={"checks": [{"requirement": "accuracy >= 0.95", "passed": False}]},
        against=None,
        actor="ci",
    )
    client.close()
    assert "cannot take traffic" in run("deploy", "web", "--model", "m:2", "--canary", "10", code=1)
    run("deploy", "web", "--model", "m:2", "--canary", "10", "--force", "--reason", "try it")
    assert "cannot take alias 'production'" in run("promote", "web", code=1)
    assert status()["primary"] == GOOD
    assert "written reason" in run("promote", "web", "--force", code=1)
    run("promote", "web", "--force", "--reason", "holdout is stale")
    assert status()["primary"] == OTHER


def test_progressive_policy_kill_and_resume(home: Path) -> None:
    run("deploy", "web", "--model", "m:1")
    run(
        "deploy", "web", "--model", "m:2", "--steps", "5,25,100", "--step-requests", "100",
        "--max-error-rate", "0.02", "--max-p99-ms", "150",
    )  # fmt: skip
    web = status()
    assert web["policy"]["steps"] == [5.0, 25.0, 100.0]
    assert web["policy"]["max_p99_seconds"] == 0.15
    assert web["variants"][1]["weight"] == 5.0
    shown = " ".join(run("deploy", "status", "web").split())  # Rich wraps long lines
    assert "guards: error rate <= 2.0%, p99 <= 150 ms" in shown, shown
    assert "None" not in shown
    out = run("deploy", "watch", "web", "--once")
    assert out == "" or "hold" in out  # stderr is mixed in by CliRunner
    run("deploy", "kill", "web", "--reason", "incident 12")
    web = status()
    assert (web["killed"], web["paused"], web["primary"]) == (True, True, GOOD)
    assert [v["version"] for v in web["variants"]] == [GOOD]
    run("deploy", "resume", "web")
    assert status()["killed"] is False


def test_ab_and_shadow_reports(home: Path) -> None:
    run("deploy", "web", "--model", "m:1")
    run("deploy", "web", "--split", "1=50,2=50", "--sticky-header", "X-User-ID")
    client = Shipyard(Settings(home=home))
    log = client.prediction_log
    rng = random.Random(0)
    now = datetime.now(UTC)
    rows, labels = [], []
    for i in range(400):
        variant, version = ("primary", GOOD) if i % 2 else ("ab:2", OTHER)
        truth = rng.choice(["big", "small"])
        # The A/B arm is right 95 % of the time, the primary 60 %.
        right = rng.random() < (0.6 if variant == "primary" else 0.95)
        answer = truth if right else ("small" if truth == "big" else "big")
        rid = f"r{i}"
        for v, ver, a in ((variant, version, answer), ("shadow:5", GOOD2, truth)):
            rows.append(
                PredictionRecord(
                    request_id=rid, timestamp=now, model="m", version=ver, inputs={"x": 1.0},
                    prediction=a, latency_seconds=0.001 + rng.random() / 1000, variant=v,
                    deployment="web",  # as web's server stamps it
                )
            )  # fmt: skip
        labels.append({"request_id": rid, "label": truth})
    log.write(rows)
    record_feedback(log, labels, model="m")
    client.close()
    report = json.loads(run("deploy", "ab-report", "web", "--since", "1h", "--json"))
    arms = {a["variant"]: a for a in report["arms"]}
    assert arms["primary"]["labelled"] == arms["ab:2"]["labelled"] == 200
    assert arms["ab:2"]["accuracy"] > arms["primary"]["accuracy"]
    assert arms["ab:2"]["p_accuracy"] < 0.001
    lo, hi = arms["ab:2"]["accuracy_ci"]
    assert lo < arms["ab:2"]["accuracy"] < hi
    assert report["winner"] == "ab:2" and "beats the primary on accuracy" in report["verdict"]
    shadows = json.loads(run("deploy", "shadow-report", "web", "--since", "1h", "--json"))
    assert len(shadows) == 1 and shadows[0]["version"] == GOOD2
    assert shadows[0]["compared"] == 400
    disagreements = sum(c for _, _, c in shadows[0]["disagreements"])
    assert shadows[0]["agreed"] == 400 - disagreements
    assert 0.6 < shadows[0]["agreement"] < 0.9
    assert "A/B report" in run("deploy", "ab-report", "web", "--since", "1h")
    assert "agreement" in run("deploy", "shadow-report", "web", "--since", "1h")


def test_serve_deployment_fails_fast_on_bad_arguments(home: Path) -> None:
    import typer

    from shipyard.cli._common import ShipyardGroup
    from shipyard.cli.serve import serve_command

    serve_app = typer.Typer(cls=ShipyardGroup)
    serve_app.command("serve")(serve_command)
    serve_app.command("noop")(lambda: None)  # two commands: `serve` stays a subcommand
    result = runner.invoke(serve_app, ["serve", "--deployment", "nope", "--port", "0"])
    assert result.exit_code == 1 and "No deployment named 'nope'" in result.output
    result = runner.invoke(serve_app, ["serve", "m", "--deployment", "web", "--port", "0"])
    assert result.exit_code == 2 and "exactly one" in result.output


# -- deployments and aliases: one story -------------------------------------------------


@pytest.fixture
def wine_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """wine:1 (a scaled logistic regression, production) and wine:2 (a tree)."""
    home = use_home(tmp_path, monkeypatch)
    X, y = load_wine(return_X_y=True, as_frame=True)
    X_train, _, y_train, _ = train_test_split(X, y, test_size=0.3, random_state=0)
    client = Shipyard(Settings(home=home))
    logistic = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    client.registry.log_model(logistic.fit(X_train, y_train), "wine", sample=X_train)
    tree = DecisionTreeClassifier(max_depth=3, random_state=0).fit(X_train, y_train)
    client.registry.log_model(tree, "wine", sample=X_train)
    client.registry.set_alias("wine", "production", 1)
    client.close()
    return home


def as_json(*args: str) -> object:
    return json.loads(run(*args, "--json"))


def production(name: str = "wine") -> int:
    [model] = [m for m in as_json("models", "list") if m["name"] == name]  # type: ignore[union-attr]
    return int(model["aliases"]["production"])


def served_version(server: LiveServer, record: dict[str, float], want: int) -> int:
    """The version the server answers with, once it is ``want`` (or after 30 s)."""
    deadline = time.monotonic() + 30
    with server.client() as http:
        while True:
            version = int(http.post("/predict", json=record).json()["version"])
            if version == want or time.monotonic() > deadline:
                return version
            time.sleep(0.1)


def test_promoting_a_deployment_that_follows_production_moves_it(wine_home: Path) -> None:
    client = Shipyard(Settings(home=wine_home))
    record = load_wine(as_frame=True).data.iloc[0].to_dict()
    # `shipyard serve wine`: the production alias, hot-swapped when it moves.
    server = LiveServer(create_app(client, "wine", options=ServeOptions(poll_interval=0.1)))
    server.start()
    try:
        run("deploy", "web", "--model", "wine")  # created from the alias: follows it
        web = as_json("deploy", "status", "web")
        assert isinstance(web, dict)
        assert (web["primary"], web["follows"], web["alias_gap"]) == (1, "production", None)
        assert "follows wine@production" in " ".join(run("deploy", "status", "web").split())

        run("deploy", "web", "--model", "wine:2", "--canary", "20")
        assert production() == 1  # a canary is not a promotion
        run("promote", "web", "--reason", "tree wins")
        assert production() == 2
        assert served_version(server, record, 2) == 2  # `serve wine` follows at once
        moves = [
            e
            for e in as_json("audit", "--model", "wine")  # type: ignore[union-attr]
            if e["action"] == "set_alias"
        ]
        assert (moves[0]["subject"], moves[0]["from_value"], moves[0]["to_value"]) == (
            "wine@production",
            "1",
            "2",
        )
        assert moves[0]["reason"] == "deployment 'web': promote (tree wins)"

        shown = as_json("models", "show", "wine")
        assert isinstance(shown, dict)
        assert shown["deployments"] == ["deployment web: primary wine:2; follows wine@production"]
        text = " ".join(run("models", "show", "wine:1").split())
        assert "aliases of wine: production -> wine:2" in text
        assert "deployment web: primary wine:2; follows wine@production" in text

        run("rollback", "web", "--reason", "tree misbehaves")
        assert production() == 1
        assert served_version(server, record, 1) == 1
    finally:
        server.stop()
        client.close()


def test_an_alias_moved_by_hand_is_shown_as_a_gap(wine_home: Path) -> None:
    run("deploy", "web", "--model", "wine@production")
    out = " ".join(run("models", "alias", "wine", "production", "2", "--reason", "by hand").split())
    assert "note: wine@production points at wine:2, but deployment 'web' serves wine:1" in out
    web = as_json("deploy", "status", "web")
    assert isinstance(web, dict)
    assert web["alias_gap"].startswith("wine@production points at wine:2")
    shown = " ".join(run("deploy", "status", "web").split())
    assert "warning: wine@production points at wine:2" in shown
    assert "`shipyard deploy web --model wine@production`" in shown


def test_a_deployment_of_a_pinned_version_moves_no_alias(wine_home: Path) -> None:
    run("deploy", "web", "--model", "wine:1")
    run("deploy", "web", "--model", "wine:2", "--canary", "50")
    run("promote", "web")
    web = as_json("deploy", "status", "web")
    assert isinstance(web, dict)
    assert (web["primary"], web["follows"]) == (2, None)
    assert production() == 1


def test_production_gates_hold_when_a_promotion_would_move_it(wine_home: Path) -> None:
    run("deploy", "web", "--model", "wine")
    client = Shipyard(Settings(home=wine_home))
    client.validation.save_gate_result(
        "wine",
        2,
        passed=False,
        report={"checks": [{"requirement": "accuracy >= 0.99", "passed": False}]},
        against=None,
        actor="ci",
    )
    client.close()
    run("deploy", "web", "--model", "wine:2", "--canary", "10", "--force", "--reason", "look")
    refused = " ".join(run("promote", "web", code=1).split())
    assert "cannot take alias 'production'" in refused and "--force --reason" in refused
    assert production() == 1
    run("promote", "web", "--force", "--reason", "holdout is stale")
    assert production() == 2
    [change] = [
        e
        for e in as_json("audit", "--model", "wine")  # type: ignore[union-attr]
        if e["action"] == "promote"
    ]
    assert change["details"]["forced"] and change["details"]["moves"] == "wine@production"
