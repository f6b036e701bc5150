"""The validation tables on SQLite and PostgreSQL: contracts, gate results, decisions, policy."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from shipyard.errors import InvalidInputError, ModelNotFoundError, VersionNotFoundError
from shipyard.store.audit_store import AuditStore
from shipyard.store.database import Database
from shipyard.store.model_store import ModelStore
from shipyard.store.validation_records import ContractNotFoundError, contract_digest
from shipyard.store.validation_store import ValidationStore


@pytest.fixture
def stores(database: Database) -> Iterator[tuple[AuditStore, ValidationStore]]:
    for _ in range(2):
        ModelStore(database).create_version(
            "iris", write_manifest=lambda v: f"{v:064x}", flavor="sklearn"
        )
    yield AuditStore(database), ValidationStore(database)


def test_contract_revisions_and_audit(stores) -> None:  # type: ignore[no-untyped-def]
    meta, store = stores
    with pytest.raises(ContractNotFoundError, match=r"iris:1 has no data contract\. Infer"):
        store.get_contract("iris", 1)
    first = store.save_contract("iris", 1, {"columns": [1]}, source="inferred", actor="ann")
    assert (first.revision, first.source, first.digest) == (
        1,
        "inferred",
        contract_digest({"columns": [1]}),
    )
    assert not [a for a in meta.log(model="iris") if a.action == "edit_contract"]
    edited = store.save_contract(
        "iris", 1, {"columns": [2]}, source="imported", actor="bob", reason="widen age"
    )
    assert edited.revision == 2
    assert store.get_contract("iris", 1).contract == {"columns": [2]}
    assert store.get_contract("iris", 1, revision=1).contract == {"columns": [1]}
    assert [r.revision for r in store.contract_history("iris", 1)] == [1, 2]
    [audit] = [a for a in meta.log(model="iris") if a.action == "edit_contract"]
    assert (audit.actor, audit.reason, audit.subject) == ("bob", "widen age", "iris:1")
    assert audit.from_value == first.digest[:16] and audit.to_value == edited.digest[:16]
    with pytest.raises(ContractNotFoundError):
        store.get_contract("iris", 2)
    with pytest.raises(InvalidInputError, match="source"):
        store.save_contract("iris", 1, {}, source="guessed", actor="ann")


def test_gate_results_latest_wins(stores) -> None:  # type: ignore[no-untyped-def]
    meta, store = stores
    assert store.latest_gate_result("iris", 2) is None
    store.save_gate_result(
        "iris", 2, passed=False, report={"checks": []}, against="iris:1", actor="ci"
    )
    second = store.save_gate_result(
        "iris", 2, passed=True, report={"n": 2}, against=None, actor="ci"
    )
    latest = store.latest_gate_result("iris", 2)
    assert latest == second and latest.passed and latest.report == {"n": 2}
    assert [g.passed for g in store.gate_results("iris", 2)] == [False, True]
    assert store.latest_gate_result("iris", 1) is None
    actions = [a.action for a in meta.log(model="iris")]
    assert actions[:2] == ["gate_passed", "gate_failed"]
    with pytest.raises(VersionNotFoundError):
        store.latest_gate_result("iris", 9)


def test_decisions_and_policy_scopes(stores) -> None:  # type: ignore[no-untyped-def]
    meta, store = stores
    store.record_decision("iris", 2, "approve", actor="ann", comment="metrics fine")
    store.record_decision("iris", 2, "reject", actor="bob", comment="slice gap")
    decisions = store.decisions("iris", 2)
    assert [(d.decision, d.actor, d.comment) for d in decisions] == [
        ("approve", "ann", "metrics fine"),
        ("reject", "bob", "slice gap"),
    ]
    assert decisions[0].at <= decisions[1].at and decisions[0].at.tzinfo is not None
    assert store.decisions("iris", 1) == []
    with pytest.raises(InvalidInputError, match="Decision 'maybe'"):
        store.record_decision("iris", 2, "maybe", actor="ann", comment=None)

    assert store.required_approvals("iris") == (0, None)
    store.set_required_approvals(None, 1, actor="admin")
    assert store.required_approvals("iris") == (1, "*")
    store.set_required_approvals("iris", 2, actor="admin", reason="regulated")
    assert store.required_approvals("iris") == (2, "iris")
    store.set_required_approvals("iris", 0, actor="admin")
    assert store.required_approvals("iris") == (1, "*")
    with pytest.raises(ModelNotFoundError):
        store.set_required_approvals("wine", 1, actor="admin")
    with pytest.raises(InvalidInputError):
        store.set_required_approvals(None, -1, actor="admin")

    facts = store.promotion_facts("iris", 2)
    assert (facts.required_approvals, facts.policy_scope, len(facts.decisions)) == (1, "*", 2)
    actions = [a.action for a in meta.log(model="iris")]
    assert actions.count("set_required_approvals") == 2  # registry-wide ones have no model
    assert {"approve", "reject"} <= set(actions)


def test_archived_versions_take_no_decisions(stores) -> None:  # type: ignore[no-untyped-def]
    _, store = stores
    ModelStore(store.db).set_version_archived("iris", 1, True, actor="ann", reason=None)
    with pytest.raises(InvalidInputError, match="archived"):
        store.record_decision("iris", 1, "approve", actor="ann", comment=None)
