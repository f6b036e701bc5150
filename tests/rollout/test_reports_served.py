"""A/B, shadow and accuracy evidence from real servers: each deployment counts its own rows.

Two deployments of one model (``web`` and ``api``, the same versions under the
same variant names) and direct traffic (``serve m``) all write to the one
prediction log of model ``m``; ``deploy ab-report web`` and ``shadow-report web``
must see exactly what ``web`` answered, per variant and version.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import httpx
from rollout_support import GOOD, GOOD2, OTHER, SLOW, LiveServer, Registry, serve_deployment
from typer.testing import CliRunner

from shipyard.cli.main import app
from shipyard.rollout.controller import log_accuracy
from shipyard.serving import ServeOptions, create_app


def send(server: LiveServer, n: int, rng: random.Random) -> Counter[tuple[str, int]]:
    """``n`` requests, each labelled through the server's /feedback; answers by variant."""
    seen: Counter[tuple[str, int]] = Counter()
    labels = []
    with httpx.Client(base_url=server.url, timeout=30) as http:
        for _ in range(n):
            x = rng.choice([-1, 1]) * rng.uniform(1, 9)
            body = http.post("/predict", json={"x": x}).raise_for_status().json()
            seen[(body.get("variant", "direct"), body["version"])] += 1
            labels.append({"request_id": body["request_id"], "label": "big" if x > 0 else "small"})
        http.post("/feedback", json=labels).raise_for_status()
    return seen


def wait_for_counters(reg: Registry, name: str, requests: int) -> None:
    epoch = reg.deployments.get(name).epoch
    deadline = time.monotonic() + 30
    while sum(c.requests for c in reg.deployments.store.counters(name, epoch)) < requests:
        assert time.monotonic() < deadline, "the server never reported its counters"
        time.sleep(0.05)


def cli_json(reg: Registry, *args: str) -> object:
    result = CliRunner().invoke(app, [*args, "--json"], obj=reg.client)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_reports_count_only_the_deployments_own_rows(sqlite_reg: Registry) -> None:
    d = sqlite_reg.deployments
    client = sqlite_reg.client
    for name in ("web", "api"):
        d.create(name, "m", GOOD)
        d.set_canary(name, OTHER, 50)
        d.set_shadows(name, [GOOD2])
    client.registry.set_alias("m", "production", GOOD)
    web = serve_deployment(client, "web")
    api = serve_deployment(client, "api")
    direct = LiveServer(create_app(client, "m", options=ServeOptions(poll_interval=0.1))).start()
    rng = random.Random(7)
    try:
        answered = send(web, 60, rng)
        send(api, 90, rng)
        send(direct, 50, rng)
        wait_for_counters(sqlite_reg, "web", 60)
    finally:
        for server in (web, api, direct):
            server.stop()
    client.prediction_log.flush(timeout=10)

    report = cli_json(sqlite_reg, "deploy", "ab-report", "web")
    assert isinstance(report, dict)
    arms = {(a["variant"], a["version"]): a for a in report["arms"]}
    assert set(arms) == {("primary", GOOD), ("canary", OTHER)}
    for key, arm in arms.items():
        # Log rows, labels and the servers' own request counters agree, arm by arm.
        assert arm["rows"] == arm["requests"] == arm["labelled"] == answered[key], (
            key,
            arm,
            answered,
        )
    assert sum(a["rows"] for a in arms.values()) == 60

    [shadow] = cli_json(sqlite_reg, "deploy", "shadow-report", "web")  # type: ignore[misc]
    # Every request web answered, compared once (api's copies of the same shadow excluded).
    assert (shadow["version"], shadow["compared"]) == (GOOD2, 60)

    accuracy = log_accuracy(client.prediction_log)(d.get("web"), datetime.now(UTC))
    assert {k: a.labelled for k, a in accuracy.items()} == {
        "primary": answered["primary", GOOD],
        "canary": answered["canary", OTHER],
        "shadow:5": 60,  # its own copies only: not api's 90
    }

    # A new canary version: the report describes the new revision, and even over a
    # wider window the canary arm counts only rows of the version it routes to now.
    d.set_canary("web", SLOW, 50)
    fresh = cli_json(sqlite_reg, "deploy", "ab-report", "web")
    assert isinstance(fresh, dict)
    assert [(a["variant"], a["version"], a["rows"]) for a in fresh["arms"]] == [
        ("primary", GOOD, 0),
        ("canary", SLOW, 0),
    ]
    since = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    wide = cli_json(sqlite_reg, "deploy", "ab-report", "web", "--since", since)
    assert isinstance(wide, dict)
    assert [(a["variant"], a["version"], a["rows"]) for a in wide["arms"]] == [
        ("primary", GOOD, answered["primary", GOOD]),
        ("canary", SLOW, 0),
    ]
