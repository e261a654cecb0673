"""Hot statements run straight on the DB-API connection, in the engine's transactions.

The delivery loop runs a few statements per batch, thousands of times a second. Through SQLAlchemy
Core each costs 70-150 µs of Python (cache lookups, event dispatch, result set-up) on top of the
few microseconds SQLite needs; here they are plain SQL strings written once, with ``?``
placeholders (rewritten to ``%s`` for psycopg), run on the pooled DB-API connection.

Transactions take the same turn as the engine's own (``db.write_turn``) and begin the same way
(``BEGIN IMMEDIATE`` on SQLite), so they interleave safely with every SQLAlchemy transaction.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import Engine

from .db import write_turn


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


@contextlib.contextmanager
def transaction(engine: Engine) -> Iterator[Cursor]:
    """A write transaction on a pooled DB-API connection: committed on success, rolled back on error."""
    postgres = engine.dialect.name == "postgresql"
    pooled = engine.raw_connection()
    try:
        connection = pooled.driver_connection
        turn = None if postgres else write_turn(engine)
        if turn is not None:
            # As the engine's "begin" event does: wait for this process's other threads first.
            took = turn.acquire(timeout=30)
        try:
            cursor = connection.cursor()
            if not postgres:
                cursor.execute("BEGIN IMMEDIATE")
            try:
                yield Cursor(cursor, postgres)
            except BaseException:
                connection.rollback()
                raise
            connection.commit()
        finally:
            if turn is not None and took:
                turn.release()
    finally:
        pooled.close()


@contextlib.contextmanager
def reading(engine: Engine) -> Iterator[Cursor]:
    """Reads on a pooled DB-API connection, without the write turn: SQLite in WAL mode lets readers
    run beside a writer, so a read need not wait for (or hold up) one."""
    pooled = engine.raw_connection()
    try:
        yield Cursor(pooled.driver_connection.cursor(), engine.dialect.name == "postgresql")
    finally:
        pooled.close()  # the pool ends the read (a rollback) as it takes the connection back
