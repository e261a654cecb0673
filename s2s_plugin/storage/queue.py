"""The outbox as a queue: claim due deliveries under a lease, complete them only while holding it.

Each claim bumps the row's ``lease_token`` (a fencing token): a worker whose lease expired and was
taken over finds its token stale and its late result is discarded instead of overwriting the new one.

Claims are short transactions (``BEGIN IMMEDIATE`` on SQLite, ``FOR UPDATE SKIP LOCKED`` on
PostgreSQL so concurrent workers take disjoint rows without waiting for each other); sending
happens outside any transaction; completions are written in batches.

The hot statements (claim, record, renew, release) are Core statements compiled once per shape for
the database's dialect (``Database.compiled``) and run in a ``Database.transaction()``; the rest
(``next_due_at``, ``take_unreported``, ``make_due``) is plain Core on the engine.

Fair claiming: first attempts (lane 0) and retries (lane 1) are claimed separately, so a backlog
of retries to a dead source never queues in front of fresh conversions; hosts that already have
as many deliveries claimed as allowed are left out of the claim; a claim takes the oldest due rows
in turns by host (``in_turns``), so one host's backlog does not fill it; and the deliveries of a
host whose circuit is open (``s2s_hosts``, see ``hostlimits``) wait, apart from one probe.
"""

from __future__ import annotations

import collections
import dataclasses
import time
from collections.abc import Callable, Collection, Sequence
from typing import Any, Optional

from sqlalchemy import Connection, bindparam, func, insert, or_, select, update
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ColumnElement

from s2s_plugin.resolution.causes import Cause
from s2s_plugin.resolution.states import RESENDABLE_STATES, DeliveryState
from s2s_plugin.storage import tables as t
from s2s_plugin.storage.database import Database
from s2s_plugin.storage.rawsql import RawStatement, RawTransaction, compile_raw, compile_raw_insert

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


_COLUMNS = [c.name for c in D.c]

#: A claimed delivery: the ``s2s_deliveries`` row with its new lease token, fields named as the columns.
ClaimedDelivery = collections.namedtuple("ClaimedDelivery", _COLUMNS)  # type: ignore[misc]


#: A claim reads twice the rows it wants (at least ``_WINDOW_MIN``), oldest first, and takes them
#: in turns by host, at most ``host_cap`` of each (on PostgreSQL it then locks only those).
_WINDOW_FACTOR, _WINDOW_MIN = 2, 16


def _binds(prefix: str, count: int) -> list[Any]:
    """``count`` parameters named ``prefix0``, ``prefix1``... (an ``IN`` list of one shape)."""
    return [bindparam(f"{prefix}{n}") for n in range(count)]


def _named(prefix: str, values: Sequence[Any]) -> dict[str, Any]:
    return {f"{prefix}{n}": value for n, value in enumerate(values)}


def _padded(values: Sequence[Any]) -> Sequence[Any]:
    """``values`` padded to a power of two by repeating the last one, for an ``IN`` list: each
    length is a statement of its own to compile, and a claim or a batch of results may have any
    length up to a few hundred; a repeated value changes nothing in ``IN`` or ``NOT IN``."""
    count = len(values)
    if count < 2:
        return values
    size = 1 << (count - 1).bit_length()
    return [*values, *[values[-1]] * (size - count)] if size > count else values


def _for_ids(
    database: Database, build: Callable[..., RawStatement], ids: Sequence[Any]
) -> tuple[RawStatement, dict[str, Any]]:
    """``build``'s statement for an ``IN`` list of ``ids`` (``b_id0``...), compiled for their padded
    length, and the padded ids as its parameters."""
    padded = _padded(ids)
    return database.compiled(build, len(padded)), _named("b_id", padded)


