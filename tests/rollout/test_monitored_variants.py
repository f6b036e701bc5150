"""Every variant of a deployment is monitored: a real ``shipyard serve --deployment``
carrying a canary and a shadow exports drift, label and accuracy gauges per
deployment, variant and version, drops a variant's series when it stops serving,
shows them in ``deploy status`` and ``monitor performance``, and the rollout guard
judges an unlabelled canary on its own estimated accuracy.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families
from rollout_support import GOOD, GOOD2, OTHER, PYTHON, SAMPLE, Registry, free_port, wait_ready
from rollout_support import subprocess_env as server_env
from typer.testing import CliRunner

from shipyard.cli.main import app
from shipyard.rollout.records import RolloutPolicy

CLI = (
    "import typer; from shipyard.cli.serve import serve_command; "
    "app = typer.Typer(); app.command()(serve_command); app()"
)
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@contextlib.contextmanager
def serve(reg: Registry, *extra: str) -> Iterator[str]:
    """``shipyard serve --deployment web`` in a subprocess (its own process group)."""
    port = free_port()
    proc = subprocess.Popen(
        [PYTHON, "-c", CLI, "--deployment", "web", "--poll-interval", "0.2",
         "--monitor-interval", "0.5", "--port", str(port), "--log-level", "warning", *extra],
        env=server_env(reg.settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, timeout=90)
        yield url
    finally:
        if proc.poll() is None:
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(20)
        with contextlib.suppress(ProcessLookupError):  # the group we created, by its id
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def scrape(url: str) -> Samples:
    text = httpx.get(url + "/metrics", timeout=30).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def labels(variant: str, version: int) -> tuple[tuple[str, str], ...]:
    found = {"model": "m", "version": str(version), "deployment": "web", "variant": variant}
    return tuple(sorted(found.items()))


def wait_for(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def truth(x: float) -> str:
    """The ground truth of the test traffic: the sign of x (GOOD answers it right)."""
    return "big" if x > 0 else "small"


def traffic(url: str, n: int, seed: int) -> list[tuple[str, float, str]]:
    """``n`` predictions: (request id, x, answering variant) of each."""
    rng = random.Random(seed)
    sent = []
    with httpx.Client(base_url=url, timeout=30) as http:
        for _ in range(n):
            x = rng.choice([-1, 1]) * rng.uniform(1, 9)
            answer = http.post("/predict", json={"x": x})
            assert answer.status_code == 200, answer.text
            sent.append((answer.json()["request_id"], x, answer.headers["x-shipyard-variant"]))
    return sent


@pytest.mark.parametrize("workers", ["1", "2"])
def test_canary_and_shadow_get_their_own_gauges_and_stale_ones_are_removed(
    sqlite_reg: Registry, workers: str
) -> None:
    """With two workers the gauges go through shared files, which keep a removed
    series: ``/metrics`` must leave the shadow's out all the same."""
    client, d = sqlite_reg.client, sqlite_reg.deployments
    d.create("web", "m", GOOD)
    d.set_canary("web", GOOD2, 50)
    d.set_shadows("web", [OTHER])
    # The shadow's probabilities are calibrated on labelled reference rows, once.
    rng = np.random.default_rng(0)
    xs = rng.choice([-1, 1], 400) * rng.uniform(1, 9, 400)
    reference = pd.DataFrame({"x": xs, "y": [truth(x) for x in xs]})
    other = client.registry.resolve(f"m:{OTHER}")
    calibration = client.calibrations.fit(other, client.registry.load(other.ref), reference, "y")
    assert not calibration.identity

    with serve(sqlite_reg, "--workers", workers) as url:
        sent = traffic(url, 120, seed=1)
        served = {v for _, _, v in sent}
        assert served == {"primary", "canary"}
        n = {v: sum(1 for *_, w in sent if w == v) for v in served}
        keys = {
            "primary": labels("primary", GOOD),
            "canary": labels("canary", GOOD2),
            "shadow": labels(f"shadow:{OTHER}", OTHER),
        }
        rows = "shipyard_monitor_window_predictions"

        def counted() -> bool:
            s = scrape(url)
            return (
                s.get((rows, keys["primary"])) == n["primary"]
                and s.get((rows, keys["canary"])) == n["canary"]
                and s.get((rows, keys["shadow"])) == len(sent)
            )

        wait_for(counted, "the window rows of every variant")
        drifted = "shipyard_drifted_features_ratio"
        # The window's row count is set before its drift is scored: wait for both.
        wait_for(
            lambda: all((drifted, k) in scrape(url) for k in keys.values()),
            "the drift gauges of every variant",
        )
        samples = scrape(url)
        for key in keys.values():  # each variant's drift, against its own version's profile
            scores = [
                name_labels
                for name_labels in samples
                if name_labels[0] == "shipyard_feature_drift_score"
                and set(key) <= set(name_labels[1])
            ]
            assert [dict(labels_)["feature"] for _, labels_ in scores] == ["x"], key
            detected = samples[("shipyard_dataset_drift_detected", key)]
            assert detected in (0, 1) and 0 <= samples[(drifted, key)] <= 1
        estimated = "shipyard_estimated_accuracy_ratio"
        # GOOD and GOOD2 give 0.9 to the class they answer, uncalibrated.
        assert samples[(estimated, keys["primary"])] == pytest.approx(0.9)
        assert samples[(estimated, keys["canary"])] == pytest.approx(0.9)
        assert samples[("shipyard_estimate_calibrated", keys["canary"])] == 0
        # The shadow's estimate went through its calibration: the same number offline.
        frame = pd.DataFrame({"x": [x for _, x, _ in sent]})
        model = client.registry.load(other.ref)
        mapped = calibration.transform(model.predict_proba(frame))
        chosen = np.argmax(model.predict_proba(frame), axis=1)
        expected = mapped[np.arange(len(frame)), chosen].mean()
        assert samples[(estimated, keys["shadow"])] == pytest.approx(expected, abs=1e-9)
        assert samples[("shipyard_estimate_calibrated", keys["shadow"])] == 1
        for key in keys.values():  # coverage exported per variant, no labels yet
            assert samples[("shipyard_label_coverage_ratio", key)] == 0

        with httpx.Client(base_url=url, timeout=30) as http:
            posted = [{"request_id": rid, "label": truth(x)} for rid, x, _ in sent]
            assert http.post("/feedback", json=posted).json()["accepted"] == len(sent)
        other_right = sum(1 for _, x, _ in sent if not x < -5) / len(sent)

        def labelled() -> bool:
            s = scrape(url)
            return all(s.get(("shipyard_label_coverage_ratio", k)) == 1 for k in keys.values())

        wait_for(labelled, "label coverage of every variant")
        samples = scrape(url)
        realized = "shipyard_realized_accuracy_ratio"
        assert samples[(realized, keys["primary"])] == 1
        assert samples[(realized, keys["canary"])] == 1
        assert samples[(realized, keys["shadow"])] == pytest.approx(other_right)

        env = {"SHIPYARD_HOME": str(sqlite_reg.settings.home), "COLUMNS": "200"}
        shown = CliRunner().invoke(app, ["deploy", "status", "web", "--json"], env=env)
        assert shown.exit_code == 0, shown.output
        monitoring = json.loads(shown.output)["monitoring"]
        assert set(monitoring) == {"primary", "canary", f"shadow:{OTHER}"}
        assert monitoring[f"shadow:{OTHER}"]["realized_accuracy"] == pytest.approx(other_right)
        assert monitoring[f"shadow:{OTHER}"]["estimate_calibrated"] is True
        assert monitoring["canary"]["window_predictions"] == n["canary"]
        text = CliRunner().invoke(app, ["deploy", "status", "web"], env=env)
        assert "estimated acc" in text.output and "(calibrated)" in text.output

        perf = CliRunner().invoke(
            app, ["monitor", "performance", f"m:{GOOD}", "--all-versions", "--json"], env=env
        )
        assert perf.exit_code == 0, (perf.output, perf.exception)
        variants = {(v["variant"], v["version"]): v for v in json.loads(perf.output)["variants"]}
        assert set(variants) == {
            ("primary", GOOD),
            ("canary", GOOD2),
            (f"shadow:{OTHER}", OTHER),
        }
        shadow = variants[(f"shadow:{OTHER}", OTHER)]
        assert shadow["realized"]["accuracy"] == pytest.approx(other_right)
        assert shadow["estimated"]["accuracy"] == pytest.approx(expected, abs=1e-9)

        # The shadow stops serving: its series leave /metrics; the others stay.
        d.set_shadows("web", [])
        wait_for(
            lambda: not any(k[1] == keys["shadow"] for k in scrape(url)),
            "the shadow's series to be removed",
        )
        assert (rows, keys["canary"]) in scrape(url)


