"""The outbox as a queue: claim due deliveries under a lease, complete them only while holding it.

Each claim bumps the row's ``lease_token`` (a fencing token): a worker whose lease expired and was
taken over finds its token stale and its late result is discarded instead of overwriting the new one.

Claims are short transactions (``BEGIN IMMEDIATE`` on SQLite, ``FOR UPDATE SKIP LOCKED`` on
PostgreSQL so concurrent workers take disjoint rows without waiting for each other); sending
happens outside any transaction; completions are written in batches.

Fair claiming: first attempts (lane 0) and retries (lane 1) are claimed separately, so a backlog
of retries to a dead source never queues in front of fresh conversions, and hosts that already
have as many attempts in flight as allowed are left out of the claim.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Collection, Sequence
from typing import Any, Optional

from sqlalchemy import Connection, Engine, bindparam, func, insert, or_, select, text, update

from . import tables as t

D = t.deliveries
A = t.attempts

#: PostgreSQL ``NOTIFY`` channel: new work is due (idle workers wake at once instead of polling).
CHANNEL = "s2s_deliveries"

FRESH, RETRY_LANE = 0, 1


@dataclasses.dataclass(frozen=True)
class Completion:
    """The new state of a delivery after an attempt, and the attempt's record."""

    state: str
    next_attempt_at: Optional[float]
    attempt: dict[str, Any]
    http_status: Optional[int]
    reason: str


@functools.lru_cache(maxsize=None)
def _pick_query(dialect: str, kind: str, skip_hosts: bool, skip_ids: bool) -> Any:
    """The claim's selects, built once per shape: building a statement costs more than running it."""
    now = bindparam("b_now")
    if kind == "expired":
        where = [D.c.state == "leased", D.c.lease_until <= now]
        order = D.c.lease_until
    else:
        where = [D.c.state == "due", D.c.next_attempt_at <= now, D.c.lane == (RETRY_LANE if kind == "retry" else FRESH)]
        order = D.c.next_attempt_at
    if skip_hosts:
        where.append(D.c.host.not_in(bindparam("b_hosts", expanding=True)))
    if skip_ids:
        where.append(D.c.id.not_in(bindparam("b_ids", expanding=True)))
    query = select(D.c.id).where(*where).order_by(order).limit(bindparam("b_limit"))
    if dialect == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return query


def _pick(conn: Connection, kind: str, limit: int, now: float, hosts: list[str], skip: Sequence[int] = ()) -> list[int]:
    if limit <= 0:
        return []
    query = _pick_query(conn.dialect.name, kind, bool(hosts), bool(skip))
    params: dict[str, Any] = {"b_now": now, "b_limit": limit}
    if hosts:
        params["b_hosts"] = hosts
    if skip:
        params["b_ids"] = list(skip)
    return list(conn.execute(query, params).scalars())


_LEASE = (
    update(D)
    .where(D.c.id.in_(bindparam("b_ids", expanding=True)))
    .values(state="leased", lease_token=D.c.lease_token + 1, lease_until=bindparam("b_until"), updated_at=bindparam("b_now"))
    .returning(*D.c)
)


def claim(
    engine: Engine,
    *,
    fresh: int,
    retries: int = 0,
    lease_seconds: float,
    exclude_hosts: Collection[str] = (),
    now: Optional[float] = None,
) -> list[Any]:
    """Lease due deliveries: expired leases first, then up to ``retries`` retries and ``fresh``
    first attempts (retry room left unused goes to first attempts), oldest due first.

    :param exclude_hosts: host keys to leave alone (their per-host limit is reached).
    :return: the claimed rows, with their new lease tokens.
    """
    now = time.time() if now is None else now
    total = fresh + retries
    if total <= 0:
        return []
    hosts = list(exclude_hosts)
    with engine.begin() as conn:
        # A worker died holding these: they were due before anything else.
        ids = _pick(conn, "expired", total, now, hosts)
        ids += _pick(conn, "retry", min(retries, total - len(ids)), now, hosts)
        ids += _pick(conn, "fresh", total - len(ids), now, hosts)
        if len(ids) < total and retries:  # no first attempts waiting: retries may use their room
            ids += _pick(conn, "retry", total - len(ids), now, hosts, skip=ids)
        if not ids:
            return []
        rows = conn.execute(_LEASE, {"b_ids": ids, "b_until": now + lease_seconds, "b_now": now}).all()
    order = {delivery_id: n for n, delivery_id in enumerate(ids)}
    return sorted(rows, key=lambda row: order[row.id])


_COMPLETE = (
    update(D)
    .where(D.c.id == bindparam("b_id"), D.c.lease_token == bindparam("b_token"), D.c.state == "leased")
    .values(
        state=bindparam("b_state"),
        attempts=D.c.attempts + 1,
        next_attempt_at=bindparam("b_next"),
        lease_until=None,
        lane=bindparam("b_lane"),
        reason=bindparam("b_reason"),
        http_status=bindparam("b_http_status"),
        updated_at=bindparam("b_now"),
    )
)


_MARK_REPORTED = update(A).where(A.c.id.in_(bindparam("b_ids", expanding=True))).values(reported=True)
_CURRENT = select(D.c.id, D.c.lease_token).where(D.c.id.in_(bindparam("b_ids", expanding=True)), D.c.state == "leased")
_CURRENT_LOCKED = _CURRENT.with_for_update()
_INSERT_ATTEMPTS = insert(A).returning(A.c.id, sort_by_parameter_order=True)


