"""Deployment and loop actions through the UI: the same services and rules as the CLI."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from ui_seed import PASSWORD

from shipyard.ui.app import create_app
from shipyard.ui.auth import Users, hash_password


@pytest.fixture
def ann(seeded: Any) -> Iterator[tuple[TestClient, str]]:
    client, _ = seeded
    app = create_app(client, users=Users({"ann": hash_password(PASSWORD)}, admin_token=None))
    with TestClient(app, base_url="http://127.0.0.1") as http:
        page = http.get("/login")
        token = re.search(r'name="csrf_token" value="([0-9a-f]+)"', page.text)
        assert token is not None
        http.post(
            "/login", data={"csrf_token": token.group(1), "user": "ann", "password": PASSWORD}
        )
        page = http.get("/deployments/web")
        token = re.search(r'name="csrf_token" value="([0-9a-f]+)"', page.text)
        assert token is not None
        yield http, token.group(1)


def _act(http: TestClient, token: str, kind: str, **fields: str) -> Any:
    return http.post(
        f"/actions/{kind}",
        data={**fields, "csrf_token": token, "confirmed": "yes"},
        follow_redirects=False,
    )


def test_promote_rollback_kill_resume(ann: tuple[TestClient, str], seeded: Any) -> None:
    http, token = ann
    client, facts = seeded
    answer = _act(http, token, "deployment", deployment="web", op="promote", reason="looks good")
    assert answer.status_code == 303, answer.text
    web = client.deployments.get("web")
    assert (web.primary, web.canary) == (facts["v2"], None)
    # The deployment follows production: promoting moved the alias too, as the CLI does.
    assert client.aliases.get_alias("iris", "production") == facts["v2"]
    answer = _act(http, token, "deployment", deployment="web", op="rollback", reason="regret")
    assert answer.status_code == 303
    assert client.deployments.get("web").primary == facts["v1"]
    assert (
        _act(http, token, "deployment", deployment="web", op="kill", reason="x").status_code == 303
    )
    assert client.deployments.get("web").killed
    page = http.get("/deployments/web").text
    assert "regret" in page and 'value="resume"' in page
    assert (
        _act(http, token, "deployment", deployment="web", op="resume", reason="y").status_code
        == 303
    )
    assert not client.deployments.get("web").killed
    changes = [(c.action, c.actor, c.reason) for c in client.deployments.changes("web", limit=4)]
    assert ("rollback", "ann", "regret") in changes
    bad = _act(http, token, "deployment", deployment="web", op="explode", reason="z")
    assert bad.status_code == 400 and "must be one of promote" in bad.text


def test_archive_restore_and_reject(ann: tuple[TestClient, str], seeded: Any) -> None:
    http, token = ann
    client, facts = seeded
    assert (
        _act(http, token, "delete-alias", model="iris", alias="staging", reason="r").status_code
        == 303
    )
    assert "staging" not in client.models.get_model("iris").aliases
    assert _act(http, token, "archive", ref="iris:2", reason="superseded").status_code == 303
    assert client.models.get_version("iris", 2).status == "archived"
    assert (
        _act(http, token, "archive", ref="iris:2", restore="yes", reason="back").status_code == 303
    )
    assert client.models.get_version("iris", 2).status == "ready"
    answer = _act(http, token, "decide", ref="iris:2", decision="reject", reason="leaks labels")
    assert answer.status_code == 303
    decisions = client.validation.decisions("iris", 2)
    assert [(d.decision, d.actor, d.comment) for d in decisions] == [
        ("reject", "ann", "leaks labels")
    ]
    del facts


def test_a_loop_run_needs_the_loop_config(ann: tuple[TestClient, str]) -> None:
    http, token = ann
    answer = _act(http, token, "trigger-loop", model="iris", reason="new data")
    assert answer.status_code == 409 and "--loop-config" in answer.text


def test_a_loop_run_started_from_the_ui_runs_and_shows(seeded: Any, tmp_path: Any) -> None:
    import time

    import yaml

    from shipyard.loop.examples import iris_frame

    client, _ = seeded
    data = tmp_path / "iris.csv"
    iris_frame().to_csv(data, index=False)
    config = tmp_path / "loop.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "model": "iris",
                "pipeline": {
                    "entry_point": "shipyard.loop.examples:train_iris",
                    "params": {"estimator": "logistic_regression", "cv": 2},
                    "data": {"path": str(data)},
                    "target": "species",
                },
                "triggers": [{"kind": "drift", "cooldown": "6h"}],
                "gates": {"thresholds": ["accuracy>=0.8"]},
                "canary": {"enabled": False},
            }
        )
    )
    app = create_app(
        client,
        users=Users({"ann": hash_password(PASSWORD)}, admin_token=None),
        loop_config=config,
    )
    with TestClient(app, base_url="http://127.0.0.1") as http:
        token = re.search(r'name="csrf_token" value="([0-9a-f]+)"', http.get("/login").text)
        assert token is not None
        http.post(
            "/login", data={"csrf_token": token.group(1), "user": "ann", "password": PASSWORD}
        )
        page = http.get("/loop").text
        assert ("drift" in page and "6.0 h" in page) or "360.0 min" in page  # the cool-down
        token = re.search(r'name="csrf_token" value="([0-9a-f]+)"', page)
        assert token is not None
        wrong = _act(http, token.group(1), "trigger-loop", model="wine", reason="r")
        assert wrong.status_code == 400 and "no model &#39;wine&#39;" in wrong.text
        answer = _act(http, token.group(1), "trigger-loop", model="iris", reason="fresh labels")
        assert answer.status_code == 303 and answer.headers["location"] == "/loop?model=iris"
        deadline = time.monotonic() + 240
        runs = client.loops.list_runs("iris")
        while time.monotonic() < deadline and (not runs or runs[0].status == "running"):
            time.sleep(0.5)
            runs = client.loops.list_runs("iris")
        assert runs and runs[0].status in ("promoted", "rejected"), runs
        assert runs[0].trigger_kind == "manual" and "by ann" in runs[0].reason
        page = http.get("/loop?model=iris").text
        assert f'data-run="{runs[0].id}"' in page and "train" in page
    entry = client.audit.log(model="iris", action="trigger_loop", limit=1)[0]
    assert (entry.actor, entry.reason) == ("ann", "fresh labels")