def _pick_statement(dialect: Dialect, kind: str, hosts: int, skip: int) -> RawStatement:
    """The claim's select of one kind, compiled once per shape (how many hosts and ids are left out)."""
    where: list[ColumnElement[bool]]
    if kind == "expired":
        where, order = [D.c.state == DeliveryState.LEASED, D.c.lease_until <= bindparam("b_now")], D.c.lease_until
    else:
        # Rows of an open host (``s2s_hosts``) wait for its probe: claims leave them alone.
        answering = ~select(t.hosts.c.host).where(t.hosts.c.host == D.c.host, t.hosts.c.state != "closed").exists()
        lane = RETRY_LANE if kind == "retry" else FRESH
        where = [D.c.state == DeliveryState.DUE, D.c.next_attempt_at <= bindparam("b_now"), D.c.lane == lane, answering]
        order = D.c.next_attempt_at
    if skip:
        where.append(D.c.id.not_in(_binds("b_skip", skip)))
    if hosts:
        where.append(D.c.host.not_in(_binds("b_host", hosts)))
    statement = select(D.c.id, D.c.host).where(*where).order_by(order).limit(bindparam("b_limit"))
    if kind == "expired":
        # Concurrent workers take disjoint rows without waiting for each other. Due rows are read
        # unlocked and only the ones chosen locked (``_lock_statement``): locking the whole window
        # would write a lock into twice the rows a claim takes. (SQLite has no row locks: none.)
        statement = statement.with_for_update(skip_locked=True)
    return compile_raw(statement, dialect)


def _lock_statement(dialect: Dialect, count: int) -> RawStatement:
    chosen = select(D.c.id).where(D.c.id.in_(_binds("b_id", count)), D.c.state == DeliveryState.DUE)
    return compile_raw(chosen.with_for_update(skip_locked=True), dialect)


def _locked(database: Database, tx: RawTransaction, ids: list[int]) -> list[int]:
    """The ids, in order, this transaction could lock (PostgreSQL): rows another worker is claiming
    now are skipped, rows it claimed already are no longer due."""
    if not ids:
        return ids
    got = {r[0] for r in tx.execute(*_for_ids(database, _lock_statement, ids)).fetchall()}
    return [delivery_id for delivery_id in ids if delivery_id in got]


#: Windows looked at per kind in one claim when hosts that reached ``host_cap`` fill them.
_WINDOWS = 4


