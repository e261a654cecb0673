"""The core tables: sources, campaign postbacks, clicks, conversions, events, deliveries, attempts.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _rule_columns() -> list[sa.Column]:  # type: ignore[type-arg]  # a migration: frozen as written
    return [
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("method", sa.String(10), nullable=False),
        sa.Column("statuses", sa.String(200), nullable=False),
        sa.Column("payout_mode", sa.String(20), nullable=False),
        sa.Column("payout_value", sa.String(40)),
        sa.Column("min_payout", sa.String(40)),
        sa.Column("body", sa.Text),
        sa.Column("headers", sa.Text),
        sa.Column("follow_redirects", sa.Boolean, nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("gone", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "s2s_sources",
        sa.Column("source_id", sa.String(100), primary_key=True),
        sa.Column("template", sa.String(100)),
        *_rule_columns(),
    )
    op.create_table(
        "s2s_postbacks",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("campaign_id", sa.String(200), nullable=False),
        sa.Column("name", sa.String(200)),
        *_rule_columns(),
    )
    op.create_index("ix_s2s_postbacks_campaign_id", "s2s_postbacks", ["campaign_id"])
    op.create_table(
        "s2s_clicks",
        sa.Column("subid", sa.String(200), primary_key=True),
        sa.Column("campaign_id", sa.String(200), nullable=False),
        sa.Column("campaign_name", sa.String(200)),
        sa.Column("source_id", sa.String(100)),
        sa.Column("params", sa.Text, nullable=False),
        sa.Column("ip", sa.String(64)),
        sa.Column("user_agent", sa.Text),
        sa.Column("country", sa.String(8)),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "s2s_conversions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("subid", sa.String(200), nullable=False),
        sa.Column("tid", sa.String(200), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("original_status", sa.String(100)),
        sa.Column("payout", sa.String(40)),
        sa.Column("currency", sa.String(10)),
        sa.Column("params", sa.Text),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_index("ix_s2s_conversions_subid", "s2s_conversions", ["subid"])
    op.create_table(
        "s2s_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("subid", sa.String(200), nullable=False),
        sa.Column("conversion_id", sa.Integer),
        sa.Column("tid", sa.String(200)),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("original_status", sa.String(100)),
        sa.Column("payout", sa.String(40)),
        sa.Column("decision", sa.String(20), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_s2s_events_subid", "s2s_events", ["subid"])
    op.create_table(
        "s2s_deliveries",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("conversion_id", sa.Integer, nullable=False),
        sa.Column("subid", sa.String(200), nullable=False),
        sa.Column("tid", sa.String(200)),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("rule_id", sa.String(200), nullable=False),
        sa.Column("rule_url", sa.Text),
        sa.Column("template", sa.String(100)),
        sa.Column("source_id", sa.String(100)),
        sa.Column("campaign_id", sa.String(200)),
        sa.Column("payout", sa.String(40)),
        sa.Column("currency", sa.String(10)),
        sa.Column("method", sa.String(10), nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("body", sa.Text),
        sa.Column("headers", sa.Text),
        sa.Column("follow_redirects", sa.Boolean, nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("retry_base", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", sa.Float),
        sa.Column("lease_token", sa.Integer, nullable=False),
        sa.Column("lease_until", sa.Float),
        sa.Column("reason", sa.Text),
        sa.Column("resolve_note", sa.Text),
        sa.Column("http_status", sa.Integer),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.UniqueConstraint("conversion_id", "status", "rule_id", name="uq_s2s_delivery_once"),
    )
    op.create_index("ix_s2s_deliveries_subid", "s2s_deliveries", ["subid"])
    op.create_index("ix_s2s_deliveries_due", "s2s_deliveries", ["state", "next_attempt_at"])
    op.create_table(
        "s2s_attempts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("delivery_id", sa.Integer, nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("method", sa.String(10)),
        sa.Column("url", sa.Text),
        sa.Column("body", sa.Text),
        sa.Column("http_status", sa.Integer),
        sa.Column("response_body", sa.Text),
        sa.Column("response_truncated", sa.Boolean, nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("reason", sa.Text),
        sa.Column("duration_ms", sa.Float),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("next_attempt_at", sa.Float),
        sa.Column("reported", sa.Boolean, nullable=False),
    )
    op.create_index("ix_s2s_attempts_delivery_id", "s2s_attempts", ["delivery_id"])
    op.create_index("ix_s2s_attempts_unreported", "s2s_attempts", ["reported"])


def downgrade() -> None:
    for table in (
        "s2s_attempts",
        "s2s_deliveries",
        "s2s_events",
        "s2s_conversions",
        "s2s_clicks",
        "s2s_postbacks",
        "s2s_sources",
    ):
        op.drop_table(table)
