"""Deployment service: every change, its safety checks, and concurrency, on both back ends."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from rollout_support import BROKEN, GOOD, GOOD2, OTHER, SLOW, Registry

from shipyard.clock import ManualClock
from shipyard.errors import ConflictError, InvalidInputError, NotFoundError
from shipyard.rollout.records import RolloutPolicy
from shipyard.validation.approvals import PromotionBlockedError


def fail_gates(reg: Registry, version: int) -> None:
    reg.client.validation.save_gate_result(
        "m",
        version,
        passed=False,
        report={"checks": [{"requirement": "accuracy >= 0.95", "passed": False}]},
        against=None,
        actor="ci",
    )


def test_create_canary_promote_rollback(reg: Registry) -> None:
    d = reg.deployments
    web = d.create("web", "m", GOOD)
    assert (web.primary, web.mode, web.revision) == (GOOD, "primary", 1)
    web = d.set_canary("web", OTHER, 10)
    assert [(v.name, v.version, v.weight) for v in web.variants()] == [
        ("primary", GOOD, 90.0),
        ("canary", OTHER, 10.0),
    ]
    web = d.promote("web")
    assert (web.primary, web.canary, web.history, web.last_known_good) == (
        OTHER,
        None,
        (GOOD,),
        OTHER,
    )
    web = d.rollback("web", reason="bad numbers")
    assert (web.primary, web.history, web.last_known_good) == (GOOD, (), GOOD)
    # The kill switch pins the version restored, not the one just rolled back from.
    assert d.kill("web", reason="stop").primary == GOOD
    d.resume("web")
    actions = [c.action for c in d.changes("web")]
    assert actions[2:] == ["rollback", "promote", "deploy_canary", "deploy_create"]
    audit = reg.client.audit.log(model="m", limit=10)
    rollback = next(e for e in audit if e.action == "rollback")
    assert (rollback.subject, rollback.from_value, rollback.to_value, rollback.reason) == (
        "deployment:web",
        str(OTHER),
        str(GOOD),
        "bad numbers",
    )


def test_bad_input_changes_nothing(reg: Registry) -> None:
    d = reg.deployments
    d.create("web", "m", GOOD)
    before = d.get("web")
    with pytest.raises(InvalidInputError, match="add up to 100 %, got 90"):
        d.set_split("web", {GOOD: 50, OTHER: 40})
    with pytest.raises(NotFoundError, match=r"no version 99\. Versions: 1, 2, 3, 4, 5"):
        d.set_canary("web", 99, 10)
    reg.client.registry.archive("m:4", reason="old")
    with pytest.raises(InvalidInputError, match="m:4 is archived and cannot take traffic"):
        d.set_canary("web", SLOW, 10)
    with pytest.raises(InvalidInputError, match="no previous primary to roll back to"):
        d.rollback("web")
    with pytest.raises(InvalidInputError, match="weight must be in"):
        d.set_canary("web", OTHER, 150)
    with pytest.raises(NotFoundError, match="No deployment named 'nope'"):
        d.get("nope")
    with pytest.raises(ConflictError, match="already exists"):
        d.create("web", "m", OTHER)
    after = d.get("web")
    assert after.to_spec() == before.to_spec() and after.revision == before.revision
    assert len(d.changes("web")) == 1


def test_concurrent_changes_one_wins_the_other_is_told(reg: Registry) -> None:
    d = reg.deployments
    d.create("web", "m", GOOD)
    other = reg.client.deployments.acting_as("bob")
    read = d.get("web").revision
    d.set_canary("web", OTHER, 10, expected_revision=read)
    with pytest.raises(ConflictError, match=r"changed by someone else.*re-read"):
        other.set_canary("web", GOOD2, 20, expected_revision=read)
    now = d.get("web")
    assert (now.canary, now.canary_weight, now.revision) == (OTHER, 10.0, read + 1)


def test_gate_failing_version_needs_force_and_a_reason(reg: Registry) -> None:
    d = reg.deployments
    d.create("web", "m", GOOD)
    fail_gates(reg, OTHER)
    with pytest.raises(PromotionBlockedError, match="cannot take traffic"):
        d.set_canary("web", OTHER, 10)
    with pytest.raises(InvalidInputError, match="written reason"):
        d.set_canary("web", OTHER, 10, force=True)
    d.set_canary("web", OTHER, 10, force=True, reason="measuring live")
    with pytest.raises(PromotionBlockedError, match="cannot take alias 'production'"):
        d.promote("web")
    assert d.get("web").primary == GOOD
    web = d.promote("web", force=True, reason="the gate dataset is stale")
    assert web.primary == OTHER
    entry = next(e for e in reg.client.audit.log(model="m") if e.action == "promote")
    assert entry.reason == "the gate dataset is stale"
    assert "failed" in entry.details["forced"][0]


def test_required_approvals_block_primary_but_not_canary(reg: Registry) -> None:
    d = reg.deployments
    d.create("web", "m", GOOD)
    reg.client.validation.set_required_approvals("m", 1, actor="admin")
    d.set_canary("web", OTHER, 10)  # a canary is evidence-gathering: no approval needed
    with pytest.raises(PromotionBlockedError, match="requires 1 approvals"):
        d.promote("web")
    reg.client.validation.record_decision("m", OTHER, "approve", actor="ann", comment="ok")
    assert d.promote("web").primary == OTHER


def test_split_shadows_kill_and_resume(reg: Registry) -> None:
    d = reg.deployments
    d.create("web", "m", GOOD)
    web = d.set_split("web", {GOOD: 50, OTHER: 50}, sticky_header="X-User-ID")
    assert [(v.name, v.weight) for v in web.variants()] == [("primary", 50.0), ("ab:2", 50.0)]
    with pytest.raises(InvalidInputError, match="has no canary"):
        d.promote("web")
    with pytest.raises(InvalidInputError, match="runs an A/B split"):
        d.set_canary("web", GOOD2, 10)
    web = d.set_shadows("web", [BROKEN])
    assert web.shadows == (BROKEN,) and web.versions() == {GOOD, OTHER, BROKEN}
    web = d.promote("web", version=OTHER)
    assert (web.primary, web.split, web.last_known_good) == (OTHER, (), OTHER)
    web = d.set_canary("web", GOOD2, 30)
    web = d.kill("web", reason="pager")
    assert (web.primary, web.canary, web.shadows, web.killed, web.paused) == (
        OTHER,
        None,
        (),
        True,
        True,
    )
    assert [v.weight for v in web.variants()] == [100.0]
    with pytest.raises(InvalidInputError, match="is killed"):
        d.set_canary("web", GOOD2, 10)
    assert not d.resume("web").killed


def test_policy_steps_advance_then_promote(reg: Registry) -> None:
    clock = ManualClock(datetime(2026, 1, 1, tzinfo=UTC))
    d = reg.client.deployments.acting_as("tester", clock=clock)
    d.create("web", "m", GOOD)
    policy = RolloutPolicy(steps=(5, 50, 100), step_seconds=60)
    web = d.set_canary("web", OTHER, policy=policy)
    assert (web.canary_weight, web.step, web.step_started_at) == (5.0, 0, clock.now())
    clock.advance(minutes=1)
    web = d.advance("web", reason="step done")
    assert (web.canary_weight, web.step, web.step_started_at) == (50.0, 1, clock.now())
    web = d.advance("web", reason="step done")
    assert (web.primary, web.canary, web.policy) == (OTHER, None, None)
    assert d.changes("web")[0].action == "auto_promote"


def test_policy_rejects_nonsense() -> None:
    with pytest.raises(InvalidInputError, match="increasing"):
        RolloutPolicy(steps=(50, 25))
    with pytest.raises(InvalidInputError, match="step_seconds or step_requests"):
        RolloutPolicy(step_seconds=None)
    with pytest.raises(InvalidInputError, match="Unknown policy fields"):
        RolloutPolicy.from_dict({"stepz": [1]})
