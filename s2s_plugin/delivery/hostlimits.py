"""Per-host limits: how many attempts a target host gets at once, and whether it gets any.

- ``ConcurrencyLimit``: an AIMD limit per host. It starts modestly, grows by one per quick answer
  while work waits for the host (doubling per round trip, like TCP's slow start, until the first
  cut; then by one per round trip; an answer four times slower than the host's usual, the source
  queueing our requests, does not grow it), and halves on a timeout, a connection error, 429 or 503, at
  most once per round trip. ``per_host_concurrency`` caps it.
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
import threading
import time
from datetime import UTC, datetime
from typing import Any, Optional

from sqlalchemy import Engine

from s2s_plugin.delivery.policy import RETRY
from s2s_plugin.resolution.causes import Cause
from s2s_plugin.settings import DeliverySettings
from s2s_plugin.storage import rawdb
from s2s_plugin.storage import tables as t

CLOSED, OPEN, PROBING = "closed", "open", "probing"

#: What an attempt says about its host.
ANSWERED, OVERLOADED, FAILING, NEUTRAL = "answered", "overloaded", "failing", "neutral"

#: The adaptive limit of a host never seen before (or the cap, when that is lower).
START_LIMIT = 8
#: An answer slower than this many times the host's usual time (plus a margin for a busy machine's
#: scheduling, which delays answers without the source being any slower) does not grow the limit.
_SLOW_FACTOR, _SLOW_MARGIN_MS = 4.0, 50.0
#: The limits are written to ``s2s_hosts`` at most this often per host (for stats and metrics).
_WRITE_LIMIT_EVERY = 1.0

_HOSTS = t.hosts.name


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


class ConcurrencyLimit:
    """Additive increase, multiplicative decrease of one host's attempts in flight."""

    __slots__ = ("cap", "cut_at", "starting", "usual_ms", "value")

    def __init__(self, cap: int, start: int = START_LIMIT) -> None:
        self.cap = cap
        self.value = float(max(1, min(start, cap)))
        self.starting = True  # slow start: +1 per quick answer until the first cut
        self.usual_ms: Optional[float] = None
        self.cut_at = 0.0

    @property
    def current(self) -> int:
        """Attempts the host may have in flight now."""
        return max(1, int(self.value))

    def answered(self, duration_ms: float, saturated: bool) -> None:
        """An answer in ``duration_ms``; ``saturated``: the host was at its limit with work waiting."""
        usual = self.usual_ms
        if usual is None or duration_ms < usual:
            self.usual_ms = usual = duration_ms
        else:
            self.usual_ms = usual + (duration_ms - usual) * 0.01  # follows a host that slows for good
        if not saturated or duration_ms > _SLOW_FACTOR * usual + _SLOW_MARGIN_MS:
            return  # nothing waits, or the source is queueing our requests: more would not help
        step = 1.0 if self.starting else 1.0 / self.value
        self.value = min(float(self.cap), self.value + step)

    def overloaded(self, started_at: float) -> None:
        """A timeout, connection error, 429 or 503 of an attempt started at ``started_at`` (epoch)."""
        if started_at < self.cut_at:
            return  # it began before the last cut: that cut already answered this round trip
        self.value = max(1.0, self.value / 2)
        self.starting = False
        self.cut_at = time.time()


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
            entry = self._hosts[host] = _Host(ConcurrencyLimit(self.settings.per_host_concurrency))
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
    ) -> Optional[str]:
        """Feed one attempt's result; returns a sentence for its reason when it opened the circuit."""
        with self._lock:
            entry = self._host(host)
            if signal == ANSWERED:
                entry.limit.answered(duration_ms, saturated)
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

    def persist(self, engine: Engine) -> bool:
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
        with rawdb.transaction(engine) as cur:
            for host, current in limits:
                cur.execute(_UPSERT_LIMIT, [host, CLOSED, 0, current, now])
            for host, (failures, opened_at, next_probe_at) in to_open.items():
                cur.execute(_UPSERT_OPEN, [host, OPEN, failures, opened_at, next_probe_at, now])
                cur.execute(_WAITING_REASON, [reasons[host], Cause.HOST_NOT_ANSWERING, now, host, now])
            for host in to_close:
                cur.execute(_CLOSE, [now, host])
            if to_close and cur.postgres:
                from s2s_plugin.storage.queue import CHANNEL

                cur.execute(f"NOTIFY {CHANNEL}")  # other workers: these hosts' deliveries are due
        return bool(to_close)

    def refresh(self, engine: Engine) -> None:
        """Read which hosts are open from ``s2s_hosts`` (other processes open and close them too)."""
        with rawdb.reading(engine) as cur:
            rows = cur.execute(
                f"SELECT host, opened_at, next_probe_at FROM {_HOSTS} WHERE state <> 'closed'"
            ).fetchall()
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


_UPSERT_LIMIT = (
    f"INSERT INTO {_HOSTS} (host, state, failures, concurrency_limit, updated_at) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (host) DO UPDATE SET concurrency_limit = excluded.concurrency_limit, updated_at = excluded.updated_at"
)
_UPSERT_OPEN = (
    f"INSERT INTO {_HOSTS} (host, state, failures, opened_at, next_probe_at, updated_at) VALUES (?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (host) DO UPDATE SET state = excluded.state, failures = excluded.failures, "
    # Opened already (by another worker): since when stays; the next probe is the later one.
    f"opened_at = CASE WHEN {_HOSTS}.state = 'closed' OR {_HOSTS}.opened_at IS NULL THEN excluded.opened_at "
    f"ELSE {_HOSTS}.opened_at END, next_probe_at = excluded.next_probe_at, updated_at = excluded.updated_at"
)
_CLOSE = (
    f"UPDATE {_HOSTS} SET state = 'closed', failures = 0, opened_at = NULL, next_probe_at = NULL, updated_at = ? "
    "WHERE host = ?"
)
# The deliveries due now, which wait for the probe (those waiting for a later retry of their own
# keep the reason that says when and why).
_WAITING_REASON = f"UPDATE {t.deliveries.name} SET reason = ?, cause = ?, updated_at = ? WHERE host = ? AND state = 'due' AND next_attempt_at <= ?"


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
