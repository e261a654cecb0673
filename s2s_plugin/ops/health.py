"""Delivery health over a time window: per postback rule (a source's postback, a campaign's), the
attempts by outcome, the top causes of those not delivered, attempt latency p50/p95, what is still
queued, and delivered/failed counts per time bucket for charts. Read-only.

Every figure is aggregated in the database: the attempt log can hold hundreds of thousands of
rows, and a dashboard must not pull them into Python. The window is a range on
``s2s_attempts.started_at`` (its index, ``ix_s2s_attempts_started``); each attempt finds its
delivery by primary key; the queue reads ``ix_s2s_deliveries_claim``. The same statements run on
SQLite and PostgreSQL.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from typing import Any, Optional

from sqlalchemy import Connection, Engine, Integer, Select, and_, case, func, literal, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement

from s2s_plugin.delivery.hostlimits import HostStatus, host_statuses
from s2s_plugin.ops.stats import PENDING_STATES
from s2s_plugin.resolution.ruleid import RuleId
from s2s_plugin.resolution.states import DeliveryState
from s2s_plugin.storage import tables as t

#: Outcomes an attempt can have, in the order a dashboard shows them.
OUTCOMES = ("delivered", "retrying", "failed", "skipped")

#: How many causes each rule lists (the most frequent first).
TOP_CAUSES = 3

#: The cause counted for an attempt that stored none.
UNKNOWN_CAUSE = "unknown"


def cause_of(attempts: Any) -> ColumnElement[Any]:
    """The cause an attempt not delivered is counted under: the one place the dashboard reads it.

    The attempt's stored cause code (``resolution.causes.Cause``); ``unknown`` for an attempt that
    has none.
    """
    return func.coalesce(attempts.c.cause, literal(UNKNOWN_CAUSE))


@dataclasses.dataclass(frozen=True)
class CauseCount:
    """One cause and how many attempts in the window had it."""

    cause: str
    count: int


@dataclasses.dataclass(frozen=True)
class RuleHealth:
    """One postback rule's figures for the window.

    :param rule_id: ``source:ID`` or ``postback:N`` (or a plugin's own id).
    :param source_id: the traffic source of its deliveries.
    :param campaign_id: the campaign of a campaign's postback (None for a source's postback, which
        serves every campaign bought from the source).
    :param counts: attempts started in the window, by outcome (every outcome present, 0 when none).
    :param causes: the most frequent causes of attempts not delivered, most frequent first.
    :param p50_ms: median duration of its attempts that sent a request (None when none did).
    :param p95_ms: 95th percentile of the same (nearest rank).
    :param hosts: target hosts (``host:port``) its attempts in the window went to.
    :param queued: its deliveries still to send (due, retries included, or being sent) now.
    :param oldest_due_at: epoch seconds the most overdue of those became due (None when none is due).
    :param series: per time bucket, (delivered, failed) attempts.
    """

    rule_id: str
    source_id: Optional[str]
    campaign_id: Optional[str]
    counts: Mapping[str, int]
    causes: Sequence[CauseCount]
    p50_ms: Optional[float]
    p95_ms: Optional[float]
    hosts: Sequence[str]
    queued: int
    oldest_due_at: Optional[float]
    series: Sequence[tuple[int, int]]

    @property
    def total(self) -> int:
        """Attempts in the window, all outcomes."""
        return sum(self.counts.values())


@dataclasses.dataclass(frozen=True)
class OldestDue:
    """The delivery that has waited longest past its due time: ``due_at`` in epoch seconds, and
    its ``reason`` (why it waits: a retry, a host not answering)."""

    delivery_id: int
    subid: str
    rule_id: str
    due_at: float
    reason: Optional[str]


@dataclasses.dataclass(frozen=True)
class DeliveryHealth:
    """The whole picture for one window: per rule, overall, the queue and the target hosts.

    :param since: start of the window (epoch seconds, included).
    :param until: end of the window (excluded): the time it was read.
    :param bucket_seconds: width of each time bucket of the series; bucket ``i`` covers
        ``[since + i * bucket_seconds, since + (i + 1) * bucket_seconds)``.
    :param rules: rules with attempts in the window or deliveries queued, busiest first.
    :param counts: attempts in the window by outcome, all rules.
    :param causes: the most frequent causes of attempts not delivered, all rules.
    :param p50_ms: median attempt duration, all rules.
    :param p95_ms: 95th percentile attempt duration, all rules.
    :param series: per bucket (delivered, failed), all rules.
    :param queue_depth: deliveries still to send now, all rules.
    :param due_now: deliveries whose time has come now.
    :param oldest_due: the most overdue delivery due now (None: none is).
    :param hosts: every target host's circuit state and concurrency limit (``s2s_hosts``).
    """

    since: float
    until: float
    bucket_seconds: float
    rules: Sequence[RuleHealth]
    counts: Mapping[str, int]
    causes: Sequence[CauseCount]
    p50_ms: Optional[float]
    p95_ms: Optional[float]
    series: Sequence[tuple[int, int]]
    queue_depth: int
    due_now: int
    oldest_due: Optional[OldestDue]
    hosts: Mapping[str, HostStatus]

    @property
    def buckets(self) -> int:
        """How many buckets the series have."""
        return len(self.series)


class _floor_int(FunctionElement[int]):
    """``floor(x)`` as an integer: PostgreSQL rounds a float cast to integer, SQLite truncates it."""

    type = Integer()
    name = "floor_int"
    inherit_cache = True


@compiles(_floor_int)
def _floor_int_default(element: _floor_int, compiler: Any, **kw: Any) -> str:
    return f"CAST(FLOOR({compiler.process(element.clauses, **kw)}) AS INTEGER)"


@compiles(_floor_int, "sqlite")
def _floor_int_sqlite(element: _floor_int, compiler: Any, **kw: Any) -> str:
    # Only ever applied to values >= 0 here, where truncating is flooring.
    return f"CAST({compiler.process(element.clauses, **kw)} AS INTEGER)"


def statements(since: float, until: float, bucket_seconds: float) -> dict[str, Select[Any]]:
    """The statements ``delivery_health`` runs for a window, by name: for reading their query plans."""
    return {
        "outcomes": _outcomes_query(since, until, bucket_seconds),
        "causes": _causes_query(since, until),
        "latency": _latency_query(since, until),
        "queued": _queued_query(until),
        "oldest_due": _oldest_due_query(until),
    }


def delivery_health(
    engine: Engine, window_seconds: float, bucket_seconds: float, now: Optional[float] = None
) -> DeliveryHealth:
    """Read the health of every postback rule over the last ``window_seconds``.

    :param window_seconds: how far back from ``now`` attempts count.
    :param bucket_seconds: width of a chart bucket (a minute for an hour's window, an hour for a day's).
    :param now: the end of the window (default: the current time).
    """
    if window_seconds <= 0 or bucket_seconds <= 0:
        raise ValueError("window_seconds and bucket_seconds must be positive")
    until = time.time() if now is None else now
    since = until - window_seconds
    buckets = max(1, int(-(-window_seconds // bucket_seconds)))
    with engine.connect() as conn:
        by_rule = _outcomes_by_bucket(conn, since, until, bucket_seconds)
        causes = _top_causes(conn, since, until)
        latency = _latencies(conn, since, until)
        queued = _queued(conn, until)
        oldest = _oldest_due(conn, until)
    hosts = host_statuses(engine)

    rule_ids = sorted(set(by_rule) | set(queued), key=lambda r: (-sum(by_rule.get(r, _Tally()).counts.values()), r))
    rules = []
    for rule_id in rule_ids:
        tally = by_rule.get(rule_id, _Tally())
        queue = queued.get(rule_id, _Queue())
        p50, p95 = latency.get(rule_id, (None, None))
        rules.append(
            RuleHealth(
                rule_id=rule_id,
                source_id=tally.source_id or queue.source_id,
                campaign_id=None
                if RuleId.parse(rule_id).kind == "source"
                else (tally.campaign_id or queue.campaign_id),
                counts={outcome: tally.counts.get(outcome, 0) for outcome in OUTCOMES},
                causes=causes.get(rule_id, []),
                p50_ms=p50,
                p95_ms=p95,
                hosts=sorted(tally.hosts | queue.hosts),
                queued=queue.count,
                oldest_due_at=queue.oldest_due_at,
                series=tally.series(buckets),
            )
        )
    total = _Tally()
    for tally in by_rule.values():
        total.merge(tally)
    overall_p50, overall_p95 = latency.get(None, (None, None))
    return DeliveryHealth(
        since=since,
        until=until,
        bucket_seconds=bucket_seconds,
        rules=rules,
        counts={outcome: total.counts.get(outcome, 0) for outcome in OUTCOMES},
        causes=causes.get(None, []),
        p50_ms=overall_p50,
        p95_ms=overall_p95,
        series=total.series(buckets),
        queue_depth=sum(q.count for q in queued.values()),
        due_now=sum(q.due_now for q in queued.values()),
        oldest_due=oldest,
        hosts=hosts,
    )


@dataclasses.dataclass
class _Tally:
    """One rule's attempts as the database counted them, before they become ``RuleHealth``."""

    source_id: Optional[str] = None
    campaign_id: Optional[str] = None
    counts: dict[str, int] = dataclasses.field(default_factory=dict)
    hosts: set[str] = dataclasses.field(default_factory=set)
    delivered: dict[int, int] = dataclasses.field(default_factory=dict)
    failed: dict[int, int] = dataclasses.field(default_factory=dict)

    def merge(self, other: _Tally) -> None:
        for outcome, count in other.counts.items():
            self.counts[outcome] = self.counts.get(outcome, 0) + count
        for mine, theirs in ((self.delivered, other.delivered), (self.failed, other.failed)):
            for bucket, count in theirs.items():
                mine[bucket] = mine.get(bucket, 0) + count

    def series(self, buckets: int) -> list[tuple[int, int]]:
        return [(self.delivered.get(i, 0), self.failed.get(i, 0)) for i in range(buckets)]


