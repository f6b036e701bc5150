"""The monitor job wired into a real server: drift, label coverage and accuracy on /metrics."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime, timedelta

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families
from serving_helpers import IrisRegistry, LiveServer, cli_server, serve
from sklearn.linear_model import LinearRegression

from shipyard.clock import ManualClock
from shipyard.errors import ConfigError
from shipyard.monitoring.monitor_job import MonitorJob
from shipyard.monitoring.records import PredictionBatch
from shipyard.quickstart import iris_frame


def scrape(http: httpx.Client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics, by name and sorted labels."""
    text = http.get("/metrics").text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    assert key in samples, f"{name}{labels} not exported; have {sorted(k for k in samples)[:50]}"
    return samples[key]


IRIS = {"model": "iris", "version": "1", "deployment": "", "variant": "default"}


@pytest.fixture
def quiet_live(iris: IrisRegistry) -> LiveServer:
    """A server whose periodic runs are an hour apart: the test runs the job itself."""
    server = serve(iris.client, monitor_interval=3600)
    yield server
    server.stop()


def predict(http: httpx.Client, rows: list[dict[str, float]]) -> str:
    answer = http.post("/predict", json=rows)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["request_id"])


def test_drift_coverage_and_accuracy_follow_traffic_and_feedback(
    iris: IrisRegistry, quiet_live: LiveServer
) -> None:
    X, y = iris_frame()
    sample = X.sample(60, random_state=1)
    truth = y.loc[sample.index].astype(str).tolist()
    job: MonitorJob = quiet_live.app.state.monitor
    with quiet_live.client() as http:
        rid = predict(http, sample.to_dict("records"))
        iris.client.prediction_log.flush()
        job.run_once()
        before = scrape(http)
        assert value(before, "shipyard_monitor_window_predictions", **IRIS) == 60
        assert value(before, "shipyard_dataset_drift_detected", **IRIS) == 0
        assert value(before, "shipyard_drifted_features_ratio", **IRIS) == 0
        assert value(before, "shipyard_label_coverage_ratio", **IRIS) == 0
        assert math.isnan(value(before, "shipyard_realized_accuracy_ratio", **IRIS))
        assert 0.5 < value(before, "shipyard_estimated_accuracy_ratio", **IRIS) <= 1
        features = {
            dict(labels)["feature"]
            for (name, labels) in before
            if name == "shipyard_feature_drift_score"
        }
        assert features == set(X.columns)

        # Labels for half the rows: one of them deliberately wrong.
        labels = [{"request_id": rid, "row": i, "label": truth[i]} for i in range(30)]
        labels[0]["label"] = "virginica" if truth[0] != "virginica" else "setosa"
        assert http.post("/feedback", json=labels).json()["accepted"] == 30
        iris.client.prediction_log.flush()  # labels are written in the background
        predicted = iris.client.prediction_log.read("iris", since="1h")["prediction"].tolist()
        expected = sum(
            str(p) == str(item["label"]) for p, item in zip(predicted[:30], labels, strict=True)
        )
        job.run_once()
        after = scrape(http)
        assert value(after, "shipyard_label_coverage_ratio", **IRIS) == pytest.approx(0.5)
        assert value(after, "shipyard_realized_accuracy_ratio", **IRIS) == pytest.approx(
            expected / 30
        )
        assert value(after, "shipyard_realized_accuracy_ratio", **IRIS) < 1

        # Drifted traffic: every length doubled.
        predict(http, (sample * 2.0).to_dict("records"))
        predict(http, (sample * 2.0).to_dict("records"))
        iris.client.prediction_log.flush()
        job.run_once()
        drifted = scrape(http)
    assert value(drifted, "shipyard_dataset_drift_detected", **IRIS) == 1
    assert value(drifted, "shipyard_drifted_features_ratio", **IRIS) > 0.5
    flags = {
        dict(labels)["feature"]: v
        for (name, labels), v in drifted.items()
        if name == "shipyard_feature_drift_detected"
    }
    assert flags and all(v == 1 for v in flags.values()), flags
    assert value(drifted, "shipyard_monitor_window_predictions", **IRIS) == 180
    assert value(drifted, "shipyard_monitor_runs_total") >= 3


