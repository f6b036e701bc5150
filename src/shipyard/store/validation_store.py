"""Repository for the validation stage: contracts, gate results, approvals, policies.

It composes a :class:`~shipyard.store.metadata.MetadataStore` (same engine,
same transaction helpers, same audit log) rather than growing it: the store
stays one class per concept. Methods take plain values and return the frozen
records defined here; ORM rows never leave ``store/``.

>>> meta = MetadataStore("sqlite:///:memory:")        # doctest: +SKIP
>>> store = ValidationStore(meta)                     # doctest: +SKIP
>>> store.record_decision("iris", 4, "approve", actor="ann", comment="looks good")  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shipyard.errors import InvalidInputError, NotFoundError
from shipyard.store.metadata import MetadataStore
from shipyard.store.schema import ModelVersionRow
from shipyard.store.schema_validation import (
    ApprovalPolicyRow,
    ApprovalRow,
    DataContractRow,
    GateResultRow,
)

#: The policy scope that applies to every model without a policy of its own.
REGISTRY_SCOPE = "*"
DECISIONS = ("approve", "reject")
CONTRACT_SOURCES = ("inferred", "imported", "packaged")


class ContractNotFoundError(NotFoundError):
    """The version has no data contract stored."""


@dataclass(frozen=True)
class ContractRecord:
    """One stored revision of a version's data contract (``contract`` is its JSON form)."""

    model: str
    version: int
    revision: int
    contract: dict[str, Any]
    digest: str
    source: str
    created_by: str
    created_at: datetime


@dataclass(frozen=True)
class GateRecord:
    """One stored run of the model gates on a version (``report`` is its JSON form)."""

    id: int
    model: str
    version: int
    passed: bool
    against: str | None
    report: dict[str, Any]
    created_by: str
    created_at: datetime


@dataclass(frozen=True)
class Decision:
    """An approve or reject decision on a version."""

    id: int
    model: str
    version: int
    decision: str
    actor: str
    comment: str | None
    at: datetime


