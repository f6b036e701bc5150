"""Tables of the validation stage: data contracts, gate results, approvals, policies.

They hang off ``model_versions`` (and ``models``) of :mod:`shipyard.store.schema`
and share its ``Base``, so one Alembic history covers both; migration
``0002_gates_and_approvals`` creates them. Rows never leave ``store/``:
:mod:`shipyard.store.validation_store` turns them into frozen records.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from shipyard.clock import utc_now
from shipyard.store.schema import Base


class DataContractRow(Base):
    """One revision of a version's data contract; the highest revision is in force.

    Editing a contract adds a revision instead of overwriting, so the audit log
    can point at what was replaced.
    """

    __tablename__ = "data_contracts"
    __table_args__ = (UniqueConstraint("version_id", "revision", name="uq_contract_revision"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version_id: Mapped[int] = mapped_column(
        ForeignKey("model_versions.id", ondelete="CASCADE"), index=True
    )
    revision: Mapped[int] = mapped_column(Integer)
    contract: Mapped[dict[str, Any]] = mapped_column(JSON)
    digest: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(16))
    created_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utc_now)


class GateResultRow(Base):
    """One run of the model gates on a candidate version, with the full report."""

    __tablename__ = "gate_results"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version_id: Mapped[int] = mapped_column(
        ForeignKey("model_versions.id", ondelete="CASCADE"), index=True
    )
    passed: Mapped[bool] = mapped_column(Boolean)
    against: Mapped[str | None] = mapped_column(String(255), nullable=True)
    report: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utc_now)


class ApprovalRow(Base):
    """A person's approve/reject decision on a version, with their comment."""

    __tablename__ = "approvals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version_id: Mapped[int] = mapped_column(
        ForeignKey("model_versions.id", ondelete="CASCADE"), index=True
    )
    decision: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(255))
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    at: Mapped[datetime] = mapped_column(default=utc_now)


class ApprovalPolicyRow(Base):
    """How many approvals production needs: per model, or registry-wide (scope ``*``)."""

    __tablename__ = "approval_policies"

    scope: Mapped[str] = mapped_column(String(255), primary_key=True)
    required_approvals: Mapped[int] = mapped_column(Integer)
    updated_by: Mapped[str] = mapped_column(String(255))
    updated_at: Mapped[datetime] = mapped_column(default=utc_now)
