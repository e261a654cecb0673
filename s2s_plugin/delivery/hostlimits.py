"""Per-host limits: how many attempts a target host gets at once, and whether it gets any.

- ``ConcurrencyLimit``: a latency-aware limit per host, in the style of TCP Vegas (and Netflix's
  concurrency-limits). While work waits for the host, it judges the host's answers in rounds (a
  limit's worth, at least 16; 8 during slow start) by their median, against the host's *no-load*
  time (the lowest round time of the last 10-20 s). ``in flight x (1 - no_load / round time)``
  is how many of the attempts in flight only waited (in the source's queue, or for our own CPU)
  instead of adding throughput. While that is under ``alpha`` (half an attempt for two, ``2 log10
  limit`` for more), one more attempt would add throughput: the limit grows, doubling per round
  until the first sign of queueing (slow start), then by one per round. Past ``beta`` (``alpha``
  and up to one more) in two rounds in a row (one slow round is a pause, not a trend) it shrinks
  towards what the host could use, at most by half, and the next round, at half the limit,
  corrects the no-load time (measured at a limit where attempts already waited, it flatters
  them). Answer times miss one wait: where our own CPU is the bottleneck, a sender also waits for
  its turn before it sends. So the answers per second judge too: a limit grown by a fifth or more
  that did not raise them by 40 % of its growth goes back (and the next round checks at half),
  and a round at half the limit that answers 90 % as many per second keeps the limit there. A
  limit that proved too many is tried again after 4 rounds, then 8, up to 64. After four rounds
  of holding, a round at half the limit checks the no-load time and the rate too. So a source
  answering in 50 ms gets 64 attempts at once within about 0.3 s, and one answering at once
  (where more attempts only cost GIL hand-offs) one, trying two now and then. A timeout, a
  connection error, 429 or 503 still halves it, at most once per round trip. It starts at 4;
  ``per_host_concurrency`` caps it.
- A circuit breaker per host: after ``circuit_failures`` failed attempts in a row (no connection,
  no answer in time, 5xx, 429) the host is *open*: its deliveries wait, spending neither attempts
  nor slots, and after a cool-down one *probe* is sent. An answer closes it, and the deliveries
  that waited become due at once; a failed probe opens it again for longer.

The breaker's state lives in ``s2s_hosts``, shared by every process on the database: claims leave
open hosts' deliveries alone (``queue.claim``), and ``explain``, ``stats()`` and the metrics read
it. ``HostBoard`` is one dispatcher's view: its limits, its failure counts, the open hosts it has
read, and the changes it has yet to write.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from datetime import UTC, datetime
from typing import Any, Optional

from sqlalchemy import Engine, bindparam, case, or_, select, update
from sqlalchemy.engine import Dialect

from s2s_plugin.delivery.policy import RETRY
from s2s_plugin.resolution.causes import Cause
from s2s_plugin.resolution.states import DeliveryState
from s2s_plugin.settings import DeliverySettings
from s2s_plugin.storage import tables as t
from s2s_plugin.storage.database import Database, dialect_insert
from s2s_plugin.storage.queue import notify_compiled
from s2s_plugin.storage.rawsql import RawStatement, compile_raw

CLOSED, OPEN, PROBING = "closed", "open", "probing"

#: What an attempt says about its host.
ANSWERED, OVERLOADED, FAILING, NEUTRAL = "answered", "overloaded", "failing", "neutral"

#: The adaptive limit of a host never seen before (or the cap, when that is lower).
START_LIMIT = 4
#: A round of the limit is this many answers at least (else a limit's worth)...
_ROUND_ANSWERS = 16
#: ... and this many during slow start, so a source answering in 50 ms reaches 64 attempts in a
#: few tenths of a second (the first round, not judged, is a limit's worth).
_START_ROUND_ANSWERS = 8
#: After a limit proved too many (its extra attempts only waited), growing back to it waits this
#: many rounds, doubling each time it proves too many again, up to the most: an extra attempt
#: that only waits is tried again now and then, not every other round.
_BACKOFF_FIRST, _BACKOFF_MOST = 4, 64
#: A limit grown by a fifth or more must raise the answers per second by this share of its growth
#: (0.4: twice the attempts, 40 % more answers), or it goes back: where our own CPU is what
#: attempts wait for, the wait is partly outside the answer times (a thread waiting for its turn
#: before it sends), which the rate sees and the answer times do not.
_GROWTH_PAYS = 0.4
#: A round at half the limit answering at least this share of the limit's rate shows the other
#: half only waited: the limit stays there.
_HALF_KEEPS = 0.9
#: The no-load time is the lowest round time of the current and the previous window of this many
#: seconds: it follows a source that became slower for good within two windows.
_NO_LOAD_WINDOW = 10.0
#: After this many rounds that neither grew nor shrank the limit, a round at half of it checks
#: the no-load time.
_PROBE_AFTER = 4
#: The limits are written to ``s2s_hosts`` at most this often per host (for stats and metrics).
_WRITE_LIMIT_EVERY = 1.0


def signal_of(result: Any, sent: bool) -> str:
    """What an attempt's result (``sender.AttemptResult``) says about its host.

    ``answered``: an HTTP answer that is not 5xx or 429 (whatever it means for the postback);
    ``overloaded``: a timeout, a connection error, 429 or 503 (the limit shrinks, the breaker counts);
    ``failing``: another 5xx (the breaker counts); ``neutral``: nothing was sent (expired, refused
    by the target check, a plugin's problem).
    """
    if not sent:
        return NEUTRAL
    status = result.http_status
    if status is None:
        # Network trouble carries the exception; a refused target or a bad URL does not.
        return OVERLOADED if result.outcome == RETRY and result.error else NEUTRAL
    if status in (429, 503):
        return OVERLOADED
    if status >= 500:
        return FAILING
    return ANSWERED


def display_host(host: str) -> str:
    """A host key as people write it: ``s.example.com`` for ``s.example.com:443`` or ``:80``."""
    name, _, port = host.rpartition(":")
    return name if port in ("80", "443") and name else host


def clock(epoch: Optional[float]) -> str:
    """``12:03:05 UTC`` for an epoch time."""
    if epoch is None:
        return "-"
    return datetime.fromtimestamp(epoch, UTC).strftime("%H:%M:%S UTC")


def not_answering(host: str, opened_at: Optional[float], next_probe_at: Optional[float]) -> str:
    """The sentence for an open host, as ``explain`` and the reasons give it."""
    return (
        f"source host {display_host(host)} is not answering since {clock(opened_at)}; "
        f"next probe at {clock(next_probe_at)}"
    )


def _alpha(limit: int) -> float:
    """How many of ``limit`` attempts may only wait, and the limit still grow (see ``ConcurrencyLimit``)."""
    return max(0.5, 2.0 * math.log10(limit))


def _beta(limit: int) -> float:
    """How many of ``limit`` attempts may only wait before the limit shrinks: ``alpha`` and one
    more (half of ``alpha`` more while that is under 2). At two attempts, where the second only
    waits whenever our own CPU is what they wait for (about one waiting), that means back to one."""
    alpha = _alpha(limit)
    return alpha + min(1.0, alpha / 2)


class ConcurrencyLimit:
    """One host's attempts in flight: grows while more of them raise throughput without raising
    answer times, shrinks when answer times rise above the host's no-load time, halves on overload.

    :param cap: the most it ever allows (``per_host_concurrency``).
    :param start: where it starts (``START_LIMIT``, or the cap when lower).
    """

    __slots__ = (
        "_backoff",
        "_base_at",
        "_base_before",
        "_base_now",
        "_busy",
        "_ceiling",
        "_ceiling_wait",
        "_grown_from",
        "_holds",
        "_load",
        "_over",
        "_probe_from",
        "_rate_at",
        "_round",
        "_round_start",
        "_trying",
        "_warm",
        "cap",
        "cut_at",
        "starting",
        "value",
    )

    def __init__(self, cap: int, start: int = START_LIMIT) -> None:
        self.cap = cap
        self.value = float(max(1, min(start, cap)))
        self.starting = True  # slow start: doubling per round until the first sign of queueing
        self.cut_at = 0.0
        # The no-load time: the lowest round time (see _end_round) of this window and the last.
        self._base_now = self._base_before = math.inf
        self._base_at: Optional[float] = None  # when this window began (monotonic seconds)
        self._round: list[float] = []
        self._busy = 0  # answers of this round that came while work waited at the limit
        self._load = 0  # the attempts in flight at this round's answers, summed
        self._warm = False  # a round was seen (the first is not judged)
        self._holds = 0  # rounds in a row that neither grew nor shrank the limit
        self._over = 0  # rounds in a row whose attempts waited too much (past slow start, two shrink)
        self._probe_from: Optional[float] = None  # the limit to return to after a probe round
        # The last limit whose extra attempts only waited, and the rounds before trying it again.
        self._ceiling: Optional[int] = None
        self._ceiling_wait = 0
        self._backoff = _BACKOFF_FIRST
        self._trying = False  # the limit grew back to the ceiling: this round tells whether it helps
        self._round_start: Optional[float] = None  # when this round began (the last one ended)
        self._rate_at: Optional[tuple[int, float]] = None  # (limit, answers per second) of the last round judged
        self._grown_from: Optional[tuple[int, float]] = None  # the same, for the limit before it grew

    @property
    def current(self) -> int:
        """Attempts the host may have in flight now."""
        return max(1, int(self.value))

    @property
    def no_load_ms(self) -> Optional[float]:
        """The host's answer time without queueing (None before it is known)."""
        quickest = min(self._base_now, self._base_before)
        return None if quickest == math.inf else quickest

    def answered(
        self, duration_ms: float, saturated: bool, now: Optional[float] = None, in_flight: Optional[int] = None
    ) -> None:
        """An answer in ``duration_ms``; ``saturated``: the host was at its limit with work waiting.

        :param now: ``time.monotonic()`` (tests pass their own).
        :param in_flight: the host's attempts in flight as it came, this one included (the limit
            when not given).
        """
        self._round.append(duration_ms)
        self._busy += saturated
        self._load += self.current if in_flight is None else in_flight
        if len(self._round) >= self.round_answers:
            self._end_round(time.monotonic() if now is None else now)

    @property
    def round_answers(self) -> int:
        """How many answers make the current round: a limit's worth, at least ``_ROUND_ANSWERS``
        (``_START_ROUND_ANSWERS`` during slow start; the first round, not judged, a limit's worth)."""
        if not self._warm:
            return self.current
        return max(_START_ROUND_ANSWERS if self.starting else _ROUND_ANSWERS, self.current)

    def _end_round(self, now: float) -> None:
        times, busy, load = sorted(self._round), self._busy, self._load / len(self._round)
        self._round, self._busy, self._load = [], 0, 0
        started, self._round_start = self._round_start, now
        rate = len(times) / (now - started) if started is not None and now > started else None
        # Most answers came while work waited at the limit: the limit is what held the host back,
        # and the round tells whether more would help. Otherwise it can only tell that the
        # attempts there were already waited for each other.
        saturated = busy * 2 >= len(times)
        if not self._warm:
            # The first round's answers waited for new connections and threads: not judged.
            self._warm = True
            return
        # The round's time is its median: a source whose answers merely vary (a slow one now and
        # then, or every other one) keeps it steady; queueing, at the source or for our own CPU,
        # raises it.
        typical = times[len(times) // 2]
        rotated = self._note_round_time(typical, now)
        limit = self.current
        if self._probe_from is not None:
            back, self._probe_from = self._probe_from, None
            before = self._rate_at
            if saturated and rate and before and before[0] == int(back) and rate >= before[1] * _HALF_KEEPS:
                # Half the attempts answered about as many per second: the other half only waited.
                self.starting = False
                self._ceiling, self._ceiling_wait = int(back), self._backoff
                self._rate_at = (limit, rate)
                return
            self.value = back  # otherwise the probe round only measured
            return
        no_load = self.no_load_ms
        if no_load is None or typical <= 0:
            return
        trying, self._trying = self._trying, False
        grown_from, self._grown_from = self._grown_from, None
        if saturated and rate and grown_from and not self._growth_paid(grown_from, limit, rate):
            # More attempts, not more answers: back to where it was, and this limit waits.
            self.value = float(grown_from[0])
            self._too_many(limit, trying)
            return
        if saturated and rate:
            self._rate_at = (limit, rate)
        # Little's law: with ``load`` attempts in flight the host completes load / typical answers
        # per ms; without queueing it would be load / no_load. The difference, in attempts, only
        # waited (at the source, or for our own CPU).
        load = min(float(limit), load)
        in_flight = max(1, round(load))
        waiting = load * max(0.0, 1.0 - no_load / typical)
        alpha = _alpha(in_flight)
        over = waiting > _beta(in_flight)
        self._over = self._over + 1 if over else 0
        # One slow round (a pause of our own process, a hiccup of the source's) is not a trend:
        # past slow start, the limit shrinks on the second in a row.
        if over and (self.starting or self._over >= 2 or trying):
            self._over = 0
            # Down to what the host could use, keeping alpha's headroom; at most by half.
            self.value = max(1.0, self.value / 2, load - waiting + alpha)
            self._too_many(limit, trying)
            return
        if over or not saturated:
            return  # the limit was not what held the host back: this round says nothing more
        if trying:  # back at the ceiling, and it did not prove too many this time: forget it
            self._ceiling, self._backoff = None, _BACKOFF_FIRST
        if waiting < alpha:
            self._grow()
            return
        self.starting = False
        self._holds += 1
        if self._holds >= _PROBE_AFTER or rotated:
            self._probe()

    def _too_many(self, limit: int, trying: bool) -> None:
        """``limit`` proved too many (the value is already lowered): slow start ends, growing back
        to it waits (longer each time it proves so again), and the next round checks at half:
        the no-load time was likely measured while attempts already waited for our own CPU, and
        where more attempts did not pay, fewer may do as well."""
        self.starting = False
        self._backoff = min(2 * self._backoff, _BACKOFF_MOST) if trying else _BACKOFF_FIRST
        self._ceiling, self._ceiling_wait = limit, self._backoff
        self._probe()

    @staticmethod
    def _growth_paid(grown_from: tuple[int, float], limit: int, rate: float) -> bool:
        """Whether growing from ``grown_from`` (limit, rate) to ``limit`` raised the rate enough
        (checked for growths of a fifth or more: smaller ones are within a round's noise)."""
        before, before_rate = grown_from
        growth = (limit - before) / before
        return growth < 0.2 or rate >= before_rate * (1 + _GROWTH_PAYS * growth)

    def _grow(self) -> None:
        """One more attempt (twice as many during slow start), unless that reaches the ceiling
        before its wait is over."""
        self._holds = 0
        self._grown_from = self._rate_at if self._rate_at and self._rate_at[0] == self.current else None
        grown = min(float(self.cap), 2.0 * self.value if self.starting else self.value + 1.0)
        if self._ceiling is not None and int(grown) >= self._ceiling:
            if self._ceiling_wait > 0:
                self._ceiling_wait -= 1
                grown = min(grown, self._ceiling - 1.0)  # up to just under it meanwhile
            else:
                self._trying = True
        self.value = max(self.value, grown)

    def _probe(self) -> None:
        """One round at half the limit: is the no-load time still right? Where our own CPU is what
        the attempts wait for, that round's time is lower, and so the limit."""
        self._holds = 0
        if self.current > 1:
            self._probe_from = self.value
            self.value = max(1.0, self.value / 2)

    def _note_round_time(self, typical: float, now: float) -> bool:
        """Take a round's time into the no-load time; True when a new window began."""
        rotated = False
        if self._base_at is None:
            self._base_at = now
        elif now - self._base_at >= _NO_LOAD_WINDOW:
            # A window older than two is forgotten too (nothing was sent to the host meanwhile).
            self._base_before = self._base_now if now - self._base_at < 2 * _NO_LOAD_WINDOW else math.inf
            self._base_now, self._base_at, rotated = math.inf, now, True
        self._base_now = min(self._base_now, typical)
        return rotated

    def overloaded(self, started_at: float) -> None:
        """A timeout, connection error, 429 or 503 of an attempt started at ``started_at`` (epoch)."""
        if started_at < self.cut_at:
            return  # it began before the last cut: that cut already answered this round trip
        self.value = max(1.0, self.value / 2)
        self.starting = False
        self.cut_at = time.time()
        self._probe_from = None
        self._round, self._busy, self._load = [], 0, 0  # the answers before the cut were at another limit
        self._round_start, self._grown_from = None, None


@dataclasses.dataclass
class _Host:
    limit: ConcurrencyLimit
    failures: int = 0
    written_limit: Optional[int] = None
    written_at: float = 0.0


class HostBoard:
    """One dispatcher's limits and breakers, by host key. Thread-safe."""

    def __init__(self, settings: DeliverySettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._hosts: dict[str, _Host] = {}
        #: Hosts whose circuit is not closed: host -> (opened_at, next_probe_at).
        self._open: dict[str, tuple[Optional[float], Optional[float]]] = {}
        self._to_open: dict[str, tuple[int, float, float]] = {}  # host -> (failures, opened_at, next probe)
        self._to_close: set[str] = set()

    def _host(self, host: str) -> _Host:
        entry = self._hosts.get(host)
        if entry is None:
            entry = self._hosts[host] = _Host(ConcurrencyLimit(self.settings.per_host_concurrency, START_LIMIT))
        return entry

    def limit(self, host: str) -> int:
        """Attempts ``host`` may have in flight now."""
        entry = self._hosts.get(host)
        return entry.limit.current if entry else min(START_LIMIT, self.settings.per_host_concurrency)

    def limits(self) -> dict[str, int]:
        """Every known host's current limit."""
        with self._lock:
            return {host: entry.limit.current for host, entry in self._hosts.items()}

    def is_open(self, host: str) -> bool:
        """Whether ``host``'s deliveries must wait (its circuit is open or being probed)."""
        return host in self._open

    def open_hosts(self) -> list[str]:
        """The hosts whose deliveries must wait."""
        return list(self._open)

    def waiting_reason(self, host: str) -> str:
        """The reason a delivery of an open host gives while it waits."""
        opened_at, next_probe_at = self._open.get(host, (None, None))
        return f"waiting: {not_answering(host, opened_at, next_probe_at)}; no attempt is spent meanwhile"

    def record(
        self,
        host: str,
        signal: str,
        *,
        duration_ms: float,
        started_at: float,
        saturated: bool,
        probe: bool,
        retry_after: Optional[float] = None,
        in_flight: Optional[int] = None,
    ) -> Optional[str]:
        """Feed one attempt's result; returns a sentence for its reason when it opened the circuit.

        ``saturated`` and ``in_flight`` (this attempt included) are the host's state as it ended
        (see ``ConcurrencyLimit.answered``)."""
        with self._lock:
            entry = self._host(host)
            if signal == ANSWERED:
                entry.limit.answered(duration_ms, saturated, in_flight=in_flight)
                entry.failures = 0
                if host in self._open or probe:
                    self._open.pop(host, None)
                    self._to_open.pop(host, None)
                    self._to_close.add(host)
                    return f"source host {display_host(host)} answers again: its waiting postbacks are due now"
                return None
            if signal == NEUTRAL:
                return None
            if signal == OVERLOADED:
                entry.limit.overloaded(started_at)
            entry.failures += 1
            if host in self._open and not probe:
                return None  # in flight when the circuit opened: it keeps its own retry
            if not probe and entry.failures < self.settings.circuit_failures:
                return None
            now = time.time()
            opened_at = self._open.get(host, (None, None))[0] or now
            # Each failed probe waits about as long again as the host has been down, within bounds.
            cooldown = min(self.settings.circuit_max_cooldown, max(self.settings.circuit_cooldown, now - opened_at))
            if retry_after is not None:
                cooldown = max(cooldown, min(retry_after, self.settings.retry_after_cap))
            next_probe_at = now + cooldown
            self._open[host] = (opened_at, next_probe_at)
            self._to_open[host] = (entry.failures, opened_at, next_probe_at)
            self._to_close.discard(host)
            what = "the probe failed" if probe else f"{entry.failures} attempts in a row failed"
            return (
                f"{what}: {not_answering(host, opened_at, next_probe_at)}; its postbacks wait without "
                "spending attempts until then"
            )

    def has_changes(self) -> bool:
        """Whether circuits opened or closed since the last ``persist``."""
        return bool(self._to_open or self._to_close)

    def persist(self, database: Database) -> bool:
        """Write opened and closed circuits (and limits, at most once a second per host) to
        ``s2s_hosts``; the deliveries of a newly opened host say why they wait. True when a circuit
        closed (its deliveries are due now)."""
        now = time.time()
        with self._lock:
            to_open, self._to_open = self._to_open, {}
            to_close, self._to_close = self._to_close, set()
            limits = []
            for host, entry in self._hosts.items():
                current = entry.limit.current
                if current != entry.written_limit and now - entry.written_at >= _WRITE_LIMIT_EVERY:
                    entry.written_limit, entry.written_at = current, now
                    limits.append((host, current))
            reasons = {host: self.waiting_reason(host) for host in to_open}
        if not (to_open or to_close or limits):
            return False
        with database.transaction() as tx:
            tx.execute_many(
                database.compiled(_upsert_limit),
                [
                    {"host": host, "state": CLOSED, "failures": 0, "concurrency_limit": current, "updated_at": now}
                    for host, current in limits
                ],
            )
            for host, (failures, opened_at, next_probe_at) in to_open.items():
                opened = {"state": OPEN, "failures": failures, "opened_at": opened_at, "next_probe_at": next_probe_at}
                tx.execute(database.compiled(_upsert_open), {**opened, "host": host, "updated_at": now})
                tx.execute(
                    database.compiled(_waiting_reason),
                    {"b_reason": reasons[host], "b_cause": Cause.HOST_NOT_ANSWERING, "b_now": now, "b_host": host},
                )
            tx.execute_many(database.compiled(_close), [{"b_now": now, "b_host": host} for host in to_close])
            if to_close and tx.postgres:  # other workers: these hosts' deliveries are due
                tx.execute(database.compiled(notify_compiled))
        return bool(to_close)

    def refresh(self, database: Database) -> None:
        """Read which hosts are open from ``s2s_hosts`` (other processes open and close them too)."""
        with database.reading() as read:
            rows = read.execute(database.compiled(_open_hosts)).fetchall()
        with self._lock:
            shared = {host: (opened_at, next_probe_at) for host, opened_at, next_probe_at in rows}
            for host in self._to_close:
                shared.pop(host, None)  # closed here, not written yet
            for host, (_failures, opened_at, next_probe_at) in self._to_open.items():
                shared[host] = (opened_at, next_probe_at)
            for host in set(self._open) - set(shared):
                entry = self._hosts.get(host)
                if entry is not None:
                    entry.failures = 0  # another worker's probe closed it
            self._open = shared


def _upsert_limit(dialect: Dialect) -> RawStatement:
    """A host's adaptive limit, written as it moves (the host's row made if it has none)."""
    H = t.hosts
    upsert = dialect_insert(dialect, H)
    upsert = upsert.on_conflict_do_update(
        index_elements=["host"],
        set_={"concurrency_limit": upsert.excluded.concurrency_limit, "updated_at": upsert.excluded.updated_at},
    )
    return compile_raw(upsert, dialect, ("host", "state", "failures", "concurrency_limit", "updated_at"))


def _upsert_open(dialect: Dialect) -> RawStatement:
    """A host's circuit opened."""
    H = t.hosts
    upsert = dialect_insert(dialect, H)
    new = upsert.excluded
    upsert = upsert.on_conflict_do_update(
        index_elements=["host"],
        set_={
            "state": new.state,
            "failures": new.failures,
            # Opened already (by another worker): since when stays; the next probe is the later one.
            "opened_at": case((or_(H.c.state == CLOSED, H.c.opened_at.is_(None)), new.opened_at), else_=H.c.opened_at),
            "next_probe_at": new.next_probe_at,
            "updated_at": new.updated_at,
        },
    )
    return compile_raw(upsert, dialect, ("host", "state", "failures", "opened_at", "next_probe_at", "updated_at"))


def _close(dialect: Dialect) -> RawStatement:
    """A host's circuit closed."""
    close = (
        update(t.hosts)
        .where(t.hosts.c.host == bindparam("b_host"))
        .values(state=CLOSED, failures=0, opened_at=None, next_probe_at=None, updated_at=bindparam("b_now"))
    )
    return compile_raw(close, dialect)


def _waiting_reason(dialect: Dialect) -> RawStatement:
    """The reason of a newly opened host's deliveries due now, which wait for the probe (those
    waiting for a later retry of their own keep the reason that says when and why)."""
    D = t.deliveries
    waiting = (
        update(D)
        .where(
            D.c.host == bindparam("b_host"), D.c.state == DeliveryState.DUE, D.c.next_attempt_at <= bindparam("b_now")
        )
        .values(reason=bindparam("b_reason"), cause=bindparam("b_cause"), updated_at=bindparam("b_now"))
    )
    return compile_raw(waiting, dialect)


def _open_hosts(dialect: Dialect) -> RawStatement:
    H = t.hosts
    return compile_raw(select(H.c.host, H.c.opened_at, H.c.next_probe_at).where(H.c.state != CLOSED), dialect)


@dataclasses.dataclass(frozen=True)
class HostStatus:
    """One target host as ``s2s_hosts`` has it: ``state`` (closed, open, probing), consecutive
    ``failures``, ``opened_at`` and ``next_probe_at`` (epoch seconds or None), and the adaptive
    ``concurrency_limit`` last written."""

    host: str
    state: str
    failures: int
    opened_at: Optional[float]
    next_probe_at: Optional[float]
    concurrency_limit: Optional[int]

    @property
    def is_open(self) -> bool:
        """Whether its deliveries wait for a probe."""
        return self.state != CLOSED

    def describe(self) -> str:
        """``source host s.example.com is not answering since ...; next probe at ...`` (open hosts)."""
        return not_answering(self.host, self.opened_at, self.next_probe_at)


def host_statuses(engine: Engine, hosts: Optional[list[str]] = None) -> dict[str, HostStatus]:
    """The hosts ``s2s_hosts`` knows (or just ``hosts``), by host key."""
    from sqlalchemy import select

    H = t.hosts
    query = select(H.c.host, H.c.state, H.c.failures, H.c.opened_at, H.c.next_probe_at, H.c.concurrency_limit)
    if hosts is not None:
        if not hosts:
            return {}
        query = query.where(H.c.host.in_(hosts))
    with engine.connect() as conn:
        return {row.host: HostStatus(*row) for row in conn.execute(query.order_by(H.c.host))}
