"""Statements run on the DB-API connection itself, for the few hot paths (``on_conversion``).

A SQLAlchemy Core ``execute`` costs 70-100 µs of Python (compiled-cache lookup, events, result
set-up), more than SQLite takes to run a one-row statement, and ``Engine.begin()`` costs as much
again. Here a Core statement is compiled once per dialect (``compile_raw``) into its SQL and the
order of its parameters, and ``raw_transaction`` runs such statements on the pooled DB-API
connection in one transaction, begun as ``make_engine``'s engines begin theirs (``BEGIN
IMMEDIATE`` and the engine's write turn on SQLite; psycopg's implicit transaction on PostgreSQL).

Database errors come out as SQLAlchemy's exceptions (``sqlalchemy.exc.OperationalError`` and so
on), as they would from Core, and a connection the database dropped is invalidated in the pool.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, NoReturn, Optional

from sqlalchemy import Engine, exc
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ClauseElement

from .db import write_turn

_NO_VALUES: Mapping[str, Any] = {}

# make_engine's "begin" event waits as long for the write turn (db.py).
_TURN_TIMEOUT = 30.0


@dataclasses.dataclass(eq=False)
class RawStatement:
    """A Core statement compiled for one dialect: its SQL and how to pass its parameters.

    Made by ``compile_raw``; run with ``RawTransaction.execute`` (or ``first``/``all``/``scalar``).
    """

    sql: str
    #: bind names in the order the driver takes them (positional paramstyles), or every bind name.
    names: tuple[str, ...]
    #: the keys of the parameter mapping (named paramstyles: escaped bind names), beside ``names``.
    keys: tuple[str, ...]
    positional: bool
    #: values compiled into the statement (literals, constant column defaults), by bind name.
    defaults: Mapping[str, Any]
    #: ``(position, convert)`` for the parameters whose type converts values for the driver.
    processors: tuple[tuple[int, Callable[[Any], Any]], ...]
    #: the row class of the results, made from the first result's column names.
    row_type: Optional[type] = dataclasses.field(default=None, repr=False)

    def parameters(self, values: Mapping[str, Any] = _NO_VALUES) -> Any:
        """The driver's parameters for ``values`` (by bind name; unknown names are ignored).

        :raises ValueError: when a value without a default is missing (a programming error).
        """
        if self.defaults:
            values = {**self.defaults, **values}
        try:
            ordered = [values[name] for name in self.names]
        except KeyError as missing:
            raise ValueError(f"a value is required for parameter {missing.args[0]!r} of: {self.sql}") from None
        for index, convert in self.processors:
            ordered[index] = convert(ordered[index])
        return ordered if self.positional else dict(zip(self.keys, ordered))


def compile_raw(statement: ClauseElement, dialect: Dialect, column_keys: Optional[Sequence[str]] = None) -> RawStatement:
    """Compile ``statement`` once for ``dialect``.

    :param column_keys: for an INSERT or UPDATE, the columns the values will name (as in Core's
        ``compile(column_keys=...)``); columns left out get their constant ``default``.
    :raises ValueError: for what cannot be compiled once: expanding ``IN`` parameters, or a
        Python default that is not a constant (pass that column's value instead).
    """
    compiled = statement.compile(dialect=dialect, column_keys=list(column_keys) if column_keys is not None else None)
    binds = compiled.binds
    defaults: dict[str, Any] = {}
    for name, bind in binds.items():
        if bind.expanding or bind.literal_execute:
            raise ValueError(f"parameter {name!r} is rendered at execution time; run this statement with Core")
        if not bind.required:
            defaults[name] = bind.effective_value
    # Core fills Python-side column defaults at execution time ("prefetch"): do it here, once.
    for columns, attribute in ((compiled.insert_prefetch, "default"), (compiled.update_prefetch, "onupdate")):
        for column in columns:
            default = getattr(column, attribute)
            if default is None or not default.is_scalar or column.key not in binds:
                raise ValueError(f"column {column.key!r} has a default computed per row: pass its value")
            defaults[column.key] = default.arg
    positional = bool(dialect.positional)
    names = tuple(compiled.positiontup or ()) if positional else tuple(binds)
    escaped = compiled.escaped_bind_names or {}
    keys = names if positional else tuple(escaped.get(name, name) for name in names)
    processors = []
    for index, name in enumerate(names):
        convert = binds[name].type.dialect_impl(dialect).bind_processor(dialect)
        if convert is not None:
            processors.append((index, convert))
    return RawStatement(compiled.string, names, keys, positional, defaults, tuple(processors))


class RawTransaction:
    """One open transaction on a DB-API connection (see ``raw_transaction``).

    Rows are named tuples (``row.subid``) holding the driver's values: no type conversion, so a
    SQLite boolean reads as 0 or 1.
    """

    def __init__(self, cursor: Any, dialect: Dialect) -> None:
        self._cursor = cursor
        self._dialect = dialect
        self._dbapi_error: type[BaseException] = dialect.loaded_dbapi.Error
        self.dialect_name: str = dialect.name
        #: the database dropped the connection: it must not go back to the pool.
        self.disconnected = False

    def execute(self, statement: RawStatement, values: Mapping[str, Any] = _NO_VALUES) -> Any:
        """Run ``statement`` with ``values`` (by bind name); returns the DB-API cursor."""
        parameters = statement.parameters(values)
        try:
            self._cursor.execute(statement.sql, parameters)
        except self._dbapi_error as error:
            self.raise_error(error, statement.sql, parameters)
        return self._cursor

    def execute_sql(self, sql: str) -> None:
        """Run SQL that takes no parameters (``NOTIFY``, ``BEGIN IMMEDIATE``)."""
        try:
            self._cursor.execute(sql)
        except self._dbapi_error as error:
            self.raise_error(error, sql, None)

    def first(self, statement: RawStatement, values: Mapping[str, Any] = _NO_VALUES) -> Any:
        """The first row of ``statement``'s result, or None."""
        cursor = self.execute(statement, values)
        row = cursor.fetchone()
        return None if row is None else self._row_type(statement, cursor)._make(row)

    def all(self, statement: RawStatement, values: Mapping[str, Any] = _NO_VALUES) -> list[Any]:
        """Every row of ``statement``'s result."""
        cursor = self.execute(statement, values)
        rows = cursor.fetchall()
        if not rows:
            return []
        make = self._row_type(statement, cursor)._make
        return [make(row) for row in rows]

    def scalar(self, statement: RawStatement, values: Mapping[str, Any] = _NO_VALUES) -> Any:
        """The first column of the first row, or None when there is no row."""
        row = self.execute(statement, values).fetchone()
        return None if row is None else row[0]

    def raise_error(self, error: BaseException, sql: str, parameters: Any) -> NoReturn:
        """Raise a DB-API ``error`` as the SQLAlchemy exception Core would raise for it."""
        self.disconnected = self.disconnected or self._dialect.is_disconnect(error, None, self._cursor)
        raise exc.DBAPIError.instance(
            sql, parameters, error, self._dbapi_error, connection_invalidated=self.disconnected, dialect=self._dialect
        ) from error

    @staticmethod
    def _row_type(statement: RawStatement, cursor: Any) -> Any:
        if statement.row_type is None:
            names = [column[0] for column in cursor.description]
            statement.row_type = collections.namedtuple("Row", names, rename=True)  # type: ignore[misc]
        return statement.row_type


@contextlib.contextmanager
def raw_transaction(engine: Engine) -> Iterator[RawTransaction]:
    """A transaction on a pooled DB-API connection of ``engine``: committed when the block ends,
    rolled back when it raises.

    On SQLite it begins with ``BEGIN IMMEDIATE`` and holds the engine's write turn (``db.write_turn``)
    until it ends, exactly like a Core transaction of ``make_engine``'s engine.
    """
    dialect = engine.dialect
    dbapi_error = dialect.loaded_dbapi.Error
    try:
        connection = engine.raw_connection()
    except dbapi_error as error:
        raise exc.DBAPIError.instance(None, None, error, dbapi_error, dialect=dialect) from error
    turn = write_turn(engine)
    # A thread that nests transactions would wait for itself: after the timeout it goes ahead
    # without its turn and SQLite's own locking decides (as db.make_engine's "begin" event does).
    took = turn.acquire(timeout=_TURN_TIMEOUT) if turn is not None else False
    transaction: Optional[RawTransaction] = None
    try:
        transaction = RawTransaction(connection.cursor(), dialect)
        if dialect.name == "sqlite":
            # Take the write lock at BEGIN: read-then-write transactions never deadlock on upgrade.
            transaction.execute_sql("BEGIN IMMEDIATE")
        yield transaction
        try:
            connection.commit()
        except dbapi_error as error:
            transaction.raise_error(error, "COMMIT", None)
    except BaseException:
        _roll_back(connection, transaction)
        raise
    finally:
        if took:
            assert turn is not None
            turn.release()
        connection.close()


def _roll_back(connection: Any, transaction: Optional[RawTransaction]) -> None:
    """Roll back after a failure; a connection that cannot be rolled back leaves the pool."""
    if transaction is not None and transaction.disconnected:
        connection.invalidate()
        return
    try:
        connection.rollback()
    except Exception:  # the original error is the one worth raising
        connection.invalidate()