def test_an_unlabelled_canary_is_rolled_back_on_its_estimated_accuracy(
    sqlite_reg: Registry,
) -> None:
    client, d = sqlite_reg.client, sqlite_reg.deployments
    unsure = client.registry.log_model("rollout_models:UNSURE", "m", sample=SAMPLE).version
    d.create("web", "m", GOOD)
    policy = RolloutPolicy(
        steps=(50, 100),
        step_seconds=None,
        step_requests=100_000,
        min_requests=20,
        max_error_rate=None,
        max_accuracy_drop=0.2,
        min_labels=20,
    )
    d.set_canary("web", unsure, policy=policy)
    with serve(sqlite_reg) as url:
        sent = traffic(url, 100, seed=2)
        assert {v for *_, v in sent} == {"primary", "canary"}
        # Labels come in for the primary only: the canary's are still missing.
        with httpx.Client(base_url=url, timeout=30) as http:
            posted = [{"request_id": r, "label": truth(x)} for r, x, v in sent if v == "primary"]
            assert http.post("/feedback", json=posted).status_code == 200
        wait_for(lambda: d.get("web").canary is None, "the canary's rollback")
    change = d.changes("web", limit=1)[0]
    assert change.action == "auto_rollback" or "automatic rollback" in (change.reason or "")
    assert "estimate over" in (change.reason or "")
    assert "unlabelled rows" in (change.reason or "")


