"""Inbound postbacks refused before their parameters are read: a wrong key, an address outside the
allow-list. Scanners send thousands of these, so they are counted per (kind, address), not stored
one by one; only the first from an address also lands in the Received postbacks log.

Each client (an IPv6 one by its /64) may be refused ``limit`` times per ``window`` seconds; beyond
that it gets a 429 and the database is not touched at all (counted in memory, with a bounded
number of clients, and shown in ``/metrics``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from . import db
from .throttles import RecentCounts, client_key

WRONG_KEY = "wrong_key"
ADDRESS_NOT_ALLOWED = "address_not_allowed"

#: Distinct (kind, address) rows kept; past this, new addresses are counted under ``OTHER``.
MAX_ROWS = 10_000
OTHER = "other"


@dataclasses.dataclass(frozen=True)
class RefusedSummary:
    """Refused requests of one kind from one address (``other`` once the table is full)."""

    kind: str
    ip: str
    count: int
    first_at: dt.datetime
    last_at: dt.datetime


class RefusalLog:
    """Counts refused inbound postbacks in ``refused_requests`` and throttles repeat offenders."""

    def __init__(self, engine: Engine, *, limit: int = 30, window: float = 60.0, max_rows: int = MAX_ROWS) -> None:
        self._engine = engine
        self.max_rows = max_rows
        #: Requests answered 429 without touching the database, since the process started.
        self.throttled = 0
        self.recent = RecentCounts(limit, window, max_keys=max_rows)
        self._lock = threading.Lock()

    @property
    def limit(self) -> int:
        """Refusals a client may have per ``window`` seconds before it gets 429s."""
        return self.recent.limit

    @limit.setter
    def limit(self, value: int) -> None:
        self.recent.limit = value

    @property
    def window(self) -> float:
        """The throttle's window in seconds."""
        return self.recent.window

    def throttle(self, ip: str) -> bool:
        """Count one refusal from ``ip`` in memory (an IPv6 client by its /64); True when its
        client is over the limit."""
        if self.recent.hit(client_key(ip)):
            return False
        with self._lock:
            self.throttled += 1
        return True

    def record(self, kind: str, ip: str) -> bool:
        """Count a refusal in the database; True when it is the first of its kind from ``ip``
        (the caller then logs it in full in the Received postbacks log)."""
        ip = ip[:64]
        table = db.refused_requests
        now = db.utcnow()
        for _ in range(2):  # a concurrent insert of the same row turns the second try into an update
            try:
                with self._engine.begin() as conn:
                    bumped = conn.execute(
                        sa.update(table)
                        .where(table.c.kind == kind, table.c.ip == ip)
                        .values(count=table.c.count + 1, last_at=now)
                    ).rowcount
                    if bumped:
                        return False
                    full = conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one() >= self.max_rows
                    if full and ip != OTHER:
                        ip = OTHER
                        continue
                    conn.execute(sa.insert(table).values(kind=kind, ip=ip, count=1, first_at=now, last_at=now))
                    return ip != OTHER
            except sa.exc.IntegrityError:
                continue
        return False

    def summary(self, limit: int = 20) -> list[RefusedSummary]:
        """The addresses refused most recently, newest first."""
        table = db.refused_requests
        with self._engine.connect() as conn:
            rows = conn.execute(sa.select(table).order_by(table.c.last_at.desc()).limit(limit)).all()
        return [RefusedSummary(r.kind, r.ip, r.count, r.first_at, r.last_at) for r in rows]

    def totals(self) -> dict[str, int]:
        """Refused requests stored per kind (throttled ones are in ``throttled``)."""
        table = db.refused_requests
        with self._engine.connect() as conn:
            rows: Any = conn.execute(sa.select(table.c.kind, sa.func.sum(table.c.count)).group_by(table.c.kind))
            return {kind: int(total) for kind, total in rows}
