"""The outbox as a queue: claim due deliveries under a lease, complete them only while holding it.

Each claim bumps the row's ``lease_token`` (a fencing token): a worker whose lease expired and was
taken over finds its token stale and its late result is discarded instead of overwriting the new one.

Claims are short transactions (``BEGIN IMMEDIATE`` on SQLite, ``FOR UPDATE SKIP LOCKED`` on
PostgreSQL so concurrent workers take disjoint rows without waiting for each other); sending
happens outside any transaction; completions are written in batches.

Fair claiming: first attempts (lane 0) and retries (lane 1) are claimed separately, so a backlog
of retries to a dead source never queues in front of fresh conversions; hosts that already have
as many deliveries claimed as allowed are left out of the claim; a claim takes the oldest due rows
in turns by host (``in_turns``), so one host's backlog does not fill it; and the deliveries of a
host whose circuit is open (``s2s_hosts``, see ``hostlimits``) wait, apart from one probe.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import time
from collections.abc import Collection, Sequence
from typing import Any, Optional

from sqlalchemy import Connection, Engine, bindparam, func, or_, select, text, update

from s2s_plugin.resolution.causes import Cause
from s2s_plugin.storage import rawdb
from s2s_plugin.storage import tables as t

D = t.deliveries
A = t.attempts

#: PostgreSQL ``NOTIFY`` channel: new work is due (idle workers wake at once instead of polling).
CHANNEL = "s2s_deliveries"

FRESH, RETRY_LANE = 0, 1


@dataclasses.dataclass(frozen=True)
class Completion:
    """The new state of a delivery after an attempt, and the attempt's record (whose ``cause``
    is the attempt's; ``cause`` here is the delivery's, usually the same)."""

    state: str
    next_attempt_at: Optional[float]
    attempt: dict[str, Any]
    http_status: Optional[int]
    reason: str
    cause: Optional[str] = None


_TABLE = D.name
_COLUMNS = [c.name for c in D.c]

#: A claimed delivery: the ``s2s_deliveries`` row with its new lease token, fields named as the columns.
ClaimedDelivery = collections.namedtuple("ClaimedDelivery", _COLUMNS)  # type: ignore[misc]


#: Rows of an open host (``s2s_hosts``) wait for its probe: claims leave them alone.
_HOST_ANSWERING = f"NOT EXISTS (SELECT 1 FROM {t.hosts.name} h WHERE h.host = {_TABLE}.host AND h.state <> 'closed')"
#: A claim reads twice the rows it wants (at least ``_WINDOW_MIN``), oldest first, and takes them
#: in turns by host, at most ``host_cap`` of each (on PostgreSQL it then locks only those).
_WINDOW_FACTOR, _WINDOW_MIN = 2, 16


@functools.cache
def _pick_sql(postgres: bool, kind: str, hosts: int, skip: int) -> str:
    """The claim's select of one kind, written once per shape (how many hosts and ids are left out)."""
    if kind == "expired":
        where, order = ["state = 'leased'", "lease_until <= ?"], "lease_until"
    else:
        where = [
            "state = 'due'",
            "next_attempt_at <= ?",
            f"lane = {RETRY_LANE if kind == 'retry' else FRESH}",
            _HOST_ANSWERING,
        ]
        order = "next_attempt_at"
    if skip:
        where.append(f"id NOT IN ({rawdb.placeholders(skip)})")
    if hosts:
        where.append(f"host NOT IN ({rawdb.placeholders(hosts)})")
    sql = f"SELECT id, host FROM {_TABLE} WHERE {' AND '.join(where)} ORDER BY {order} LIMIT ?"
    # Concurrent workers take disjoint rows without waiting for each other. Due rows are read
    # unlocked and only the ones chosen locked (``_lock_sql``): locking the whole window would
    # write a lock into twice the rows a claim takes.
    return sql + " FOR UPDATE SKIP LOCKED" if postgres and kind == "expired" else sql


@functools.cache
def _lock_sql(count: int) -> str:
    return f"SELECT id FROM {_TABLE} WHERE id IN ({rawdb.placeholders(count)}) AND state = 'due' FOR UPDATE SKIP LOCKED"


