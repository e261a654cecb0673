"""Hot statements run straight on the DB-API connection, in the engine's transactions.

The delivery loop runs a few statements per batch, thousands of times a second. Through SQLAlchemy
Core each costs 70-150 µs of Python (cache lookups, event dispatch, result set-up) on top of the
few microseconds SQLite needs; here they are plain SQL strings written once, with ``?``
placeholders (rewritten to ``%s`` for psycopg), run on a DB-API connection: on SQLite the
engine's one writer connection (see ``_Writer``), on PostgreSQL a pooled one.

Transactions take the same turn as the engine's own (``db.write_turn``) and begin the same way
(``BEGIN IMMEDIATE`` on SQLite), so they interleave safely with every SQLAlchemy transaction.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
import weakref
from collections.abc import Iterator, Sequence
from typing import Any, Optional

from sqlalchemy import Engine, event

from s2s_plugin.storage.checkpoints import SAFETY_LIMIT_PAGES, Checkpointer
from s2s_plugin.storage.db import is_in_memory, write_turn


@functools.lru_cache(maxsize=256)
def _adapted(sql: str, postgres: bool) -> str:
    return sql.replace("?", "%s") if postgres else sql


def placeholders(count: int) -> str:
    """``?, ?, ...`` for an ``IN (...)`` list of ``count`` values."""
    return ", ".join("?" * count)


class Cursor:
    """A DB-API cursor that takes ``?`` placeholders on every database."""

    def __init__(self, cursor: Any, postgres: bool) -> None:
        self.raw = cursor
        self.postgres = postgres

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """Run one statement; returns the DB-API cursor (``fetchall``, ``rowcount``, ``lastrowid``)."""
        self.raw.execute(_adapted(sql, self.postgres), params)
        return self.raw

    def executemany(self, sql: str, params: Sequence[Sequence[Any]]) -> None:
        """Run one statement for each parameter row."""
        if params:
            self.raw.executemany(_adapted(sql, self.postgres), params)

    def insert_returning_ids(self, sql: str, params: Sequence[Sequence[Any]]) -> list[int]:
        """Run an ``INSERT ... RETURNING id`` for each parameter row; the new ids, in order."""
        if not params:
            return []
        if self.postgres:
            # psycopg pipelines the rows and keeps one result set per row, in order.
            self.raw.executemany(_adapted(sql, True), params, returning=True)
            ids = []
            while True:
                ids.append(self.raw.fetchone()[0])
                if not self.raw.nextset():
                    return ids
        ids = []
        for row in params:
            self.raw.execute(sql, row)
            ids.append(self.raw.fetchone()[0])
        return ids


class _Writer:
    """The one DB-API connection a SQLite engine's raw write transactions run on.

    SQLite lets one connection write at a time, and this process's writers already take turns on
    ``db.write_turn``: whoever holds the turn may use this connection alone. So a write needs no
    connection from the pool, whose check-out and check-in cost more Python than SQLite takes to
    insert a row. The connection is taken out of the pool and closed when the engine is disposed.

    Its WAL checkpoints run in a thread of their own (``checkpoints.Checkpointer``), so a commit
    does not now and then take a few milliseconds more to copy the WAL back into the database.
    """

    def __init__(self, engine: Engine) -> None:
        # Weak: the engine's listeners hold this writer, which must not keep the engine alive.
        self._engine = weakref.ref(engine)
        self._connection: Any = None
        self._pid = 0  # the process that opened the connection
        self.checkpointer: Optional[Checkpointer] = None
        event.listen(engine, "engine_disposed", self._on_disposed)

    def connection(self) -> Any:
        """The DB-API connection (opened on first use); only for the holder of the write turn."""
        if self._pid != os.getpid():
            # A forked child must not use (or close) its parent's SQLite connection, and has no
            # checkpoint thread: it opens its own of both.
            self._connection = self.checkpointer = None
            self._pid = os.getpid()
        if self._connection is None:
            engine = self._engine()
            assert engine is not None, "the engine is in use"
            pooled = engine.raw_connection()
            pooled.detach()  # ours for good: the pool neither resets nor recycles it
            connection = pooled.dbapi_connection
            assert connection is not None  # a checked-out connection has its DB-API connection
            connection.execute(f"PRAGMA wal_autocheckpoint={SAFETY_LIMIT_PAGES}")
            self._connection = pooled
            if self.checkpointer is None:
                self.checkpointer = Checkpointer(engine)
        return self._connection.dbapi_connection

    def committed(self) -> None:
        """A write transaction committed (its pages are in the WAL, to be checkpointed)."""
        if self.checkpointer is not None:
            self.checkpointer.committed()

    def idle(self) -> bool:
        """Whether the connection (if one is open) is usable and outside any transaction."""
        if self._connection is None:
            return True
        try:
            return not self._connection.dbapi_connection.in_transaction
        except Exception:
            return False

    def discard(self) -> None:
        """Close the connection (after an error it may not survive); the next write opens another."""
        pooled, self._connection = self._connection, None
        if pooled is not None and self._pid == os.getpid():
            with contextlib.suppress(Exception):
                pooled.close()

    def _on_disposed(self, _engine: Engine) -> None:
        if self.checkpointer is not None:
            if self._pid == os.getpid():
                self.checkpointer.stop()
            self.checkpointer = None
        self.discard()


_WRITERS: weakref.WeakKeyDictionary[Engine, Optional[_Writer]] = weakref.WeakKeyDictionary()
_WRITERS_LOCK = threading.Lock()


def _writer(engine: Engine) -> Optional[_Writer]:
    """The engine's writer, or None for an in-memory database (each connection its own database,
    so writes stay on the connection the pool gives this thread)."""
    try:
        return _WRITERS[engine]
    except KeyError:
        with _WRITERS_LOCK:
            if engine not in _WRITERS:
                _WRITERS[engine] = None if is_in_memory(engine.url) else _Writer(engine)
            return _WRITERS[engine]


def transaction(engine: Engine) -> Transaction:
    """A write transaction on a DB-API connection, for a ``with`` block that gets a ``Cursor``:
    committed when the block ends, rolled back when it raises.

    On SQLite it runs on the engine's writer connection once this thread has the write turn; on
    PostgreSQL (many writers at once) on a pooled connection.
    """
    return Transaction(engine)


class Transaction:
    """The context manager ``transaction`` returns.

    A class rather than a generator: every conversion and every claim runs one, and a generator's
    context manager costs several microseconds more to enter and leave.
    """

    __slots__ = ("_connection", "_engine", "_pooled", "_turn", "_writer")

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._turn: Optional[threading.Lock] = None
        self._writer: Optional[_Writer] = None
        self._pooled: Any = None
        self._connection: Any = None

    def __enter__(self) -> Cursor:
        engine = self._engine
        turn = write_turn(engine)
        # As the engine's "begin" event does: wait for this process's other threads first. A thread
        # that nests write transactions gets no turn (see db.make_engine) and a pooled connection.
        if turn is not None and turn.acquire(timeout=30):
            self._turn = turn
            self._writer = _writer(engine)
        postgres = engine.dialect.name == "postgresql"
        try:
            if self._writer is not None:
                self._connection = self._writer.connection()
            else:
                self._pooled = engine.raw_connection()
                self._connection = self._pooled.driver_connection
            cursor = self._connection.cursor()
            if not postgres:
                cursor.execute("BEGIN IMMEDIATE")
        except BaseException:
            self._end()
            raise
        return Cursor(cursor, postgres)

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


@contextlib.contextmanager
def reading(engine: Engine) -> Iterator[Cursor]:
    """Reads on a pooled DB-API connection, without the write turn: SQLite in WAL mode lets readers
    run beside a writer, so a read need not wait for (or hold up) one."""
    pooled = engine.raw_connection()
    try:
        driver = pooled.driver_connection
        assert driver is not None  # a checked-out connection has its driver's connection
        yield Cursor(driver.cursor(), engine.dialect.name == "postgresql")
    finally:
        pooled.close()  # the pool ends the read (a rollback) as it takes the connection back
