"""The promotion policy through the real registry, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier

from shipyard import Shipyard
from shipyard.config import Settings
from shipyard.errors import ConflictError, InvalidInputError
from shipyard.quickstart import iris_frame
from shipyard.store.validation_records import Decision
from shipyard.validation.approvals import (
    PROTECTED_ALIASES,
    PromotionBlockedError,
    approval_status,
    approve,
    reject,
)
from shipyard.validation.gates import build_spec
from shipyard.validation.service import describe_validation, validate_model


def decision(i: int, kind: str, actor: str) -> Decision:
    return Decision(i, "m", 1, kind, actor, None, datetime.now(UTC))


def test_approval_counting() -> None:
    ann, bob, cat = (
        decision(1, "approve", "ann"),
        decision(2, "approve", "bob"),
        decision(3, "approve", "ann"),
    )
    status = approval_status(decisions=[ann, bob, cat], required=2)
    assert status.approvers == ("ann", "bob") and status.satisfied  # ann counts once
    assert not approval_status(decisions=[ann, cat], required=2).satisfied
    late = approval_status(decisions=[ann, bob, decision(4, "reject", "cat")], required=2)
    assert late.rejected_after_last_approval and not late.satisfied
    # A rejection followed by approvals no longer blocks; the rejecter changing mind counts.
    redone = [
        decision(1, "reject", "cat"),
        decision(2, "approve", "ann"),
        decision(3, "approve", "cat"),
    ]
    status = approval_status(decisions=redone, required=2)
    assert status.satisfied and status.rejected_by == ()
    assert not approval_status(decisions=[decision(1, "reject", "bob")], required=0).satisfied
    assert approval_status(decisions=[], required=0).satisfied


@pytest.fixture
def client(backend_settings: Settings) -> Iterator[Shipyard]:
    client = Shipyard(backend_settings)
    X, y = iris_frame()
    client.registry.log_model(LogisticRegression(max_iter=500).fit(X, y), "iris", sample=X)
    weak = DecisionTreeClassifier(max_depth=1, random_state=0).fit(X, y)
    client.registry.log_model(weak, "iris", sample=X)
    yield client
    client.close()


def holdout():  # type: ignore[no-untyped-def]
    X, y = iris_frame()
    return X.assign(species=y)


def test_gate_failing_version_needs_force_with_reason(client: Shipyard) -> None:
    assert "production" in PROTECTED_ALIASES
    client.registry.set_alias("iris", "production", 1)
    record, report = validate_model(
        client.registry,
        client.validation,
        "iris:2",
        data=holdout(),
        target="species",
        spec=build_spec(thresholds=["accuracy>=0.9"]),
    )
    assert not report.passed and record.against == "iris:1"  # production by default
    latest = client.validation.latest_gate_result("iris", 2)
    assert latest is not None and latest.id == record.id and not latest.passed

    with pytest.raises(PromotionBlockedError, match=r"accuracy >= 0\.9") as info:
        client.registry.set_alias("iris", "production", 2)
    assert isinstance(info.value, ConflictError)
    assert "--force --reason" in str(info.value)
    assert client.aliases.get_alias("iris", "production") == 1  # nothing changed
    with pytest.raises(InvalidInputError, match="reason"):
        client.registry.set_alias("iris", "production", 2, force=True, reason="  ")
    client.registry.set_alias("iris", "staging", 2)  # other aliases are not protected

    client.registry.set_alias("iris", "production", 2, force=True, reason="hotfix, approved by CTO")
    assert client.aliases.get_alias("iris", "production") == 2
    forced = [a for a in client.audit.log(model="iris") if a.action == "force_alias"]
    [entry] = forced
    assert entry.reason == "hotfix, approved by CTO"
    assert (entry.from_value, entry.to_value, entry.actor) == ("1", "2", "tester")
    assert "accuracy >= 0.9" in entry.details["overridden"][0]

    lines = describe_validation(client.validation, client.models.get_version("iris", 2))
    assert any(line.startswith("gates: FAILED") for line in lines)


def test_passing_gates_unblock(client: Shipyard) -> None:
    spec = build_spec(thresholds=["accuracy>=0.5"])
    validate_model(
        client.registry, client.validation, "iris:2", data=holdout(), target="species", spec=spec
    )
    client.registry.set_alias("iris", "production", 2)
    assert not [a for a in client.audit.log(model="iris") if a.action == "force_alias"]


def test_required_approvals_block_until_given(client: Shipyard) -> None:
    store = client.validation
    store.set_required_approvals("iris", 2, actor="admin")
    with pytest.raises(PromotionBlockedError, match="requires 2 approvals; it has 0/2"):
        client.registry.set_alias("iris", "production", 1)
    approve(store, "iris", 1, actor="ann", comment="metrics ok")
    status = approve(store, "iris", 1, actor="bob", comment="slices ok")
    assert status.satisfied
    status = reject(store, "iris", 1, actor="cat", comment="contract too loose")
    assert not status.satisfied
    with pytest.raises(PromotionBlockedError, match="rejected by cat after the last approval"):
        client.registry.set_alias("iris", "production", 1)
    with pytest.raises(InvalidInputError, match="comment"):
        reject(store, "iris", 1, actor="cat", comment="")
    approve(store, "iris", 1, actor="cat", comment="fixed")
    client.registry.set_alias("iris", "production", 1)
    assert client.aliases.get_alias("iris", "production") == 1
    lines = describe_validation(client.validation, client.models.get_version("iris", 1))
    assert lines[2].startswith("approvals: 3/2 approvals (ann, bob, cat)")
    actions = [a.action for a in client.audit.log(model="iris")]
    assert actions.count("approve") == 3 and actions.count("reject") == 1