def _locked(cur: rawdb.Cursor, ids: list[int]) -> list[int]:
    """The ids, in order, this transaction could lock (PostgreSQL): rows another worker is claiming
    now are skipped, rows it claimed already are no longer due."""
    if not ids:
        return ids
    got = {r[0] for r in cur.execute(_lock_sql(len(ids)), ids).fetchall()}
    return [delivery_id for delivery_id in ids if delivery_id in got]


#: Windows looked at per kind in one claim when hosts that reached ``host_cap`` fill them.
_WINDOWS = 4


def _pick(
    cur: rawdb.Cursor,
    kind: str,
    limit: int,
    now: float,
    hosts: list[str],
    skip: Sequence[int] = (),
    host_cap: Optional[int] = None,
    left: Optional[set[Optional[str]]] = None,
    look_past: bool = True,
) -> list[int]:
    """Up to ``limit`` ids of one kind; ``left`` gets the hosts of due rows left behind (None for
    rows beyond the window, of hosts unknown)."""
    if limit <= 0:
        return []
    window = max(limit * _WINDOW_FACTOR, _WINDOW_MIN)
    taken: list[int] = []
    left_out = list(hosts)
    for _ in range(_WINDOWS):
        sql = _pick_sql(cur.postgres, kind, len(left_out), len(skip))
        rows = cur.execute(sql, [now, *skip, *left_out, window]).fetchall()
        ids = in_turns(rows, limit - len(taken), host_cap)
        if cur.postgres and kind != "expired":
            ids = _locked(cur, ids)
        taken += ids
        if left is not None:
            chosen = set(ids)
            left.update(host for delivery_id, host in rows if delivery_id not in chosen)
            if len(rows) == window and (len(taken) >= limit or look_past):
                left.add(None)  # more beyond this window, of hosts unknown
        if len(taken) >= limit or len(rows) < window or host_cap is None or not look_past:
            break
        # The window was all rows of a few hosts, each given as many as it may take: the next
        # window leaves them out, so hosts queued behind a large old backlog are found in this claim.
        chosen = set(ids)
        counts = collections.Counter(host for delivery_id, host in rows if delivery_id in chosen)
        capped = [host for host, n in counts.items() if n >= host_cap and host is not None]
        if not capped:
            break
        left_out += capped
    return taken


def in_turns(rows: Sequence[tuple[int, Optional[str]]], limit: int, host_cap: Optional[int] = None) -> list[int]:
    """Up to ``limit`` ids of ``(id, host)`` rows (oldest first), at most ``host_cap`` per host:
    each host's oldest, then each host's second oldest, and so on; hosts in the order their oldest
    row comes."""
    if host_cap is not None:
        limit = min(limit, host_cap * len({row[1] for row in rows}))
    if len(rows) <= limit:
        return [row[0] for row in rows]
    first_host = rows[0][1]
    if all(row[1] == first_host for row in rows):  # one host: the oldest
        return [row[0] for row in rows[:limit]]
    by_host: dict[Optional[str], list[int]] = {}
    for delivery_id, host in rows:
        by_host.setdefault(host, []).append(delivery_id)
    taken: list[int] = []
    depth = 0
    while len(taken) < limit and (host_cap is None or depth < host_cap):
        for ids in by_host.values():
            if depth < len(ids):
                taken.append(ids[depth])
                if len(taken) == limit:
                    break
        depth += 1
    return taken


@functools.cache
def _probe_sql(postgres: bool) -> tuple[str, str]:
    lock = " FOR UPDATE SKIP LOCKED" if postgres else ""
    hosts = f"SELECT host FROM {t.hosts.name} WHERE state <> 'closed' AND next_probe_at <= ?{lock}"
    row = (
        f"SELECT id FROM {_TABLE} WHERE state = 'due' AND next_attempt_at <= ? AND host = ? "
        f"ORDER BY next_attempt_at LIMIT 1{lock}"
    )
    return hosts, row


