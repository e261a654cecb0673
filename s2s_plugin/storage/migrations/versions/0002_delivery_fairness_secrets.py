"""Delivery: target host, claim lane and age for fair claiming and max_age; secrets; prune index.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from s2s_plugin.resolution.hosts import host_key

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("s2s_sources") as batch:
        batch.add_column(sa.Column("secrets", sa.Text))
    with op.batch_alter_table("s2s_postbacks") as batch:
        batch.add_column(sa.Column("secrets", sa.Text))
    with op.batch_alter_table("s2s_deliveries") as batch:
        batch.add_column(sa.Column("host", sa.String(300)))
        batch.add_column(sa.Column("lane", sa.Integer, nullable=False, server_default=sa.text("0")))
        batch.add_column(sa.Column("age_from", sa.Float))
        batch.add_column(sa.Column("secrets", sa.Text))
        batch.drop_index("ix_s2s_deliveries_due")
        batch.create_index("ix_s2s_deliveries_claim", ["state", "lane", "next_attempt_at"])
        batch.create_index("ix_s2s_deliveries_created", ["created_at"])
    with op.batch_alter_table("s2s_attempts") as batch:
        batch.create_index("ix_s2s_attempts_started", ["started_at"])

    # Existing deliveries: retries go to the retry lane, age counts from when they were queued,
    # and the target host is worked out from the stored URL.
    bind = op.get_bind()
    deliveries = sa.table(
        "s2s_deliveries",
        sa.column("id", sa.Integer),
        sa.column("url", sa.Text),
        sa.column("attempts", sa.Integer),
        sa.column("created_at", sa.Float),
        sa.column("host", sa.String),
        sa.column("lane", sa.Integer),
        sa.column("age_from", sa.Float),
    )
    bind.execute(
        deliveries.update().values(
            age_from=deliveries.c.created_at,
            lane=sa.case((deliveries.c.attempts > 0, 1), else_=0),
        )
    )
    rows = bind.execute(sa.select(deliveries.c.id, deliveries.c.url)).all()
    if rows:
        bind.execute(
            deliveries.update().where(deliveries.c.id == sa.bindparam("b_id")).values(host=sa.bindparam("b_host")),
            [{"b_id": row.id, "b_host": host_key(row.url)} for row in rows],
        )


def downgrade() -> None:
    with op.batch_alter_table("s2s_attempts") as batch:
        batch.drop_index("ix_s2s_attempts_started")
    with op.batch_alter_table("s2s_deliveries") as batch:
        batch.drop_index("ix_s2s_deliveries_created")
        batch.drop_index("ix_s2s_deliveries_claim")
        batch.create_index("ix_s2s_deliveries_due", ["state", "next_attempt_at"])
        for column in ("secrets", "age_from", "lane", "host"):
            batch.drop_column(column)
    with op.batch_alter_table("s2s_postbacks") as batch:
        batch.drop_column("secrets")
    with op.batch_alter_table("s2s_sources") as batch:
        batch.drop_column("secrets")
