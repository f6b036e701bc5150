"""tracking: run artifacts, latest metrics (search), nested runs

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 22:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "run_artifacts",
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("path", sa.String(length=1024), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("run_id", "path"),
    )
    op.create_table(
        "run_latest_metrics",
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("timestamp", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("run_id", "key"),
    )
    # No (key, value) index: on a PostgreSQL table not yet analysed the planner
    # took it for a nested loop over every run (a second at 10,000 runs); the
    # primary key (run_id, key) gives one lookup per run whatever the statistics.
    # The history of one metric of one run, in step order (history, compare).
    op.create_index("ix_run_metrics_run_key_step", "run_metrics", ["run_id", "key", "step", "id"])
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("parent_id", sa.String(length=32), nullable=True))
        batch.create_foreign_key(
            "fk_runs_parent_id_runs", "runs", ["parent_id"], ["id"], ondelete="SET NULL"
        )
        batch.create_index("ix_runs_parent_id", ["parent_id"])
    # Runs logged before this migration: their latest values, from their history.
    op.execute(
        """
        INSERT INTO run_latest_metrics (run_id, key, value, step, timestamp)
        SELECT m.run_id, m.key, m.value, m.step, m.timestamp FROM run_metrics m
        WHERE m.id = (
            SELECT m2.id FROM run_metrics m2 WHERE m2.run_id = m.run_id AND m2.key = m.key
            ORDER BY m2.step DESC, m2.id DESC LIMIT 1
        )
        """
    )


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_index("ix_runs_parent_id")
        batch.drop_constraint("fk_runs_parent_id_runs", type_="foreignkey")
        batch.drop_column("parent_id")
    op.drop_index("ix_run_metrics_run_key_step", table_name="run_metrics")
    op.drop_table("run_latest_metrics")
    op.drop_table("run_artifacts")
