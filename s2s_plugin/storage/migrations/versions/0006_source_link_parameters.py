"""A source's campaign link: its click-id parameter and macro, and its parameter table.

Keitaro's source "Parameters" table: the source's macros (zone, campaign, creative, cost...) by
the tracker parameter that receives them. NULL in every column keeps what a source saved before
had: its template's settings.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("s2s_sources") as batch:
        batch.add_column(sa.Column("click_id_param", sa.String(100)))
        batch.add_column(sa.Column("source_macro", sa.String(200)))
        batch.add_column(sa.Column("parameters", sa.Text))


def downgrade() -> None:
    # Plain ALTER TABLE ... DROP COLUMN (SQLite 3.35+): a batch copy of the table would lose the
    # configuration-version triggers of migration 0003.
    for column in ("parameters", "source_macro", "click_id_param"):
        op.drop_column("s2s_sources", column)
