"""Online predictions land in the prediction log; ``POST /feedback`` joins labels to them."""

from __future__ import annotations

from serving_helpers import SETOSA, IrisRegistry, LiveServer, serve


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
        assert got.json() == {
            "accepted": 5,
            "unknown": 1,
            "unknown_ids": ["never-answered"],
            "duplicates": 0,
        }
        bad = http.post("/feedback", json={"request_id": ids[0]})
        assert bad.status_code == 422 and "label" in bad.text
    logged = iris.client.prediction_log.read("iris", since="1h")
    assert set(ids) | {batch["request_id"]} <= set(logged["request_id"])
    row = logged[logged["request_id"] == ids[0]].iloc[0]
    assert row["in_sepal_length"] == SETOSA["sepal_length"]
    assert row["source"] == "online" and row["prediction"] == "setosa"


def test_logging_can_be_turned_off(iris: IrisRegistry) -> None:
    server = serve(iris.client, prediction_log=False)
    try:
        with server.client() as http:
            assert http.post("/predict", json=SETOSA).status_code == 200
            assert http.post("/feedback", json={"request_id": "x", "label": 1}).status_code == 404
    finally:
        server.stop()
    assert iris.client.prediction_log.read("iris", since="1h").empty
