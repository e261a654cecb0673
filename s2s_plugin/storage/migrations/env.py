"""Alembic environment: runs on the connection ``s2s_plugin.storage.migrate`` hands over, in its transaction.

The version table is ``s2s_alembic_version``, so the plugin's migrations never mix with a host's
own Alembic history in a shared database.
"""

from __future__ import annotations

from alembic import context

from s2s_plugin.storage.migrate import VERSION_TABLE
from s2s_plugin.storage.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - the plugin always passes its connection
    raise RuntimeError(
        "run the plugin's migrations through `s2s-postback db upgrade` or s2s_plugin.storage.migrate.upgrade()"
    )

context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table=VERSION_TABLE,
    include_name=lambda name, type_, parent: type_ != "table" or (name or "").startswith("s2s_"),
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