@dataclasses.dataclass
class _Queue:
    count: int = 0
    due_now: int = 0
    oldest_due_at: Optional[float] = None
    source_id: Optional[str] = None
    campaign_id: Optional[str] = None
    hosts: set[str] = dataclasses.field(default_factory=set)


def _in_window(since: float, until: float) -> ColumnElement[bool]:
    A = t.attempts
    return and_(A.c.started_at >= since, A.c.started_at < until)


def _outcomes_query(since: float, until: float, bucket_seconds: float) -> Select[Any]:
    """Attempts per (rule, host, outcome, bucket): one grouped range scan of the window."""
    A, D = t.attempts, t.deliveries
    bucket = _floor_int((A.c.started_at - since) / bucket_seconds).label("bucket")
    return (
        select(
            D.c.rule_id,
            func.max(D.c.source_id),
            func.max(D.c.campaign_id),
            D.c.host,
            A.c.outcome,
            bucket,
            func.count(),
        )
        .select_from(A.join(D, D.c.id == A.c.delivery_id))
        .where(_in_window(since, until))
        .group_by(D.c.rule_id, D.c.host, A.c.outcome, bucket)
    )


def _outcomes_by_bucket(conn: Connection, since: float, until: float, bucket_seconds: float) -> dict[str, _Tally]:
    tallies: dict[str, _Tally] = {}
    for rule_id, source_id, campaign_id, host, outcome, index, count in conn.execute(
        _outcomes_query(since, until, bucket_seconds)
    ):
        tally = tallies.setdefault(rule_id, _Tally())
        tally.source_id = tally.source_id or source_id
        tally.campaign_id = tally.campaign_id or campaign_id
        if host:
            tally.hosts.add(host)
        tally.counts[outcome] = tally.counts.get(outcome, 0) + count
        if outcome == "delivered":
            tally.delivered[index] = tally.delivered.get(index, 0) + count
        elif outcome == "failed":
            tally.failed[index] = tally.failed.get(index, 0) + count
    return tallies


