"""deploy/prometheus and deploy/grafana: they parse, their PromQL is valid, and every
metric they reference is exported by a real server's /metrics.

The server is real: iris registered with a training sample, uvicorn on 127.0.0.1,
predictions and labels over HTTP, one run of the monitor job, then a scrape.
PromQL is checked by ``promtool`` (Debian's ``prometheus`` package) when it is
installed, and by a structural check (brackets, quotes, metric names) always.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from live_server import LiveServer
from shipyard import Shipyard
from shipyard.config import Settings
from shipyard.quickstart import iris_frame
from shipyard.serving import ServeOptions, create_app

DEPLOY = Path(__file__).parents[2] / "deploy"
PROMETHEUS = DEPLOY / "prometheus" / "prometheus.yml"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
ROLLOUT_ALERTS = DEPLOY / "prometheus" / "rollout-alerts.yml"
DASHBOARD = DEPLOY / "grafana" / "shipyard-dashboard.json"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool is not installed (Debian: apt-get install prometheus); "
    "the structural PromQL checks still run",
)

# --- PromQL, structurally -----------------------------------------------------

_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGES = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_IDENT = re.compile(r"(?<![\w$])([a-zA-Z_][a-zA-Z0-9_]*)\b(?!\s*\()")
_OURS = re.compile(r"^(?:shipyard|process)_")
_PAIRS = {")": "(", "]": "[", "}": "{"}


def check_balanced(expr: str) -> None:
    """Brackets nest and close; quotes close."""
    stack: list[str] = []
    for char in _STRINGS.sub('""', expr):
        if char in "([{":
            stack.append(char)
        elif char in _PAIRS:
            assert stack and stack.pop() == _PAIRS[char], f"unbalanced {char!r} in: {expr}"
    assert not stack, f"unclosed {stack} in: {expr}"
    assert _STRINGS.sub("", expr).count('"') == 0, f"unclosed quote in: {expr}"


def metric_names(expr: str) -> set[str]:
    """Names of Shipyard and process series an expression selects."""
    bare = _STRINGS.sub('""', expr)
    bare = _MATCHERS.sub("", bare)
    bare = _RANGES.sub("", bare)
    bare = _GROUPING.sub("", bare)
    return {name for name in _IDENT.findall(bare) if _OURS.match(name)}


def test_metric_names_are_found_where_promql_puts_them() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le, route) (rate(shipyard_x_bucket{route=~"a|b"}[5m])))'
        " / on (model) group_left (version) shipyard_y and process_z > 0"
    )
    assert metric_names(expr) == {"shipyard_x_bucket", "shipyard_y", "process_z"}
    check_balanced(expr)
    with pytest.raises(AssertionError, match="unclosed"):
        check_balanced("sum(rate(shipyard_x[5m])")


# --- the files ------------------------------------------------------------------


def alert_rules(path: Path) -> list[dict[str, Any]]:
    doc = yaml.safe_load(path.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def dashboard_exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [
        target["expr"]
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
        if "expr" in target
    ]


def as_query(expr: str) -> str:
    """A Grafana expression with its variables replaced, as Grafana would send it."""
    return expr.replace("$__rate_interval", "5m").replace("$job", ".*").replace("$model", ".*")


def test_the_scrape_config_loads_both_rule_files() -> None:
    config = yaml.safe_load(PROMETHEUS.read_text())
    assert set(config["rule_files"]) == {ALERTS.name, ROLLOUT_ALERTS.name}
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["shipyard"]["metrics_path"] == "/metrics"
    assert jobs["shipyard"]["static_configs"][0]["targets"]


def test_alerts_cover_drift_errors_latency_accuracy_and_log_drops() -> None:
    rules = alert_rules(ALERTS)
    exprs = " ".join(rule["expr"] for rule in rules)
    for needle in (
        "shipyard_dataset_drift_detected",
        'status=~"5.."',
        "histogram_quantile(0.99",
        "shipyard_http_request_duration_seconds_bucket",
        "shipyard_realized_accuracy_ratio",
        "shipyard_estimated_accuracy_ratio",
        "shipyard_baseline_accuracy_ratio",
        "shipyard_prediction_log_dropped_total",
    ):
        assert needle in exprs, needle
    names = [rule["alert"] for rule in rules + alert_rules(ROLLOUT_ALERTS)]
    assert len(names) == len(set(names)), "alert names must be unique across rule files"
    for rule in rules:
        check_balanced(rule["expr"])
        assert rule["labels"]["severity"] in {"info", "warning", "critical"}
        assert rule["annotations"]["summary"]


def test_the_dashboard_has_every_panel_the_runbook_needs() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"]
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    referenced = set().union(*(metric_names(e) for e in dashboard_exprs()))
    assert {
        "shipyard_http_requests_total",
        "shipyard_http_request_duration_seconds_bucket",
        "shipyard_http_requests_in_flight",
        "shipyard_predictions_total",
        "shipyard_feature_drift_score",
        "shipyard_feature_drift_detected",
        "shipyard_realized_accuracy_ratio",
        "shipyard_estimated_accuracy_ratio",
        "shipyard_label_coverage_ratio",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
    } <= referenced
    quantiles = " ".join(e for e in dashboard_exprs() if "histogram_quantile" in e)
    for q in ("0.5", "0.95", "0.99"):
        assert f"histogram_quantile({q}," in quantiles
    for expr in dashboard_exprs():
        check_balanced(expr)
        assert metric_names(expr), f"selects no Shipyard series: {expr}"


@needs_promtool
def test_promtool_accepts_the_config_and_the_rules() -> None:
    for args in (["check", "config", str(PROMETHEUS)], ["check", "rules", str(ALERTS)]):
        done = subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr


@needs_promtool
def test_promtool_parses_every_dashboard_query(tmp_path: Path) -> None:
    # promtool parses PromQL only inside rule files: each query becomes a recording rule.
    rules = [
        {"record": f"shipyard_dashboard_query_{i}", "expr": as_query(expr)}
        for i, expr in enumerate(dashboard_exprs())
    ]
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    done = subprocess.run(
        [PROMTOOL, "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr


# --- against a real server ----------------------------------------------------------


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Iterator[set[str]]:
    """Every series name (with _bucket/_count/_sum/_total) real servers export: a
    classifier (iris, with labels) and a regressor (petals)."""
    settings = Settings(home=tmp_path_factory.mktemp("monitoring-configs") / "home", user="t")
    client = Shipyard(settings)
    X, y = iris_frame()
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, y)
    client.registry.log_model(model, "iris", sample=X, metrics={"accuracy": 0.97})
    client.registry.set_alias("iris", "production", 1)
    features = X.drop(columns="petal_width")
    regressor = LinearRegression().fit(features, X["petal_width"])
    client.registry.log_model(regressor, "petals", sample=features)
    options = ServeOptions(poll_interval=0.1, monitor_interval=3600)
    texts = []
    server = LiveServer(create_app(client, "iris", options=options)).start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            rows = X.sample(60, random_state=0)
            answer = http.post("/predict", json=rows.to_dict("records"))
            assert answer.status_code == 200, answer.text
            rid = answer.json()["request_id"]
            truth = y.loc[rows.index].astype(str).tolist()
            labels = [{"request_id": rid, "row": i, "label": truth[i]} for i in range(20)]
            assert http.post("/feedback", json=labels).status_code == 200
            assert http.post("/predict", json={"bad": 1}).status_code == 422
            server.app.state.monitor.run_once()
            texts.append(http.get("/metrics").text)
    finally:
        server.stop()  # which closes the client's prediction log: the next server needs its own
        client.close()
    client = Shipyard(settings)
    server = LiveServer(create_app(client, "petals:1", options=options)).start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            answer = http.post("/predict", json=features.head(40).to_dict("records"))
            assert answer.status_code == 200, answer.text
            client.prediction_log.flush()
            server.app.state.monitor.run_once()
            texts.append(http.get("/metrics").text)
    finally:
        server.stop()
        client.close()
    yield {
        sample.name
        for text in texts
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_the_server_exports_the_monitoring_metrics(exported: set[str]) -> None:
    for name in (
        "shipyard_feature_drift_score",
        "shipyard_feature_drift_detected",
        "shipyard_dataset_drift_detected",
        "shipyard_drifted_features_ratio",
        "shipyard_label_coverage_ratio",
        "shipyard_realized_accuracy_ratio",
        "shipyard_estimated_accuracy_ratio",
        "shipyard_window_prediction_quantile",
        "shipyard_prediction_log_queue_depth",
        "shipyard_prediction_log_dropped_total",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
    ):
        assert name in exported, name
    assert not [name for name in exported if ":" in name], "no colons in exported names"


def test_every_alert_references_exported_metrics(exported: set[str]) -> None:
    for rule in alert_rules(ALERTS):
        names = metric_names(rule["expr"])
        assert names, f"{rule['alert']} selects no Shipyard series"
        missing = names - exported
        assert not missing, f"{rule['alert']} references metrics the server does not export: "
        f"{sorted(missing)}"


def test_every_dashboard_query_references_exported_metrics(exported: set[str]) -> None:
    for expr in dashboard_exprs():
        missing = metric_names(expr) - exported
        assert not missing, f"{sorted(missing)} not exported; query: {expr}"
