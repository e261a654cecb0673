"""Engine set-up: SQLite in WAL mode with write transactions that lock up front; PostgreSQL as is."""

from __future__ import annotations

import re
import threading
from typing import Optional

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from s2s_plugin.errors import ConfigError

_PASSWORD = re.compile(r"(://[^/:@]*:)[^@/]*@")


def parse_url(database_url: str | URL) -> URL:
    """``database_url`` as SQLAlchemy's URL, with ``postgresql://`` meaning psycopg (version 3).

    :raises ConfigError: when the URL cannot be parsed (the message hides its password).
    """
    try:
        url = make_url(database_url)
    except Exception as exc:  # sqlalchemy raises ArgumentError; say what to pass instead
        shown = _PASSWORD.sub(r"\1***@", str(database_url))
        raise ConfigError(f"database URL {shown!r} is not valid: use e.g. sqlite:///s2s.db") from exc
    if url.get_backend_name() == "postgresql" and url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    return url


def make_engine(database_url: str | URL, turn: Optional[threading.Lock] = None) -> Engine:
    """An engine for ``database_url`` tuned for a queue: WAL and ``BEGIN IMMEDIATE`` on SQLite.

    :param turn: the lock this process's SQLite write transactions take turns on (see below); the
        ``storage.database.Database`` that owns the engine passes its own. None: a lock of the
        engine's own (an engine used alone, as for migrations). Ignored for other databases.
    :raises ConfigError: when the URL cannot be parsed or used.
    """
    url = parse_url(database_url)
    try:
        if url.get_backend_name() != "sqlite":
            return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
        # Connections are cheap for SQLite, opening one is not (PRAGMAs, the WAL index): keep
        # enough for every sending thread that reads a click, so none is opened and closed per read.
        in_memory = is_in_memory(url)
        pooling = {} if in_memory else {"pool_size": 20, "max_overflow": 40}
        engine = create_engine(url, connect_args={"timeout": 30}, **pooling)
    except (ArgumentError, NoSuchModuleError, ImportError) as exc:
        raise ConfigError(
            f"database URL {url.render_as_string(hide_password=True)!r} cannot be used ({exc}): "
            "use sqlite:///FILE or postgresql://USER@HOST/DB"
        ) from None

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):  # type: ignore[no-untyped-def]
        # Let SQLAlchemy's "begin" event issue BEGIN itself, so it can be BEGIN IMMEDIATE.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        if not in_memory:
            cursor.execute("PRAGMA journal_mode=WAL")
        # NORMAL is durable against process crashes in WAL mode; only an OS crash can lose the last commit.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    # SQLite answers a busy database by sleeping (1, 2, 5 ... 100 ms) and trying again: threads of
    # one process queue on this lock instead, so the dispatcher, the host's requests and on_conversion
    # take turns within microseconds. Other processes still meet the busy timeout.
    lock = turn if turn is not None else threading.Lock()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):  # type: ignore[no-untyped-def]
        # A thread that nests transactions would wait for itself: after the busy timeout it goes
        # ahead without its turn, and SQLite's own locking decides, as it would without this lock.
        conn.info["s2s_turn"] = lock.acquire(timeout=30)
        try:
            # Take the write lock at BEGIN: read-then-write transactions never deadlock on upgrade.
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            _on_end(conn)
            raise

    @event.listens_for(engine, "commit")
    @event.listens_for(engine, "rollback")
    def _on_end(conn):  # type: ignore[no-untyped-def]
        if conn.info.pop("s2s_turn", False):
            lock.release()

    return engine


def is_in_memory(url: URL) -> bool:
    """Whether a SQLite URL names an in-memory database (one per connection, not a file)."""
    return not url.database or url.database == ":memory:" or url.query.get("mode") == "memory"
