"""One ``Database``: the engine and everything the plugin keeps per database in this process.

Whoever builds the plugin's service builds one ``Database`` from the database URL and passes it
to the store, the queue functions and the dispatcher; ``close()`` frees what it holds. It owns:

- the SQLAlchemy engine (plain Core for everything off the hot path: configuration, the log,
  operator tools, migrations);
- on SQLite, the write turn (a lock this process's write transactions take in turns, so threads
  queue within microseconds instead of sleeping on SQLite's busy handler) and the writer
  connection with its WAL checkpoint thread (``writer.Writer``);
- the hot statements, Core statements compiled once for its dialect (``compiled``) and run on a
  DB-API connection in ``transaction()`` or ``reading()`` (see ``rawsql``);
- the postback rules' cache (``rulecache.RuleCache``).

Two ``Database`` objects on one URL share nothing but the database itself.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Optional

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Dialect

from s2s_plugin.storage.checkpoints import Checkpointer
from s2s_plugin.storage.db import is_in_memory, make_engine, parse_url
from s2s_plugin.storage.rawsql import RawStatement, RawTransaction
from s2s_plugin.storage.rulecache import RuleCache
from s2s_plugin.storage.writer import Writer

#: Compiled statement shapes kept per database (claims compile one per count of ids they name).
_MAX_STATEMENTS = 2048


class Database:
    """The plugin's database in this process: engine, write turn, writer, checkpoints, rule cache.

    :param database_url: ``sqlite:///FILE`` (the embedded default) or ``postgresql://...``.
    :raises ConfigError: when the URL cannot be parsed or used (the message hides its password).
    """

    def __init__(self, database_url: str | URL) -> None:
        url = parse_url(database_url)
        self.is_postgres = url.get_backend_name() == "postgresql"
        #: The lock this process's SQLite write transactions take in turns (None on PostgreSQL).
        self.turn: Optional[threading.Lock] = None if self.is_postgres else threading.Lock()
        self.engine = make_engine(url, turn=self.turn)
        self.dialect = self.engine.dialect
        #: SQLite file: the one connection writes run on. None on PostgreSQL (many writers at once)
        #: and for an in-memory database (each connection its own database: writes stay on the
        #: connection the pool gives the thread).
        self.writer: Optional[Writer] = None
        if self.turn is not None and not is_in_memory(url):
            self.writer = Writer(self.engine)
        self.rules = RuleCache()
        self._statements: dict[tuple[Any, ...], RawStatement] = {}
        self._closed = False

    @property
    def url(self) -> str:
        """The database URL, its password hidden (for messages and logs)."""
        return self.engine.url.render_as_string(hide_password=True)

    @property
    def checkpointer(self) -> Optional[Checkpointer]:
        """The SQLite WAL checkpoint thread, once a write started it (None otherwise)."""
        return self.writer.checkpointer if self.writer is not None else None

    def __repr__(self) -> str:
        return f"Database({self.url!r})"

    def insert(self, table: Table) -> Any:
        """An INSERT of ``table`` in this database's dialect (with ``on_conflict_do_...``)."""
        return dialect_insert(self.dialect, table)

    def compiled(self, build: Callable[..., RawStatement], *args: Any) -> RawStatement:
        """``build(dialect, *args)``: a statement compiled for this database, once per ``args``.

        ``build`` compiles one shape of a hot statement (``rawsql.compile_raw``); the result is kept
        for the next call with the same arguments.
        """
        key = (build, *args)
        statement = self._statements.get(key)
        if statement is None:
            statement = build(self.dialect, *args)
            if len(self._statements) >= _MAX_STATEMENTS:
                self._statements.clear()  # many shapes: start over rather than grow for ever
            self._statements[key] = statement
        return statement

    def transaction(self) -> Transaction:
        """A write transaction on a DB-API connection, for a ``with`` block that gets a
        ``RawTransaction``: committed when the block ends, rolled back when it raises.

        On SQLite it runs on the writer connection once this thread has the write turn (the
        engine's own transactions take the same turn), beginning with ``BEGIN IMMEDIATE``; on
        PostgreSQL on a pooled connection.
        """
        return Transaction(self)

    def reading(self) -> Reading:
        """Reads on a pooled DB-API connection, without the write turn (a ``RawTransaction`` for a
        ``with`` block; nothing is committed): SQLite in WAL mode lets readers run beside a writer,
        so a read need not wait for (or hold up) one."""
        return Reading(self)

    def close(self) -> None:
        """Stop the checkpoint thread, close the writer connection and every pooled one.

        Called once by whoever built the database, after the dispatcher stopped; calling it
        again does nothing. A write after it (a host still recording in another thread) runs on a
        connection of the pool, which the pool closes again: no thread or connection is kept.
        """
        if self._closed:
            return
        self._closed = True
        writer, self.writer = self.writer, None
        if writer is not None:
            writer.close()
        self.engine.dispose()
        self._statements.clear()
        self.rules.clear()


