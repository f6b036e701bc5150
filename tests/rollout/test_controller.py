"""The controller applies verdicts on a real store; concurrent controllers act once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from prometheus_client import CollectorRegistry
from rollout_support import GOOD, OTHER, Registry

from shipyard.clock import ManualClock
from shipyard.rollout.controller import RolloutController, accuracy_by_variant
from shipyard.rollout.metrics import RolloutMetrics
from shipyard.rollout.policy import bucket_key
from shipyard.rollout.records import RolloutPolicy
from shipyard.store.rollout_records import VariantCounters


def report(reg: Registry, epoch: int, requests: int, errors: int, worker: str = "w1") -> None:
    reg.deployments.store.report_worker(
        "web",
        worker=worker,
        revision=1,
        epoch=epoch,
        counters=[
            VariantCounters("canary", OTHER, requests, errors, {bucket_key(0.005): requests})
        ],
    )


def test_time_steps_advance_and_promote_with_an_injected_clock(reg: Registry) -> None:
    clock = ManualClock(datetime(2026, 1, 1, tzinfo=UTC))
    d = reg.client.deployments.acting_as("rollout", clock=clock)
    d.create("web", "m", GOOD)
    d.set_canary("web", OTHER, policy=RolloutPolicy(steps=(5, 25, 100), step_seconds=60))
    controller = RolloutController(d)  # the deployments' clock
    weights = []
    for _ in range(3):
        report(reg, d.get("web").epoch, 30, 0)
        assert controller.evaluate("web").action == "hold"  # the step's minute is not up
        clock.advance(seconds=61)
        assert controller.evaluate("web").action == "advance"
        weights.append(d.get("web").canary_weight)
        if d.get("web").canary is None:
            break
    web = d.get("web")
    assert weights[:1] == [25.0] and (web.primary, web.canary) == (OTHER, None)
    assert [c.action for c in d.changes("web")][:3] == [
        "auto_promote",
        "advance_canary",
        "deploy_canary",
    ]


def test_breach_rolls_back_with_reason_and_counter(reg: Registry) -> None:
    d = reg.deployments
    d.create("web", "m", GOOD)
    d.set_canary("web", OTHER, policy=RolloutPolicy(step_requests=500, max_error_rate=0.1))
    report(reg, d.get("web").epoch, 20, 0, worker="w1")
    report(reg, d.get("web").epoch, 20, 9, worker="w2")  # 9/40 over both workers
    metrics = RolloutMetrics(CollectorRegistry())
    first = RolloutController(d, metrics=metrics)
    second = RolloutController(reg.client.deployments.acting_as("other"))
    stale = d.get("web")
    verdict = first.evaluate("web", stale)
    assert (verdict.action, verdict.guard) == ("rollback", "error_rate")
    # A second controller that read the same state is told someone acted first.
    assert second.evaluate("web", stale).reason == "another controller or a person acted first"
    web = d.get("web")
    assert (web.primary, web.canary) == (GOOD, None)
    entry = reg.client.audit.log(model="m", limit=1)[0]
    assert entry.action == "auto_rollback"
    assert entry.reason is not None and "error rate 22.5% (9/40)" in entry.reason
    assert metrics.rollbacks.labels("web", "error_rate")._value.get() == 1


def test_accuracy_by_variant_counts_labelled_rows() -> None:
    import pandas as pd

    frame = pd.DataFrame(
        {
            "variant": ["primary", "primary", "canary", "canary", "canary"],
            "prediction": ["a", "b", "a", "a", "b"],
            "label": ["a", "b", "b", None, "b"],
        }
    )
    got = accuracy_by_variant(frame)
    assert (got["primary"].correct, got["primary"].labelled) == (2, 2)
    assert (got["canary"].correct, got["canary"].labelled) == (1, 2)


def test_accuracy_guard_reads_labels_from_the_prediction_log(reg: Registry) -> None:
    from shipyard.monitoring.feedback import record_feedback
    from shipyard.monitoring.records import PredictionRecord
    from shipyard.rollout.controller import log_accuracy

    d = reg.deployments
    d.create("web", "m", GOOD)
    policy = RolloutPolicy(step_requests=1000, max_accuracy_drop=0.1, min_labels=30)
    web = d.set_canary("web", OTHER, 50, policy=policy)
    report(reg, web.epoch, 40, 0)
    log = reg.client.prediction_log
    now = datetime.now(UTC)
    rows, labels = [], []
    for i in range(80):
        variant, version = ("canary", OTHER) if i % 2 else ("primary", GOOD)
        # The primary is always right; the canary only half the time.
        answer = "big" if variant == "primary" or i % 4 == 1 else "small"
        rows.append(
            PredictionRecord(
                request_id=f"r{i}", timestamp=now, model="m", version=version,
                inputs={"x": 1.0}, prediction=answer, variant=variant, deployment="web",
            )
        )  # fmt: skip
        labels.append({"request_id": f"r{i}", "label": "big"})
    # Another deployment's canary of the same version, and direct traffic, always right:
    # counted in, they would hide the bad canary of "web".
    for i in range(200):
        rows.append(
            PredictionRecord(
                request_id=f"other{i}", timestamp=now, model="m", version=OTHER,
                inputs={"x": 1.0}, prediction="big", variant="canary",
                deployment="api" if i % 2 else None,
            )
        )  # fmt: skip
        labels.append({"request_id": f"other{i}", "label": "big"})
    log.write(rows)
    record_feedback(log, labels, model="m")
    controller = RolloutController(
        d, clock=ManualClock(datetime.now(UTC) + timedelta(seconds=1)), accuracy=log_accuracy(log)
    )
    verdict = controller.evaluate("web")
    assert (verdict.action, verdict.guard) == ("rollback", "accuracy"), verdict
    assert "accuracy 50.0% (40 labelled)" in verdict.reason
    assert d.get("web").canary is None
