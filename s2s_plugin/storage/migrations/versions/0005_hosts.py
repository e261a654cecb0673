"""Per-host circuit breaker state and concurrency limit (``s2s_hosts``), shared by every worker.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "s2s_hosts",
        sa.Column("host", sa.String(300), primary_key=True),
        sa.Column("state", sa.String(20), nullable=False, server_default="closed"),
        sa.Column("failures", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("opened_at", sa.Float),
        sa.Column("next_probe_at", sa.Float),
        sa.Column("concurrency_limit", sa.Integer),
        sa.Column("updated_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("s2s_hosts")
