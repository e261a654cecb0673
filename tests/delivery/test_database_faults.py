"""Database faults while attempts finish: the writes that record them fail for real (another
connection holds SQLite's write lock; PostgreSQL connections are killed mid-write), are tried again,
and every delivery reaches the loopback source exactly once, with exactly one attempt recorded.

Each run holds the fault for longer than the lease, so a result dropped on the floor would see its
claim expire and its postback sent again: the source's count per delivery would show it.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time

import psycopg
import pytest
from sqlalchemy import event, func, select

from s2s_plugin.delivery import hostlimits
from s2s_plugin.storage import queue
from s2s_plugin.storage import tables as t
from sample_host.standin import Reply

from .conftest import click, convert
from .workers import received, states, wait_until

LEASE = 1.0
COUNT = 12
#: The source answers this long after a request arrives: the fault starts in between.
ANSWER_DELAY = 0.4
#: How long the fault lasts: longer than a lease.
FAULT = 2.5
#: Every delivery in flight at once, so all of them are waiting for their answer when the fault starts.
SETTINGS = {"lease_seconds": LEASE, "poll_interval": 0.1, "max_concurrency": COUNT, "per_host_concurrency": COUNT}


@pytest.fixture(autouse=True)
def _all_at_once(monkeypatch):
    """The adaptive per-host limit starts at the cap, not at a few, so every delivery is in flight at once."""
    monkeypatch.setattr(hostlimits, "START_LIMIT", COUNT)


def _queue(pm, s2s, base_url: str) -> None:
    s2s.add_source("exo", postback_url=base_url + "/pb?c={external_id}", statuses=["sale"])
    for n in range(COUNT):
        pm.hook.on_click(click=click(f"s{n}", f"X{n}"))
        convert(pm, f"s{n}")


def _attempts_per_delivery(s2s) -> list[int]:
    with s2s.engine.connect() as conn:
        counts = dict(
            conn.execute(
                select(t.attempts.c.delivery_id, func.count())
                .where(t.attempts.c.attempt > 0)
                .group_by(t.attempts.c.delivery_id)
            ).all()
        )
        ids = conn.execute(select(t.deliveries.c.id)).scalars().all()
    return [counts.get(i, 0) for i in ids]


def _finish_and_check(s2s, standin, caplog, renewals_fail: bool = True) -> None:
    wait_until(lambda: states(s2s.engine).get("delivered", 0) == COUNT, 30, "every delivery recorded")
    time.sleep(LEASE + 0.3)  # a claim left behind has expired by now, and been taken up again
    s2s.close()
    sends = received(standin)
    assert len(sends) == COUNT and set(sends.values()) == {1}, sends
    # The fault was met: writes (and renewals, when the fault stops them too) failed and were tried again.
    assert "could not write" in caplog.text
    assert ("could not renew" in caplog.text) == renewals_fail
    assert _attempts_per_delivery(s2s) == [1] * COUNT
    assert states(s2s.engine) == {"delivered": COUNT}


@pytest.mark.parametrize("loop", ["background", "drain"])
def test_sqlite_locked_by_another_process_while_results_wait(make_s2s, standin, caplog, tmp_path, loop):
    caplog.set_level(logging.WARNING, "s2s_postback.delivery")
    standin.set_default(Reply(200, "OK", delay=ANSWER_DELAY))
    pm, s2s = make_s2s(**SETTINGS)

    # The plugin waits 30 s for a busy database; a short wait makes the lock fail writes quickly.
    @event.listens_for(s2s.engine, "connect")
    def _short_busy_timeout(dbapi_connection, _record):
        dbapi_connection.execute("PRAGMA busy_timeout=50")

    _queue(pm, s2s, standin.url)
    s2s.engine.dispose()  # every connection, the writer's too, is opened again with the short wait
    waiting_while_locked: list[int] = []

    def lock_while_answers_come() -> None:
        standin.wait_for(COUNT, timeout=10)
        other = sqlite3.connect(str(tmp_path / "s2s.db"), isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another process writing: SQLite says "database is locked"
        try:
            time.sleep(FAULT)
            # Results wait to be written (the engine's reads would begin by locking, so look aside).
            waiting_while_locked.append(COUNT - other.execute("SELECT count(*) FROM s2s_attempts").fetchone()[0])
        finally:
            other.execute("COMMIT")
            other.close()

    locker = threading.Thread(target=lock_while_answers_come)
    locker.start()
    if loop == "background":
        s2s.start()
    else:  # the host's own thread: drain() keeps the results and writes them once it can
        s2s.drain(timeout=FAULT + 3)
    locker.join()
    assert waiting_while_locked[0] > 0
    _finish_and_check(s2s, standin, caplog)


def _kill_blocked_writers(admin: psycopg.Connection, until: float) -> int:
    """Terminate every connection of the plugin's that waits for a row lock, until ``until``."""
    killed = 0
    while time.monotonic() < until:
        killed += len(
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid() AND wait_event_type = 'Lock'"
            ).fetchall()
        )
        time.sleep(0.05)
    return killed


def test_postgres_connections_killed_while_results_are_written(make_s2s, fresh_pg_url, standin, caplog):
    caplog.set_level(logging.WARNING, "s2s_postback.delivery")
    standin.set_default(Reply(200, "OK", delay=ANSWER_DELAY))
    pm, s2s = make_s2s(fresh_pg_url, **SETTINGS)
    _queue(pm, s2s, standin.url)
    dsn = fresh_pg_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as admin, psycopg.connect(dsn) as holder:
        s2s.start()
        standin.wait_for(COUNT, timeout=10)
        # Hold the delivery rows, so the writes recording them wait on the lock; kill each one
        # that does (pg_terminate_backend: to the plugin, the connection was lost mid-write).
        holder.execute("SELECT id FROM s2s_deliveries FOR UPDATE").fetchall()
        killed = _kill_blocked_writers(admin, time.monotonic() + FAULT)
        holder.rollback()
    assert killed >= 2  # writes were tried again after the first was killed
    _finish_and_check(s2s, standin, caplog)


