"""The hot path's one style: Core statements compiled once, run on the DB-API connection.

``on_conversion`` and the delivery loop run a few statements each, thousands of times a second. A
SQLAlchemy Core ``execute`` costs 70-100 µs of Python (compiled-cache lookup, events, result
set-up), more than SQLite takes to run a one-row statement, and ``Engine.begin()`` costs as much
again. ``compile_raw`` compiles a Core statement once per dialect into its SQL and the order of
its parameters (so the tables stay described in one place, tables.py, with their defaults, and
dialect forms such as ``FOR UPDATE SKIP LOCKED`` come from Core), and a ``RawTransaction`` (from
``Database.transaction()`` or ``Database.reading()``) runs such statements with named rows and
SQLAlchemy's exceptions (``sqlalchemy.exc.IntegrityError``...) as Core would give.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Optional, cast

from sqlalchemy import exc
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.dml import Insert

_NO_VALUES: Mapping[str, Any] = {}


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
    #: how ``RawTransaction.insert`` learns the new row's id: ``lastrowid``, ``returning`` or "".
    new_id: str = ""
    #: the table an INSERT writes to (``compile_raw_insert``), quoted for the dialect.
    table: str = ""
    #: the row class of the results, made from the first result's column names.
    row_type: Optional[type] = dataclasses.field(default=None, repr=False)
    #: whether the statement holds constants (``state = 'due'``): their values are always merged in.
    constants: bool = False

    def __post_init__(self) -> None:
        # Picks the values out of a mapping in one C call (runs for every statement of every conversion).
        if len(self.names) > 1:
            self._pick: Callable[[Mapping[str, Any]], Any] = operator.itemgetter(*self.names)
        elif self.names:
            self._pick = functools.partial(_one, self.names[0])
        else:
            self._pick = _none

    def parameters(self, values: Mapping[str, Any] = _NO_VALUES) -> Any:
        """The driver's parameters for ``values`` (by bind name; unknown names are ignored).

        :raises ValueError: when a value without a default is missing (a programming error).
        """
        try:
            # Every value given: the usual case, no merge (a statement with constants always merges).
            picked = self._pick({**self.defaults, **values} if self.constants else values)
        except KeyError as missing:
            if not self.defaults:
                raise ValueError(f"a value is required for parameter {missing.args[0]!r} of: {self.sql}") from None
            try:
                picked = self._pick({**self.defaults, **values})
            except KeyError as still_missing:
                raise ValueError(
                    f"a value is required for parameter {still_missing.args[0]!r} of: {self.sql}"
                ) from None
        if self.processors:
            ordered = list(picked)
            for index, convert in self.processors:
                ordered[index] = convert(ordered[index])
            picked = ordered
        return picked if self.positional else dict(zip(self.keys, picked))


def _one(name: str, values: Mapping[str, Any]) -> tuple[Any]:
    return (values[name],)


def _none(values: Mapping[str, Any]) -> tuple[()]:
    return ()


def compile_raw(
    statement: ClauseElement, dialect: Dialect, column_keys: Optional[Sequence[str]] = None
) -> RawStatement:
    """Compile ``statement`` once for ``dialect``.

    :param column_keys: for an INSERT or UPDATE, the columns the values will name (as in Core's
        ``compile(column_keys=...)``); columns left out get their constant ``default``.
    :raises ValueError: for what cannot be compiled once: expanding ``IN`` parameters, or a
        Python default that is not a constant (pass that column's value instead).
    """
    # The SQL compiler's own attributes (binds, prefetch, positions) are what this module reads.
    compiled = cast(
        SQLCompiler,
        statement.compile(dialect=dialect, column_keys=list(column_keys) if column_keys is not None else None),
    )
    binds = compiled.binds
    defaults: dict[str, Any] = {}
    constants = False
    for name, bind in binds.items():
        if bind.expanding or bind.literal_execute:
            raise ValueError(f"parameter {name!r} is rendered at execution time; run this statement with Core")
        if not bind.required:
            defaults[name] = bind.effective_value
            constants = constants or bind.unique  # an anonymous value: a constant of the statement
    # Core fills Python-side column defaults at execution time ("prefetch"): do it here, once.
    for columns, attribute in ((compiled.insert_prefetch, "default"), (compiled.update_prefetch, "onupdate")):
        for column in columns:
            default = getattr(column, attribute)
            if default is None or not default.is_scalar or column.key not in binds:
                raise ValueError(f"column {column.key!r} has a default computed per row: pass its value")
            defaults[column.key] = default.arg
    positional = bool(dialect.positional)
    # (``binds`` also holds anonymous parameters under their unrendered keys: the names are the rendered ones.)
    names = tuple(compiled.positiontup or ()) if positional else tuple(dict.fromkeys(compiled.bind_names.values()))
    escaped: dict[str, str] = compiled.escaped_bind_names or {}
    keys = names if positional else tuple(escaped.get(name, name) for name in names)
    processors = []
    for index, name in enumerate(names):
        convert = binds[name].type.dialect_impl(dialect).bind_processor(dialect)
        if convert is not None:
            processors.append((index, convert))
    return RawStatement(compiled.string, names, keys, positional, defaults, tuple(processors), constants=constants)


def compile_raw_insert(statement: Insert, dialect: Dialect, column_keys: Sequence[str]) -> RawStatement:
    """Compile a one-row INSERT for ``RawTransaction.insert``, which returns the new row's id.

    SQLite gives the id as the cursor's ``lastrowid`` (a ``RETURNING`` clause costs it more than
    that); other databases answer ``RETURNING`` the primary key.
    """
    if dialect.name == "sqlite":
        raw = compile_raw(statement, dialect, column_keys)
        raw.new_id = "lastrowid"
        raw.table = dialect.identifier_preparer.format_table(statement.table)
        return raw
    (key,) = statement.table.primary_key.columns  # type: ignore[attr-defined]
    raw = compile_raw(statement.returning(key), dialect, column_keys)
    raw.new_id = "returning"
    return raw


class RawTransaction:
    """One open transaction on a DB-API connection (``Database.transaction()`` or ``Database.reading()``).

    Rows are named tuples (``row.subid``) holding the driver's values: no type conversion, so a
    SQLite boolean reads as 0 or 1.
    """

    def __init__(self, cursor: Any, dialect: Dialect) -> None:
        self._cursor = cursor
        self._dialect = dialect
        self._dbapi_error: type[Exception] = dialect.loaded_dbapi.Error
        self.dialect_name: str = dialect.name
        self.postgres = dialect.name == "postgresql"

    def execute(self, statement: RawStatement, values: Mapping[str, Any] = _NO_VALUES) -> Any:
        """Run ``statement`` with ``values`` (by bind name); returns the DB-API cursor."""
        return self._run(statement.sql, statement.parameters(values))

    def execute_many(self, statement: RawStatement, rows: Sequence[Mapping[str, Any]]) -> None:
        """Run ``statement`` once for each mapping of values in ``rows``."""
        if rows:
            parameters = [statement.parameters(values) for values in rows]
            try:
                self._cursor.executemany(statement.sql, parameters)
            except self._dbapi_error as error:
                raise exc.DBAPIError.instance(
                    statement.sql, parameters, error, self._dbapi_error, dialect=self._dialect
                ) from error

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

    def insert(self, statement: RawStatement, values: Mapping[str, Any] = _NO_VALUES) -> Optional[int]:
        """Run an INSERT made by ``compile_raw_insert``; the new row's id, or None when no row was
        inserted (``ON CONFLICT DO NOTHING``)."""
        cursor = self.execute(statement, values)
        if statement.new_id == "lastrowid":
            return cursor.lastrowid if cursor.rowcount == 1 else None
        row = cursor.fetchone()
        return None if row is None else row[0]

    def insert_many(self, statement: RawStatement, rows: Sequence[Mapping[str, Any]]) -> list[int]:
        """Run an INSERT made by ``compile_raw_insert`` for each mapping in ``rows`` (none may be
        left out by a conflict); the new rows' ids, in order."""
        if not rows:
            return []
        if statement.new_id == "lastrowid":
            return self._insert_many_sqlite(statement, rows)
        # psycopg pipelines the rows and keeps one result set per row, in order.
        parameters = [statement.parameters(values) for values in rows]
        try:
            self._cursor.executemany(statement.sql, parameters, returning=True)
        except self._dbapi_error as error:
            raise exc.DBAPIError.instance(
                statement.sql, parameters, error, self._dbapi_error, dialect=self._dialect
            ) from error
        ids = []
        while True:
            ids.append(self._cursor.fetchone()[0])
            if not self._cursor.nextset():
                return ids

    def _insert_many_sqlite(self, statement: RawStatement, rows: Sequence[Mapping[str, Any]]) -> list[int]:
        """SQLite: the rows in one ``executemany``; their ids follow the table's highest before.

        A write transaction holds the database's only write lock, and SQLite gives a new row the
        highest rowid plus one (below 2**63), so the rows get the ids after the highest, in order;
        checked against the last one, which SQLite reports.
        """
        if len(rows) == 1:
            return [self.execute(statement, rows[0]).lastrowid]
        table = statement.table
        highest = self._run(f"SELECT max(rowid) FROM {table}", ()).fetchone()[0] or 0
        self.execute_many(statement, rows)
        last = self._run("SELECT last_insert_rowid()", ()).fetchone()[0]
        if last != highest + len(rows):
            raise RuntimeError(f"{table}: {len(rows)} rows inserted after id {highest}, the last got id {last}")
        return list(range(highest + 1, last + 1))

    def scalar(self, statement: RawStatement, values: Mapping[str, Any] = _NO_VALUES) -> Any:
        """The first column of the first row, or None when there is no row."""
        row = self.execute(statement, values).fetchone()
        return None if row is None else row[0]

    def _run(self, sql: str, parameters: Any) -> Any:
        try:
            self._cursor.execute(sql, parameters)
        except self._dbapi_error as error:
            # The exception Core would raise, so callers handle one family of errors.
            raise exc.DBAPIError.instance(sql, parameters, error, self._dbapi_error, dialect=self._dialect) from error
        return self._cursor

    @staticmethod
    def _row_type(statement: RawStatement, cursor: Any) -> Any:
        if statement.row_type is None:
            names = [column[0] for column in cursor.description]
            statement.row_type = collections.namedtuple("Row", names, rename=True)  # type: ignore[misc]
        return statement.row_type
