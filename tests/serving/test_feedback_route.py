"""Online predictions land in the prediction log; ``POST /feedback`` joins labels to them."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from serving_helpers import SETOSA, IrisRegistry, LiveServer, serve

from shipyard.monitoring.queries import read_labelled

IRIS = 'deployment="",model="iris",variant="default",version="1"'


def test_predictions_are_logged_and_labels_join(iris: IrisRegistry, live: LiveServer) -> None:
    with live.client() as http:
        answers = [http.post("/predict", json=SETOSA).json() for _ in range(5)]
        batch = http.post("/predict", json=[SETOSA, SETOSA]).json()
        ids = [a["request_id"] for a in answers]
        labels = [{"request_id": rid, "label": "setosa"} for rid in ids[:3]]
        labels.append({"request_id": batch["request_id"], "label": "versicolor", "row": 1})
        labels.append({"request_id": "never-answered", "label": "setosa"})
        got = http.post("/feedback", json=labels)
        assert got.status_code == 200, got.text
        assert got.json() == {"accepted": 5}
        bad = http.post("/feedback", json={"request_id": ids[0]})
        assert bad.status_code == 422 and "label" in bad.text
    log = iris.client.prediction_log
    log.flush()  # labels are written by the log's background writer, like predictions
    logged = log.read("iris", since="1h")
    assert set(ids) | {batch["request_id"]} <= set(logged["request_id"])
    row = logged[logged["request_id"] == ids[0]].iloc[0]
    assert row["in_sepal_length"] == SETOSA["sepal_length"]
    assert row["source"] == "online" and row["prediction"] == "setosa"
    now = datetime.now(UTC)
    joined = read_labelled(log.store, "iris", since=now - timedelta(hours=1), until=now)
    labelled = {(r.request_id, r.row): r.label for r in joined.itertuples() if pd.notna(r.label)}
    assert labelled == {
        **{(rid, 0): "setosa" for rid in ids[:3]},
        (batch["request_id"], 1): "versicolor",
    }  # the label for an id nothing answered is kept, and joins nothing
    stored = pd.concat(pd.read_parquet(f) for f in log.store.files("feedback", "iris"))
    assert "never-answered" in set(stored["request_id"])


def test_logging_can_be_turned_off(iris: IrisRegistry) -> None:
    server = serve(iris.client, prediction_log=False)
    try:
        with server.client() as http:
            assert http.post("/predict", json=SETOSA).status_code == 200
            off = http.post("/feedback", json={"request_id": "x", "label": 1})
            assert off.status_code == 409, off.text
            assert "Feedback needs the prediction log" in off.json()["error"]
            assert "without --no-prediction-log" in off.json()["error"]
    finally:
        server.stop()
    assert iris.client.prediction_log.read("iris", since="1h").empty


def test_a_label_that_is_not_a_class_is_a_400_listing_the_classes(live: LiveServer) -> None:
    with live.client() as http:
        answer = http.post("/predict", json=SETOSA).json()
        bad = http.post("/feedback", json={"request_id": answer["request_id"], "label": "setsoa"})
        assert bad.status_code == 400, bad.text
        assert bad.json()["error"] == (
            "label 'setsoa' is not a class of model 'iris'; its classes are "
            "'setosa', 'versicolor', 'virginica'."
        )
        many = [{"request_id": answer["request_id"], "label": "setosa"}] * 2
        many.append({"request_id": answer["request_id"], "label": 7})
        bad = http.post("/feedback", json=many)
        assert bad.status_code == 400 and bad.json()["error"].startswith(
            "feedback item 2: label '7' is not a class of model 'iris'"
        )
        good = http.post("/feedback", json={"request_id": answer["request_id"], "label": "setosa"})
        assert good.status_code == 200 and good.json() == {"accepted": 1}


def test_feedback_errors_name_the_field_without_internal_names(live: LiveServer) -> None:
    with live.client() as http:
        missing = http.post("/feedback", json={"label": "setosa"})
        assert missing.status_code == 422
        assert missing.json()["error"] == "Field 'request_id' is missing."
        assert missing.json()["field"] == "request_id"
        in_list = http.post("/feedback", json=[{"request_id": "a", "label": 1}, {"label": 1}])
        assert in_list.json()["error"] == "Field '[1].request_id' is missing."
        for response in (missing, in_list):
            assert "FeedbackIn" not in response.text and "more problem" not in response.text


@pytest.mark.parametrize(
    ("content_type", "status"),
    [
        ("text/plain", 415),  # what another site's page can post without a preflight
        ("application/x-www-form-urlencoded", 415),
        (None, 415),
        ("application/json", 200),
    ],
)
def test_feedback_reads_only_json(live: LiveServer, content_type: str | None, status: int) -> None:
    headers = {} if content_type is None else {"Content-Type": content_type}
    with live.client() as http:
        body = b'{"request_id": "r1", "label": "setosa"}'
        assert http.post("/feedback", content=body, headers=headers).status_code == status


def test_feedback_refuses_duplicate_keys(live: LiveServer) -> None:
    with live.client() as http:
        body = b'{"request_id": "r1", "label": "setosa", "label": "virginica"}'
        response = http.post(
            "/feedback", content=body, headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 422, response.text
        assert response.json()["field"] == "label"


@pytest.mark.parametrize("row", [2**31, 2**32, 2**63, 10**30, -1])
def test_a_row_outside_32_bits_is_a_422_naming_the_field(live: LiveServer, row: int) -> None:
    """Rows are stored as 32-bit integers: 2**32 must not become row 0, nor 2**31 a negative."""
    with live.client() as http:
        rid = http.post("/predict", json=SETOSA).json()["request_id"]
        for body in (
            {"request_id": rid, "label": "setosa", "row": row},
            [{"request_id": rid, "label": "setosa", "row": row}],
        ):
            answer = http.post("/feedback", json=body)
            assert answer.status_code == 422, answer.text
            error = answer.json()
            assert error["field"].endswith("row"), error
            assert "row" in error["error"]
        top = http.post("/feedback", json={"request_id": rid, "label": "setosa", "row": 2**31 - 1})
        assert top.status_code == 200, top.text


def test_one_client_request_id_sent_fifty_times_makes_fifty_ids_and_a_label_joins_one(
    iris: IrisRegistry,
) -> None:
    """Labels join by request id: a client reusing its X-Request-ID must not make one
    label judge fifty predictions (accuracy 0.0 from one post)."""
    server = serve(iris.client, monitor_interval=3600)
    try:
        with server.client() as http:
            answers = [
                http.post("/predict", json=SETOSA, headers={"X-Request-ID": "order-7"})
                for _ in range(50)
            ]
            ids = [a.json()["request_id"] for a in answers]
            assert len(set(ids)) == 50
            assert all(
                a.headers["x-request-id"] == rid for a, rid in zip(answers, ids, strict=True)
            )
            assert all(rid.startswith("order-7.") for rid in ids)
            # The bare client id names no prediction; the answer's id names exactly one.
            for label in (
                {"request_id": "order-7", "label": "virginica"},
                {"request_id": ids[10], "label": "setosa"},
            ):
                assert http.post("/feedback", json=label).status_code == 200
            iris.client.prediction_log.flush()
            server.app.state.monitor.run_once()
            metrics = http.get("/metrics").text
    finally:
        server.stop()
    assert f"shipyard_label_coverage_ratio{{{IRIS}}} 0.02" in metrics
    assert f"shipyard_realized_accuracy_ratio{{{IRIS}}} 1.0" in metrics
    logged = iris.client.prediction_log.read("iris", since="1h", inputs=False)
    assert sorted(logged["request_id"]) == sorted(ids)


def test_a_flood_of_label_posts_makes_few_files_and_every_label_joins(
    iris: IrisRegistry,
) -> None:
    """600 posts of one label each: buffered like predictions (one segment per flush of
    the writer, not one per post), each post costs the same however many came first."""
    server = serve(iris.client, monitor_interval=3600)
    log = iris.client.prediction_log
    n = 600
    try:
        with server.client() as http:
            rid = http.post("/predict", json=[SETOSA] * n).json()["request_id"]
            log.flush()
            latencies = []
            started = time.monotonic()
            for i in range(n):
                sent = time.perf_counter()
                answer = http.post(
                    "/feedback", json={"request_id": rid, "row": i, "label": "setosa"}
                )
                latencies.append(time.perf_counter() - sent)
                assert answer.json() == {"accepted": 1}, answer.text
            elapsed = time.monotonic() - started
            log.flush()
            files = log.store.files("feedback", "iris")
            server.app.state.monitor.run_once()
            metrics = http.get("/metrics").text
    finally:
        server.stop()
    # The writer flushes at most once per flush interval (1 s) while labels keep coming.
    assert 1 <= len(files) <= elapsed / log.flush_interval + 2, (len(files), elapsed)
    assert f"shipyard_label_coverage_ratio{{{IRIS}}} 1.0" in metrics
    assert "shipyard_feedback_labels_written_total 600.0" in metrics
    first, last = np.median(latencies[:100]) * 1e3, np.median(latencies[-100:]) * 1e3
    print(
        f"\nfeedback flood: {len(files)} file(s) for {n} posts in {elapsed:.1f} s; "
        f"median latency first 100 {first:.2f} ms, last 100 {last:.2f} ms"
    )