def test_a_late_result_is_logged_once_without_changing_the_delivery(make_s2s, standin):
    pm, s2s = make_s2s()
    _queue(pm, s2s, standin.url)
    first = queue.claim(s2s.database, fresh=1, lease_seconds=30)[0]
    (second,) = queue.claim(s2s.database, fresh=1, lease_seconds=30, now=time.time() + 31)
    assert second.id == first.id
    done = queue.Completion(
        "delivered",
        None,
        {
            "attempt": 1,
            "outcome": "delivered",
            "started_at": 123.0,
            "reason": "ok",
            "response_truncated": False,
            "reported": False,
        },
        200,
        "ok",
    )
    late = queue.record_many(s2s.database, [(first, done)])
    again = queue.record_many(s2s.database, [(first, done)])  # as after a commit whose answer was lost
    assert late == again and late[0].attempt_id is not None and late[0].current is False
    with s2s.engine.connect() as conn:
        (logged,) = conn.execute(select(t.attempts).where(t.attempts.c.delivery_id == first.id)).all()
        delivery = conn.execute(select(t.deliveries).where(t.deliveries.c.id == first.id)).one()
    assert logged.reason == f"ok; {queue.LATE_NOTE}" and logged.cause == "late_result"
    assert (delivery.state, delivery.attempts, delivery.lease_token) == ("leased", 0, second.lease_token)


def test_renew_says_which_claims_are_still_held(make_s2s, standin):
    pm, s2s = make_s2s()
    _queue(pm, s2s, standin.url)
    rows = queue.claim(s2s.database, fresh=2, lease_seconds=30)
    # The second claim expired and another worker took it over.
    queue.claim(s2s.database, fresh=1, lease_seconds=30, now=time.time() + 31)
    with s2s.engine.connect() as conn:
        taken = conn.execute(select(t.deliveries.c.id).where(t.deliveries.c.lease_token == 2)).scalars().all()
    assert queue.renew(s2s.database, rows, 60) == {r.id for r in rows} - set(taken)


def test_a_result_whose_claim_was_taken_over_is_logged_and_reported_as_late(make_s2s, standin, host, monkeypatch):
    standin.set_default(Reply(200, "OK", delay=1.5))  # longer than the lease
    pm, s2s = make_s2s(lease_seconds=LEASE, timeout=3)

    def unreachable(*args, **kwargs):
        raise OSError("the database cannot be reached")

    monkeypatch.setattr(queue, "renew", unreachable)  # the lease runs out while the source answers
    s2s.add_source("exo", postback_url=standin.url + "/pb?c={external_id}", statuses=["sale"])
    pm.hook.on_click(click=click("s1", "X1"))
    convert(pm, "s1")
    s2s.start()
    standin.wait_for(1, timeout=5)
    time.sleep(LEASE + 0.1)
    # Another worker takes the expired claim over and records its own attempt first.
    (taken,) = queue.claim(s2s.database, fresh=1, lease_seconds=30)
    done = queue.Completion(
        "failed",
        None,
        {
            "attempt": 1,
            "outcome": "failed",
            "started_at": time.time(),
            "reason": "theirs",
            "response_truncated": False,
            "reported": True,
        },
        404,
        "theirs",
    )
    queue.complete_many(s2s.database, [(taken, done)])
    wait_until(lambda: any(queue.LATE_NOTE in a.reason for a in host.attempts), 10, "the late attempt reported")
    s2s.close()
    assert len(standin.requests) == 1
    with s2s.engine.connect() as conn:
        reasons = sorted(conn.execute(select(t.attempts.c.reason).where(t.attempts.c.attempt > 0)).scalars().all())
        delivery = conn.execute(select(t.deliveries.c.state, t.deliveries.c.reason)).one()
    assert reasons[1] == "theirs" and reasons[0].endswith(queue.LATE_NOTE) and "HTTP 200" in reasons[0]
    assert [a.cause for a in host.attempts if queue.LATE_NOTE in a.reason] == ["late_result"]
    assert tuple(delivery) == ("failed", "theirs")  # the late result did not change the delivery


def test_claims_stay_renewed_while_results_wait_to_be_written(make_s2s, standin, caplog, monkeypatch):
    """Writes of results fail for longer than a lease while renewals go through: no claim expires,
    so no other worker can take one over and send it again."""
    caplog.set_level(logging.WARNING, "s2s_postback.delivery")
    standin.set_default(Reply(200, "OK", delay=ANSWER_DELAY))
    pm, s2s = make_s2s(**SETTINGS)
    _queue(pm, s2s, standin.url)
    record_many = queue.record_many
    failing_until = [float("inf")]

    def record_many_failing(*args, **kwargs):
        if time.monotonic() < failing_until[0]:
            raise OSError("server closed the connection unexpectedly")
        return record_many(*args, **kwargs)

    monkeypatch.setattr(queue, "record_many", record_many_failing)
    s2s.start()
    standin.wait_for(COUNT, timeout=10)
    failing_until[0] = time.monotonic() + FAULT
    taken = []
    while time.monotonic() < failing_until[0]:
        taken += queue.claim(s2s.database, fresh=COUNT, lease_seconds=30)  # another worker looking
        time.sleep(0.1)
    assert taken == []
    _finish_and_check(s2s, standin, caplog, renewals_fail=False)