def dialect_insert(dialect: Dialect, table: Table) -> Any:
    """An INSERT of ``table`` in ``dialect`` (PostgreSQL's or SQLite's, with ``on_conflict_do_...``)."""
    return postgresql.insert(table) if dialect.name == "postgresql" else sqlite.insert(table)


class Transaction:
    """The context manager ``Database.transaction`` returns.

    A class rather than a generator: every conversion and every claim runs one, and a generator's
    context manager costs several microseconds more to enter and leave.
    """

    __slots__ = ("_connection", "_database", "_pooled", "_turn", "_writer")

    def __init__(self, database: Database) -> None:
        self._database = database
        self._turn: Optional[threading.Lock] = None
        self._writer: Optional[Writer] = None
        self._pooled: Any = None
        self._connection: Any = None

    def __enter__(self) -> RawTransaction:
        database = self._database
        turn = database.turn
        # As the engine's "begin" event does: wait for this process's other threads first. A thread
        # that nests write transactions gets no turn (see db.make_engine) and a pooled connection.
        if turn is not None and turn.acquire(timeout=30):
            self._turn = turn
            self._writer = database.writer
        try:
            if self._writer is not None:
                self._connection = self._writer.connection()
            else:
                self._pooled = database.engine.raw_connection()
                self._connection = self._pooled.driver_connection
            cursor = self._connection.cursor()
            if not database.is_postgres:
                cursor.execute("BEGIN IMMEDIATE")
        except BaseException:
            self._end()
            raise
        return RawTransaction(cursor, database.dialect)

    def __exit__(self, error_type: Any, _error: Any, _traceback: Any) -> None:
        try:
            if error_type is None:
                self._connection.commit()
                if self._writer is not None:
                    self._writer.committed()
            else:
                self._connection.rollback()
        finally:
            self._end()

    def _end(self) -> None:
        writer, self._writer = self._writer, None
        try:
            if writer is not None and not writer.idle():
                # A failed COMMIT or ROLLBACK, or a broken connection: the next write gets a new
                # one, not a transaction left open on the shared connection.
                writer.discard()
            if self._pooled is not None:
                self._pooled.close()
                self._pooled = None
        finally:
            if self._turn is not None:
                self._turn.release()
                self._turn = None


class Reading:
    """The context manager ``Database.reading`` returns."""

    __slots__ = ("_database", "_pooled")

    def __init__(self, database: Database) -> None:
        self._database = database
        self._pooled: Any = None

    def __enter__(self) -> RawTransaction:
        self._pooled = self._database.engine.raw_connection()
        try:
            driver = self._pooled.driver_connection
            assert driver is not None  # a checked-out connection has its driver's connection
            return RawTransaction(driver.cursor(), self._database.dialect)
        except BaseException:
            self._end()
            raise

    def __exit__(self, _error_type: Any, _error: Any, _traceback: Any) -> None:
        self._end()

    def _end(self) -> None:
        pooled, self._pooled = self._pooled, None
        if pooled is not None:
            pooled.close()  # the pool ends the read (a rollback) as it takes the connection back