def _causes_query(since: float, until: float) -> Select[Any]:
    """Per rule, its attempts not delivered counted by cause, most frequent first."""
    A, D = t.attempts, t.deliveries
    cause = cause_of(A).label("cause")
    return (
        select(D.c.rule_id, cause, func.count().label("n"))
        .select_from(A.join(D, D.c.id == A.c.delivery_id))
        .where(_in_window(since, until), A.c.outcome != "delivered")
        .group_by(D.c.rule_id, cause)
        .order_by(D.c.rule_id, func.count().desc(), cause)
    )


def _top_causes(conn: Connection, since: float, until: float) -> dict[Optional[str], list[CauseCount]]:
    """Per rule (and overall, key None) its most frequent causes."""
    found: dict[Optional[str], list[CauseCount]] = {}
    overall: dict[str, int] = {}
    for rule_id, code, count in conn.execute(_causes_query(since, until)):
        listed = found.setdefault(rule_id, [])
        if len(listed) < TOP_CAUSES:
            listed.append(CauseCount(str(code), int(count)))
        overall[str(code)] = overall.get(str(code), 0) + int(count)
    ranked = sorted(overall.items(), key=lambda item: (-item[1], item[0]))[:TOP_CAUSES]
    found[None] = [CauseCount(code, count) for code, count in ranked]
    return found


