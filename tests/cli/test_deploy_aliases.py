"""Deployments and aliases tell one story: promoting a deployment that follows an alias moves it.

Through the real root app (CliRunner) and a real server following ``wine``
(its production alias), on scikit-learn models of the wine data.
"""

from __future__ import annotations

import json
import time
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
from shipyard.cli.main import app
from shipyard.client import Shipyard
from shipyard.config import Settings
from shipyard.serving import ServeOptions, create_app
from shipyard.store.validation_store import ValidationStore

runner = CliRunner()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """wine:1 (a scaled logistic regression, production) and wine:2 (a tree)."""
    home = tmp_path / "home"
    monkeypatch.setenv("SHIPYARD_HOME", str(home))
    monkeypatch.setenv("SHIPYARD_USER", "cli-tester")
    monkeypatch.delenv("SHIPYARD_DB", raising=False)
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


def run(*args: str, code: int = 0) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, result.output
    return result.output


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


def test_promoting_a_deployment_that_follows_production_moves_it(home: Path) -> None:
    client = Shipyard(Settings(home=home))
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


def test_an_alias_moved_by_hand_is_shown_as_a_gap(home: Path) -> None:
    run("deploy", "web", "--model", "wine@production")
    out = " ".join(run("models", "alias", "wine", "production", "2", "--reason", "by hand").split())
    assert "note: wine@production points at wine:2, but deployment 'web' serves wine:1" in out
    web = as_json("deploy", "status", "web")
    assert isinstance(web, dict)
    assert web["alias_gap"].startswith("wine@production points at wine:2")
    shown = " ".join(run("deploy", "status", "web").split())
    assert "warning: wine@production points at wine:2" in shown
    assert "`shipyard deploy web --model wine@production`" in shown


def test_a_deployment_of_a_pinned_version_moves_no_alias(home: Path) -> None:
    run("deploy", "web", "--model", "wine:1")
    run("deploy", "web", "--model", "wine:2", "--canary", "50")
    run("promote", "web")
    web = as_json("deploy", "status", "web")
    assert isinstance(web, dict)
    assert (web["primary"], web["follows"]) == (2, None)
    assert production() == 1


def test_production_gates_hold_when_a_promotion_would_move_it(home: Path) -> None:
    run("deploy", "web", "--model", "wine")
    client = Shipyard(Settings(home=home))
    ValidationStore(client.metadata).save_gate_result(
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
