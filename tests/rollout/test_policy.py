"""The progressive rollout verdict, from counters and a clock (no server, no sleeping)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shipyard.rollout.policy import Accuracy, VariantStats, bucket_key, decide, merge_stats
from shipyard.rollout.records import Deployment, RolloutPolicy
from shipyard.store.rollout_records import VariantCounters

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def canary(policy: RolloutPolicy) -> Deployment:
    return Deployment(
        "web", "m", 1, canary=2, canary_weight=policy.steps[0], policy=policy, step_started_at=T0
    )


def stats(requests: int, errors: int = 0, seconds: float = 0.005) -> dict[str, VariantStats]:
    return {"canary": VariantStats("canary", 2, requests, errors, {bucket_key(seconds): requests})}


def test_waits_for_evidence_then_advances_by_time() -> None:
    d = canary(RolloutPolicy(step_seconds=60, min_requests=20))
    assert decide(d, stats(5), now=T0 + timedelta(hours=1)).action == "hold"
    assert decide(d, stats(50), now=T0 + timedelta(seconds=59)).action == "hold"
    verdict = decide(d, stats(50), now=T0 + timedelta(seconds=60))
    assert verdict.action == "advance" and "60 s" in verdict.reason


def test_advances_by_request_count() -> None:
    d = canary(RolloutPolicy(step_seconds=None, step_requests=100, min_requests=10))
    assert decide(d, stats(99), now=T0).action == "hold"
    assert decide(d, stats(100), now=T0).action == "advance"


def test_error_rate_breach_rolls_back() -> None:
    d = canary(RolloutPolicy(step_requests=1000, max_error_rate=0.05, min_requests=20))
    assert decide(d, stats(100, errors=5), now=T0).action == "hold"
    verdict = decide(d, stats(100, errors=6), now=T0)
    assert (verdict.action, verdict.guard) == ("rollback", "error_rate")
    assert "6.0% (6/100)" in verdict.reason


def test_latency_breach_rolls_back() -> None:
    d = canary(RolloutPolicy(step_requests=1000, max_p99_seconds=0.04, min_requests=20))
    assert decide(d, stats(100, seconds=0.03), now=T0).action == "hold"
    verdict = decide(d, stats(100, seconds=0.075), now=T0)
    assert (verdict.action, verdict.guard) == ("rollback", "p99_latency")


def test_p99_is_the_bucket_of_the_99th_percentile() -> None:
    s = VariantStats("canary", 2, 100, 0, {bucket_key(0.005): 98, bucket_key(0.5): 2})
    assert s.p99 == 0.5
    s = VariantStats("canary", 2, 100, 0, {bucket_key(0.005): 99, bucket_key(0.5): 1})
    assert s.p99 == 0.005


def test_accuracy_guard_needs_labels_on_both_sides() -> None:
    d = canary(RolloutPolicy(step_requests=1000, max_accuracy_drop=0.05, min_labels=30))
    worse = {"canary": Accuracy(20, 40), "primary": Accuracy(38, 40)}
    verdict = decide(d, stats(100), now=T0, accuracy=worse)
    assert (verdict.action, verdict.guard) == ("rollback", "accuracy")
    few = {"canary": Accuracy(2, 10), "primary": Accuracy(38, 40)}
    assert decide(d, stats(100), now=T0, accuracy=few).action == "hold"


def test_an_unlabelled_canary_is_judged_on_its_own_estimated_accuracy() -> None:
    d = canary(RolloutPolicy(step_requests=1000, max_accuracy_drop=0.05, min_labels=30))
    # No canary labels yet: its CBPE estimate over 80 rows stands in for them.
    worse = {
        "canary": Accuracy(0, 0, estimated=0.70, scored=80, calibrated=True),
        "primary": Accuracy(38, 40),
    }
    verdict = decide(d, stats(100), now=T0, accuracy=worse)
    assert (verdict.action, verdict.guard) == ("rollback", "accuracy")
    assert "calibrated estimate over 80 unlabelled rows" in verdict.reason
    assert verdict.details["canary_accuracy"] == 0.70
    close = {"canary": Accuracy(0, 0, estimated=0.93, scored=80), "primary": Accuracy(38, 40)}
    assert decide(d, stats(100), now=T0, accuracy=close).action == "hold"
    # Labels, once enough arrived, win over the estimate.
    labelled = {
        "canary": Accuracy(39, 40, estimated=0.5, scored=80),
        "primary": Accuracy(38, 40),
    }
    assert decide(d, stats(100), now=T0, accuracy=labelled).action == "hold"
    # An estimate over too few rows is no evidence either.
    thin = {"canary": Accuracy(0, 0, estimated=0.1, scored=5), "primary": Accuracy(38, 40)}
    assert decide(d, stats(100), now=T0, accuracy=thin).action == "hold"


def test_paused_or_no_policy_holds() -> None:
    d = canary(RolloutPolicy(step_requests=10, min_requests=1))
    assert decide(d.evolve(paused=True), stats(100, 100), now=T0).action == "hold"
    plain = Deployment("web", "m", 1, canary=2, canary_weight=10)
    assert decide(plain, stats(100, 100), now=T0).action == "hold"


def test_merge_sums_workers() -> None:
    rows = [
        VariantCounters("canary", 2, 10, 1, {"0.005": 10}, "w1"),
        VariantCounters("canary", 2, 5, 2, {"0.005": 4, "0.5": 1}, "w2"),
    ]
    merged = merge_stats(rows)["canary"]
    assert (merged.requests, merged.errors, dict(merged.latency)) == (
        15,
        3,
        {"0.005": 14, "0.5": 1},
    )
