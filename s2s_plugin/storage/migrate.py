"""Schema migrations of the plugin's tables (Alembic, shipped in ``s2s_plugin/migrations``).

``install()`` and every ``s2s-postback`` command call ``upgrade``: an empty database gets every
table, an older one is brought to the current revision, an up-to-date one costs one query. A
database whose tables were created before the plugin had migrations (no version row, tables
present) is adopted as revision ``0001`` and upgraded from there.

The whole upgrade runs in one transaction that first takes a lock (``BEGIN IMMEDIATE`` on SQLite,
an advisory lock on PostgreSQL), so workers starting together upgrade once, one after the other.
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import Optional

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect, text

#: Alembic's version table for the plugin: its own, beside any host's ``alembic_version``.
VERSION_TABLE = "s2s_alembic_version"
#: The revision whose schema a pre-migrations database has.
BASELINE = "0001"
_LOCK_KEY = 0x5325_0001  # pg_advisory_xact_lock key: "s2s" migrations


def _config(connection: Optional[Connection] = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(resources.files(__package__).joinpath("migrations")))
    config.attributes["connection"] = connection
    return config


@functools.lru_cache(maxsize=1)
def head_revision() -> str:
    """The newest revision the shipped migrations know."""
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> Optional[str]:
    """The database's revision, or None when it has none (empty, or older than migrations)."""
    with engine.connect() as conn:
        return _current(conn)


def _current(conn: Connection) -> Optional[str]:
    heads = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_heads()
    return heads[0] if heads else None


def upgrade(engine: Engine, revision: str = "head") -> tuple[Optional[str], str]:
    """Bring the plugin's tables to ``revision``; returns ``(before, after)`` revisions."""
    target = head_revision() if revision == "head" else revision
    if current_revision(engine) == target:
        return target, target
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
        before = _current(conn)  # again, under the lock: another process may have just upgraded
        if before is None and inspect(conn).has_table("s2s_deliveries"):
            command.stamp(_config(conn), BASELINE)
            before = BASELINE
        if before != target:
            command.upgrade(_config(conn), target)
    return before, target


def downgrade(engine: Engine, revision: str) -> None:
    """Take the plugin's tables back to ``revision`` (``base`` drops them)."""
    with engine.begin() as conn:
        command.downgrade(_config(conn), revision)
