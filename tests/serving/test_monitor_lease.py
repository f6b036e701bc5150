"""The monitor computes once per window for a version, however many workers and servers
serve it; every one of them exports the same figures; a dead holder is replaced."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable

import httpx
from prometheus_client.parser import text_string_to_metric_families
from serving_helpers import IrisRegistry, cli_server

from shipyard.quickstart import iris_frame

INTERVAL = 0.5
IRIS = (("deployment", ""), ("model", "iris"), ("variant", "default"), ("version", "1"))
SHARED = (
    "shipyard_monitor_window_predictions",
    "shipyard_label_coverage_ratio",
    "shipyard_realized_accuracy_ratio",
    "shipyard_estimated_accuracy_ratio",
    "shipyard_dataset_drift_detected",
    "shipyard_drifted_features_ratio",
    "shipyard_feature_drift_score",
    "shipyard_feature_drift_detected",
)
LAST_RUN = ("shipyard_monitor_last_run_timestamp_seconds", ())


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(url + "/metrics", timeout=30).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def shared(samples: dict) -> dict:
    """The figures every server must agree on."""
    return {k: v for k, v in samples.items() if k[0] in SHARED}


def wait_for(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def traffic(url: str, n: int = 60) -> None:
    """Predictions, then labels for half of them."""
    X, y = iris_frame()
    rows = X.sample(n, random_state=4)
    with httpx.Client(base_url=url, timeout=30) as http:
        answer = http.post("/predict", json=rows.to_dict("records"))
        assert answer.status_code == 200, answer.text
        rid = answer.json()["request_id"]
        truth = y.loc[rows.index].astype(str).tolist()
        labels = [{"request_id": rid, "row": i, "label": truth[i]} for i in range(n // 2)]
        assert http.post("/feedback", json=labels).status_code == 200


def figures_include(url: str, n: int) -> bool:
    samples = scrape(url)
    return (
        samples.get(("shipyard_monitor_window_predictions", IRIS)) == n
        and samples.get(("shipyard_label_coverage_ratio", IRIS)) == 0.5
        and ("shipyard_dataset_drift_detected", IRIS) in samples
    )


def test_two_servers_compute_once_export_the_same_and_a_dead_holder_is_replaced(
    iris: IrisRegistry,
) -> None:
    args = ("iris", "--monitor-interval", str(INTERVAL))
    with (
        cli_server(iris.settings, *args) as (pid_a, a),
        cli_server(iris.settings, *args) as (
            pid_b,
            b,
        ),
    ):
        traffic(a)
        wait_for(lambda: figures_include(a, 60) and figures_include(b, 60), "the figures")
        time.sleep(10 * INTERVAL)  # ten windows more
        samples = {a: scrape(a), b: scrape(b)}
        runs = {url: s.get(("shipyard_monitor_runs_total", ()), 0) for url, s in samples.items()}
        leaders = {url: s[("shipyard_monitor_leader", ())] for url, s in samples.items()}
        # One server computes (about once per interval), the other only shows its figures.
        assert sorted(leaders.values()) == [0, 1], leaders
        holder, other = (a, b) if leaders[a] else (b, a)
        assert runs[other] == 0 and runs[holder] >= 10, runs
        assert shared(samples[a]) == shared(samples[b])
        assert len(shared(samples[a])) == 6 + 2 * 4  # and four features' drift gauges
        # Both show the figures of the same runs (the other reads them a moment later).
        assert abs(samples[a][LAST_RUN] - samples[b][LAST_RUN]) <= 4 * INTERVAL
        lease = iris.client.monitors.lease("monitor:iris:1:3600")
        assert lease is not None and lease.holder.split(":")[1] == str(
            pid_a if holder == a else pid_b
        )

        # The holder dies without a word: once its lease expires the other takes over.
        os.killpg(pid_a if holder == a else pid_b, signal.SIGKILL)
        wait_for(
            lambda: scrape(other).get(("shipyard_monitor_runs_total", ()), 0) > 0,
            "the other server to take over",
            timeout=60,
        )
        assert scrape(other)[("shipyard_monitor_leader", ())] == 1


def test_two_workers_of_one_server_compute_once(iris: IrisRegistry) -> None:
    args = ("iris", "--workers", "2", "--monitor-interval", str(INTERVAL))
    with cli_server(iris.settings, *args) as (_, url):
        traffic(url)
        wait_for(lambda: figures_include(url, 60), "the figures")
        started = time.monotonic()
        before = scrape(url).get(("shipyard_monitor_runs_total", ()), 0)
        time.sleep(10 * INTERVAL)
        samples = scrape(url)
        elapsed = time.monotonic() - started
        runs = samples[("shipyard_monitor_runs_total", ())] - before
        # Summed over both workers: one of them holds the lease and computes, once per
        # interval (two computing workers would make about twice as many runs).
        assert samples[("shipyard_monitor_leader", ())] == 1
        assert 1 <= runs <= elapsed / INTERVAL + 2, (runs, elapsed)
        lease = iris.client.monitors.lease("monitor:iris:1:3600")
        assert lease is not None and lease.holder.split(":")[1] != ""
