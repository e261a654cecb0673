"""A sick source costs only itself: fair turns across hosts, adaptive per-host limits, and a
circuit breaker per host, on real loopback sources that hang, reset and recover."""

from __future__ import annotations

import contextlib
import subprocess
import threading
import time

import pytest
from sqlalchemy import select

from bench.__main__ import sink as _sink
from s2s_plugin.delivery.fairqueue import FairQueue
from s2s_plugin.resolution.hosts import host_key
from s2s_plugin.storage import queue
from s2s_plugin.storage import tables as t
from sample_host.standin import RESET, Reply

from .conftest import cli, click, convert, process_env


def _queue_postbacks(pm, s2s, base_url: str, count: int, source: str, prefix: str) -> None:
    s2s.add_source(source, postback_url=base_url + f"/{source}?c={{external_id}}", statuses=["sale"])
    for n in range(count):
        pm.hook.on_click(click=click(f"{prefix}{n}", f"X{n}", source=source))
        convert(pm, f"{prefix}{n}")


def _wait(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout} s: {what}")


def _deliveries(s2s, source: str):
    with s2s.engine.connect() as conn:
        return conn.execute(
            select(t.deliveries).where(t.deliveries.c.source_id == source).order_by(t.deliveries.c.id)
        ).all()


# --- fair turns ------------------------------------------------------------------------------


class _Row:
    def __init__(self, host: str, n: int, lane: int = 0) -> None:
        self.host, self.id, self.lane = host, n, lane


def test_fair_queue_serves_hosts_in_turn_within_their_room():
    waiting = FairQueue()
    for n in range(10):
        waiting.append("big", _Row("big", n))
    for n in range(2):
        waiting.append("small", _Row("small", 100 + n))
    waiting.append("retrying", _Row("retrying", 200, lane=1))
    rows = waiting.take_turns(5, lambda host: 10, lambda: True)  # retries may not start now
    assert [r.host for r in rows] == ["big", "small", "big", "small", "big"]
    assert waiting.held("retrying") == 1
    # The ring goes on where it stopped; a host's room bounds what it takes in one call.
    rows = waiting.take_turns(5, lambda host: 1 if host == "big" else 5, lambda: False)
    assert [r.host for r in rows] == ["retrying", "big"]
    assert len(waiting) == 6 and [r.host for r in waiting.take("big")] == ["big"] * 6 and not waiting


def test_hanging_sources_do_not_hold_up_a_healthy_one(make_s2s, standin_factory, host):
    hanging = [standin_factory(default=Reply(200, "late", delay=30)) for _ in range(3)]
    healthy = standin_factory()
    # Eight slots; every hanging source queued first, with more postbacks than all the slots.
    pm, s2s = make_s2s(max_concurrency=8, per_host_concurrency=8, timeout=10, connect_timeout=2, retry_schedule=[0, 60])
    for n, source in enumerate(hanging):
        _queue_postbacks(pm, s2s, source.url, 12, source=f"hang{n}", prefix=f"h{n}-")
    _queue_postbacks(pm, s2s, healthy.url, 30, source="live", prefix="l")
    s2s.start()
    healthy.wait_for(30, timeout=9)
    # Every healthy postback went out while the first attempts to the hanging sources were still
    # waiting for an answer (first come first served, those would have held all 8 slots for 10 s).
    delivered = _wait(
        lambda: [a for a in host.attempts if a.source_id == "live"] if len(host.attempts) >= 30 else None,
        10,
        "the healthy postbacks recorded",
    )
    assert {a.outcome for a in delivered} == {"delivered"}
    assert not [a for a in host.attempts if a.source_id != "live"]
    # While the healthy source had work, each hanging one had at most its share of the slots.
    for source in hanging:
        assert len(source.requests) <= 8


def test_a_healthy_source_queued_behind_large_backlogs_of_hanging_ones_is_found_at_once(make_s2s, standin):
    # Five sources that never answer, 200 postbacks each queued first: more rows than a claim reads
    # in its windows, so the healthy source's rows are found only by looking past the hanging
    # hosts once they hold their shares (and again after a look found nothing).
    with contextlib.ExitStack() as stack:
        hanging = [stack.enter_context(_sink(0, "--hang")) for _ in range(5)]
        pm, s2s = make_s2s(timeout=10, connect_timeout=2, retry_schedule=[0, 60])
        for n, url in enumerate(hanging):
            _queue_postbacks(pm, s2s, url, 200, source=f"hang{n}", prefix=f"h{n}-")
        _queue_postbacks(pm, s2s, standin.url, 100, source="live", prefix="l")
        s2s.start()
        # Long before the first attempts to the hanging sources time out (10 s).
        standin.wait_for(100, timeout=8)
        stack.close()  # the hanging sources go away: their attempts end now, not after 10 s


