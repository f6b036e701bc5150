"""runs: an index to find a run's latest value of one metric without scanning its history

The web UI sorts and filters the runs table by a metric's latest value in SQL;
with (run_id, key, step, id) indexed that is one index seek per run.

Revision ID: 0011
Revises: 0006
Create Date: 2026-12-04 22:40:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_run_metrics_run_key_step", "run_metrics", ["run_id", "key", "step", "id"])


def downgrade() -> None:
    op.drop_index("ix_run_metrics_run_key_step", table_name="run_metrics")
