"""The canary step through the real rollout service and its progressive policy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from loop_support import ManualClock, make_config

from shipyard import Shipyard
from shipyard.loop.controller import LoopController
from shipyard.loop.examples import FEATURES, iris_frame, train_iris
from shipyard.loop.lineage import lineage
from shipyard.monitoring.records import PredictionRecord
from shipyard.rollout.policy import bucket_key
from shipyard.store.rollout_records import VariantCounters

POLICY = {"steps": [10, 100], "step_requests": 30, "min_requests": 20, "max_error_rate": 0.1}


def _champion(client: Shipyard) -> None:
    data = iris_frame()
    model, metrics = train_iris(data, {"cv": 2})
    version = client.registry.log_model(model, "iris", sample=data[list(FEATURES)], metrics=metrics)
    client.registry.set_alias("iris", "production", version.version)


def _serve_canary(client: Shipyard, requests: int, errors: int) -> None:
    """What serving workers report: the canary's cumulative counters in this epoch."""
    deployments = client.deployments.acting_as("worker")
    d = deployments.get("iris")
    deployments.store.report_worker(
        "iris",
        worker="w1",
        revision=d.revision,
        epoch=d.epoch,
        counters=[
            VariantCounters("canary", d.canary, requests, errors, {bucket_key(0.01): requests})
        ],
    )


def test_healthy_canary_is_promoted_and_the_alias_follows(
    client: Shipyard, iris_csv: Path, clock: ManualClock
) -> None:
    _champion(client)
    config = make_config(iris_csv, canary={"policy": POLICY})
    controller = LoopController(client, [config], clock=clock)  # the real rollout runner

    [first] = controller.tick()
    assert first.run is not None and first.run.status == "canary", first.summary()
    d = client.deployments.acting_as("t").get("iris")
    assert (d.primary, d.canary, d.canary_weight) == (1, 2, 10.0)
    started = first.run.steps[-1].outputs["started"]
    assert started["created"] is True and started["policy"]["step_requests"] == 30

    _serve_canary(client, requests=40, errors=0)
    clock.advance(minutes=5)
    [second] = controller.tick()
    assert second.run is not None and second.run.status == "promoted", second.summary()
    d = client.deployments.acting_as("t").get("iris")
    assert (d.primary, d.canary) == (2, None)
    assert client.registry.resolve("iris@production").version == 2
    assert [s.name for s in second.run.steps][-2:] == ["canary", "promote"]

    # Lineage reads data snapshot -> pipeline -> run -> version -> deployment -> predictions.
    served = datetime.now(UTC)  # after the version was registered (by the wall clock)
    client.prediction_log.write(
        [
            PredictionRecord(f"r{i}", served, "iris", v, {"sepal_length": 5.0}, "setosa")
            for i, v in enumerate([2] * 7 + [1] * 3)
        ]
    )
    chain = lineage(client, "iris@production", until=served + timedelta(seconds=1))
    version = client.registry.resolve("iris:2")
    assert chain.version == "iris:2" and chain.aliases == ("production",)
    assert chain.data == version.data_fingerprint and chain.run_id == version.run_id
    assert chain.run_datasets["training"]["content_hash"] == chain.data["content_hash"]
    assert chain.loop_run == second.run.id
    assert chain.deployments == {"iris": "primary"} and chain.predictions == 7
    # Counted per UTC day in the log, not read row by row.
    assert [(w.day, w.rows) for w in chain.windows] == [(served.date(), 7)]
    assert chain.first_prediction == chain.last_prediction == chain.windows[0].first
    lines = chain.describe()
    assert lines[0].startswith(f"data:        {iris_csv} (150 rows, sha256 ")
    assert lines[1] == "snapshot:    iris:1"  # the loop's first snapshot (the champion was not)
    assert lines[2].startswith("pipeline:    shipyard.loop.examples:train_iris (code sha256 ")
    assert lines[5:] == ["deployments: iris (primary)", lines[6]]
    assert lines[6].startswith("predictions: 7 from ")


def test_breaching_canary_is_rolled_back_and_the_champion_stays(
    client: Shipyard, iris_csv: Path, clock: ManualClock
) -> None:
    _champion(client)
    config = make_config(iris_csv, canary={"policy": POLICY})
    controller = LoopController(client, [config], clock=clock)
    [first] = controller.tick()
    assert first.run is not None and first.run.status == "canary"

    _serve_canary(client, requests=25, errors=9)
    [second] = controller.tick()
    run = second.run
    assert run is not None and run.status == "rolled_back", second.summary()
    assert "error rate" in (run.message or "") and "keeps serving" in (run.message or "")
    d = client.deployments.acting_as("t").get("iris")
    assert (d.primary, d.canary) == (1, None)
    assert client.registry.resolve("iris@production").version == 1