# --- adaptive concurrency --------------------------------------------------------------------
# Against the benchmarks' sink in a process of its own: it answers in one write, where the
# stand-in's stdlib server answers in two, which loopback's delayed ACKs can hold for 40 ms now and
# then (no source that answers at once).


def test_a_50ms_source_gets_a_high_limit_and_stats_show_it(make_s2s):
    pm, s2s = make_s2s(max_concurrency=64, per_host_concurrency=64)
    with _sink(0.05) as url:
        _queue_postbacks(pm, s2s, url, 400, source="slow", prefix="s")
        s2s.drain(timeout=60)
    assert s2s.dispatcher._hosts.limit(host_key(url)) > 16  # from 4, doubling while answers stay at 50 ms

    def written():
        s2s.dispatcher._fill()  # the loop writes limits at most once a second
        status = s2s.stats().hosts[host_key(url)]
        return status if status.concurrency_limit > 16 else None

    status = _wait(written, 3, "the limit written to s2s_hosts")
    assert status.state == "closed" and status.concurrency_limit <= 64


def test_a_source_that_answers_at_once_keeps_a_low_limit(make_s2s):
    # More attempts in flight would only wait for each other's turn at the CPU: the limit stays
    # low instead of growing to the cap (64) as it would for a 50 ms source.
    pm, s2s = make_s2s(max_concurrency=64, per_host_concurrency=64)
    with _sink(0) as url:
        _queue_postbacks(pm, s2s, url, 600, source="instant", prefix="i")
        seen = []
        sampling = threading.Thread(target=lambda: s2s.drain(timeout=60))
        sampling.start()
        while sampling.is_alive():  # what the limit is while the backlog drains
            seen.append(s2s.dispatcher._hosts.limit(host_key(url)))
            time.sleep(0.01)
    assert not s2s.attempts(outcome="retrying") and len(s2s.attempts(outcome="delivered", limit=600)) == 600
    # Mostly a few, at most twice where it starts (a busy machine's hiccups make more attempts
    # look useful for a while); never near the cap.
    assert sorted(seen)[len(seen) // 2] <= 8 and max(seen) < 32, seen


def test_a_source_answering_503_gets_fewer_slots(make_s2s, standin):
    standin.set_default(Reply(503, "busy", delay=0.05))
    pm, s2s = make_s2s(max_concurrency=16, per_host_concurrency=16, retry_schedule=[0], circuit_failures=1000)
    _queue_postbacks(pm, s2s, standin.url, 60, source="busy", prefix="b")
    s2s.drain(timeout=60)
    assert s2s.dispatcher._hosts.limit(host_key(standin.url)) < 8


# --- circuit breaking ------------------------------------------------------------------------


def test_a_source_that_is_down_costs_only_probes_and_drains_once_it_answers(make_s2s, standin, host):
    source = host_key(standin.url)
    standin.set_default(RESET)  # drops every connection: down
    pm, s2s = make_s2s(
        max_concurrency=8,
        per_host_concurrency=8,
        retry_schedule=[0, 600],
        circuit_failures=3,
        circuit_cooldown=0.5,
        circuit_max_cooldown=1.0,
        poll_interval=0.2,
    )
    _queue_postbacks(pm, s2s, standin.url, 40, source="down", prefix="d")
    s2s.start()
    _wait(lambda: s2s.stats().hosts.get(source) and s2s.stats().hosts[source].is_open, 15, "the circuit opened")
    opened = time.monotonic()
    # A while down: the first attempts (at most the starting limit of 8) and then one probe per cool-down.
    time.sleep(2.5)
    down_requests = standin.count
    probes = [a for a in host.attempts if "probe failed" in (a.reason or "")]
    assert probes, [a.reason for a in host.attempts]
    assert down_requests <= 8 + len(probes) + 1
    assert len(probes) <= (time.monotonic() - opened) / 0.5 + 1
    # The deliveries that waited spent no attempt and say why they wait; explain says it too.
    waiting = [d for d in _deliveries(s2s, "down") if d.attempts == 0]
    assert len(waiting) >= 40 - down_requests
    assert all("is not answering since" in (d.reason or "") for d in waiting if d.state == "due")
    opening = [a for a in host.attempts if "attempts in a row failed" in (a.reason or "")]
    assert opening and "its postbacks wait without spending attempts" in opening[0].reason
    explained = str(s2s.explain(waiting[0].subid))
    assert f"source host {source} is not answering since" in explained and "next probe at" in explained

    standin.set_default(Reply(200, "OK"))  # recovered
    recovered = time.monotonic()
    # Every delivery that waited for the host goes at once; those whose own attempt failed keep
    # their retry (600 s away).
    failed_before = {d.id for d in _deliveries(s2s, "down") if d.attempts and d.state == "due"}
    _wait(
        lambda: sum(1 for d in _deliveries(s2s, "down") if d.state == "delivered") >= 40 - len(failed_before),
        20,
        "the waiting deliveries delivered after recovery",
    )
    assert time.monotonic() - recovered < 20
    still_due = {d.id for d in _deliveries(s2s, "down") if d.state == "due"}
    assert still_due == failed_before - {d.id for d in _deliveries(s2s, "down") if d.state == "delivered"}
    assert not s2s.stats().hosts[source].is_open
    assert any("answers again" in (a.reason or "") for a in host.attempts)


def test_a_deferred_delivery_keeps_its_retries_and_max_age(make_s2s, standin, host):
    standin.set_default(Reply(503, "down"))
    pm, s2s = make_s2s(
        max_concurrency=1,
        per_host_concurrency=1,
        retry_schedule=[0, 600, 600],
        circuit_failures=1,
        circuit_cooldown=60,
        circuit_max_cooldown=60,
    )
    _queue_postbacks(pm, s2s, standin.url, 3, source="down", prefix="d")
    s2s.drain(timeout=1)
    rows = _deliveries(s2s, "down")
    # One attempt opened the circuit; the other two were never sent and did not count an attempt.
    assert standin.count == 1
    assert sorted(r.attempts for r in rows) == [0, 0, 1]
    assert all(r.state == "due" for r in rows)
    untried = [r for r in rows if r.attempts == 0]
    assert all(r.reason.startswith("waiting: source host") for r in untried)
    assert [r.cause for r in untried] == ["host_not_answering"] * 2
    assert all(r.next_attempt_at <= time.time() for r in untried)  # still due: they wait for the host only


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request):
    """None (a SQLite file) or a fresh PostgreSQL database."""
    return None if request.param == "sqlite" else request.getfixturevalue("fresh_pg_url")