def _probes(cur: rawdb.Cursor, now: float, window: float, limit: int) -> list[int]:
    """One due delivery of each open host whose probe time has come (at most ``limit``); the hosts
    are marked probing, their next probe ``window`` seconds away should this one never report."""
    hosts_sql, row_sql = _probe_sql(cur.postgres)
    ids = []
    for (host,) in cur.execute(hosts_sql, [now]).fetchall()[:limit]:
        found = cur.execute(row_sql, [now, host]).fetchall()
        if found:
            ids.append(found[0][0])
            cur.execute(
                f"UPDATE {t.hosts.name} SET state = 'probing', next_probe_at = ?, updated_at = ? WHERE host = ?",
                [now + window, now, host],
            )
    return ids


@functools.cache
def _lease_sql(count: int) -> str:
    return (
        f"UPDATE {_TABLE} SET state = 'leased', lease_token = lease_token + 1, lease_until = ?, updated_at = ? "
        f"WHERE id IN ({rawdb.placeholders(count)}) RETURNING {', '.join(_COLUMNS)}"
    )


def claim(
    engine: Engine,
    *,
    fresh: int,
    retries: int = 0,
    lease_seconds: float,
    exclude_hosts: Collection[str] = (),
    now: Optional[float] = None,
    probe_window: Optional[float] = None,
    probes: Optional[list[int]] = None,
    host_cap: Optional[int] = None,
    left: Optional[set[Optional[str]]] = None,
    look_past: bool = True,
) -> list[Any]:
    """Lease due deliveries: expired leases first, then up to ``retries`` retries and ``fresh``
    first attempts (retry room left unused goes to first attempts), oldest due first. Deliveries
    of hosts whose circuit is open (``s2s_hosts``) are left alone.

    :param exclude_hosts: host keys to leave alone (their per-host limit is reached).
    :param host_cap: at most this many deliveries of one host (and then hosts queued behind a
        large backlog of a few others are looked for in the same claim).
    :param left: gets the hosts of due deliveries left unclaimed (None: maybe more, of hosts unknown).
    :param look_past: whether to look past hosts that reached ``host_cap`` (false when the caller
        knows no other host has due deliveries: looking would read through their backlog for nothing).
    :param probe_window: when given, also claim one delivery of each open host whose probe time
        has come (its next probe is then ``probe_window`` seconds away unless this one reports);
        their ids are appended to ``probes``.
    :return: the claimed rows (``ClaimedDelivery``), with their new lease tokens.
    """
    now = time.time() if now is None else now
    total = fresh + retries
    if total <= 0:
        return []
    hosts = list(exclude_hosts)
    with rawdb.transaction(engine) as cur:
        # A worker died holding these: they were due before anything else.
        ids = _pick(cur, "expired", total, now, hosts)
        if probe_window is not None:
            found = _probes(cur, now, probe_window, total - len(ids))
            ids += found
            if probes is not None:
                probes.extend(found)
        ids += _pick(cur, "retry", min(retries, total - len(ids)), now, hosts, (), host_cap, left, look_past)
        ids += _pick(cur, "fresh", total - len(ids), now, hosts, (), host_cap, left, look_past)
        if len(ids) < total and retries:  # no first attempts waiting: retries may use their room
            ids += _pick(cur, "retry", total - len(ids), now, hosts, ids, host_cap, left, look_past)
        if not ids:
            return []
        rows = [
            ClaimedDelivery._make(r)
            for r in cur.execute(_lease_sql(len(ids)), [now + lease_seconds, now, *ids]).fetchall()
        ]
    order = {delivery_id: n for n, delivery_id in enumerate(ids)}
    return sorted(rows, key=lambda row: order[row.id])


_COMPLETE = (
    f"UPDATE {_TABLE} SET state = ?, attempts = attempts + 1, next_attempt_at = ?, lease_until = NULL, lane = ?, "
    "reason = ?, cause = ?, http_status = ?, updated_at = ? WHERE id = ? AND lease_token = ? AND state = 'leased'"
)
_ATTEMPT_COLUMNS = [c.name for c in A.c if c.name != "id"]
_INSERT_ATTEMPT = f"INSERT INTO {A.name} ({', '.join(_ATTEMPT_COLUMNS)}) VALUES ({rawdb.placeholders(len(_ATTEMPT_COLUMNS))}) RETURNING id"


