"""Tables of the closed loop: runs (one per claimed trigger), their steps, trigger checks.

Rows refer to models by name rather than by foreign key: a loop may train the
first version of a model that does not exist yet. The unique constraint
``uq_loop_trigger`` on (model, trigger kind, trigger key) is what makes two
controllers safe to run at once: only one of them can claim a trigger.
Migration ``0004_loop`` creates these tables; :mod:`shipyard.store.loop_store`
turns rows into frozen records.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from shipyard.store.schema import Base


class LoopRunRow(Base):
    """One pass of the loop for one model, started by one claimed trigger."""

    __tablename__ = "loop_runs"
    __table_args__ = (
        UniqueConstraint("model", "trigger_kind", "trigger_key", name="uq_loop_trigger"),
        Index("ix_loop_runs_model_status", "model", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model: Mapped[str] = mapped_column(String(255))
    trigger_kind: Mapped[str] = mapped_column(String(32))
    trigger_key: Mapped[str] = mapped_column(String(255))
    reason: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column()
    status: Mapped[str] = mapped_column(String(32))
    message: Mapped[str | None] = mapped_column(Text, nullable=True)
    champion_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    candidate_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    claimed_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column(nullable=True)


class LoopStepRow(Base):
    """One step of a run, with what went in, what came out, and how long it took."""

    __tablename__ = "loop_steps"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("loop_runs.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    inputs: Mapped[dict[str, Any]] = mapped_column()
    outputs: Mapped[dict[str, Any]] = mapped_column()
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    started_at: Mapped[datetime] = mapped_column()
    finished_at: Mapped[datetime] = mapped_column()
    duration_s: Mapped[float] = mapped_column(Float)


class LoopCheckRow(Base):
    """One evaluation of a trigger that needs a history (drift over N checks, degradation)."""

    __tablename__ = "loop_checks"
    __table_args__ = (Index("ix_loop_checks_model_kind_at", "model", "kind", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column()
    positive: Mapped[bool] = mapped_column(Boolean)
    details: Mapped[dict[str, Any]] = mapped_column()