def test_claims_leave_an_open_hosts_deliveries_alone_and_take_one_probe(make_s2s, database_url):
    pm, s2s = make_s2s(database_url)
    _queue_postbacks(pm, s2s, "http://127.0.0.1:9", 5, source="down", prefix="d")
    _queue_postbacks(pm, s2s, "http://127.0.0.1:10", 2, source="up", prefix="u")
    now = time.time()
    with s2s.engine.begin() as conn:
        conn.execute(
            t.hosts.insert().values(
                host="127.0.0.1:9", state="open", failures=5, opened_at=now - 10, next_probe_at=now + 5, updated_at=now
            )
        )
    rows = queue.claim(s2s.database, fresh=10, lease_seconds=30, probe_window=30)
    assert {r.source_id for r in rows} == {"up"}
    probes: list[int] = []
    later = now + 6  # the probe time has come: one delivery of the host is claimed as its probe
    (probe,) = queue.claim(s2s.database, fresh=10, lease_seconds=30, now=later, probe_window=30, probes=probes)
    assert probes == [probe.id] and probe.source_id == "down"
    assert queue.claim(s2s.database, fresh=10, lease_seconds=30, now=later + 1, probe_window=30) == []
    with s2s.engine.connect() as conn:
        state = conn.execute(select(t.hosts.c.state, t.hosts.c.next_probe_at)).one()
    assert state.state == "probing" and state.next_probe_at == later + 30