@functools.cache
def _current_sql(postgres: bool, count: int) -> str:
    sql = f"SELECT id, lease_token FROM {_TABLE} WHERE id IN ({rawdb.placeholders(count)}) AND state = 'leased'"
    return sql + " FOR UPDATE" if postgres else sql


@functools.cache
def _mark_reported_sql(count: int) -> str:
    return f"UPDATE {A.name} SET reported = ? WHERE id IN ({rawdb.placeholders(count)})"


@dataclasses.dataclass(frozen=True)
class Written:
    """What became of one finished attempt: its id in the attempt log (None when it was discarded),
    and whether it set the delivery's new state (False for a late result, see ``record_many``)."""

    attempt_id: Optional[int]
    current: bool


#: Added to the reason of an attempt whose claim was taken over before its result was written.
LATE_NOTE = "recorded late: the claim had expired and was taken over, so this result did not change the delivery"


def complete_many(
    engine: Engine, done: Sequence[tuple[Any, Completion]], reported: Sequence[int] = ()
) -> list[Optional[int]]:
    """Record attempts' results for the deliveries whose lease is still ours, in one transaction
    (which also marks ``reported``, earlier attempts that reached ``on_postback_sent``).

    :return: per entry, the new attempt's id, or None when the lease was lost (result discarded).
    """
    return [w.attempt_id if w.current else None for w in _write(engine, done, reported, keep_late=False)]


def record_many(engine: Engine, done: Sequence[tuple[Any, Completion]], reported: Sequence[int] = ()) -> list[Written]:
    """Record attempts that were made, in one transaction: as ``complete_many`` for the deliveries
    whose lease is still ours; a late one (its claim expired and was taken over while it ran) is
    still added to the attempt log, noted as late, without changing the delivery: every request
    that may have reached a source is in the log.

    Safe to call again after an error: an attempt already recorded (a commit whose answer was
    lost with the connection) is found, not recorded twice.
    """
    return _write(engine, done, reported, keep_late=True)


def _write(
    engine: Engine, done: Sequence[tuple[Any, Completion]], reported: Sequence[int], keep_late: bool
) -> list[Written]:
    if not done:
        mark_reported(engine, reported)
        return []
    now = time.time()
    out = [Written(None, False)] * len(done)
    with rawdb.transaction(engine) as cur:
        _mark(cur, reported)
        ids = [row.id for row, _ in done]
        tokens = dict(cur.execute(_current_sql(cur.postgres, len(ids)), ids).fetchall())
        winners: list[tuple[int, Any, Completion]] = []
        late: list[tuple[int, Any, Completion]] = []
        for n, (row, result) in enumerate(done):
            (winners if tokens.get(row.id) == row.lease_token else late).append((n, row, result))
        if winners:
            cur.executemany(
                _COMPLETE,
                [
                    (
                        result.state,
                        result.next_attempt_at,
                        RETRY_LANE if result.state == "due" else row.lane,
                        result.reason,
                        result.cause,
                        result.http_status,
                        now,
                        row.id,
                        row.lease_token,
                    )
                    for _, row, result in winners
                ],
            )
            attempt_ids = cur.insert_returning_ids(
                _INSERT_ATTEMPT,
                [
                    [row.id if name == "delivery_id" else result.attempt.get(name) for name in _ATTEMPT_COLUMNS]
                    for _, row, result in winners
                ],
            )
            for (n, _, _), attempt_id in zip(winners, attempt_ids):
                out[n] = Written(attempt_id, True)
        for n, row, result in late if keep_late else ():
            out[n] = Written(_record_late(cur, row, result), False)
    return out


_FIND_ATTEMPT = f"SELECT id FROM {A.name} WHERE delivery_id = ? AND attempt = ? AND started_at = ?"