def _latency_query(since: float, until: float) -> Select[Any]:
    """p50 and p95 (nearest rank) of the window's attempt durations, per rule and overall (key None).

    Window functions rank the durations in the database; only the two ranked rows per rule (and two
    overall) come back.
    """
    A, D = t.attempts, t.deliveries
    timed = and_(_in_window(since, until), A.c.attempt >= 1, A.c.duration_ms.is_not(None))
    ranked = (
        select(
            D.c.rule_id,
            A.c.duration_ms,
            func.row_number().over(partition_by=D.c.rule_id, order_by=A.c.duration_ms).label("rank"),
            func.count().over(partition_by=D.c.rule_id).label("n"),
            func.row_number().over(order_by=A.c.duration_ms).label("rank_all"),
            func.count().over().label("n_all"),
        )
        .select_from(A.join(D, D.c.id == A.c.delivery_id))
        .where(timed)
        .subquery()
    )

    def nearest(rank: ColumnElement[int], n: ColumnElement[int], percent: int) -> ColumnElement[bool]:
        # ceil(percent / 100 * n) in integer arithmetic (// is integer division on both databases).
        return rank == (n * percent + 99) // 100

    return select(
        ranked.c.rule_id,
        ranked.c.duration_ms,
        nearest(ranked.c.rank, ranked.c.n, 50).label("rule_p50"),
        nearest(ranked.c.rank, ranked.c.n, 95).label("rule_p95"),
        nearest(ranked.c.rank_all, ranked.c.n_all, 50).label("all_p50"),
        nearest(ranked.c.rank_all, ranked.c.n_all, 95).label("all_p95"),
    ).where(
        nearest(ranked.c.rank, ranked.c.n, 50)
        | nearest(ranked.c.rank, ranked.c.n, 95)
        | nearest(ranked.c.rank_all, ranked.c.n_all, 50)
        | nearest(ranked.c.rank_all, ranked.c.n_all, 95)
    )


def _latencies(conn: Connection, since: float, until: float) -> dict[Optional[str], tuple[float, float]]:
    found: dict[Optional[str], dict[int, float]] = {}
    for rule_id, duration, rule_p50, rule_p95, all_p50, all_p95 in conn.execute(_latency_query(since, until)):
        for key, percent, hit in (
            (rule_id, 50, rule_p50),
            (rule_id, 95, rule_p95),
            (None, 50, all_p50),
            (None, 95, all_p95),
        ):
            if hit:
                found.setdefault(key, {})[percent] = float(duration)
    return {key: (marks[50], marks[95]) for key, marks in found.items()}


def _queued_query(now: float) -> Select[Any]:
    """Per rule, its deliveries still to send, those due now and the oldest due time."""
    D = t.deliveries
    due_now = and_(D.c.state == DeliveryState.DUE, D.c.next_attempt_at <= now)
    return (
        select(
            D.c.rule_id,
            func.max(D.c.source_id),
            func.max(D.c.campaign_id),
            D.c.host,
            func.count(),
            func.sum(case((due_now, 1), else_=0)),
            func.min(case((due_now, D.c.next_attempt_at), else_=None)),
        )
        .where(D.c.state.in_(PENDING_STATES))
        .group_by(D.c.rule_id, D.c.host)
    )


def _queued(conn: Connection, now: float) -> dict[str, _Queue]:
    queues: dict[str, _Queue] = {}
    for rule_id, source_id, campaign_id, host, count, due, oldest in conn.execute(_queued_query(now)):
        queue = queues.setdefault(rule_id, _Queue())
        queue.source_id = queue.source_id or source_id
        queue.campaign_id = queue.campaign_id or campaign_id
        if host:
            queue.hosts.add(host)
        queue.count += int(count)
        queue.due_now += int(due or 0)
        if oldest is not None and (queue.oldest_due_at is None or oldest < queue.oldest_due_at):
            queue.oldest_due_at = float(oldest)
    return queues


def _oldest_due_query(now: float) -> Select[Any]:
    """The delivery due now that became due first."""
    D = t.deliveries
    return (
        select(D.c.id, D.c.subid, D.c.rule_id, D.c.next_attempt_at, D.c.reason)
        .where(D.c.state == DeliveryState.DUE, D.c.next_attempt_at <= now)
        .order_by(D.c.next_attempt_at, D.c.id)
        .limit(1)
    )


def _oldest_due(conn: Connection, now: float) -> Optional[OldestDue]:
    row = conn.execute(_oldest_due_query(now)).first()
    return OldestDue(int(row[0]), row[1], row[2], float(row[3]), row[4]) if row else None