def test_another_process_sees_an_open_host_in_explain(make_s2s, standin, tmp_path):
    standin.set_default(RESET)
    database_url = f"sqlite:///{tmp_path}/s2s.db"
    pm, s2s = make_s2s(
        database_url,
        max_concurrency=1,
        retry_schedule=[0, 600],
        circuit_failures=2,
        circuit_cooldown=60,
        circuit_max_cooldown=60,
    )
    _queue_postbacks(pm, s2s, standin.url, 4, source="down", prefix="d")
    s2s.drain(timeout=1)
    waiting = next(d for d in _deliveries(s2s, "down") if d.attempts == 0)
    out = subprocess.run(
        cli("explain", waiting.subid, "--database-url", database_url),
        env=process_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert f"source host {host_key(standin.url)} is not answering since" in out.stdout


def test_fair_queue_gives_back_a_hosts_newest_rows():
    waiting = FairQueue()
    for n in range(5):
        waiting.append("big", _Row("big", n))
    waiting.append("small", _Row("small", 100))
    assert [row.id for row in waiting.take_last("big", 3)] == [4, 3, 2]
    assert waiting.held("big") == 2 and len(waiting) == 3
    assert [row.id for row in waiting.take_last("small", 5)] == [100]
    assert waiting.hosts() == ["big"] and waiting.take_last("nobody", 1) == []


def test_fair_queue_drops_rows_and_keeps_its_turns():
    waiting = FairQueue()
    for n in range(4):
        waiting.append("a", _Row("a", n))
    waiting.append("b", _Row("b", 10))
    dropped = waiting.drop(lambda row: row.id in (1, 10))
    assert sorted(r.id for r in dropped) == [1, 10]
    assert len(waiting) == 3 and waiting.hosts() == ["a"] and waiting.held("b") == 0
    assert [r.id for r in waiting.take_turns(5, lambda host: 5, lambda: False)] == [0, 2, 3]


def test_two_workers_on_postgresql_share_an_open_circuit(make_s2s, fresh_pg_url, standin):
    standin.set_default(RESET)
    settings = dict(
        max_concurrency=1, retry_schedule=[0, 600], circuit_failures=2, circuit_cooldown=60, circuit_max_cooldown=60
    )
    pm, first = make_s2s(fresh_pg_url, **settings)
    _queue_postbacks(pm, first, standin.url, 6, source="down", prefix="d")
    first.drain(timeout=1)
    assert standin.count == 2  # two failures opened it
    # Another worker on the same queue: it spends nothing on the open host either.
    _pm2, second = make_s2s(fresh_pg_url, **settings)
    second.drain(timeout=1)
    assert standin.count == 2
    assert second.stats().hosts[host_key(standin.url)].is_open


def test_retry_after_holds_off_the_probe_and_the_delivery(make_s2s, standin):
    standin.set_default(Reply(429, "slow down", retry_after=30))
    pm, s2s = make_s2s(
        max_concurrency=1, retry_schedule=[0, 5], circuit_failures=1, circuit_cooldown=0.5, circuit_max_cooldown=1
    )
    _queue_postbacks(pm, s2s, standin.url, 2, source="busy", prefix="b")
    s2s.drain(timeout=1)
    status = s2s.stats().hosts[host_key(standin.url)]
    assert standin.count == 1 and status.is_open
    assert status.next_probe_at - status.opened_at >= 29  # the source asked for 30 s: no probe before
    tried = next(d for d in _deliveries(s2s, "busy") if d.attempts)
    assert tried.next_attempt_at - time.time() >= 25 and "Retry-After" in tried.reason


def test_a_delivery_that_waited_past_max_age_fails_with_that_reason(make_s2s, standin):
    standin.set_default(RESET)
    pm, s2s = make_s2s(
        max_concurrency=1,
        retry_schedule=[0, 600],
        circuit_failures=1,
        circuit_cooldown=60,
        circuit_max_cooldown=60,
        max_age=2,
    )
    _queue_postbacks(pm, s2s, standin.url, 2, source="down", prefix="d")
    s2s.drain(timeout=0.5)
    assert standin.count == 1
    time.sleep(2.2)
    with s2s.engine.begin() as conn:  # the host is back (as a probe would find)
        conn.execute(t.hosts.update().values(state="closed", opened_at=None, next_probe_at=None))
    standin.set_default(Reply(200, "OK"))
    s2s.drain(timeout=1)
    waited = next(
        d for d in _deliveries(s2s, "down") if d.rule_id and d.attempts == 1 and "maximum age" in (d.reason or "")
    )
    assert waited.state == "failed" and standin.count == 1  # never sent: too old