def _pick(
    database: Database,
    tx: RawTransaction,
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
    skipped = _padded(skip)
    for _ in range(_WINDOWS):
        excluded = _padded(left_out)
        statement = database.compiled(_pick_statement, kind, len(excluded), len(skipped))
        values = {"b_now": now, "b_limit": window, **_named("b_skip", skipped), **_named("b_host", excluded)}
        rows = tx.execute(statement, values).fetchall()
        ids = in_turns(rows, limit - len(taken), host_cap)
        if tx.postgres and kind != "expired":
            ids = _locked(database, tx, ids)
        taken += ids
        if left is not None:
            chosen = set(ids)
            left.update(host for delivery_id, host in rows if delivery_id not in chosen)
            if len(rows) == window:
                left.add(None)  # more beyond this window, of hosts unknown (looked for or not)
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


def _probe_hosts_statement(dialect: Dialect) -> RawStatement:
    """The open hosts whose probe time has come."""
    H = t.hosts
    hosts = select(H.c.host).where(H.c.state != "closed", H.c.next_probe_at <= bindparam("b_now"))
    return compile_raw(hosts.with_for_update(skip_locked=True), dialect)


def _probe_row_statement(dialect: Dialect) -> RawStatement:
    """The oldest due delivery of one host."""
    row = (
        select(D.c.id)
        .where(
            D.c.state == DeliveryState.DUE, D.c.next_attempt_at <= bindparam("b_now"), D.c.host == bindparam("b_host")
        )
        .order_by(D.c.next_attempt_at)
        .limit(1)
    )
    return compile_raw(row.with_for_update(skip_locked=True), dialect)


def _probing_statement(dialect: Dialect) -> RawStatement:
    """Mark a host probing, its next probe at ``b_next``."""
    H = t.hosts
    probing = (
        update(H)
        .where(H.c.host == bindparam("b_host"))
        .values(state="probing", next_probe_at=bindparam("b_next"), updated_at=bindparam("b_now"))
    )
    return compile_raw(probing, dialect)


def _probes(database: Database, tx: RawTransaction, now: float, window: float, limit: int) -> list[int]:
    """One due delivery of each open host whose probe time has come (at most ``limit``); the hosts
    are marked probing, their next probe ``window`` seconds away should this one never report."""
    ids = []
    for (host,) in tx.execute(database.compiled(_probe_hosts_statement), {"b_now": now}).fetchall()[:limit]:
        found = tx.execute(database.compiled(_probe_row_statement), {"b_now": now, "b_host": host}).fetchall()
        if found:
            ids.append(found[0][0])
            tx.execute(database.compiled(_probing_statement), {"b_host": host, "b_next": now + window, "b_now": now})
    return ids


def _lease_statement(dialect: Dialect, count: int) -> RawStatement:
    lease = (
        update(D)
        .where(D.c.id.in_(_binds("b_id", count)))
        .values(
            state=DeliveryState.LEASED,
            lease_token=D.c.lease_token + 1,
            lease_until=bindparam("b_until"),
            updated_at=bindparam("b_now"),
        )
        .returning(*D.c)
    )
    return compile_raw(lease, dialect)


def claim(
    database: Database,
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
        knows no other host has due deliveries, or a look found none a moment ago: looking reads
        through their backlog).
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
    with database.transaction() as tx:
        # A worker died holding these: they were due before anything else.
        ids = _pick(database, tx, "expired", total, now, hosts)
        if probe_window is not None:
            found = _probes(database, tx, now, probe_window, total - len(ids))
            ids += found
            if probes is not None:
                probes.extend(found)
        ids += _pick(database, tx, "retry", min(retries, total - len(ids)), now, hosts, (), host_cap, left, look_past)
        ids += _pick(database, tx, "fresh", total - len(ids), now, hosts, (), host_cap, left, look_past)
        if len(ids) < total and retries:  # no first attempts waiting: retries may use their room
            ids += _pick(database, tx, "retry", total - len(ids), now, hosts, ids, host_cap, left, look_past)
        if not ids:
            return []
        lease, values = _for_ids(database, _lease_statement, ids)
        values.update(b_until=now + lease_seconds, b_now=now)
        rows = [ClaimedDelivery._make(r) for r in tx.execute(lease, values).fetchall()]
    order = {delivery_id: n for n, delivery_id in enumerate(ids)}
    return sorted(rows, key=lambda row: order[row.id])


def _complete_statement(dialect: Dialect) -> RawStatement:
    """An attempt's result, written only while the lease (``b_token``) is still ours."""
    complete = (
        update(D)
        .where(D.c.id == bindparam("b_id"), D.c.lease_token == bindparam("b_token"), D.c.state == DeliveryState.LEASED)
        .values(attempts=D.c.attempts + 1, lease_until=None)
    )
    columns = ("state", "next_attempt_at", "lane", "reason", "cause", "http_status", "updated_at")
    return compile_raw(complete, dialect, columns)


_ATTEMPT_COLUMNS = [c.name for c in A.c if c.name != "id"]


def _insert_attempt_statement(dialect: Dialect) -> RawStatement:
    return compile_raw_insert(insert(A), dialect, _ATTEMPT_COLUMNS)


def _current_statement(dialect: Dialect, count: int) -> RawStatement:
    """The lease tokens of those of ``count`` deliveries still leased (locked on PostgreSQL)."""
    current = select(D.c.id, D.c.lease_token).where(
        D.c.id.in_(_binds("b_id", count)), D.c.state == DeliveryState.LEASED
    )
    return compile_raw(current.with_for_update(), dialect)


def _tokens(database: Database, tx: RawTransaction, ids: Sequence[int]) -> dict[int, int]:
    return dict(tx.execute(*_for_ids(database, _current_statement, ids)).fetchall())


def _mark_reported_statement(dialect: Dialect, count: int) -> RawStatement:
    return compile_raw(update(A).where(A.c.id.in_(_binds("b_id", count))).values(reported=True), dialect)


@dataclasses.dataclass(frozen=True)
class Written:
    """What became of one finished attempt: its id in the attempt log (None when it was discarded),
    and whether it set the delivery's new state (False for a late result, see ``record_many``)."""

    attempt_id: Optional[int]
    current: bool


#: Added to the reason of an attempt whose claim was taken over before its result was written.
LATE_NOTE = "recorded late: the claim had expired and was taken over, so this result did not change the delivery"


def complete_many(
    database: Database, done: Sequence[tuple[Any, Completion]], reported: Sequence[int] = ()
) -> list[Optional[int]]:
    """Record attempts' results for the deliveries whose lease is still ours, in one transaction
    (which also marks ``reported``, earlier attempts that reached ``on_postback_sent``).

    :return: per entry, the new attempt's id, or None when the lease was lost (result discarded).
    """
    return [w.attempt_id if w.current else None for w in _write(database, done, reported, keep_late=False)]


def record_many(
    database: Database, done: Sequence[tuple[Any, Completion]], reported: Sequence[int] = (), heard: bool = False
) -> list[Written]:
    """Record attempts that were made, in one transaction: as ``complete_many`` for the deliveries
    whose lease is still ours; a late one (its claim expired and was taken over while it ran) is
    still added to the attempt log, noted as late, without changing the delivery: every request
    that may have reached a source is in the log.

    Safe to call again after an error: an attempt already recorded (a commit whose answer was
    lost with the connection) is found, not recorded twice.

    :param heard: write the attempts as reported already (no plugin listens to ``on_postback_sent``).
    """
    return _write(database, done, reported, keep_late=True, heard=heard)


def _write(
    database: Database,
    done: Sequence[tuple[Any, Completion]],
    reported: Sequence[int],
    keep_late: bool,
    heard: bool = False,
) -> list[Written]:
    if not done:
        mark_reported(database, reported)
        return []
    now = time.time()
    out = [Written(None, False)] * len(done)
    with database.transaction() as tx:
        _mark(database, tx, reported)
        tokens = _tokens(database, tx, [row.id for row, _ in done])
        winners: list[tuple[int, Any, Completion]] = []
        late: list[tuple[int, Any, Completion]] = []
        for n, (row, result) in enumerate(done):
            (winners if tokens.get(row.id) == row.lease_token else late).append((n, row, result))
        if winners:
            tx.execute_many(
                database.compiled(_complete_statement),
                [
                    {
                        "state": result.state,
                        "next_attempt_at": result.next_attempt_at,
                        "lane": RETRY_LANE if result.state == DeliveryState.DUE else row.lane,
                        "reason": result.reason,
                        "cause": result.cause,
                        "http_status": result.http_status,
                        "updated_at": now,
                        "b_id": row.id,
                        "b_token": row.lease_token,
                    }
                    for _, row, result in winners
                ],
            )
            attempt_ids = tx.insert_many(
                database.compiled(_insert_attempt_statement),
                [_attempt_values(result.attempt, row.id, heard) for _, row, result in winners],
            )
            for (n, _, _), attempt_id in zip(winners, attempt_ids):
                out[n] = Written(attempt_id, True)
        for n, row, result in late if keep_late else ():
            out[n] = Written(_record_late(database, tx, row, result, heard), False)
    return out


def _attempt_values(attempt: dict[str, Any], delivery_id: int, heard: bool = False) -> dict[str, Any]:
    """The attempt log row of ``attempt`` (columns it leaves out are NULL); ``heard``: reported already."""
    values = {name: attempt.get(name) for name in _ATTEMPT_COLUMNS}
    values["delivery_id"] = delivery_id
    if heard:
        values["reported"] = True
    return values


def _find_attempt_statement(dialect: Dialect) -> RawStatement:
    found = select(A.c.id).where(
        A.c.delivery_id == bindparam("b_delivery"),
        A.c.attempt == bindparam("b_attempt"),
        A.c.started_at == bindparam("b_started"),
    )
    return compile_raw(found, dialect)


def _record_late(database: Database, tx: RawTransaction, row: Any, result: Completion, heard: bool = False) -> int:
    """Add a late attempt to the log (or find it there, written by an earlier try); its id."""
    attempt = result.attempt
    found = tx.scalar(
        database.compiled(_find_attempt_statement),
        {"b_delivery": row.id, "b_attempt": attempt.get("attempt"), "b_started": attempt.get("started_at")},
    )
    if found is not None:
        return int(found)
    values = {**attempt, "reason": f"{attempt.get('reason')}; {LATE_NOTE}", "cause": str(Cause.LATE_RESULT)}
    return tx.insert_many(database.compiled(_insert_attempt_statement), [_attempt_values(values, row.id, heard)])[0]


def _mark(database: Database, tx: RawTransaction, attempt_ids: Sequence[int]) -> None:
    for start in range(0, len(attempt_ids), 512):
        tx.execute(*_for_ids(database, _mark_reported_statement, attempt_ids[start : start + 512]))


def complete(database: Database, row: Any, done: Completion) -> Optional[int]:
    """Record one attempt's result if ``row``'s lease is still ours; the attempt's id, or None if lost."""
    return complete_many(database, [(row, done)])[0]


def _release_statement(dialect: Dialect, with_reason: bool) -> RawStatement:
    """A claimed delivery given back unattempted, where the lease (``b_token``) is still ours."""
    release = (
        update(D)
        .where(D.c.id == bindparam("b_id"), D.c.lease_token == bindparam("b_token"), D.c.state == DeliveryState.LEASED)
        .values(state=DeliveryState.DUE, lease_until=None, updated_at=bindparam("b_now"))
    )
    if with_reason:
        release = release.values(reason=bindparam("b_reason"), cause=bindparam("b_cause"))
    return compile_raw(release, dialect)


def release_many(database: Database, rows: Sequence[Any]) -> None:
    """Give claimed deliveries back unattempted (shutdown, or a host at its limit), where still ours."""
    _give_back(database, rows, None, None)


def defer(database: Database, rows: Sequence[Any], reason: str, cause: str) -> None:
    """Give claimed deliveries back unattempted because their host is not answering, saying so in
    their ``reason`` and ``cause`` (no attempt is recorded and none is counted)."""
    _give_back(database, rows, reason, cause)


def _give_back(database: Database, rows: Sequence[Any], reason: Optional[str], cause: Optional[str]) -> None:
    if rows:
        now = time.time()
        statement = database.compiled(_release_statement, reason is not None)
        values = {"b_now": now, "b_reason": reason, "b_cause": cause}
        with database.transaction() as tx:
            tx.execute_many(statement, [{**values, "b_id": r.id, "b_token": r.lease_token} for r in rows])


def release(database: Database, row: Any) -> None:
    """Give one claimed delivery back unattempted, if the lease is still ours."""
    release_many(database, [row])


def _renew_statement(dialect: Dialect) -> RawStatement:
    renew = (
        update(D)
        .where(D.c.id == bindparam("b_id"), D.c.lease_token == bindparam("b_token"), D.c.state == DeliveryState.LEASED)
        .values(lease_until=bindparam("b_until"))
    )
    return compile_raw(renew, dialect)


def renew(database: Database, rows: Sequence[Any], lease_seconds: float, now: Optional[float] = None) -> set[int]:
    """Extend the leases of deliveries still being worked on, so a slow attempt keeps its claim.

    :return: the ids whose lease is still ours, now extended; a claim missing from it was taken
        over after it expired (its delivery must not be started by this worker).
    """
    if not rows:
        return set()
    until = (time.time() if now is None else now) + lease_seconds
    held: set[int] = set()
    with database.transaction() as tx:
        for start in range(0, len(rows), 500):
            chunk = rows[start : start + 500]
            tokens = _tokens(database, tx, [r.id for r in chunk])
            mine = [r for r in chunk if tokens.get(r.id) == r.lease_token]
            tx.execute_many(
                database.compiled(_renew_statement),
                [{"b_until": until, "b_id": r.id, "b_token": r.lease_token} for r in mine],
            )
            held.update(r.id for r in mine)
    return held


def next_due_at(database: Database) -> Optional[float]:
    """When the next delivery falls due (leases included), or None when nothing is pending; a
    delivery of an open host falls due at its host's next probe."""
    H = t.hosts
    with database.engine.connect() as conn:
        answering = ~select(H.c.host).where(H.c.host == D.c.host, H.c.state != "closed").exists()
        due = conn.execute(
            select(func.min(D.c.next_attempt_at)).where(D.c.state == DeliveryState.DUE, answering)
        ).scalar()
        lease = conn.execute(select(func.min(D.c.lease_until)).where(D.c.state == DeliveryState.LEASED)).scalar()
        times = [x for x in (due, lease) if x is not None]
        for host, next_probe_at in conn.execute(select(H.c.host, H.c.next_probe_at).where(H.c.state != "closed")).all():
            waiting = conn.execute(
                select(func.min(D.c.next_attempt_at)).where(D.c.state == DeliveryState.DUE, D.c.host == host)
            ).scalar()
            if waiting is not None:
                times.append(max(waiting, next_probe_at or 0.0))
    return min(times) if times else None


def take_unreported(database: Database, *, older_than: float, limit: int = 500) -> list[tuple[Any, Any]]:
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
    with database.engine.connect() as conn:  # a cheap look first: usually there is nothing to report
        if not conn.execute(candidates.limit(1)).first():
            return []
    with database.engine.begin() as conn:
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


def mark_reported(database: Database, attempt_ids: Sequence[int] | int) -> None:
    """Note that attempts reached ``on_postback_sent``."""
    ids = [attempt_ids] if isinstance(attempt_ids, int) else list(attempt_ids)
    if ids:
        with database.transaction() as tx:
            _mark(database, tx, ids)


def make_due(database: Database, delivery_ids: Sequence[int], now: Optional[float] = None) -> int:
    """Make delivered, failed or waiting deliveries due again now (resend); returns how many.

    A resend starts over: the retry schedule and ``max_age`` count from now, in the first-attempt
    lane; attempt numbers keep counting. Deliveries being sent right now are left alone.
    """
    now = time.time() if now is None else now
    changed = 0
    with database.engine.begin() as conn:
        for start in range(0, len(delivery_ids), 500):
            chunk = list(delivery_ids[start : start + 500])
            changed += conn.execute(
                update(D)
                .where(D.c.id.in_(chunk), D.c.state.in_(RESENDABLE_STATES))
                .values(
                    state=DeliveryState.DUE,
                    next_attempt_at=now,
                    retry_base=D.c.attempts,
                    lane=FRESH,
                    age_from=now,
                    updated_at=now,
                )
            ).rowcount
        if changed:
            notify(conn)
    return changed


def _notify_statement() -> Any:
    # pg_notify() is NOTIFY as a function: a statement Core can build (and compile once).
    return select(func.pg_notify(CHANNEL, ""))


def notify(conn: Connection) -> None:
    """Tell listening PostgreSQL workers that work is due (sent when the transaction commits)."""
    if conn.dialect.name == "postgresql":
        conn.execute(_notify_statement())


def notify_compiled(dialect: Dialect) -> RawStatement:
    """``notify`` compiled once, for a ``RawTransaction`` (``Database.compiled(notify_compiled)``)."""
    return compile_raw(_notify_statement(), dialect)