def _record_late(cur: rawdb.Cursor, row: Any, result: Completion) -> int:
    """Add a late attempt to the log (or find it there, written by an earlier try); its id."""
    attempt = result.attempt
    found = cur.execute(_FIND_ATTEMPT, [row.id, attempt.get("attempt"), attempt.get("started_at")]).fetchone()
    if found:
        return int(found[0])
    values = {
        **attempt,
        "delivery_id": row.id,
        "reason": f"{attempt.get('reason')}; {LATE_NOTE}",
        "cause": str(Cause.LATE_RESULT),
    }
    return cur.insert_returning_ids(_INSERT_ATTEMPT, [[values.get(name) for name in _ATTEMPT_COLUMNS]])[0]


def _mark(cur: rawdb.Cursor, attempt_ids: Sequence[int]) -> None:
    for start in range(0, len(attempt_ids), 500):
        chunk = list(attempt_ids[start : start + 500])
        cur.execute(_mark_reported_sql(len(chunk)), [True, *chunk])


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


def defer(engine: Engine, rows: Sequence[Any], reason: str, cause: str) -> None:
    """Give claimed deliveries back unattempted because their host is not answering, saying so in
    their ``reason`` and ``cause`` (no attempt is recorded and none is counted)."""
    if rows:
        now = time.time()
        with engine.begin() as conn:
            conn.execute(
                _RELEASE.values(reason=reason, cause=cause),
                [{"b_id": r.id, "b_token": r.lease_token, "b_now": now} for r in rows],
            )


def release(engine: Engine, row: Any) -> None:
    """Give one claimed delivery back unattempted, if the lease is still ours."""
    release_many(engine, [row])


_RENEW = f"UPDATE {_TABLE} SET lease_until = ? WHERE id = ? AND lease_token = ? AND state = 'leased'"


def renew(engine: Engine, rows: Sequence[Any], lease_seconds: float, now: Optional[float] = None) -> set[int]:
    """Extend the leases of deliveries still being worked on, so a slow attempt keeps its claim.

    :return: the ids whose lease is still ours, now extended; a claim missing from it was taken
        over after it expired (its delivery must not be started by this worker).
    """
    if not rows:
        return set()
    until = (time.time() if now is None else now) + lease_seconds
    held: set[int] = set()
    with rawdb.transaction(engine) as cur:
        for start in range(0, len(rows), 500):
            chunk = rows[start : start + 500]
            tokens = dict(cur.execute(_current_sql(cur.postgres, len(chunk)), [r.id for r in chunk]).fetchall())
            mine = [r for r in chunk if tokens.get(r.id) == r.lease_token]
            cur.executemany(_RENEW, [(until, r.id, r.lease_token) for r in mine])
            held.update(r.id for r in mine)
    return held


def next_due_at(engine: Engine) -> Optional[float]:
    """When the next delivery falls due (leases included), or None when nothing is pending; a
    delivery of an open host falls due at its host's next probe."""
    H = t.hosts
    with engine.connect() as conn:
        answering = ~select(H.c.host).where(H.c.host == D.c.host, H.c.state != "closed").exists()
        due = conn.execute(select(func.min(D.c.next_attempt_at)).where(D.c.state == "due", answering)).scalar()
        lease = conn.execute(select(func.min(D.c.lease_until)).where(D.c.state == "leased")).scalar()
        times = [x for x in (due, lease) if x is not None]
        for host, next_probe_at in conn.execute(select(H.c.host, H.c.next_probe_at).where(H.c.state != "closed")).all():
            waiting = conn.execute(
                select(func.min(D.c.next_attempt_at)).where(D.c.state == "due", D.c.host == host)
            ).scalar()
            if waiting is not None:
                times.append(max(waiting, next_probe_at or 0.0))
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
            if conn.execute(
                update(A).where(A.c.id == attempt_id, A.c.reported.is_(False)).values(reported=True)
            ).rowcount
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
        with rawdb.transaction(engine) as cur:
            _mark(cur, ids)


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
                .values(
                    state="due", next_attempt_at=now, retry_base=D.c.attempts, lane=FRESH, age_from=now, updated_at=now
                )
            ).rowcount
        if changed:
            notify(conn)
    return changed


def notify(conn: Connection) -> None:
    """Tell listening PostgreSQL workers that work is due (sent when the transaction commits)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text(f"NOTIFY {CHANNEL}"))
