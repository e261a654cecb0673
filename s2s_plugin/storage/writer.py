"""The one DB-API connection a SQLite database's write transactions run on in this process."""

from __future__ import annotations

import contextlib
import os
import weakref
from typing import Any, Optional

from sqlalchemy import Engine, event

from s2s_plugin.storage.checkpoints import SAFETY_LIMIT_PAGES, Checkpointer


class Writer:
    """The SQLite writer connection, owned by a ``Database``.

    SQLite lets one connection write at a time, and this process's writers already take turns on
    the database's write turn: whoever holds the turn may use this connection alone. So a write
    needs no connection from the pool, whose check-out and check-in cost more Python than SQLite
    takes to insert a row. The connection is taken out of the pool, and closed by ``close`` or
    when the engine is disposed (the next write opens another).

    Its WAL checkpoints run in a thread of their own (``checkpoints.Checkpointer``), so a commit
    does not now and then take a few milliseconds more to copy the WAL back into the database.
    """

    def __init__(self, engine: Engine) -> None:
        # Weak: the engine's listener holds this writer, which must not keep the engine alive.
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

    def close(self) -> None:
        """Stop the checkpoint thread and close the connection (a later write opens both again)."""
        if self.checkpointer is not None:
            if self._pid == os.getpid():
                self.checkpointer.stop()
            self.checkpointer = None
        self.discard()

    def _on_disposed(self, _engine: Engine) -> None:
        self.close()