def complete_many(
    engine: Engine, done: Sequence[tuple[Any, Completion]], reported: Sequence[int] = ()
) -> list[Optional[int]]:
    """Record attempts' results for the deliveries whose lease is still ours, in one transaction
    (which also marks ``reported``, earlier attempts that reached ``on_postback_sent``).

    :return: per entry, the new attempt's id, or None when the lease was lost (result discarded).
    """
    if not done:
        mark_reported(engine, reported)
        return []
    now = time.time()
    with engine.begin() as conn:
        if reported:
            conn.execute(_MARK_REPORTED, {"b_ids": list(reported)})
        current = _CURRENT_LOCKED if conn.dialect.name == "postgresql" else _CURRENT
        tokens = {r.id: r.lease_token for r in conn.execute(current, {"b_ids": [row.id for row, _ in done]})}
        winners = [(n, row, result) for n, (row, result) in enumerate(done) if tokens.get(row.id) == row.lease_token]
        if not winners:
            return [None] * len(done)
        conn.execute(
            _COMPLETE,
            [
                {
                    "b_id": row.id, "b_token": row.lease_token, "b_state": result.state, "b_next": result.next_attempt_at,
                    "b_lane": RETRY_LANE if result.state == "due" else row.lane, "b_reason": result.reason,
                    "b_http_status": result.http_status, "b_now": now,
                }
                for _, row, result in winners
            ],
        )
        ids = conn.execute(
            _INSERT_ATTEMPTS,
            [{"delivery_id": row.id, **result.attempt} for _, row, result in winners],
        ).scalars().all()
    out: list[Optional[int]] = [None] * len(done)
    for (n, _, _), attempt_id in zip(winners, ids):
        out[n] = attempt_id
    return out


def complete(engine: Engine, row: Any, done: Completion) -> Optional[int]:
    """Record one attempt's result if ``row``'s lease is still ours; the attempt's id, or None if lost."""
    return complete_many(engine, [(row, done)])[0]


_RELEASE = (
    update(D)
    .where(D.c.id == bindparam("b_id"), D.c.lease_token == bindparam("b_token"), D.c.state == "leased")
    .values(state="due", lease_until=None, updated_at=bindparam("b_now"))
)


def release_many(engine: Engine, rows: Sequence[Any]) -> None:
    """Give claimed deliveries back unattempted (shutdown, or a host at its limit), where still ours."""
    if rows:
        now = time.time()
        with engine.begin() as conn:
            conn.execute(_RELEASE, [{"b_id": r.id, "b_token": r.lease_token, "b_now": now} for r in rows])


def release(engine: Engine, row: Any) -> None:
    """Give one claimed delivery back unattempted, if the lease is still ours."""
    release_many(engine, [row])


_RENEW = (
    update(D)
    .where(D.c.id == bindparam("b_id"), D.c.lease_token == bindparam("b_token"), D.c.state == "leased")
    .values(lease_until=bindparam("b_until"))
)


def renew(engine: Engine, rows: Sequence[Any], lease_seconds: float) -> None:
    """Extend the leases of deliveries still being worked on, so a slow attempt keeps its claim."""
    if rows:
        until = time.time() + lease_seconds
        with engine.begin() as conn:
            conn.execute(_RENEW, [{"b_id": r.id, "b_token": r.lease_token, "b_until": until} for r in rows])


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
    now = time.time()
    candidates = (
        select(A.c.id)
        .where(A.c.reported.is_(False), or_(A.c.attempt == 0, A.c.started_at < now - older_than))
        .order_by(A.c.id)
        .limit(limit)
    )
    with engine.connect() as conn:  # a cheap look first: usually there is nothing to report
        if not conn.execute(candidates.limit(1)).first():
            return []
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


def mark_reported(engine: Engine, attempt_ids: Sequence[int] | int) -> None:
    """Note that attempts reached ``on_postback_sent``."""
    ids = [attempt_ids] if isinstance(attempt_ids, int) else list(attempt_ids)
    if ids:
        with engine.begin() as conn:
            conn.execute(_MARK_REPORTED, {"b_ids": ids})


def make_due(engine: Engine, delivery_ids: Sequence[int], now: Optional[float] = None) -> int:
    """Make delivered, failed or waiting deliveries due again now (resend); returns how many.

    A resend starts over: the retry schedule and ``max_age`` count from now, in the first-attempt
    lane; attempt numbers keep counting. Deliveries being sent right now are left alone.
    """
    now = time.time() if now is None else now
    changed = 0
    with engine.begin() as conn:
        for start in range(0, len(delivery_ids), 500):
            chunk = list(delivery_ids[start : start + 500])
            changed += conn.execute(
                update(D)
                .where(D.c.id.in_(chunk), D.c.state.in_(("delivered", "failed", "due")))
                .values(state="due", next_attempt_at=now, retry_base=D.c.attempts, lane=FRESH, age_from=now, updated_at=now)
            ).rowcount
        if changed:
            notify(conn)
    return changed


def notify(conn: Connection) -> None:
    """Tell listening PostgreSQL workers that work is due (sent when the transaction commits)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text(f"NOTIFY {CHANNEL}"))