def test_the_window_follows_the_injected_clock(iris: IrisRegistry, quiet_live: LiveServer) -> None:
    X, _ = iris_frame()
    job: MonitorJob = quiet_live.app.state.monitor
    with quiet_live.client() as http:
        predict(http, X.head(40).to_dict("records"))
        iris.client.prediction_log.flush()
        # The rows fell out of the one-hour window.
        job.clock = ManualClock(job.clock.now() + timedelta(hours=2))
        job.run_once()
        samples = scrape(http)
    assert value(samples, "shipyard_monitor_window_predictions", **IRIS) == 0
    assert math.isnan(value(samples, "shipyard_label_coverage_ratio", **IRIS))


def test_the_periodic_task_runs_by_itself(iris: IrisRegistry) -> None:
    server = serve(iris.client, monitor_interval=0.05)
    try:
        with server.client() as http:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                samples = scrape(http)
                if samples.get(("shipyard_monitor_runs_total", ()), 0) >= 2:
                    break
                time.sleep(0.05)
            assert value(samples, "shipyard_monitor_runs_total") >= 2
            assert value(samples, "shipyard_monitor_last_run_timestamp_seconds") > 0
            assert value(samples, "process_resident_memory_bytes") > 0
            assert "process_cpu_seconds_total" in {name for name, _ in samples}
            assert ("shipyard_prediction_log_queue_depth", ()) in samples
            assert ("shipyard_prediction_log_dropped_total", ()) in samples
    finally:
        server.stop()


def test_bad_intervals_are_refused(iris: IrisRegistry) -> None:
    with pytest.raises(ConfigError, match="monitor interval"):
        serve(iris.client, monitor_interval=0)


def test_several_workers_export_process_and_monitor_metrics(iris: IrisRegistry) -> None:
    """With --workers 2 the gauges go through the shared multi-process files."""
    args = ("iris", "--workers", "2", "--monitor-interval", "0.2")
    with cli_server(iris.settings, *args) as (_, url):
        X, _ = iris_frame()
        with httpx.Client(base_url=url, timeout=30) as http:
            predict(http, X.sample(40, random_state=2).to_dict("records"))
            deadline = time.monotonic() + 30
            drift_key = ("shipyard_dataset_drift_detected", tuple(sorted(IRIS.items())))
            while True:  # the log flushes within a second, the job runs every 0.2 s
                samples = scrape(http)
                rows = samples.get(
                    ("shipyard_monitor_window_predictions", tuple(sorted(IRIS.items())))
                )
                written = samples.get(("shipyard_prediction_log_written_total", ()))
                # The window's row count is set before its drift is scored: wait for both.
                scored = drift_key in samples
                if ((rows, written) == (40, 40) and scored) or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
    assert (rows, written) == (40, 40), sorted(samples.items())
    assert value(samples, "shipyard_dataset_drift_detected", **IRIS) == 0
    assert value(samples, "process_cpu_seconds_total") > 0
    # Two workers, each with a model loaded: well over one worker's 20 MB.
    assert value(samples, "process_resident_memory_bytes") > 40e6


def test_a_regressors_predicted_values_are_summarised(iris: IrisRegistry) -> None:
    X, _ = iris_frame()
    features, target = X.drop(columns="petal_width"), X["petal_width"]
    model = LinearRegression().fit(features, target)
    iris.client.registry.log_model(model, "petals", sample=features)
    server = serve(iris.client, "petals:1", monitor_interval=3600)
    try:
        with server.client() as http:
            answer = http.post(
                "/predict", json=features.sample(50, random_state=0).to_dict("records")
            )
            assert answer.status_code == 200, answer.text
            iris.client.prediction_log.flush()
            server.app.state.monitor.run_once()
            samples = scrape(http)
    finally:
        server.stop()
    predicted = np.asarray(answer.json()["predictions"], dtype=float)
    petals = {"model": "petals", "version": "1", "deployment": "", "variant": "default"}
    for q in (0.05, 0.5, 0.95):
        got = value(samples, "shipyard_window_prediction_quantile", **petals, quantile=str(q))
        assert got == pytest.approx(np.quantile(predicted, q))
    assert value(samples, "shipyard_dataset_drift_detected", **petals) == 0
    assert math.isnan(value(samples, "shipyard_estimated_accuracy_ratio", **petals))


