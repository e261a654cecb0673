"""The outbox as a queue: claim due deliveries under a lease, complete them only while holding it.

Each claim bumps the row's ``lease_token`` (a fencing token): a worker whose lease expired and was
taken over finds its token stale and its late result is discarded instead of overwriting the new one.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Optional

from sqlalchemy import Engine, and_, func, insert, or_, select, update

from . import tables as t

D = t.deliveries


@dataclasses.dataclass(frozen=True)
class Completion:
    """The new state of a delivery after an attempt, and the attempt's record."""

    state: str
    next_attempt_at: Optional[float]
    attempt: dict[str, Any]
    http_status: Optional[int]
    reason: str


def _due(now: float):  # type: ignore[no-untyped-def]
    return or_(
        and_(D.c.state == "due", D.c.next_attempt_at <= now),
        and_(D.c.state == "leased", D.c.lease_until <= now),
    )


def claim(engine: Engine, limit: int, lease_seconds: float, now: Optional[float] = None) -> list[Any]:
    """Lease up to ``limit`` due deliveries (oldest due first) and return their rows with new tokens."""
    if limit <= 0:
        return []
    now = time.time() if now is None else now
    pick = select(D.c.id).where(_due(now)).order_by(D.c.next_attempt_at).limit(limit)
    if engine.dialect.name == "postgresql":
        pick = pick.with_for_update(skip_locked=True)
    stmt = (
        update(D)
        .where(D.c.id.in_(pick.scalar_subquery()))
        .values(state="leased", lease_token=D.c.lease_token + 1, lease_until=now + lease_seconds, updated_at=now)
        .returning(*D.c)
    )
    with engine.begin() as conn:
        return list(conn.execute(stmt))


def complete(engine: Engine, row: Any, done: Completion) -> Optional[int]:
    """Record an attempt's result if ``row``'s lease is still ours; the attempt's id, or None if lost."""
    now = time.time()
    with engine.begin() as conn:
        changed = conn.execute(
            update(D)
            .where(D.c.id == row.id, D.c.lease_token == row.lease_token, D.c.state == "leased")
            .values(
                state=done.state,
                attempts=D.c.attempts + 1,
                next_attempt_at=done.next_attempt_at,
                lease_until=None,
                reason=done.reason,
                http_status=done.http_status,
                updated_at=now,
            )
        ).rowcount
        if not changed:
            return None
        return conn.execute(insert(t.attempts).values(delivery_id=row.id, **done.attempt)).inserted_primary_key[0]


def release(engine: Engine, row: Any) -> None:
    """Give a claimed delivery back unattempted (shutdown), if the lease is still ours."""
    with engine.begin() as conn:
        conn.execute(
            update(D)
            .where(D.c.id == row.id, D.c.lease_token == row.lease_token, D.c.state == "leased")
            .values(state="due", lease_until=None, updated_at=time.time())
        )


def next_due_at(engine: Engine) -> Optional[float]:
    """When the next delivery falls due (leases included), or None when nothing is pending."""
    with engine.connect() as conn:
        due = conn.execute(select(func.min(D.c.next_attempt_at)).where(D.c.state == "due")).scalar()
        lease = conn.execute(select(func.min(D.c.lease_until)).where(D.c.state == "leased")).scalar()
    times = [x for x in (due, lease) if x is not None]
    return min(times) if times else None


def take_unreported(engine: Engine, *, older_than: float, limit: int = 500) -> list[tuple[Any, Any]]:
    """Mark unreported attempts as reported and return ``(attempt, delivery)`` rows, to report now.

    Skips (attempt 0) are taken at once; real attempts only when older than ``older_than`` seconds,
    i.e. when the worker that made them died before reporting them.
    """
    A = t.attempts
    now = time.time()
    candidates = (
        select(A.c.id)
        .where(A.c.reported.is_(False), or_(A.c.attempt == 0, A.c.started_at < now - older_than))
        .order_by(A.c.id)
        .limit(limit)
    )
    with engine.begin() as conn:
        taken = [
            attempt_id
            for attempt_id in conn.execute(candidates).scalars().all()
            # One reporter per attempt, even with several dispatchers polling one database.
            if conn.execute(update(A).where(A.c.id == attempt_id, A.c.reported.is_(False)).values(reported=True)).rowcount
        ]
        if not taken:
            return []
        attempts = conn.execute(select(A).where(A.c.id.in_(taken)).order_by(A.c.id)).all()
        deliveries = {r.id: r for r in conn.execute(select(D).where(D.c.id.in_({a.delivery_id for a in attempts})))}
    return [(a, deliveries[a.delivery_id]) for a in attempts]


def mark_reported(engine: Engine, attempt_id: int) -> None:
    """Note that an attempt reached ``on_postback_sent``."""
    with engine.begin() as conn:
        conn.execute(update(t.attempts).where(t.attempts.c.id == attempt_id).values(reported=True))


def make_due(engine: Engine, delivery_ids: list[int], now: Optional[float] = None) -> int:
    """Make delivered, failed or waiting deliveries due again now (resend); returns how many."""
    now = time.time() if now is None else now
    with engine.begin() as conn:
        return conn.execute(
            update(D)
            .where(D.c.id.in_(delivery_ids), D.c.state.in_(("delivered", "failed", "due")))
            # The retry schedule starts over from this attempt; attempt numbers keep counting.
            .values(state="due", next_attempt_at=now, retry_base=D.c.attempts, updated_at=now)
        ).rowcount