@dataclass(frozen=True)
class PromotionFacts:
    """What the promotion policy needs to know about one version, read at once."""

    model: str
    version: int
    latest_gate: GateRecord | None
    decisions: tuple[Decision, ...] = ()
    required_approvals: int = 0
    policy_scope: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def contract_digest(contract: dict[str, Any]) -> str:
    """SHA-256 of the contract's canonical JSON, so two equal contracts share a digest.

    >>> contract_digest({"b": 1, "a": 2}) == contract_digest({"a": 2, "b": 1})
    True
    """
    text = json.dumps(contract, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


class ValidationStore:
    """Contracts, gate results and approvals, on the metadata store's database."""

    def __init__(self, metadata: MetadataStore) -> None:
        self.metadata = metadata

    # -- helpers -------------------------------------------------------------

    @staticmethod
    def _version(session: Session, name: str, version: int) -> ModelVersionRow:
        model = MetadataStore._model_row(session, name)
        return MetadataStore._version_row(session, model, version)

    # -- data contracts ------------------------------------------------------

    def save_contract(
        self,
        name: str,
        version: int,
        contract: dict[str, Any],
        *,
        source: str,
        actor: str,
        reason: str | None = None,
    ) -> ContractRecord:
        """Store ``contract`` as the next revision of the version's contract.

        An ``imported`` contract replaces one in force, so it is audit-logged
        with the digests before and after; the first inferred one is not a change
        to anything that serves, so it is not.
        """
        if source not in CONTRACT_SOURCES:
            raise InvalidInputError(f"Contract source {source!r} is not one of {CONTRACT_SOURCES}.")
        digest = contract_digest(contract)

        def work(session: Session) -> int:
            row = self._version(session, name, version)
            previous = session.scalar(
                select(DataContractRow)
                .where(DataContractRow.version_id == row.id)
                .order_by(DataContractRow.revision.desc())
                .limit(1)
                .with_for_update()
            )
            revision = 1 if previous is None else previous.revision + 1
            session.add(
                DataContractRow(
                    version_id=row.id,
                    revision=revision,
                    contract=contract,
                    digest=digest,
                    source=source,
                    created_by=actor,
                )
            )
            if source == "imported" or previous is not None:
                MetadataStore._audit(
                    session,
                    actor=actor,
                    action="edit_contract",
                    model=name,
                    subject=f"{name}:{version}",
                    from_value=None if previous is None else previous.digest[:16],
                    to_value=digest[:16],
                    reason=reason,
                    details={"revision": revision, "source": source},
                )
            return revision

        revision = self.metadata._write(work)
        return self.get_contract(name, version, revision=revision)

    def get_contract(
        self, name: str, version: int, *, revision: int | None = None
    ) -> ContractRecord:
        """The contract in force (or one ``revision`` of it); ContractNotFoundError if none."""
        with self.metadata._read() as session:
            row = self._version(session, name, version)
            query = select(DataContractRow).where(DataContractRow.version_id == row.id)
            if revision is not None:
                query = query.where(DataContractRow.revision == revision)
            found = session.scalar(query.order_by(DataContractRow.revision.desc()).limit(1))
            if found is None:
                which = "data contract" if revision is None else f"contract revision {revision}"
                raise ContractNotFoundError(
                    f"Version {name}:{version} has no {which}. Infer a contract from its "
                    f"training data with `shipyard validate contract {name}:{version} --infer "
                    "FILE`, or import one with `--import FILE`."
                )
            return self._contract_record(name, version, found)

    def contract_history(self, name: str, version: int) -> list[ContractRecord]:
        with self.metadata._read() as session:
            row = self._version(session, name, version)
            rows = session.scalars(
                select(DataContractRow)
                .where(DataContractRow.version_id == row.id)
                .order_by(DataContractRow.revision)
            )
            return [self._contract_record(name, version, r) for r in rows]

    @staticmethod
    def _contract_record(name: str, version: int, row: DataContractRow) -> ContractRecord:
        return ContractRecord(
            model=name,
            version=version,
            revision=row.revision,
            contract=dict(row.contract),
            digest=row.digest,
            source=row.source,
            created_by=row.created_by,
            created_at=row.created_at,
        )

    # -- gate results --------------------------------------------------------

    def save_gate_result(
        self,
        name: str,
        version: int,
        *,
        passed: bool,
        report: dict[str, Any],
        against: str | None,
        actor: str,
    ) -> GateRecord:
        """Store one run of the gates; it is audit-logged as ``gate_passed``/``gate_failed``."""

        def work(session: Session) -> int:
            row = self._version(session, name, version)
            result = GateResultRow(
                version_id=row.id, passed=passed, against=against, report=report, created_by=actor
            )
            session.add(result)
            session.flush()
            MetadataStore._audit(
                session,
                actor=actor,
                action="gate_passed" if passed else "gate_failed",
                model=name,
                subject=f"{name}:{version}",
                to_value="passed" if passed else "failed",
                details={"gate_result": result.id, "against": against},
            )
            return result.id

        result_id = self.metadata._write(work)
        with self.metadata._read() as session:
            found = session.get(GateResultRow, result_id)
            assert found is not None
            return self._gate_record(name, version, found)

    def latest_gate_result(self, name: str, version: int) -> GateRecord | None:
        """The most recent gate run on ``name:version``, or None if it was never gated."""
        with self.metadata._read() as session:
            return self._latest_gate(session, name, version, self._version(session, name, version))

    def gate_results(self, name: str, version: int) -> list[GateRecord]:
        with self.metadata._read() as session:
            row = self._version(session, name, version)
            rows = session.scalars(
                select(GateResultRow)
                .where(GateResultRow.version_id == row.id)
                .order_by(GateResultRow.id)
            )
            return [self._gate_record(name, version, r) for r in rows]

    def _latest_gate(
        self, session: Session, name: str, version: int, row: ModelVersionRow
    ) -> GateRecord | None:
        found = session.scalar(
            select(GateResultRow)
            .where(GateResultRow.version_id == row.id)
            .order_by(GateResultRow.id.desc())
            .limit(1)
        )
        return None if found is None else self._gate_record(name, version, found)

    @staticmethod
    def _gate_record(name: str, version: int, row: GateResultRow) -> GateRecord:
        return GateRecord(
            id=row.id,
            model=name,
            version=version,
            passed=row.passed,
            against=row.against,
            report=dict(row.report),
            created_by=row.created_by,
            created_at=row.created_at,
        )

    # -- approvals -----------------------------------------------------------

    def record_decision(
        self, name: str, version: int, decision: str, *, actor: str, comment: str | None
    ) -> Decision:
        """Record ``actor``'s approve/reject of ``name:version``; audit-logged."""
        if decision not in DECISIONS:
            raise InvalidInputError(f"Decision {decision!r} is not one of {DECISIONS}.")

        def work(session: Session) -> int:
            row = self._version(session, name, version)
            if row.status == "archived":
                raise InvalidInputError(
                    f"Version {name}:{version} is archived; restore it before deciding on it."
                )
            entry = ApprovalRow(version_id=row.id, decision=decision, actor=actor, comment=comment)
            session.add(entry)
            session.flush()
            MetadataStore._audit(
                session,
                actor=actor,
                action=decision,
                model=name,
                subject=f"{name}:{version}",
                to_value=decision,
                reason=comment,
            )
            return entry.id

        decision_id = self.metadata._write(work)
        return next(d for d in self.decisions(name, version) if d.id == decision_id)

    def decisions(self, name: str, version: int) -> list[Decision]:
        """Every decision on ``name:version``, oldest first."""
        with self.metadata._read() as session:
            return self._decisions(session, name, version, self._version(session, name, version))

    @staticmethod
    def _decisions(
        session: Session, name: str, version: int, row: ModelVersionRow
    ) -> list[Decision]:
        rows = session.scalars(
            select(ApprovalRow).where(ApprovalRow.version_id == row.id).order_by(ApprovalRow.id)
        )
        return [Decision(r.id, name, version, r.decision, r.actor, r.comment, r.at) for r in rows]

    def set_required_approvals(
        self, model: str | None, required: int, *, actor: str, reason: str | None = None
    ) -> None:
        """Require ``required`` approvals before production, for ``model`` or (None) every model.

        0 removes the requirement for that scope (a model then falls back to the
        registry-wide setting). Audit-logged.
        """
        if required < 0:
            raise InvalidInputError(f"required_approvals must be 0 or more, got {required}.")

        def work(session: Session) -> None:
            if model is not None:
                MetadataStore._model_row(session, model)  # a clear error for unknown names
            scope = REGISTRY_SCOPE if model is None else model
            existing = session.get(ApprovalPolicyRow, scope, with_for_update=True)
            previous = None if existing is None else existing.required_approvals
            if required == 0:
                if existing is not None:
                    session.delete(existing)
            elif existing is None:
                session.add(
                    ApprovalPolicyRow(scope=scope, required_approvals=required, updated_by=actor)
                )
            else:
                existing.required_approvals = required
                existing.updated_by = actor
            MetadataStore._audit(
                session,
                actor=actor,
                action="set_required_approvals",
                model=model,
                subject=scope,
                from_value=None if previous is None else str(previous),
                to_value=str(required),
                reason=reason,
            )

        self.metadata._write(work)

    def required_approvals(self, model: str) -> tuple[int, str | None]:
        """(approvals required for ``model``, the scope that says so: its name, ``*`` or None)."""
        with self.metadata._read() as session:
            return self._required(session, model)

    @staticmethod
    def _required(session: Session, model: str) -> tuple[int, str | None]:
        for scope in (model, REGISTRY_SCOPE):
            row = session.get(ApprovalPolicyRow, scope)
            if row is not None:
                return row.required_approvals, scope
        return 0, None

    # -- all at once ---------------------------------------------------------

    def promotion_facts(self, name: str, version: int) -> PromotionFacts:
        """Latest gate result, decisions and approval policy of a version, in one read."""
        with self.metadata._read() as session:
            row = self._version(session, name, version)
            required, scope = self._required(session, name)
            n_contracts = session.scalar(
                select(func.count())
                .select_from(DataContractRow)
                .where(DataContractRow.version_id == row.id)
            )
            return PromotionFacts(
                model=name,
                version=version,
                latest_gate=self._latest_gate(session, name, version, row),
                decisions=tuple(self._decisions(session, name, version, row)),
                required_approvals=required,
                policy_scope=scope,
                extra={"contract_revisions": int(n_contracts or 0)},
            )


__all__ = [
    "CONTRACT_SOURCES",
    "DECISIONS",
    "REGISTRY_SCOPE",
    "ContractNotFoundError",
    "ContractRecord",
    "Decision",
    "GateRecord",
    "PromotionFacts",
    "ValidationStore",
    "contract_digest",
]
