"""The delivery dispatcher: claims due postbacks, sends them on a thread pool, records every outcome.

The same loop serves ``drain()`` (in the caller's thread, until nothing is due), the background
dispatcher of ``start()`` and the ``s2s-postback worker`` process.

How work moves:

- The loop claims due deliveries in batches (leases with fencing tokens, see ``queue``), keeping
  up to twice ``max_concurrency`` claimed so a sender never waits for the database.
- Each attempt runs on a pool thread with its own httpcore connection pool (``sender``); a
  thread finishing an attempt sends the next claimed delivery the limits allow itself, so
  threads are started only while the attempts in flight (the sum of the hosts' adaptive limits,
  at most ``max_concurrency``) outnumber them: against a source that answers at once, one to
  three, not ``max_concurrency`` threads taking turns at the GIL.
- Results are written by the loop in batches (one transaction for many attempts), then reported
  to ``on_postback_sent``, then marked reported: a crash in between reports them later.
- Limits: ``max_concurrency`` attempts in flight; per target host an adaptive limit capped by
  ``per_host_concurrency`` and a circuit breaker (``hostlimits``); retries never take more than
  three quarters of the slots, so first attempts always move.
- Fairness: claimed rows wait in one queue per host (``fairqueue``) and free slots go to the hosts
  in turn; while several hosts have work, none gets more than its share of the slots unless the
  others cannot use theirs, and none holds more than its quota of the claimed rows.
- Claims in flight are renewed while attempts run; ``close()`` lets attempts in flight finish,
  records them and gives unstarted claims back.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any, Optional

from hookspecs import PostbackAttempt, PostbackRequest, ResolveContext
from s2s_plugin.delivery.fairqueue import FairQueue
from s2s_plugin.delivery.hostlimits import HostBoard, signal_of
from s2s_plugin.delivery.policy import DELIVERED, FAILED, RETRY, next_delay
from s2s_plugin.delivery.sender import AttemptResult, Sender
from s2s_plugin.resolution.causes import Cause
from s2s_plugin.resolution.hosts import host_key
from s2s_plugin.resolution.redact import parse_secrets, redact, redact_body, redact_url, secret_values
from s2s_plugin.resolution.states import DeliveryState
from s2s_plugin.settings import DeliverySettings
from s2s_plugin.storage import queue
from s2s_plugin.storage.database import Database
from s2s_plugin.storage.rows import aware, loads

log = logging.getLogger("s2s_postback.delivery")

#: Attempts not reported this long after they were made belong to a worker that died: report them.
_ORPHAN_REPORT_AFTER = 300.0
#: How often the loop looks for skipped postbacks and orphaned attempts to report.
_REPORT_EVERY = 1.0
#: Finished attempts wait up to this long to be written together (one transaction for many)...
_FLUSH_EVERY = 0.02
#: ... or until this many are waiting: one write per batch, not per attempt, at any concurrency.
_FLUSH_BATCH = 64
#: The fewest claimed deliveries held whatever the concurrency (half of it for a host alone).
_MIN_HELD = 128
#: ... of which a host beside others may hold at least this many.
_MIN_SHARE = 16
#: A host is claimed for again once it has room for this many rows (or half its quota, if less).
_CLAIM_AT_LEAST = 64
#: A failed write is tried again after this long, doubling up to ``poll_interval``.
_RETRY_WRITE_AFTER = 0.05
#: How often the loop reads which hosts other processes opened or closed.
_HOSTS_EVERY = 0.5
#: A claim that found nothing beyond hosts at their quota is not repeated for this long, doubling
#: while it keeps finding nothing (a large backlog of one host would otherwise be looked through
#: again at every turn of the loop), up to the most.
_DRY_PAUSE, _DRY_PAUSE_MOST = 0.05, 1.0
#: ... but new work (``wake()``) is looked for within this long.
_LOOK_AFTER_WAKE = 0.1
#: A host whose claimed rows are all done keeps its share of the slots this long: it likely has
#: more due, not claimed yet (unless the last claim found all there was).
_SHARE_KEPT = 1.0

Build = Callable[[Any], tuple[PostbackRequest, Optional[ResolveContext], Optional[str], Optional[str]]]


@dataclasses.dataclass
class _Done:
    """A finished attempt waiting to be written: the claimed row, its completion, the request sent."""

    row: Any
    completion: queue.Completion
    gone: bool
    result: Optional[AttemptResult] = None
    sent: bool = False  # the request went out (not expired, no plugin problem)


class Dispatcher:
    """Claims and delivers due postbacks with at most ``max_concurrency`` in flight.

    :param database: the plugin's database (its owner closes it, after this dispatcher).
    :param build: ``build(row) -> (request, context, success_body, problem)`` for a claimed delivery
        row; ``problem`` (a sentence naming the failing plugin) means the request must not be sent.
    :param report: called with every ``PostbackAttempt`` (``on_postback_sent``).
    :param reports_wanted: whether anyone listens to ``report`` now; when not, attempts are
        written as reported and no ``PostbackAttempt`` is built for them.
    :param on_gone: called with a rule id whose target answered 410 Gone.
    """

    def __init__(
        self,
        database: Database,
        settings: DeliverySettings,
        sender: Sender,
        build: Build,
        report: Callable[[PostbackAttempt], None],
        on_gone: Callable[[str], None],
        attempt_from_rows: Callable[[Any, Any], PostbackAttempt],
        reports_wanted: Callable[[], bool] = lambda: True,
    ) -> None:
        self.database = database
        self.settings = settings
        self.sender = sender
        self._build = build
        self._report = report
        self._on_gone = on_gone
        self._attempt_from_rows = attempt_from_rows
        self._reports_wanted = reports_wanted
        self._pool = concurrent.futures.ThreadPoolExecutor(settings.max_concurrency, thread_name_prefix="s2s-send")
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._loop_lock = threading.Lock()  # one loop at a time: drain() and the background thread
        self._in_flight: dict[int, Any] = {}
        self._per_host: collections.Counter[str] = collections.Counter()
        self._held_per_host: collections.Counter[str] = collections.Counter()  # in flight + waiting
        self._retries_in_flight = 0
        self._waiting = FairQueue()
        self._hosts = HostBoard(settings)
        self._probes: set[int] = set()  # claimed deliveries that probe an open host
        self._hosts_at = 0.0
        self._dry: Optional[tuple[frozenset[str], float]] = None
        self._dry_pause = _DRY_PAUSE
        # The last claim found fewer due deliveries than it asked for: no host has work unclaimed,
        # so hosts may use slots beyond their share that nobody else can use.
        self._claimed_all = False
        #: Hosts whose due rows the last claim left behind (None: unknown, maybe any host's).
        self._left_hosts: Optional[set[Optional[str]]] = None
        self._claimed_at: dict[str, float] = {}  # host -> when rows of it were last claimed
        self._busy_count = 1  # hosts with work, as the last turn of the loop counted them
        self._results: collections.deque[_Done] = collections.deque()
        self._first_result_at: Optional[float] = None
        self._unmarked: list[int] = []  # reported attempts to mark in the next write
        self._unmarked_at = 0.0
        self._thread: Optional[threading.Thread] = None
        self._listener: Any = None
        self._rng = random.Random()
        self._report_at = 0.0
        self._renew_at = 0.0
        # After a failed renewal, the leases held may run out: ``_renewed_until`` is when the last
        # successful one made them end, so nothing is claimed or started past it (see _leases_safe).
        self._renew_failing = False
        self._renewed_until = 0.0
        self._write_failures = 0  # turns in a row the database refused a write: the retry back-off
        self._soonest_retry: Optional[float] = None
        # Claimed deliveries held (in flight and waiting), in all and per host: twice the
        # concurrency, so a sender never waits for the database; but never so few that claims
        # come one or two rows at a time (a claim is a transaction, a wake-up, a turn of the loop).
        self._held_cap = max(2 * settings.max_concurrency, _MIN_HELD)
        # Retries may fill at most this many slots: the rest stay free for first attempts.
        self._retry_slots = max(1, settings.max_concurrency - max(1, settings.max_concurrency // 4))

    # --- public -------------------------------------------------------------------------

    def wake(self) -> None:
        """New work may be due: look now instead of at the next poll."""
        # Setting a set event still takes its lock and notifies: skipped, as every conversion calls
        # this. The loop clears the event before it looks for work, so a set one covers this too.
        # New work may be another host's: the held hosts keep to their shares, and a claim looks for it.
        self._claimed_all, self._left_hosts = False, None
        dry = self._dry
        if dry is not None:
            # A look past the held hosts' backlog found nothing a moment ago; this work may be
            # another host's: look again within a tenth of a second (not at every claim: each look
            # reads through that backlog), starting the back-off over.
            soon = time.monotonic() + _LOOK_AFTER_WAKE
            if dry[1] > soon:
                self._dry = (dry[0], soon)
            self._dry_pause = _DRY_PAUSE
        if not self._wake.is_set():
            self._wake.set()

    def report_soon(self) -> None:
        """Skipped postbacks were recorded: report them on the next turn of the loop."""
        self._report_at = 0.0
        self._wake.set()

    def drain(self, timeout: float) -> int:
        """Deliver what is due now and what falls due within ``timeout`` seconds; attempts made."""
        deadline = time.monotonic() + timeout
        made = 0
        with self._loop_lock:
            self._report_at = 0.0
            while True:
                try:
                    made += self._step()
                    if self._busy():
                        pause = (
                            self._write_retry_pause()
                            if self._write_failures
                            else (_FLUSH_EVERY if self._results else 0.5)
                        )
                        self._wait(min(pause, max(0.0, deadline - time.monotonic())))
                    else:
                        next_due = queue.next_due_at(self.database)
                        if next_due is None:
                            break
                        pause = next_due - time.time()
                        if time.monotonic() + max(pause, 0) > deadline:
                            break
                        if pause > 0:
                            self._wait(pause)
                except Exception:  # the database failed a claim or a read: finished attempts are kept
                    log.exception("delivery failed to reach the database; retrying")
                    self._write_failures += 1
                    self._wait(min(self._write_retry_pause(), max(0.0, deadline - time.monotonic())))
                if time.monotonic() >= deadline:
                    self._finish_in_flight(max(0.0, self.settings.timeout + 1))
                    break
            # Finished attempts are written before returning, the database willing (their claims
            # are kept renewed meanwhile); after that they stay for the next drain() or close().
            self._write_all(time.monotonic() + self.settings.lease)
            self._report_safely()
        return made

    def start(self) -> None:
        """Run the dispatcher in a background thread until ``close()``."""
        if self._thread is not None:
            return
        self._stop.clear()
        if self.database.is_postgres:
            from s2s_plugin.storage.listen import Listener

            self._listener = Listener(self.database.engine, self.wake)
            self._listener.start()
        self._thread = threading.Thread(target=self._run, name="s2s-dispatcher", daemon=True)
        self._thread.start()

    def close(self, grace: Optional[float] = None) -> None:
        """Stop claiming, let attempts in flight finish (up to ``grace`` s, default ``timeout`` + 1),
        record them, and give unstarted claims back."""
        grace = self.settings.timeout + 1 if grace is None else grace
        self._stop.set()
        self._wake.set()
        if self._listener is not None:
            self._listener.stop()
            self._listener = None
        if self._thread is not None:
            self._thread.join(grace + 5)
            self._thread = None
        with self._lock:
            waiting = self._waiting.clear()
            for row in waiting:
                self._held_per_host[_host_of(row)] -= 1
        try:
            queue.release_many(self.database, waiting)
        except Exception:  # nothing was sent for these: their leases expire and they are claimed again
            log.exception("could not give back %d unstarted claims on shutdown", len(waiting))
        self._finish_in_flight(grace)
        # A loop turn still running (a slow database) finishes before the last writes, so two
        # writers never share the results; after the wait, they are written anyway.
        looping = self._loop_lock.acquire(timeout=max(grace, 5.0))
        try:
            self._write_all(time.monotonic() + max(grace, 5.0))
        finally:
            if looping:
                self._loop_lock.release()
        with self._lock:
            left, unwritten = len(self._in_flight), len(self._results)
        if left:
            log.warning("%d attempts still in flight at shutdown: their claims expire and are retried", left)
        if unwritten:
            log.error(
                "%d finished attempts could not be written before shutdown: their claims expire and they are sent again",
                unwritten,
            )
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.sender.close()

    def report_pending(self) -> None:
        """Report skips, and attempts whose worker died before reporting them, to ``on_postback_sent``."""
        self._report_at = time.monotonic() + _REPORT_EVERY
        for attempt_row, delivery_row in queue.take_unreported(self.database, older_than=_ORPHAN_REPORT_AFTER):
            self._safe_report(self._attempt_from_rows(attempt_row, delivery_row))

    # --- the loop -----------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._loop_lock:
                try:
                    self._step()
                except Exception:  # a database hiccup must not kill the dispatcher: log, back off, go on
                    log.exception("dispatcher loop failed; retrying")
                    self._stop.wait(self.settings.poll_interval)
                    continue
            pause = self.settings.poll_interval
            if self._soonest_retry is not None:
                pause = min(pause, self._soonest_retry - time.time())
            if self._busy():  # claims held: wake in time to renew them and to write results
                pause = min(pause, self._renew_at - time.monotonic(), _FLUSH_EVERY)
            if self._write_failures:  # the database refused a write: try again, backing off
                pause = min(max(pause, self._write_retry_pause()), self._renew_at - time.monotonic())
            self._wait(max(0.0, pause))

    def _write_retry_pause(self) -> float:
        return min(self.settings.poll_interval, _RETRY_WRITE_AFTER * 2.0 ** min(self._write_failures - 1, 10))

    def _step(self) -> int:
        """One turn: write finished attempts, report, renew leases, claim and start more.

        A write the database refuses is kept and tried again on the next turn; until finished
        attempts are written and the leases held are sure, nothing more is claimed or started:
        a claim could take over one of this worker's own expired leases and send it again.
        """
        written = self._flush()
        now = time.monotonic()
        if self._unmarked and (now - self._unmarked_at > 0.2 or not self._busy()):
            self._mark_unmarked()
        if now >= self._report_at:
            self._report_safely()
        if now >= self._renew_at:
            self._renew()
        if self._soonest_retry is not None and self._soonest_retry <= time.time():
            self._soonest_retry = None
        if not written or not self._leases_safe():
            self._write_failures += 1
            return 0
        self._write_failures = 0
        return self._fill()

    def _busy(self) -> bool:
        with self._lock:
            return bool(self._in_flight or self._waiting or self._results)

    def _wait(self, seconds: float) -> None:
        self._wake.wait(seconds)
        self._wake.clear()

    def _fill(self) -> int:
        """Claim as much as there is room for, then start what the limits allow."""
        if self._stop.is_set():
            return self._start_waiting()[0]
        settings = self.settings
        now = time.monotonic()
        if now >= self._hosts_at or self._hosts.has_changes():
            self._hosts_at = now + _HOSTS_EVERY
            if self._hosts.persist(self.database):
                self._dry = None
            self._hosts.refresh(self.database)
            self._defer_open_hosts()
            self._left_hosts = None  # circuits may have closed: their hosts' rows are due again
        give_back: list[Any] = []
        with self._lock:
            held = len(self._in_flight) + len(self._waiting)
            room = self._held_cap - held
            hosts = self._busy_count = len(self._busy_hosts())
            if room < _CLAIM_AT_LEAST:
                give_back = self._over_quota(hosts)
                room += len(give_back)
            retries_held = self._retries_in_flight + sum(1 for row in self._waiting if row.lane)
            # A host is left out of the claim while it holds all but a batch's worth of its quota:
            # claiming a few of its rows at a time would cost a claim (and a transaction) for every
            # few postbacks. The hosts claimed for take no more than the least room among them,
            # so a claim never takes rows it has to give back.
            full, wants, held_hosts = set(), [], set()
            for h, n in self._held_per_host.items():
                if n <= 0:
                    continue
                held_hosts.add(h)
                quota = self._quota(h, hosts)
                if n > self._claim_point(quota, self._hosts.limit(h)):
                    full.add(h)
                else:
                    wants.append(quota - n)
            # Slots free while rows wait: the held hosts are at their limits, another host may have work.
            worth_it = self._claim_worth_it(held) or len(self._in_flight) < settings.max_concurrency
        if give_back:
            queue.release_many(self.database, give_back)
        dry = self._dry
        if dry is not None and now >= dry[1]:
            dry = self._dry = None
        # With hosts left out, look for other hosts' rows only if the last claim left some behind
        # (or who knows), and not again soon after a look found none: a look reads through the
        # left-out hosts' backlog (the claim index is not by host) to find nothing.
        known = self._left_hosts
        # Hosts the last claim left rows of, not left out now: claim for them.
        left_behind = known is not None and not known <= full | {None}
        # Rows beyond the last claim's window, of hosts unknown: look for them, unless a look past
        # the same hosts found nothing a moment ago.
        others = (known is None or None in known) and not (dry is not None and full | held_hosts <= dry[0])
        # Hosts other than those held now, known to have rows left: the claim looks past the held
        # hosts (once they reach their share of it) for them. A look past a large backlog of the
        # held hosts reads through all of it, so it is made only when it may find something.
        elsewhere = known is not None and not known <= full | held_hosts | {None}
        if room > 0 and worth_it and (left_behind or others or wants or not full):
            room = min(room, settings.claim_batch)
            retries = max(0, min(room // 2, 2 * self._retry_slots - retries_held))
            probes: list[int] = []
            left: set[Optional[str]] = set()
            with self._lock:  # hosts known to have work: held now, or claimed a moment ago
                before = {h for h, n in self._held_per_host.items() if n > 0}
                before.update(h for h, at in self._claimed_at.items() if now - at < _SHARE_KEPT)
            rows = queue.claim(
                self.database,
                fresh=room - retries,
                retries=retries,
                lease_seconds=settings.lease,
                exclude_hosts=sorted(full),
                probe_window=settings.timeout + settings.circuit_max_cooldown,
                probes=probes,
                host_cap=min([self._quota("", hosts + 1), *wants]),
                left=left,
                look_past=others or elsewhere,  # what a host not seen yet (or not claimed now) may hold
            )
            if any(_host_of(row) not in before for row in rows):
                self._dry, self._dry_pause = None, _DRY_PAUSE  # other hosts have work: look again soon
            elif others:
                self._dry = (frozenset(full | before), now + self._dry_pause)
                self._dry_pause = min(2 * self._dry_pause, _DRY_PAUSE_MOST)
            # Hosts left out of the claim may have more due too: only when none was is all work known.
            self._claimed_all = not left and not full and len(rows) < room
            self._left_hosts = left | full
            extra = []
            with self._lock:
                self._probes.update(probes)
                if len(self._claimed_at) > 1000:
                    self._claimed_at = {h: at for h, at in self._claimed_at.items() if now - at < _SHARE_KEPT}
                for row in rows:
                    host = _host_of(row)
                    self._claimed_at[host] = now
                    if row.id not in self._probes and self._held_per_host[host] >= self._quota(host, hosts):
                        extra.append(row)  # this claim took more of one host than it may hold
                        continue
                    self._held_per_host[host] += 1
                    # A probe waits in a queue of its own: its host's queue is for rows that wait.
                    self._waiting.append(_PROBES if row.id in self._probes else host, row)
            if extra:
                queue.release_many(self.database, extra)
        return self._start_waiting()[0]

    def _over_quota(self, hosts: int) -> list[Any]:
        """The newest waiting rows of hosts holding more than their quota, taken out of the books
        (the lock is held): rows claimed while fewer hosts had work. When the claimed rows fill
        up, other hosts' rows (maybe queued behind theirs) need the room, and hosts that never
        answer would keep it for a whole timeout."""
        taken: list[Any] = []
        for host, count in list(self._held_per_host.items()):
            over = count - self._quota(host, hosts)
            if over > 0:
                rows = self._waiting.take_last(host, over)
                self._held_per_host[host] -= len(rows)
                taken += rows
        return taken

    def _busy_hosts(self) -> set[str]:
        """Hosts with work: rows in flight or waiting, or claimed a moment ago (the lock is held)."""
        busy = {h for h, n in self._per_host.items() if n > 0}
        busy.update(self._waiting.hosts())
        busy.discard(_PROBES)
        if not self._claimed_all:
            recently = time.monotonic() - _SHARE_KEPT
            busy.update(h for h, at in self._claimed_at.items() if at > recently)
        return busy

    def _quota(self, host: str, hosts: int) -> int:
        """Claimed rows ``host`` may hold (in flight and waiting) while ``hosts`` hosts have work:
        twice its limit (at least half the floor while it is alone, ``_MIN_SHARE`` beside others,
        so claims come in batches), but no more than its share of all, nor three quarters of all:
        other hosts' rows always find room (and the rows of hosts that never answer stay few)."""
        wanted = max(2 * self._hosts.limit(host), _MIN_HELD // 2 if hosts <= 1 else _MIN_SHARE)
        return max(1, min(wanted, self._held_cap * 3 // 4, self._held_cap // max(1, hosts)))

    def _defer_open_hosts(self) -> None:
        """Give back the waiting rows of hosts whose circuit is open, saying why (no attempt spent)."""
        deferred = []
        with self._lock:
            for host in self._waiting.hosts():
                if self._hosts.is_open(host):
                    rows = self._waiting.take(host)
                    self._held_per_host[host] -= len(rows)
                    deferred.append((rows, self._hosts.waiting_reason(host)))
        for rows, reason in deferred:
            queue.defer(self.database, rows, reason, Cause.HOST_NOT_ANSWERING)

    @staticmethod
    def _claim_point(quota: int, limit: int) -> int:
        """Rows a host holds when it is claimed for again: all but a batch of its quota (at least
        one row, at most half of it, and no more than half of what it holds beyond its limit:
        its senders must not run dry while the claim is made)."""
        return quota - max(1, min(quota // 2, _CLAIM_AT_LEAST, (quota - limit) // 2))

    def _claim_worth_it(self, held: int) -> bool:
        """Whether to claim with ``held`` deliveries claimed: in batches, not one row per freed
        slot; but never leaving the senders idle."""
        settings = self.settings
        room = self._held_cap - held
        return room >= min(settings.claim_batch, self._held_cap // 2) or held < settings.max_concurrency

    def _start_waiting(self, keep: bool = False) -> tuple[int, Any]:
        """Start what the limits allow of the waiting rows: how many, and (with ``keep``) the first
        of them, marked in flight but left for the calling sender to send itself."""
        with self._lock:
            free = self.settings.max_concurrency - len(self._in_flight)
            if free <= 0 or not self._waiting:
                return 0, None
            per_host, hosts, waiting = self._per_host, self._hosts, self._waiting
            busy = self._busy_hosts()
            # Each host's share of the slots while the others have work too.
            share = -(-self.settings.max_concurrency // max(1, len(busy)))

            def room(host: str, bound: int) -> int:
                if host == _PROBES:
                    return free
                if hosts.is_open(host):
                    return 0
                return min(hosts.limit(host), bound) - per_host[host]

            def fresh_only() -> bool:
                return self._retries_in_flight >= self._retry_slots

            rows = waiting.take_turns(free, lambda h: room(h, share), fresh_only)
            kept = self._start(rows, keep)  # before the second turn: room() counts what they took
            left = free - len(rows)
            if left > 0 and len(busy) > 1:
                # Slots the hosts with rows waiting cannot use within their shares (the others are at
                # their own limits) go to them beyond their shares, up to their limits; except the
                # shares of hosts whose next rows are not claimed yet (they had some a moment ago).
                if not self._claimed_all:
                    left -= sum(max(0, min(share, hosts.limit(h)) - per_host[h]) for h in busy if not waiting.held(h))
                if left > 0:
                    more = waiting.take_turns(left, lambda h: room(h, self.settings.max_concurrency), fresh_only)
                    following = self._start(more, keep and kept is None)
                    kept = kept if kept is not None else following
                    rows += more
        return len(rows), kept

    def _start(self, rows: list[Any], keep: bool = False) -> Any:
        """Mark ``rows`` in flight and hand them to the senders (the lock is held); with ``keep``,
        the first is returned instead, for the calling sender: a thread that finished an attempt
        sends the next itself, without a hand-over to another thread."""
        kept = None
        for row in rows:
            self._per_host[_host_of(row)] += 1
            if row.lane:
                self._retries_in_flight += 1
            self._in_flight[row.id] = row
            if keep and kept is None:
                kept = row
            else:
                self._pool.submit(self._run_one, row)
        return kept

    def _run_one(self, row: Any) -> None:
        """Send ``row``, then whatever waiting row the limits give this thread next."""
        while row is not None:
            row = self._run_and_next(row)

    def _run_and_next(self, row: Any) -> Any:
        done: Optional[_Done] = None
        try:
            done = self._deliver(row)
        except Exception as exc:  # _deliver records its own failures: this is a bug in that code itself
            log.exception("delivery %s crashed", row.id)
            done = _last_resort(row, exc)
        finally:
            # Whatever happened, the claim leaves the books: a result to write, never a lease left
            # to expire (an expired lease sends the postback again, unseen).
            with self._lock:
                if done is not None:
                    try:
                        done = self._feed_hosts(row, done)
                    except Exception:  # the host's limits only steer sending: the result must be kept
                        log.exception("delivery %s: the host's limits could not take the result", row.id)
                self._in_flight.pop(row.id, None)
                host = _host_of(row)
                self._per_host[host] -= 1
                self._held_per_host[host] -= 1
                if row.lane:
                    self._retries_in_flight -= 1
                if done is not None:
                    if not self._results:
                        self._first_result_at = time.monotonic()
                    self._results.append(done)
                # Wake the loop only when it has something to do: a first result to time a write by,
                # a full batch to write, room to claim into, a host with nothing left waiting, a
                # circuit opened or closed, or nothing left in flight. Waking it for every attempt
                # costs a thread switch per postback.
                wake = (
                    self._hosts.has_changes()
                    or not self._waiting.held(host)  # its claimed rows are all started: claim more of it
                    or len(self._results) in (1, _FLUSH_BATCH)
                    # it has room for a claim's worth (hosts counted as of the last claim: cheaper)
                    or self._held_per_host[host]
                    == self._claim_point(self._quota(host, self._busy_count), self._hosts.limit(host))
                )
        following = None
        if not self._write_failures:  # while the database refuses writes, nothing more is sent
            following = self._start_waiting(keep=True)[1]
        if wake or not self._in_flight:
            self._wake.set()
        return following

    def _feed_hosts(self, row: Any, done: _Done) -> _Done:
        """Tell the host's limit and breaker how the attempt went (the lock is held); when it opened
        the host's circuit, its reason says so."""
        host = _host_of(row)
        probe = row.id in self._probes
        self._probes.discard(row.id)
        if done.result is None:
            return done
        values = done.completion.attempt
        note = self._hosts.record(
            host,
            signal_of(done.result, done.sent),
            duration_ms=done.result.duration_ms,
            started_at=values.get("started_at") or 0.0,
            probe=probe,
            retry_after=done.result.retry_after,
            # Work waited for the host while it had all the attempts its limit allows.
            saturated=self._waiting.held(host) > 0 and self._per_host[host] >= self._hosts.limit(host),
            in_flight=self._per_host[host],
        )
        if note is None:
            return done
        reason = f"{done.completion.reason}; {note}"
        completion = dataclasses.replace(done.completion, reason=reason, attempt={**values, "reason": reason})
        return dataclasses.replace(done, completion=completion)

    def _finish_in_flight(self, grace: float) -> None:
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            with self._lock:
                if not self._in_flight:
                    return
            self._wait(0.05)

    def _renew(self) -> bool:
        """Extend every claim held: in flight, waiting, and finished but not yet written."""
        lease = self.settings.lease
        with self._lock:
            rows = list(self._in_flight.values()) + list(self._waiting) + [done.row for done in self._results]
        until = time.time() + lease  # no later than the database's: renew() reads the clock after this
        try:
            renewed = queue.renew(self.database, rows, lease)
        except Exception:
            self._renew_failing = True
            self._renew_at = time.monotonic() + min(1.0, lease / 10)
            log.warning("could not renew %d claims; trying again", len(rows), exc_info=True)
            return False
        self._renew_failing, self._renewed_until = False, until
        self._renew_at = time.monotonic() + lease / 3
        self._drop_lost(renewed)
        return True

    def _drop_lost(self, renewed: set[int]) -> None:
        """Forget waiting claims another worker took over (after they expired): never start them."""
        with self._lock:
            lost = self._waiting.drop(lambda row: row.id not in renewed)
            if not lost:
                return
            for row in lost:
                self._held_per_host[_host_of(row)] -= 1
        log.warning("%d waiting claims expired and were taken over by another worker; left to it", len(lost))

    def _leases_safe(self) -> bool:
        """Whether every claim held is sure to be ours for a while yet (renewals may be failing)."""
        if not self._renew_failing:
            return True
        with self._lock:
            held = [*self._in_flight.values(), *self._waiting, *(done.row for done in self._results)]
        if not held:
            return True
        # A claim made after the last renewal ends when the claim said; older ones when it did.
        ends = min(max(row.lease_until or 0.0, self._renewed_until) for row in held)
        return time.time() < ends - self.settings.lease / 4

    # --- writing results ----------------------------------------------------------------

    def _flush(self, force: bool = False) -> bool:
        """Write finished attempts in one transaction, report them; they are marked reported in the
        next write (a crash in between reports them again later, never loses one).

        :return: False when the database refused the write: the attempts stay, first in line, and
            a later call writes them (their claims are renewed meanwhile), so none is sent again
            because its record was lost.
        """
        while True:
            with self._lock:
                if not force and self._results and self._in_flight:
                    # More are about to finish: wait for a fuller batch, but not long.
                    full = len(self._results) >= _FLUSH_BATCH
                    if not full and time.monotonic() - (self._first_result_at or 0) < _FLUSH_EVERY:
                        return True
                batch = list(self._results)
                self._results.clear()
                self._first_result_at = None
            if not batch:
                if force and self._unmarked:
                    return self._mark_unmarked()
                return True
            report = self._reports_wanted()
            try:
                written = queue.record_many(
                    self.database, [(d.row, d.completion) for d in batch], self._unmarked, heard=not report
                )
            except Exception:
                with self._lock:
                    self._results.extendleft(reversed(batch))
                    self._first_result_at = time.monotonic()
                log.warning(
                    "could not write %d finished attempts; they are kept and written again", len(batch), exc_info=True
                )
                return False
            self._unmarked = []
            reported = []
            for done, record in zip(batch, written):
                if record.attempt_id is None:
                    continue
                try:
                    self._recorded_now(done, record, report)
                except Exception:  # the attempt is written: reported later, as a worker's that died
                    log.exception("delivery %s: the recorded attempt could not be reported", done.row.id)
                    continue
                if report:
                    reported.append(record.attempt_id)
            self._unmarked, self._unmarked_at = reported, time.monotonic()
            if not force:
                return True

    def _recorded_now(self, done: _Done, record: queue.Written, report: bool = True) -> None:
        """A written attempt's consequences: a flagged rule, the next wake-up, the report (when
        ``report``)."""
        if not record.current:
            log.warning(
                "delivery %s: its claim was taken over before the attempt was written; logged as late", done.row.id
            )
        else:
            if done.gone:
                self._on_gone(done.row.rule_id)
            if done.completion.next_attempt_at is not None:
                soonest = self._soonest_retry
                self._soonest_retry = (
                    min(soonest, done.completion.next_attempt_at) if soonest else done.completion.next_attempt_at
                )
        if not report:
            return
        attempt = _attempt(done.row, done.completion)
        if not record.current:
            attempt = dataclasses.replace(
                attempt, reason=f"{attempt.reason}; {queue.LATE_NOTE}", cause=str(Cause.LATE_RESULT)
            )
        self._safe_report(attempt)

    def _mark_unmarked(self) -> bool:
        """Note reported attempts as such; kept for the next write when the database refuses."""
        try:
            queue.mark_reported(self.database, self._unmarked)
        except Exception:
            log.warning("could not note %d attempts as reported; trying again", len(self._unmarked), exc_info=True)
            return False
        self._unmarked = []
        return True

    def _write_all(self, deadline: float) -> bool:
        """Write every finished attempt, trying again (and renewing their claims) until ``deadline``."""
        self._write_failures = 0
        while not self._flush(force=True):
            self._write_failures += 1
            if time.monotonic() >= deadline:
                return False
            if time.monotonic() >= self._renew_at:
                self._renew()
            time.sleep(min(self._write_retry_pause(), max(0.0, deadline - time.monotonic())))
        self._write_failures = 0
        return True

    def _report_safely(self) -> None:
        try:
            self.report_pending()
        except Exception:  # the database is down: skips and orphans are reported on a later turn
            log.warning("could not look for attempts to report; trying again", exc_info=True)

    # --- one delivery -------------------------------------------------------------------

    def _deliver(self, row: Any) -> _Done:
        """One attempt of a claimed delivery, ending as a result to write whatever fails on the way."""
        started_at = time.time()
        expired = self._expired(row, started_at)
        problem_cause = Cause.PLUGIN_FAILED
        try:
            request, _context, success_body, problem = self._build(row)
        except Exception as exc:  # a plugin, a template or the database, before anything was sent
            log.exception("delivery %s: the request could not be built", row.id)
            request, success_body, problem = stored_request(row), None, internal_error(exc)
            problem_cause = Cause.INTERNAL_ERROR
        sent = False
        if expired:
            result = AttemptResult(FAILED, expired, Cause.MAX_AGE)
        elif problem:
            # A plugin could not prepare the request (see docs/hooks.md): nothing is sent, and the
            # delivery retries on its schedule, so a fixed plugin or setting still delivers it.
            result = AttemptResult(RETRY, f"not sent: {problem}", problem_cause, error=problem)
        else:
            sent = True
            result = self._send(row, request, success_body)
        try:
            done = self._recorded(row, request, result, started_at)
        except Exception as exc:  # deciding or redacting failed: record what is known for sure
            log.exception("delivery %s: the attempt could not be recorded in full", row.id)
            done = _recorded_plainly(row, request, result, started_at, exc, sent)
        done.result, done.sent = result, sent  # for the host's limit and breaker
        return done

    def _send(self, row: Any, request: PostbackRequest, success_body: Optional[str]) -> AttemptResult:
        """``sender.send``, with an exception turned into a failed attempt."""
        started = time.perf_counter()
        try:
            return self.sender.send(
                request,
                success_body=success_body,
                follow_redirects=bool(row.follow_redirects),
                secret_names=parse_secrets(row.secrets),
            )
        except Exception as exc:
            log.exception("delivery %s: sending failed", row.id)
            error = internal_error(exc)
            # The request may have reached the source before the error (decoding or judging its
            # answer): sending it again could count the conversion twice, so only a resend does.
            return AttemptResult(
                FAILED,
                f"{error}; not retried, as the source may have received it: resend it once the cause is fixed",
                Cause.INTERNAL_ERROR_SENT,
                error=error,
                duration_ms=round((time.perf_counter() - started) * 1000, 2),
            )

    def _recorded(self, row: Any, request: PostbackRequest, result: AttemptResult, started_at: float) -> _Done:
        """The attempt's record and the delivery's next state."""
        attempt_no = row.attempts + 1
        state, next_at, reason = self._decide(row, result, attempt_no)
        if row.resolve_note:
            reason = f"{reason}; {row.resolve_note}"
        # Marked names (the rule's secrets) and marked values (a prepare_request hook's) are
        # redacted wherever the attempt is recorded.
        names = parse_secrets(row.secrets)
        body = request.body.decode("utf-8", "replace") if request.body else None
        # The marked values are masked everywhere, the answer too: a source may echo the request.
        values_ = (*request.secrets, *secret_values(request.url, body, request.headers, names))
        reason = redact(reason, values_) or reason
        values = {
            "attempt": attempt_no,
            "outcome": _OUTCOMES.get(state, "failed"),
            "method": request.method,
            "url": redact(redact_url(request.url, names), values_),
            "body": redact(redact_body(body, names), values_),
            "http_status": result.http_status,
            "response_body": redact(result.response_body, values_),
            "response_truncated": result.response_truncated,
            "error": redact(result.error, values_),
            "reason": reason,
            "cause": result.cause,
            "duration_ms": result.duration_ms,
            "started_at": started_at,
            "next_attempt_at": next_at,
            "reported": False,
        }
        completion = queue.Completion(state, next_at, values, result.http_status, reason, result.cause)
        return _Done(row, completion, result.gone)

    def _expired(self, row: Any, now: float) -> Optional[str]:
        """Why the delivery is too old to send, or None."""
        since = row.age_from or row.created_at
        if now - since <= self.settings.max_age:
            return None
        return (
            f"not sent: the postback was queued {_human(now - since)} ago, beyond the maximum age of "
            f"{_human(self.settings.max_age)}; resend it to try again"
        )

    def _decide(self, row: Any, result: AttemptResult, attempt_no: int) -> tuple[DeliveryState, Optional[float], str]:
        """The delivery's next state, next attempt time and reason (its cause stays the result's:
        a postback given up after timeouts failed because of the timeouts)."""
        if result.outcome == DELIVERED:
            return DeliveryState.DELIVERED, None, result.reason
        if result.outcome == RETRY:
            delay = self._next_delay(row, result, attempt_no)
            if delay is None:
                return DeliveryState.FAILED, None, f"{result.reason}; gave up after {attempt_no} attempts"
            now = time.time()
            since = row.age_from or row.created_at
            if now + delay - since > self.settings.max_age:
                return (
                    DeliveryState.FAILED,
                    None,
                    (
                        f"{result.reason}; gave up: the next try would come after the maximum age of "
                        f"{_human(self.settings.max_age)}"
                    ),
                )
            why = f"{result.reason}; retrying in {_human(delay)}"
            if result.retry_after is not None:
                asked = _human(result.retry_after)
                capped = result.retry_after > self.settings.retry_after_cap
                why += f" (the source asked for {asked} with Retry-After" + (
                    f", capped at {_human(self.settings.retry_after_cap)})" if capped else ")"
                )
            return DeliveryState.DUE, now + delay, why
        return DeliveryState.FAILED, None, result.reason

    def _next_delay(self, row: Any, result: AttemptResult, attempt_no: int) -> Optional[float]:
        return next_delay(
            self.settings.retry_schedule,
            attempt_no - (row.retry_base or 0),
            retry_after=result.retry_after,
            retry_after_cap=self.settings.retry_after_cap,
            jitter=self.settings.jitter,
            rng=self._rng,
        )

    def _safe_report(self, attempt: PostbackAttempt) -> None:
        try:
            self._report(attempt)
        except Exception:  # a host's log failing must not stop delivery
            log.exception("on_postback_sent failed for delivery %s attempt %s", attempt.delivery_id, attempt.attempt)


def internal_error(exc: BaseException) -> str:
    """An attempt's reason for an error in the plugin's own code or the database, naming it:
    ``internal error: LookupError: unknown encoding: base64``."""
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"internal error: {type(exc).__name__}: {message}" if message else f"internal error: {type(exc).__name__}"


def stored_request(row: Any) -> PostbackRequest:
    """The request as the delivery row stores it, before any ``prepare_request`` hook."""
    return PostbackRequest(
        method=row.method,
        url=row.url,
        headers=headers_of(row) if row.headers else {},
        body=row.body.encode("utf-8") if row.body else None,
        template=row.template,
        rule_id=row.rule_id,
    )


def _guarded(make: Callable[[], Optional[str]]) -> Optional[str]:
    """A redacted value, or None when redacting it fails (nothing unredacted is ever recorded)."""
    try:
        return make()
    except Exception:
        return None


def _recorded_plainly(
    row: Any, request: PostbackRequest, result: AttemptResult, started_at: float, exc: BaseException, sent: bool
) -> _Done:
    """The attempt's record when deciding or redacting failed: a request that may have reached the
    source is not retried (delivered if it was), one that was not sent fails, with the error named."""
    names = parse_secrets(row.secrets)
    try:
        body = request.body.decode("utf-8", "replace") if request.body else None
        masked = (*request.secrets, *secret_values(request.url, body, request.headers, names))
    except Exception:  # the secrets cannot be known: record no text that could hold one
        masked = None

    def masking(text: Optional[str]) -> Optional[str]:
        return None if masked is None else _guarded(lambda: redact(text, masked))

    error = masking(internal_error(exc)) or f"internal error: {type(exc).__name__}"
    said = masking(result.reason)
    if result.outcome == DELIVERED:
        state, outcome, cause = DeliveryState.DELIVERED, "delivered", result.cause
    else:
        state, outcome = DeliveryState.FAILED, "failed"
        cause = Cause.INTERNAL_ERROR_SENT if sent else Cause.INTERNAL_ERROR
    reason = (
        f"{error}, while recording the attempt"
        + (f"; {said}" if said else "")
        + (
            "; not retried, as the source may have received it: resend it once the cause is fixed"
            if sent and state == DeliveryState.FAILED
            else ""
        )
    )
    values = {
        "attempt": row.attempts + 1,
        "outcome": outcome,
        "method": request.method,
        "url": masking(_guarded(lambda: redact_url(request.url, names))),
        "body": None,
        "http_status": result.http_status,
        "response_body": None,
        "response_truncated": bool(result.response_truncated),
        "error": error,
        "reason": reason,
        "cause": cause,
        "duration_ms": result.duration_ms,
        "started_at": started_at,
        "next_attempt_at": None,
        "reported": False,
    }
    return _Done(row, queue.Completion(state, None, values, result.http_status, reason, cause), False)


def _last_resort(row: Any, exc: BaseException) -> _Done:
    """The record of an attempt whose own handling failed: whether it was sent is unknown, so it is
    not retried."""
    # The message may quote the request: masked like any attempt's text, or left out.
    error = (
        _guarded(
            lambda: redact(
                internal_error(exc),
                secret_values(row.url, row.body, headers_of(row) if row.headers else {}, parse_secrets(row.secrets)),
            )
        )
        or f"internal error: {type(exc).__name__}"
    )
    reason = f"{error}; the attempt's outcome is unknown and it is not retried: resend it once the cause is fixed"
    values = {
        "attempt": row.attempts + 1,
        "outcome": "failed",
        "method": row.method,
        "url": None,
        "body": None,
        "http_status": None,
        "response_body": None,
        "response_truncated": False,
        "error": error,
        "reason": reason,
        "cause": Cause.INTERNAL_ERROR_SENT,
        "duration_ms": None,
        "started_at": time.time(),
        "next_attempt_at": None,
        "reported": False,
    }
    completion = queue.Completion(DeliveryState.FAILED, None, values, None, reason, Cause.INTERNAL_ERROR_SENT)
    return _Done(row, completion, False)


def _attempt(row: Any, done: queue.Completion) -> PostbackAttempt:
    values = done.attempt
    return PostbackAttempt(
        delivery_id=row.id,
        subid=row.subid,
        tid=row.tid,
        status=row.status,
        source_id=row.source_id,
        campaign_id=row.campaign_id,
        rule_id=row.rule_id,
        method=values["method"],
        url=values["url"],
        body=values["body"],
        attempt=values["attempt"],
        outcome=values["outcome"],
        http_status=values["http_status"],
        response_body=values["response_body"],
        error=values["error"],
        reason=values["reason"],
        cause=None if values.get("cause") is None else str(values["cause"]),
        duration_ms=values["duration_ms"],
        started_at=aware(values["started_at"]),
        next_attempt_at=aware(values["next_attempt_at"]),
        response_truncated=values["response_truncated"],
    )


#: The attempt's outcome (``PostbackAttempt.outcome``) for the delivery's new state.
_OUTCOMES = {DeliveryState.DELIVERED: "delivered", DeliveryState.DUE: "retrying"}

#: The key of the queue that probes of open hosts wait in (no host key looks like it).
_PROBES = " probes"


def _host_of(row: Any) -> str:
    return row.host or host_key(row.url)


def _human(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def headers_of(row: Any) -> dict[str, str]:
    """A delivery row's stored headers."""
    return {str(k): str(v) for k, v in loads(row.headers).items()}
