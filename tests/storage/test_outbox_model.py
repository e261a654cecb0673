"""The outbox, model-checked: hypothesis interleaves conversions, status changes, claims, sends,
answers, lease expiries, worker deaths, failed writes and resends against the real store, on
SQLite and on PostgreSQL, and checks after every step:

- one delivery per (conversion, status, rule);
- every delivery is due, in flight (leased), or ended with a reason;
- every request that reached the source is in the attempt log, except those whose worker died
  before writing them and those still held by a live worker: per delivery,
  ``recorded == sent - lost at deaths - held`` (so ``sent <= recorded + in flight at deaths``);
- a delivery's ``attempts`` counts its recorded attempts but the late ones (whose claim had been
  taken over): none is counted twice, even when a write is repeated after its answer was lost.

Workers are played by the test with the store's own functions (``queue.claim``, ``record_many``
as the dispatcher writes results, ``renew``, ``release_many``, ``make_due``) on a clock the test
moves, so a lease expires in one step instead of a minute. A failed write raises inside the
transaction after the delivery was updated (the whole write must roll back); a lost answer
commits but the worker never hears of it, and writes the same results again later.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import time
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test
from sqlalchemy import delete, func, select

from hookspecs import Click, Conversion
from s2s_plugin.storage import queue
from s2s_plugin.storage import tables as t
from s2s_plugin.storage.rawsql import RawTransaction

LEASE = 30.0
WORKERS = 2
SUBIDS = ("c0", "c1", "c2")
STATUSES = ("lead", "sale", "rejected", "rebill")
TIDS = (None, "t1", "t2")
#: Examples per database and steps per example: each database runs in well under a minute on 2 cores.
#: ``S2S_OUTBOX_EXAMPLES=2000 pytest --timeout=0 tests/storage`` explores further (minutes per database).
EXAMPLES = int(os.environ.get("S2S_OUTBOX_EXAMPLES", "100"))
STEPS = 40


class WriteFault(Exception):
    """The connection failed in the middle of a write (raised after the delivery was updated)."""


@dataclasses.dataclass
class Finished:
    """A worker's finished attempt, not yet known to be written; ``committed`` once it was,
    though the worker did not hear of it."""

    row: Any
    completion: queue.Completion
    committed: bool = False


@dataclasses.dataclass
class Worker:
    """What one worker holds, by (delivery id, lease token)."""

    claimed: dict[tuple[int, int], Any] = dataclasses.field(default_factory=dict)
    sending: dict[tuple[int, int], Any] = dataclasses.field(default_factory=dict)
    finished: dict[tuple[int, int], Finished] = dataclasses.field(default_factory=dict)

    def held(self) -> list[Any]:
        return [*self.claimed.values(), *self.sending.values(), *(f.row for f in self.finished.values())]


def _pick(keys: Any, k: int) -> Any:
    ordered = sorted(keys)
    return ordered[k % len(ordered)]


def _one_of(workers: list[Worker], has: Any, k: int) -> Worker:
    """One of the workers that hold something (``has(worker)``), chosen by ``k``."""
    eligible = [w for w in workers if has(w)]
    return eligible[k % len(eligible)]


def _machine(pm: Any, s2s: Any, faults: dict[str, bool], counts: collections.Counter) -> type:
    engine = s2s.engine
    database = s2s.database

    class Outbox(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            counts["examples"] += 1  # every state machine hypothesis ran
            with engine.begin() as conn:
                for table in (t.attempts, t.deliveries, t.events, t.conversions, t.clicks):
                    conn.execute(delete(table))
            for subid in SUBIDS:
                pm.hook.on_click(
                    click=Click(subid=subid, campaign_id="summer", source_id="exo", params={"external_id": subid})
                )
            self.offset = 0.0  # how far the test moved the clock ahead of real time
            self.seq = 0
            self.workers = [Worker() for _ in range(WORKERS)]
            self.sent: collections.Counter[int] = collections.Counter()
            self.lost: collections.Counter[int] = collections.Counter()  # sent, then the worker died unwritten
            self.converted = 0  # conversions so far: a few are enough, the steps go to the workers
            self.written = False  # anything ended yet, to resend

        def now(self) -> float:
            return time.time() + self.offset

        def step(self, name: str) -> None:
            counts["steps"] += 1
            counts[name] += 1

        # --- the host --------------------------------------------------------------------

        @precondition(lambda self: self.converted < 5)
        @rule(subid=st.sampled_from(SUBIDS), status=st.sampled_from(STATUSES), tid=st.sampled_from(TIDS))
        def conversion(self, subid: str, status: str, tid: Any) -> None:
            """A conversion or a status change (new, change, repeat or ignored: the service decides)."""
            self.step("conversion")
            self.converted += 1
            pm.hook.on_conversion(conversion=Conversion(subid=subid, status=status, tid=tid, payout=Decimal("1.5")))

        @precondition(lambda self: self.written)
        @rule(k=st.integers(0, 10**6))
        def resend(self, k: int) -> None:
            """An operator resends a delivery (ignored while it is being sent)."""
            self.step("resend")
            with engine.connect() as conn:
                ids = conn.execute(select(t.deliveries.c.id)).scalars().all()
            if ids:
                queue.make_due(database, [_pick(ids, k)], now=self.now())

        @precondition(lambda self: self.written or any(w.held() for w in self.workers))
        @rule(seconds=st.sampled_from([1.0, LEASE / 2, LEASE + 1, 600.0]))
        def time_passes(self, seconds: float) -> None:
            """Retries fall due; leases of workers that stalled (or died) run out."""
            self.step("time_passes")
            self.offset += seconds

        # --- workers ---------------------------------------------------------------------

        # Claims stop while plenty is claimed and unsent, so the steps go to sending and writing.
        @precondition(lambda self: self.converted and sum(len(w.claimed) for w in self.workers) < 4)
        @rule(w=st.integers(0, WORKERS - 1), fresh=st.integers(0, 3), retries=st.integers(0, 2))
        def claim(self, w: int, fresh: int, retries: int) -> None:
            """A worker claims due deliveries and expired leases (another worker's, or its own)."""
            self.step("claim")
            for row in queue.claim(database, fresh=fresh, retries=retries, lease_seconds=LEASE, now=self.now()):
                self.workers[w].claimed[(row.id, row.lease_token)] = row
                counts["claimed rows"] += 1

        @precondition(lambda self: any(w.claimed for w in self.workers))
        @rule(w=st.integers(0, WORKERS - 1), k=st.integers(0, 10**6))
        def send(self, w: int, k: int) -> None:
            """The request leaves: from here the source may count it."""
            self.step("send")
            worker = _one_of(self.workers, lambda x: x.claimed, w)
            key = _pick(worker.claimed, k)
            worker.sending[key] = worker.claimed.pop(key)
            self.sent[key[0]] += 1

        @precondition(lambda self: any(w.sending for w in self.workers))
        @rule(
            w=st.integers(0, WORKERS - 1),
            k=st.integers(0, 10**6),
            outcome=st.sampled_from(["delivered", "retry", "failed"]),
        )
        def answer(self, w: int, k: int, outcome: str) -> None:
            self.step("answer")
            worker = _one_of(self.workers, lambda x: x.sending, w)
            key = _pick(worker.sending, k)
            row = worker.sending.pop(key)
            self.seq += 1
            started_at = self.now() + self.seq * 1e-3  # one attempt, one start time
            state, next_at, status = {
                "delivered": ("delivered", None, 200),
                "retry": ("due", self.now() + 5, 503),
                "failed": ("failed", None, 404),
            }[outcome]
            reason = f"the source answered HTTP {status}"
            values = {
                "attempt": row.attempts + 1,
                "outcome": {"due": "retrying"}.get(state, state),
                "method": row.method,
                "url": row.url,
                "http_status": status,
                "reason": reason,
                "started_at": started_at,
                "next_attempt_at": next_at,
                "response_truncated": False,
                "reported": False,
            }
            worker.finished[key] = Finished(row, queue.Completion(state, next_at, values, status, reason))

        @precondition(lambda self: any(w.finished for w in self.workers))
        @rule(w=st.integers(0, WORKERS - 1), fault=st.sampled_from(["none", "none", "fails", "answer lost"]))
        def write(self, w: int, fault: str) -> None:
            """The worker writes its finished attempts, as the dispatcher does, in one transaction."""
            self.step("write")
            worker = _one_of(self.workers, lambda x: x.finished, w)
            batch = list(worker.finished.values())
            faults["armed"] = fault == "fails"
            try:
                written = queue.record_many(database, [(f.row, f.completion) for f in batch])
            except WriteFault:
                counts["failed writes"] += 1
                return  # kept, written again later
            finally:
                faults["armed"] = False
            assert all(record.attempt_id is not None for record in written)
            self.written = True
            if fault == "answer lost":  # committed, but the connection dropped before the worker heard
                counts["lost answers"] += 1
                for f in batch:
                    f.committed = True
                return
            worker.finished.clear()

        @precondition(lambda self: any(w.held() for w in self.workers))
        @rule(w=st.integers(0, WORKERS - 1))
        def renew(self, w: int) -> None:
            """Renew every claim held; unstarted ones taken over meanwhile are left to their new holder."""
            self.step("renew")
            worker = _one_of(self.workers, lambda x: x.held(), w)
            held = queue.renew(database, worker.held(), LEASE, now=self.now())
            for key in [key for key in worker.claimed if key[0] not in held]:
                del worker.claimed[key]

        @precondition(lambda self: any(w.claimed for w in self.workers))
        @rule(w=st.integers(0, WORKERS - 1), k=st.integers(0, 10**6), luck=st.integers(0, 3))
        def release(self, w: int, k: int, luck: int) -> None:
            """An unstarted claim is given back (shutdown, a host at its limit); one time in four."""
            self.step("release")
            if luck:
                return
            worker = _one_of(self.workers, lambda x: x.claimed, w)
            queue.release_many(database, [worker.claimed.pop(_pick(worker.claimed, k))])

        @precondition(lambda self: any(w.held() for w in self.workers))
        @rule(w=st.integers(0, WORKERS - 1), luck=st.integers(0, 7))
        def die(self, w: int, luck: int) -> None:
            """The worker's process dies (one time in eight this is drawn): what it sent but did not
            write is lost with it. Rarer than the other steps, so attempts also get to finish."""
            self.step("die")
            if luck:
                return
            worker = _one_of(self.workers, lambda x: x.held(), w)
            w = next(n for n, x in enumerate(self.workers) if x is worker)
            for delivery_id, _token in worker.sending:
                self.lost[delivery_id] += 1
            for (delivery_id, _token), finished in worker.finished.items():
                if not finished.committed:
                    self.lost[delivery_id] += 1
            counts["deaths"] += 1
            self.workers[w] = Worker()

        # --- invariants ------------------------------------------------------------------

        @invariant()
        def one_delivery_per_conversion_status_and_rule(self) -> None:
            d = t.deliveries
            with engine.connect() as conn:
                twice = conn.execute(
                    select(d.c.conversion_id, d.c.status, d.c.rule_id)
                    .group_by(d.c.conversion_id, d.c.status, d.c.rule_id)
                    .having(func.count() > 1)
                ).all()
            assert twice == []

        @invariant()
        def every_delivery_is_due_in_flight_or_ended_with_a_reason(self) -> None:
            d = t.deliveries
            with engine.connect() as conn:
                rows = conn.execute(select(d.c.id, d.c.state, d.c.next_attempt_at, d.c.lease_until, d.c.reason)).all()
            for row in rows:
                if row.state == "due":
                    assert row.next_attempt_at is not None, row
                elif row.state == "leased":
                    assert row.lease_until is not None, row
                else:
                    assert row.state in ("delivered", "failed", "skipped") and row.reason, row

        @invariant()
        def every_request_that_reached_the_source_is_recorded(self) -> None:
            a = t.attempts
            with engine.connect() as conn:
                recorded = collections.Counter(
                    dict(
                        conn.execute(
                            select(a.c.delivery_id, func.count()).where(a.c.attempt > 0).group_by(a.c.delivery_id)
                        ).all()
                    )
                )
            with engine.connect() as conn:
                # A delivery counts the attempts that set its state: every recorded one but the late.
                counted = dict(conn.execute(select(t.deliveries.c.id, t.deliveries.c.attempts)).all())
                late = collections.Counter(
                    conn.execute(
                        select(a.c.delivery_id).where(a.c.attempt > 0, a.c.reason.like(f"%{queue.LATE_NOTE}"))
                    ).scalars()
                )
            for delivery_id, attempts in counted.items():
                assert attempts == recorded[delivery_id] - late[delivery_id], (
                    delivery_id,
                    attempts,
                    recorded[delivery_id],
                    late[delivery_id],
                )
            held: collections.Counter[int] = collections.Counter()
            for worker in self.workers:
                held.update(delivery_id for delivery_id, _ in worker.sending)
                held.update(key[0] for key, f in worker.finished.items() if not f.committed)
            for delivery_id in set(recorded) | set(self.sent):
                assert recorded[delivery_id] == self.sent[delivery_id] - self.lost[delivery_id] - held[delivery_id], (
                    delivery_id,
                    recorded[delivery_id],
                    self.sent[delivery_id],
                    self.lost[delivery_id],
                    held[delivery_id],
                )
                assert self.sent[delivery_id] <= recorded[delivery_id] + self.lost[delivery_id] + held[delivery_id]

    return Outbox


def _check(pm: Any, s2s: Any, monkeypatch: Any, record_property: Any, database: str) -> None:
    s2s.add_source("exo", postback_url="https://exo.example/pb?c={external_id}&s={status}", statuses=list(STATUSES))
    s2s.add_postback("summer", "https://tracker.example/pb?c={external_id}&s={status}", statuses=["sale", "rebill"])
    faults = {"armed": False}
    insert = RawTransaction.insert_many

    def failing_insert(self: RawTransaction, statement: Any, rows: Any) -> list[int]:
        if faults["armed"]:  # after the deliveries' UPDATE: the transaction must roll back whole
            raise WriteFault("server closed the connection unexpectedly")
        return insert(self, statement, rows)

    monkeypatch.setattr(RawTransaction, "insert_many", failing_insert)
    counts: collections.Counter[str] = collections.Counter()
    started = time.monotonic()
    run_state_machine_as_test(
        _machine(pm, s2s, faults, counts),
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=STEPS,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
    took = time.monotonic() - started
    summary = ", ".join(f"{n} {what}" for what, n in sorted(counts.items()))
    print(f"outbox state machine on {database}: {summary} in {took:.1f} s")
    record_property(f"outbox_model_{database}", summary)
    # Attempts were written, workers died and writes failed: the model did check what it says it checks.
    assert counts["examples"] >= EXAMPLES and counts["write"] and counts["deaths"]
    assert counts["failed writes"] + counts["lost answers"]


def test_outbox_model_on_sqlite(make_s2s, monkeypatch, record_property):
    pm, s2s = make_s2s()
    _check(pm, s2s, monkeypatch, record_property, "sqlite")


def test_outbox_model_on_postgres(make_s2s, fresh_pg_url, monkeypatch, record_property):
    pm, s2s = make_s2s(fresh_pg_url)
    _check(pm, s2s, monkeypatch, record_property, "postgresql")
