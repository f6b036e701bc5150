"""The whole loop on small data: real pipeline, registry, gates, approvals; a recording canary."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path
from typing import Any

import pytest
from loop_support import T0, ManualClock, RecordingCanary, append_rows, make_config

from shipyard import Shipyard
from shipyard.config import Settings
from shipyard.loop.canary import CanaryOutcome
from shipyard.loop.config import LoopConfig
from shipyard.loop.controller import LoopController
from shipyard.loop.examples import iris_frame, train_iris
from shipyard.store.loop_records import ClaimRefused, LoopRun

ALL_STEPS = ["validate_data", "retrain", "register", "gates", "approval", "canary", "promote"]


def _champion(client: Shipyard, estimator: str = "logistic_regression") -> int:
    """Register iris:1 by hand, as a data scientist would, and make it production."""
    data = iris_frame()
    model, metrics = train_iris(data, {"estimator": estimator, "cv": 2})
    features = data.drop(columns=["species"])
    version = client.registry.log_model(model, "iris", sample=features, metrics=metrics)
    client.registry.set_alias("iris", "production", version.version)
    return version.version


def test_good_challenger_ends_up_serving_and_history_records_every_step(
    client: Shipyard, iris_csv: Path, clock: ManualClock
) -> None:
    _champion(client)
    append_rows(iris_csv, 60)
    canary = RecordingCanary()
    config = make_config(iris_csv, gates={"min_changes": ["accuracy:+0"]})
    controller = LoopController(client, [config], clock=clock, canary=canary, seed=3)

    [tick] = controller.tick()

    assert tick.run is not None and tick.run.status == "promoted", tick.summary()
    assert client.registry.resolve("iris@production").version == 2
    assert [c[0] for c in canary.calls] == ["start", "poll"]
    request = canary.calls[0][1]
    assert (request.candidate, request.champion, request.deployment) == (2, 1, "iris")
    run = controller.history("iris")[0]
    assert [s.name for s in run.steps] == ALL_STEPS
    assert [s.status for s in run.steps] == [
        "succeeded", "succeeded", "succeeded", "succeeded", "skipped", "succeeded", "succeeded",
    ]  # fmt: skip
    assert all(s.duration_s >= 0 and s.finished_at >= s.started_at for s in run.steps)
    steps = {s.name: s for s in run.steps}
    assert steps["validate_data"].outputs["rows"] == 210
    assert steps["retrain"].inputs["entry_point"] == "shipyard.loop.examples:train_iris"
    assert steps["retrain"].inputs["train_rows"] + steps["retrain"].inputs["holdout_rows"] == 210
    assert steps["gates"].outputs["passed"] is True
    assert steps["gates"].inputs["champion"] == "iris:1"
    # The gates' holdout calibrated the candidate's performance estimates.
    assert steps["gates"].outputs["cbpe_calibration"].startswith("CBPE calibration fitted")
    assert client.calibrations.load(client.registry.resolve("iris:2")) is not None
    assert steps["promote"].outputs == {"alias": "iris@production", "version": 2, "previous": 1}
    # Lineage: data snapshot -> run -> version.
    version = client.registry.resolve("iris:2")
    lineage = version.data_fingerprint
    assert lineage is not None and lineage["n_rows"] == 210
    assert lineage["content_hash"] == steps["validate_data"].outputs["content_hash"]
    assert lineage["source"] == str(iris_csv)
    assert lineage["loop_run"] == run.id and lineage["trigger"].startswith("schedule:")
    holdout = lineage["holdout"]
    assert holdout["seed"] == [3, run.id] and holdout["n_rows"] == round(210 * 0.25)
    assert holdout["content_hash"] == steps["gates"].inputs["holdout_hash"]
    tracked = client.runs.get_run(version.run_id or "")
    assert tracked.status == "FINISHED"
    assert tracked.datasets["training"]["content_hash"] == lineage["content_hash"]
    assert tracked.params["entry_point"] == "shipyard.loop.examples:train_iris"
    assert version.tags["loop.run"] == str(run.id)
    assert version.tags["loop.pipeline"] == "shipyard.loop.examples:train_iris"


def test_failing_gate_keeps_the_champion(
    client: Shipyard, iris_csv: Path, clock: ManualClock
) -> None:
    _champion(client)
    canary = RecordingCanary()
    config = make_config(
        iris_csv,
        pipeline={"params": {"estimator": "dummy"}},  # predicts one class: a bad challenger
        gates={"min_changes": ["accuracy:+0"]},
    )
    [tick] = LoopController(client, [config], clock=clock, canary=canary).tick()

    run = tick.run
    assert run is not None and run.status == "rejected"
    assert run.message is not None and "iris:2 failed its gates" in run.message
    assert "keeps serving" in run.message
    assert [s.name for s in run.steps] == ["validate_data", "retrain", "register", "gates"]
    assert run.steps[-1].status == "failed" and run.steps[-1].outputs["passed"] is False
    assert client.registry.resolve("iris@production").version == 1
    assert canary.calls == []


def test_rolled_back_canary_keeps_the_champion(
    client: Shipyard, iris_csv: Path, clock: ManualClock
) -> None:
    _champion(client)
    canary = RecordingCanary(CanaryOutcome(False, "error rate 0.2 > 0.05 at step 10%"))
    [tick] = LoopController(client, [make_config(iris_csv)], clock=clock, canary=canary).tick()

    assert tick.run is not None and tick.run.status == "rolled_back"
    assert "error rate 0.2 > 0.05" in (tick.run.message or "")
    assert client.registry.resolve("iris@production").version == 1
    assert tick.run.steps[-1].name == "canary" and tick.run.steps[-1].status == "failed"


def test_canary_in_progress_is_resumed_by_later_ticks(
    client: Shipyard, iris_csv: Path, clock: ManualClock
) -> None:
    _champion(client)
    canary = RecordingCanary(None, None, CanaryOutcome(True, "promoted at 100%"))
    controller = LoopController(client, [make_config(iris_csv)], clock=clock, canary=canary)

    [first] = controller.tick()
    assert first.run is not None and first.run.status == "canary"
    clock.advance(minutes=5)
    [second] = controller.tick()
    assert second.resumed and second.run is not None and second.run.status == "canary"
    clock.advance(minutes=5)
    [third] = controller.tick()
    assert third.run is not None and third.run.status == "promoted"
    assert client.registry.resolve("iris@production").version == 2
    assert [c[0] for c in canary.calls] == ["start", "poll", "poll", "poll"]
    names = [(s.name, s.status) for s in third.run.steps]
    # One waiting step per wait, then the outcome: the history does not grow per tick.
    assert names[-3:] == [("canary", "waiting"), ("canary", "succeeded"), ("promote", "succeeded")]


def test_approval_required_waits_then_resumes(
    client: Shipyard, iris_csv: Path, clock: ManualClock
) -> None:
    _champion(client)
    validation = client.validation
    validation.set_required_approvals("iris", 1, actor="admin")
    controller = LoopController(
        client, [make_config(iris_csv)], clock=clock, canary=RecordingCanary()
    )
    [tick] = controller.tick()
    assert tick.run is not None and tick.run.status == "awaiting_approval"
    assert "shipyard approve iris:2" in (tick.run.message or "")
    clock.advance(hours=1)
    [again] = controller.tick()  # still waiting: no new trigger runs, no new step
    assert again.resumed and again.run is not None and again.run.status == "awaiting_approval"
    assert len(again.run.steps) == len(tick.run.steps)
    assert client.registry.resolve("iris@production").version == 1

    validation.record_decision("iris", 2, "approve", actor="ann", comment="checked")
    clock.advance(hours=1)
    [done] = controller.tick()
    assert done.run is not None and done.run.status == "promoted", done.summary()
    assert client.registry.resolve("iris@production").version == 2


def test_data_breaking_the_contract_stops_before_retraining(
    client: Shipyard, iris_csv: Path, clock: ManualClock
) -> None:
    _champion(client)
    append_rows(iris_csv, 30, shift=-40.0)  # negative lengths: impossible, not unusual
    [tick] = LoopController(
        client, [make_config(iris_csv)], clock=clock, canary=RecordingCanary()
    ).tick()
    run = tick.run
    assert run is not None and run.status == "failed"
    assert [s.name for s in run.steps] == ["validate_data"]
    assert "breaks the data contract of iris:1" in (run.message or "")
    assert "at least 0" in (run.message or "")
    violations = run.steps[0].outputs["violations"]
    assert violations and {v["severity"] for v in violations} == {"error"}
    assert client.models.count_versions("iris") == 1


def test_unusual_new_data_warns_and_the_run_goes_on_unless_strict(
    client: Shipyard, iris_csv: Path, clock: ManualClock
) -> None:
    """Drifted data is what the loop retrains for: range warnings do not stop it."""
    _champion(client)
    append_rows(iris_csv, 30, shift=40.0)  # 40 cm petals: far outside every range seen
    strict = make_config(iris_csv, contract={"strict": True})
    [tick] = LoopController(client, [strict], clock=clock, canary=RecordingCanary()).tick()
    assert tick.run is not None and tick.run.status == "failed"
    assert "breaks the data contract of iris:1" in (tick.run.message or "")
    assert "usually between" in (tick.run.message or "")

    # Not strict: the same scheduled retrain (a failed run does not use it up) goes on.
    [tick] = LoopController(
        client, [make_config(iris_csv)], clock=clock, canary=RecordingCanary()
    ).tick()
    run = tick.run
    assert run is not None and run.status == "promoted", tick.summary()
    validated = run.steps[0].outputs
    assert validated["violations"] == []
    assert {(w["column"], w["expectation"]) for w in validated["warnings"]} >= {
        ("petal_length", "range")
    }
    assert "passed with" in validated["contract"]


def test_failing_pipeline_is_recorded_and_stops_the_run(
    client: Shipyard, iris_csv: Path, clock: ManualClock
) -> None:
    config = make_config(iris_csv, pipeline={"params": {"estimator": "svm"}})
    [tick] = LoopController(client, [config], clock=clock, canary=RecordingCanary()).tick()
    run = tick.run
    assert run is not None and run.status == "failed"
    assert run.steps[-1].name == "retrain" and run.steps[-1].status == "failed"
    assert "params.estimator is 'svm'" in (run.steps[-1].error or "")
    [tracked] = client.runs.list_runs("loop-iris")
    assert tracked.status == "FAILED"


def test_first_version_is_promoted_without_champion(
    client: Shipyard, iris_csv: Path, clock: ManualClock
) -> None:
    canary = RecordingCanary()
    [tick] = LoopController(client, [make_config(iris_csv)], clock=clock, canary=canary).tick()
    assert tick.run is not None and tick.run.status == "promoted"
    assert client.registry.resolve("iris@production").version == 1
    statuses = {s.name: s.status for s in tick.run.steps}
    assert (statuses["gates"], statuses["canary"]) == ("succeeded", "skipped")
    assert canary.calls == []


def test_manual_trigger_and_one_active_run_per_model(
    client: Shipyard, iris_csv: Path, clock: ManualClock
) -> None:
    _champion(client)
    controller = LoopController(
        client, [make_config(iris_csv)], clock=clock, canary=RecordingCanary(None)
    )
    run = controller.trigger("iris", reason="demo")
    assert isinstance(run, LoopRun) and run.trigger_kind == "manual" and run.status == "canary"
    blocked = controller.trigger("iris")  # the canary run is still active
    assert isinstance(blocked, ClaimRefused) and blocked.why == "active"
    assert f"run {run.id} is still canary" in blocked.describe()
    with pytest.raises(Exception, match="No loop config for model 'wine'"):
        controller.trigger("wine")


def test_a_tick_reports_an_unreachable_database_instead_of_dying(
    tmp_path: Path, iris_csv: Path
) -> None:
    down = Settings(home=tmp_path, db="postgresql+psycopg://nobody@127.0.0.1:1/none")
    client = Shipyard(down)
    [tick] = LoopController(client, [make_config(iris_csv)], canary=RecordingCanary()).tick()
    assert tick.run is None and "Could not migrate the metadata database" in tick.errors[0]
    assert tick.summary().startswith("iris: error: Could not migrate")


def _tick_in_child(settings: Settings, config: LoopConfig, barrier: Any, queue: Any) -> None:
    client = Shipyard(settings)
    controller = LoopController(
        client, [config], clock=ManualClock(T0), canary=RecordingCanary(), owner=f"p{os.getpid()}"
    )
    barrier.wait()
    [tick] = controller.tick()
    queue.put(None if tick.run is None else (tick.run.id, tick.run.status))
    client.close()


def test_two_controllers_at_once_retrain_once(backend_settings: Settings, iris_csv: Path) -> None:
    config = make_config(iris_csv)  # the same schedule trigger, due for both
    Shipyard(backend_settings).database.close()  # migrate before the race
    ctx = multiprocessing.get_context("fork")
    barrier, queue = ctx.Barrier(2), ctx.Queue()
    procs = [
        ctx.Process(target=_tick_in_child, args=(backend_settings, config, barrier, queue))
        for _ in range(2)
    ]
    for p in procs:
        p.start()
    results = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    runs = [r for r in results if r is not None]
    assert len(runs) == 1 and runs[0][1] == "promoted", results
    client = Shipyard(backend_settings)
    assert len(client.loops.list_runs("iris")) == 1
    assert client.models.count_versions("iris") == 1
    client.close()
