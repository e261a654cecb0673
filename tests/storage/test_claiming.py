"""Claiming: leases with fencing tokens, fair claims (first attempts before a retry backlog,
saturated hosts left out), lease renewal, release on shutdown."""

from __future__ import annotations

import time

from sqlalchemy import select, update

from s2s_plugin.storage import queue
from s2s_plugin.storage import tables as t
from sample_host.standin import Reply
from tests.support.flow import click, convert


def _queue_postbacks(pm, s2s, base_url: str, count: int, source: str = "exo", prefix: str = "s") -> None:
    s2s.add_source(source, postback_url=base_url + f"/{source}?c={{external_id}}", statuses=["sale"])
    for n in range(count):
        pm.hook.on_click(click=click(f"{prefix}{n}", f"X{n}", source=source))
        convert(pm, f"{prefix}{n}")


def _done(state="delivered") -> queue.Completion:
    return queue.Completion(
        state,
        None,
        {"attempt": 1, "outcome": state, "started_at": time.time(), "reported": True, "response_truncated": False},
        200,
        "ok",
    )


def test_stale_lease_holder_cannot_complete(make_s2s):
    pm, s2s = make_s2s()
    _queue_postbacks(pm, s2s, "http://127.0.0.1:9", 1)
    (first,) = queue.claim(s2s.database, fresh=10, lease_seconds=30)
    # Nothing else is due while the lease holds.
    assert queue.claim(s2s.database, fresh=10, lease_seconds=30) == []
    # The lease runs out (the worker stalled): another worker takes the delivery over.
    (second,) = queue.claim(s2s.database, fresh=10, lease_seconds=30, now=time.time() + 31)
    assert second.id == first.id and second.lease_token == first.lease_token + 1
    assert queue.complete(s2s.database, first, _done()) is None  # fenced off: discarded
    assert queue.complete(s2s.database, second, _done()) is not None
    with s2s.engine.connect() as conn:
        row = conn.execute(select(t.deliveries)).one()
        attempts = conn.execute(select(t.attempts).where(t.attempts.c.attempt > 0)).all()
    assert (row.state, row.attempts, len(attempts)) == ("delivered", 1, 1)


def test_release_gives_claims_back_only_while_held(make_s2s):
    pm, s2s = make_s2s()
    _queue_postbacks(pm, s2s, "http://127.0.0.1:9", 2)
    rows = queue.claim(s2s.database, fresh=10, lease_seconds=30)
    queue.release_many(s2s.database, rows[:1])
    again = queue.claim(s2s.database, fresh=10, lease_seconds=30)
    assert [r.id for r in again] == [rows[0].id]
    queue.release(s2s.database, rows[0])  # an old token: the new holder keeps it
    assert queue.claim(s2s.database, fresh=10, lease_seconds=30) == []


def test_first_attempts_are_claimed_ahead_of_a_retry_backlog(make_s2s):
    pm, s2s = make_s2s()
    _queue_postbacks(pm, s2s, "http://127.0.0.1:9", 50, source="dead", prefix="d")
    with s2s.engine.begin() as conn:  # 50 retries of a dead source, all due, all older
        conn.execute(update(t.deliveries).values(lane=1, attempts=3, next_attempt_at=time.time() - 600))
    _queue_postbacks(pm, s2s, "http://127.0.0.1:10", 5, source="live", prefix="l")
    rows = queue.claim(s2s.database, fresh=8, retries=8, lease_seconds=30)
    assert sum(1 for r in rows if r.source_id == "live") == 5
    assert sum(1 for r in rows if r.source_id == "dead") == 11  # retries fill the room fresh work left


def test_saturated_hosts_are_left_out_of_a_claim(make_s2s):
    pm, s2s = make_s2s()
    _queue_postbacks(pm, s2s, "http://127.0.0.1:9", 30, source="dead", prefix="d")
    _queue_postbacks(pm, s2s, "http://127.0.0.1:10", 3, source="live", prefix="l")
    rows = queue.claim(s2s.database, fresh=10, lease_seconds=30, exclude_hosts=["127.0.0.1:9"])
    assert {r.source_id for r in rows} == {"live"} and len(rows) == 3


def test_dead_source_does_not_starve_a_live_one(make_s2s, standin_factory, host):
    dead = standin_factory(default=Reply(200, "late", delay=30))  # stalls until the client gives up
    live = standin_factory()
    pm, s2s = make_s2s(
        max_concurrency=4, per_host_concurrency=2, timeout=1.5, connect_timeout=1, retry_schedule=[0, 60]
    )
    _queue_postbacks(pm, s2s, dead.url, 40, source="dead", prefix="d")  # queued first: oldest
    _queue_postbacks(pm, s2s, live.url, 10, source="live", prefix="l")
    s2s.start()
    started = time.monotonic()
    live.wait_for(10, timeout=20)
    elapsed = time.monotonic() - started
    # Behind 40 stalled postbacks at 2 at a time and 1.5 s each, the live source would wait 30 s;
    # the margin below that is for a busy 2-core machine.
    assert elapsed < 12, elapsed
    # The dead source never had more than its 2 slots: 2 attempts per 1.5 s timeout at most.
    assert len(dead.requests) <= 2 * (int(elapsed / 1.5) + 1)


def test_lease_is_renewed_while_a_slow_attempt_runs(make_s2s, standin, host):
    standin.set_default(Reply(200, "OK", delay=2.5))
    pm, s2s = make_s2s(lease_seconds=1, timeout=5)
    _queue_postbacks(pm, s2s, standin.url, 1)
    s2s.start()
    standin.wait_for(1, timeout=5)
    # A second worker polls while the first one's attempt is still running, past the 1 s lease.
    stolen = []
    deadline = time.monotonic() + 2.5
    while time.monotonic() < deadline:
        stolen += queue.claim(s2s.database, fresh=10, lease_seconds=1)
        time.sleep(0.1)
    assert stolen == []
    deadline = time.monotonic() + 5
    while not host.attempts and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [a.outcome for a in host.attempts] == ["delivered"] and len(standin.requests) == 1


def _one_sender_busy(make_s2s, standin, postbacks, delay):
    """A started dispatcher with one sender, ``postbacks`` queued, the first in flight at a source
    that answers after ``delay`` seconds."""
    standin.set_default(Reply(200, "OK", delay=delay))
    pm, s2s = make_s2s(max_concurrency=1, per_host_concurrency=1)
    _queue_postbacks(pm, s2s, standin.url, postbacks)
    s2s.start()
    standin.wait_for(1, timeout=5)
    return s2s


def test_close_releases_unstarted_claims(make_s2s, standin):
    s2s = _one_sender_busy(make_s2s, standin, postbacks=5, delay=0.3)
    s2s.dispatcher.close()
    with s2s.engine.connect() as conn:
        states = sorted(r.state for r in conn.execute(select(t.deliveries)))
    # The attempt in flight finished and was recorded; nothing stays leased.
    assert "leased" not in states and states.count("delivered") >= 1 and states.count("due") >= 1
    assert len(standin.requests) == states.count("delivered")


def test_one_sender_claims_a_batch_ahead_not_a_row_per_postback(make_s2s, standin):
    from tests.delivery.workers import states

    s2s = _one_sender_busy(make_s2s, standin, postbacks=100, delay=0.5)
    # While the first postback is in flight, the dispatcher holds a batch for the next ones
    # (64 for a host alone), not just the one or two its single sender can use at once.
    assert states(s2s.engine).get("leased", 0) == 64
    s2s.close()
    assert states(s2s.engine).get("leased", 0) == 0  # unstarted claims were given back