def test_a_batch_job_of_the_served_version_is_not_the_deployments_traffic(
    reg: Registry, tmp_path: Path
) -> None:
    """``shipyard predict`` logs its rows as ``primary`` with no deployment: the
    deployment's monitor window, gauges and ``deploy status`` count only what its
    server answered, while the model-level ``monitor performance`` still counts both.
    On SQLite and on PostgreSQL (the leases and stored figures live there)."""
    d = reg.deployments
    d.create("web", "m", GOOD)
    env = {"SHIPYARD_HOME": str(reg.settings.home), "COLUMNS": "200"}
    if reg.settings.db:
        env["SHIPYARD_DB"] = str(reg.settings.db)
    batch_rows = 700
    rng = np.random.default_rng(3)
    pd.DataFrame({"x": rng.uniform(-9, 9, batch_rows)}).to_parquet(tmp_path / "rows.parquet")
    scored = CliRunner().invoke(
        app,
        ["predict", f"m:{GOOD}", "--input", str(tmp_path / "rows.parquet"),
         "--output", str(tmp_path / "out.parquet")],
        env=env,
    )  # fmt: skip
    assert scored.exit_code == 0, (scored.output, scored.exception)
    assert len(pd.read_parquet(tmp_path / "out.parquet")) == batch_rows
    rows = "shipyard_monitor_window_predictions"
    key = labels("primary", GOOD)

    with serve(reg) as url:
        # No request yet: the window holds the batch job's rows only, none of them web's.
        wait_for(lambda: (rows, key) in scrape(url), "the primary's window gauge")
        assert scrape(url)[(rows, key)] == 0
        sent = traffic(url, 40, seed=4)
        assert {v for *_, v in sent} == {"primary"}
        wait_for(lambda: scrape(url).get((rows, key)) == len(sent), "the served rows counted")
        time.sleep(1.5)  # later runs (every 0.5 s) count the same rows
        assert scrape(url)[(rows, key)] == len(sent)

        shown = CliRunner().invoke(app, ["deploy", "status", "web", "--json"], env=env)
        assert shown.exit_code == 0, shown.output
        assert json.loads(shown.output)["monitoring"]["primary"]["window_predictions"] == len(sent)

    # The model's own view holds every row of the version, the batch job's too.
    perf = CliRunner().invoke(app, ["monitor", "performance", f"m:{GOOD}", "--json"], env=env)
    assert perf.exit_code == 0, (perf.output, perf.exception)
    report = json.loads(perf.output)
    assert report["overall"]["n_predictions"] == len(sent) + batch_rows
    # Asked for the deployment, it counts only what web's server answered.
    perf = CliRunner().invoke(
        app, ["monitor", "performance", f"m:{GOOD}", "--deployment", "web", "--json"], env=env
    )
    assert perf.exit_code == 0, (perf.output, perf.exception)
    report = json.loads(perf.output)
    assert report["overall"]["n_predictions"] == len(sent)
    assert [(v["variant"], v["n_predictions"]) for v in report["variants"]] == [
        ("primary", len(sent))
    ]
    unknown = CliRunner().invoke(
        app, ["monitor", "performance", f"m:{GOOD}", "--deployment", "nosuch"], env=env
    )
    assert unknown.exit_code == 1 and "nosuch" in unknown.output, unknown.output
