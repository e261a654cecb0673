"""SQLite WAL checkpoints in a thread of their own, not in the thread that commits.

In WAL mode every commit appends pages to the ``-wal`` file, and by default the commit that takes
it past 1,000 pages also copies them back into the database (a checkpoint): a few milliseconds
spent inside whichever ``on_conversion`` happened to be that commit, about one in a hundred. Here
the engine's writer connection checkpoints only past a much larger safety limit, and this thread
runs passive checkpoints as commits add up. SQLite lets a checkpoint run beside a writer, and the
driver releases the GIL while it runs, so the conversions' commits do not wait for it.
"""

from __future__ import annotations

import logging
import threading
import weakref
from typing import Any, Optional

from sqlalchemy import Engine

log = logging.getLogger(__name__)

#: Pages the writer connection may leave in the WAL before it checkpoints itself: only reached
#: when this thread cannot keep up or has stopped (SQLite's own default is 1,000).
SAFETY_LIMIT_PAGES = 10_000
#: Commits after which the thread is woken (a conversion writes about ten pages).
COMMITS_PER_CHECKPOINT = 32
#: Longest wait between checkpoints while commits keep coming (a few, then a pause).
IDLE_WAIT = 0.5


class Checkpointer:
    """Runs ``PRAGMA wal_checkpoint(PASSIVE)`` on its own connection after every few commits.

    ``committed()`` is called by the writer after each commit; ``stop()`` when its ``Database``
    closes or the engine is disposed (a forgotten engine ends the thread too). ``runs`` and ``last_result`` (SQLite's busy, log and checkpointed frame counts) say
    what it did.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = weakref.ref(engine)  # a forgotten engine ends the thread, not the reverse
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._commits = 0
        self.runs = 0
        self.last_result: Optional[tuple[int, int, int]] = None
        self._thread = threading.Thread(target=self._loop, name="s2s-wal-checkpoint", daemon=True)
        self._thread.start()

    def committed(self) -> None:
        """One more commit appended to the WAL (called by the writer, holding the write turn)."""
        self._commits += 1
        if self._commits >= COMMITS_PER_CHECKPOINT and not self._wake.is_set():
            self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        """End the thread (a checkpoint running finishes first)."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        """Whether the thread still runs."""
        return self._thread.is_alive()

    def _loop(self) -> None:
        while True:
            self._wake.wait(IDLE_WAIT)
            self._wake.clear()
            engine = self._engine()
            if self._stopping.is_set() or engine is None:
                return
            if self._commits:
                self._commits = 0
                self._checkpoint(engine)
            del engine  # not held while waiting: a forgotten engine can go

    def _checkpoint(self, engine: Engine) -> None:
        try:
            pooled: Any = engine.raw_connection()
            try:
                row = pooled.driver_connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            finally:
                pooled.close()
        except Exception as exc:
            log.warning("WAL checkpoint failed: %s", exc)
            return
        self.runs += 1
        self.last_result = tuple(row) if row else None