def test_a_hot_swap_drops_the_old_versions_figures(
    iris: IrisRegistry, quiet_live: LiveServer
) -> None:
    X, _ = iris_frame()
    job: MonitorJob = quiet_live.app.state.monitor
    with quiet_live.client() as http:
        predict(http, X.sample(40, random_state=3).to_dict("records"))
        iris.client.prediction_log.flush()
        job.run_once()
        assert value(scrape(http), "shipyard_dataset_drift_detected", **IRIS) == 0
        iris.client.registry.set_alias("iris", "production", iris.forest)
        deadline = time.monotonic() + 30
        while job.runtime.current.version != iris.forest:  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "the server never swapped"
            time.sleep(0.05)
        job.run_once()
        samples = scrape(http)
    versions = {
        dict(labels).get("version")
        for (name, labels) in samples
        if name.startswith(
            ("shipyard_feature_drift", "shipyard_label_coverage", "shipyard_monitor_window")
        )
    }
    assert versions == {str(iris.forest)}


def test_a_feature_that_vanished_from_the_traffic_makes_the_dataset_drift(
    iris: IrisRegistry, quiet_live: LiveServer
) -> None:
    """Real iris rows but one feature NaN on every row (a batch job whose column went
    missing): that feature is drift and so is the dataset, though 3 of 4 are unchanged."""
    X, _ = iris_frame()
    iris.client.prediction_log.write(
        PredictionBatch(
            request_id="job-vanished",
            timestamp=datetime.now(UTC),
            model="iris",
            version=1,
            inputs=X.assign(petal_width=np.nan),
            predictions=np.array(["setosa"] * len(X), dtype=object),
        )
    )
    job: MonitorJob = quiet_live.app.state.monitor
    with quiet_live.client() as http:
        job.run_once()
        samples = scrape(http)
    vanished = {**IRIS, "feature": "petal_width", "stattest": "vanished"}
    assert value(samples, "shipyard_feature_drift_detected", **vanished) == 1
    assert value(samples, "shipyard_feature_drift_score", **vanished) == 0  # values left
    others = {
        dict(labels)["feature"]: v
        for (name, labels), v in samples.items()
        if name == "shipyard_feature_drift_detected" and dict(labels)["feature"] != "petal_width"
    }
    assert others == dict.fromkeys(["sepal_length", "sepal_width", "petal_length"], 0)
    assert value(samples, "shipyard_dataset_drift_detected", **IRIS) == 1


def test_the_monitor_compacts_label_files_and_labels_still_join(
    iris: IrisRegistry, quiet_live: LiveServer
) -> None:
    X, y = iris_frame()
    rows = X.sample(20, random_state=6)
    truth = y.loc[rows.index].astype(str).tolist()
    log = iris.client.prediction_log
    job: MonitorJob = quiet_live.app.state.monitor
    with quiet_live.client() as http:
        rid = predict(http, rows.to_dict("records"))
        for i in range(10):
            answer = http.post("/feedback", json={"request_id": rid, "row": i, "label": truth[i]})
            assert answer.status_code == 200, answer.text
            log.flush()  # one label file per flush of the log's writer
        assert len(log.store.files("feedback", "iris")) == 10
        job.run_once()
        assert len(log.store.files("feedback", "iris")) == 1
        job.run_once()
        samples = scrape(http)
    assert value(samples, "shipyard_label_coverage_ratio", **IRIS) == 0.5
