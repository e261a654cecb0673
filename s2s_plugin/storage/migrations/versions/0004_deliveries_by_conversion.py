"""Deliveries are found by subid through their conversions: one index less to write per postback.

Every delivery belongs to a conversion of the same subid, and both ``s2s_conversions.subid`` and
the deliveries' ``(conversion_id, status, rule_id)`` are indexed, so ``tables.of_subid`` finds a
click's deliveries without ``ix_s2s_deliveries_subid``, which every queued postback had to update.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_s2s_deliveries_subid", table_name="s2s_deliveries")


def downgrade() -> None:
    op.create_index("ix_s2s_deliveries_subid", "s2s_deliveries", ["subid"])
