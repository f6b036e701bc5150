"""Tables of the rollout stage: deployments, their change history, live stats, workers.

They share :mod:`shipyard.store.schema`'s ``Base`` so one Alembic history covers
everything; migration ``0003_deployments`` creates them. Rows never leave
``store/``: :mod:`shipyard.store.rollout_store` turns them into frozen records.

The desired state of a deployment (primary, canary, split, shadows, policy...)
is one JSON document, ``spec``, versioned by ``revision``: every change is a
compare-and-set on the revision, so two concurrent changes cannot both apply.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from shipyard.clock import utc_now
from shipyard.store.schema import Base


class DeploymentRow(Base):
    """A named endpoint: which versions of one model answer, and how traffic splits."""

    __tablename__ = "deployments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    model: Mapped[str] = mapped_column(String(255), index=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    # Optimistic concurrency: a change applies only if the revision it read is current.
    revision: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(default=utc_now)
    updated_by: Mapped[str] = mapped_column(String(255))


class DeploymentChangeRow(Base):
    """The spec as it was after one change, with who, what and why."""

    __tablename__ = "deployment_changes"
    __table_args__ = (UniqueConstraint("deployment_id", "revision", name="uq_deployment_rev"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    deployment_id: Mapped[int] = mapped_column(
        ForeignKey("deployments.id", ondelete="CASCADE"), index=True
    )
    revision: Mapped[int] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(64))
    actor: Mapped[str] = mapped_column(String(255))
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    at: Mapped[datetime] = mapped_column(default=utc_now)


class DeploymentStatsRow(Base):
    """One server worker's counters for one variant during one traffic epoch.

    Workers overwrite their own rows (cumulative counters), so rows never
    conflict; the controller sums them over workers.
    """

    __tablename__ = "deployment_stats"

    deployment_id: Mapped[int] = mapped_column(
        ForeignKey("deployments.id", ondelete="CASCADE"), primary_key=True
    )
    epoch: Mapped[int] = mapped_column(Integer, primary_key=True)
    worker: Mapped[str] = mapped_column(String(128), primary_key=True)
    variant: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    requests: Mapped[int] = mapped_column(Integer, default=0)
    errors: Mapped[int] = mapped_column(Integer, default=0)
    latency: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    updated_at: Mapped[datetime] = mapped_column(default=utc_now)


class DeploymentWorkerRow(Base):
    """Heartbeat: which revision of the deployment a server worker routes by right now."""

    __tablename__ = "deployment_workers"

    deployment_id: Mapped[int] = mapped_column(
        ForeignKey("deployments.id", ondelete="CASCADE"), primary_key=True
    )
    worker: Mapped[str] = mapped_column(String(128), primary_key=True)
    revision: Mapped[int] = mapped_column(Integer)
    seen_at: Mapped[datetime] = mapped_column(default=utc_now)
