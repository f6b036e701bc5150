"""closed loop: runs, steps and trigger checks

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 12:25:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "loop_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model", sa.String(length=255), nullable=False),
        sa.Column("trigger_kind", sa.String(length=32), nullable=False),
        sa.Column("trigger_key", sa.String(length=255), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("champion_version", sa.Integer(), nullable=True),
        sa.Column("candidate_version", sa.Integer(), nullable=True),
        sa.Column("claimed_by", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("model", "trigger_kind", "trigger_key", name="uq_loop_trigger"),
    )
    with op.batch_alter_table("loop_runs", schema=None) as batch_op:
        batch_op.create_index("ix_loop_runs_model_status", ["model", "status"], unique=False)

    op.create_table(
        "loop_steps",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("inputs", sa.JSON(), nullable=False),
        sa.Column("outputs", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("duration_s", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["loop_runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("loop_steps", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_loop_steps_run_id"), ["run_id"], unique=False)

    op.create_table(
        "loop_checks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("positive", sa.Boolean(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("loop_checks", schema=None) as batch_op:
        batch_op.create_index("ix_loop_checks_model_kind_at", ["model", "kind", "at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("loop_checks", schema=None) as batch_op:
        batch_op.drop_index("ix_loop_checks_model_kind_at")
    op.drop_table("loop_checks")
    with op.batch_alter_table("loop_steps", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_loop_steps_run_id"))
    op.drop_table("loop_steps")
    with op.batch_alter_table("loop_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_loop_runs_model_status")
    op.drop_table("loop_runs")
