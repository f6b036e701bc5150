"""Deployments served for real: canary steps, automatic rollback, sticky A/B, shadows.

Each test runs a real server on 127.0.0.1 (a uvicorn thread, or ``shipyard serve
--deployment`` with two worker processes) under a bounded load. Rollout steps
advance by request count, so nothing sleeps to wait for a step.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from rollout_support import (
    BROKEN,
    GOOD,
    GOOD2,
    OTHER,
    PYTHON,
    SLOW,
    Registry,
    free_port,
    serve_deployment,
    subprocess_env,
    wait_ready,
)
from scipy.stats import chisquare
from typer.testing import CliRunner

from shipyard.cli.main import app
from shipyard.rollout.records import RolloutPolicy
from shipyard.rollout.reports import load_shadow_reports

MAX_REQUESTS = 3000


def record(rng: random.Random) -> dict[str, float]:
    """A request the good models answer (0 < |x| < 10, so the broken one fails)."""
    return {"x": rng.choice([-1, 1]) * rng.uniform(1, 9)}


def metric(text: str, name: str, **labels: str) -> float:
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


def test_healthy_canary_advances_through_its_steps_and_is_promoted(
    sqlite_reg: Registry,
) -> None:
    d = sqlite_reg.deployments
    d.create("web", "m", GOOD)
    policy = RolloutPolicy(
        steps=(10, 50, 100), step_seconds=None, step_requests=15, min_requests=10
    )
    d.set_canary("web", GOOD2, policy=policy)
    server = serve_deployment(sqlite_reg.client, "web")
    rng = random.Random(0)
    seen: Counter[tuple[str, int]] = Counter()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            for _ in range(MAX_REQUESTS):
                response = http.post("/predict", json=record(rng))
                assert response.status_code == 200, response.text
                body = response.json()
                assert body["variant"] == response.headers["x-shipyard-variant"]
                seen[(body["variant"], body["version"])] += 1
                if d.get("web").primary == GOOD2:
                    break
    finally:
        server.stop()
    web = d.get("web")
    assert (web.primary, web.canary, web.history) == (GOOD2, None, (GOOD,))
    assert set(seen) <= {("primary", GOOD), ("canary", GOOD2), ("primary", GOOD2)}
    assert seen[("canary", GOOD2)] >= 15
    actions = [c.action for c in d.changes("web")]
    assert actions[:3] == ["auto_promote", "advance_canary", "deploy_canary"]


@pytest.mark.parametrize(
    ("bad", "guard", "policy"),
    [
        (BROKEN, "error_rate", RolloutPolicy(step_requests=10_000, max_error_rate=0.1)),
        (SLOW, "p99_latency", RolloutPolicy(step_requests=10_000, max_p99_seconds=0.03)),
    ],
    ids=["erroring", "slow"],
)
def test_bad_canary_is_rolled_back_and_no_primary_request_fails(
    sqlite_reg: Registry, bad: int, guard: str, policy: RolloutPolicy
) -> None:
    d = sqlite_reg.deployments
    d.create("web", "m", GOOD)
    d.set_canary("web", bad, 20, policy=policy)
    server = serve_deployment(sqlite_reg.client, "web")
    rng = random.Random(1)
    outcomes: Counter[tuple[str, int]] = Counter()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            for _ in range(MAX_REQUESTS):
                response = http.post("/predict", json=record(rng))
                outcomes[(response.headers["x-shipyard-variant"], response.status_code)] += 1
                if d.get("web").canary is None:
                    break
            text = http.get("/metrics").text
    finally:
        server.stop()
    assert d.get("web").canary is None and d.get("web").primary == GOOD
    assert {status for (variant, status) in outcomes if variant == "primary"} == {200}
    assert outcomes[("primary", 200)] > 0
    entry = sqlite_reg.client.audit.log(model="m", limit=1)[0]
    assert entry.action == "auto_rollback" and entry.details["guard"] == guard
    assert entry.reason is not None and entry.reason.startswith("automatic rollback: canary m:")
    assert metric(text, "shipyard_rollout_rollbacks_total", deployment="web", guard=guard) == 1
    canary_requests = metric(
        text, "shipyard_deployment_requests_total", deployment="web", variant="canary"
    )
    assert canary_requests >= policy.min_requests


def test_sticky_ab_split_matches_weights_and_shadows_are_logged(sqlite_reg: Registry) -> None:
    d = sqlite_reg.deployments
    d.create("web", "m", GOOD)
    d.set_split("web", {GOOD: 70, OTHER: 30}, sticky_header="X-User-ID")
    d.set_shadows("web", [GOOD2])
    server = serve_deployment(sqlite_reg.client, "web")
    users = [f"user-{i}" for i in range(300)]
    first: dict[str, str] = {}
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            for round_ in range(2):
                for i, user in enumerate(users):
                    response = http.post(
                        "/predict",
                        json={"x": float(i % 9 + 1)},
                        headers={"X-User-ID": user, "X-Request-ID": f"r{round_}-{i}"},
                    )
                    assert response.status_code == 200
                    variant = response.headers["x-shipyard-variant"]
                    assert first.setdefault(user, variant) == variant  # sticky
        deadline = time.monotonic() + 30
        epoch = d.get("web").epoch
        while sum(c.requests for c in d.store.counters("web", epoch)) < 600:  # next poll
            assert time.monotonic() < deadline
            time.sleep(0.05)
        env = {"SHIPYARD_HOME": str(sqlite_reg.settings.home), "COLUMNS": "200"}
        shown = CliRunner().invoke(app, ["deploy", "status", "web"], env=env)
        assert shown.exit_code == 0, shown.output
        assert "workers: 1/1 at revision 3" in shown.output
        assert "shadow:5" in shown.output and "0 5xx" in shown.output
    finally:
        server.stop()
    counts = Counter(first.values())
    assert set(counts) == {"primary", "ab:2"}
    assert chisquare([counts["primary"], counts["ab:2"]], [210, 90]).pvalue > 0.01, counts
    log = sqlite_reg.client.prediction_log
    log.flush(timeout=10)
    rows = log.read("m", since="1h", inputs=False)
    by_variant = Counter(rows["variant"])
    assert by_variant["primary"] + by_variant["ab:2"] == 600
    assert by_variant["shadow:5"] == 600  # every request copied, answers only logged
    shadow = rows[rows["variant"] == "shadow:5"]
    assert set(shadow["version"]) == {GOOD2}
    assert set(shadow["request_id"]) == set(rows[rows["variant"] != "shadow:5"]["request_id"])
    (report,) = load_shadow_reports(d, log, "web", since="1h")
    assert (report.version, report.compared, report.agreement) == (GOOD2, 600, 1.0)
    assert report.proba_difference["max"] == 0.0  # the same model as the primary


# -- two worker processes -------------------------------------------------------------

CLI = (
    "import typer; from shipyard.cli.serve import serve_command; "
    "app = typer.Typer(); app.command()(serve_command); app()"
)


@pytest.fixture
def server_process(sqlite_reg: Registry) -> Iterator[tuple[subprocess.Popen[str], str]]:
    port = free_port()
    proc = subprocess.Popen(
        [
            PYTHON,
            "-c",
            CLI,
            "--deployment",
            "web",
            "--workers",
            "2",
            "--poll-interval",
            "0.2",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env=subprocess_env(sqlite_reg.settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: workers included
    )
    try:
        yield proc, f"http://127.0.0.1:{port}"
    finally:
        if proc.poll() is None:
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(20)
        with contextlib.suppress(ProcessLookupError):  # the group we created, by its id
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def test_manual_rollback_reaches_every_worker(
    sqlite_reg: Registry, server_process: tuple[subprocess.Popen[str], str]
) -> None:
    d = sqlite_reg.deployments
    d.create("web", "m", GOOD)
    d.set_canary("web", OTHER, 10)
    d.promote("web")
    proc, url = server_process
    wait_ready(url, timeout=90)
    for _ in range(10):
        assert httpx.post(url + "/predict", json={"x": 2.0}, timeout=30).json()["version"] == OTHER
    web = d.rollback("web", reason="manual test")
    deadline = time.monotonic() + 30
    while True:  # every worker reports routing by the rollback's revision
        beats = d.store.workers("web")
        if len(beats) == 2 and all(b.revision == web.revision for b in beats):
            break
        assert time.monotonic() < deadline, beats
        time.sleep(0.1)
    for _ in range(20):  # a new connection each time: the kernel spreads them
        response = httpx.post(url + "/predict", json={"x": 2.0}, timeout=30)
        assert (response.json()["version"], response.json()["variant"]) == (GOOD, "primary")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 0, proc.stdout.read() if proc.stdout else ""
