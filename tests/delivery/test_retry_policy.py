"""Retry policy against a real loopback source: Retry-After honoured and capped, maximum age,
410 flags the rule, resets and stalls retried, every decision's reason stored."""

from __future__ import annotations

import random
import time

import pytest
from sqlalchemy import select, update

from s2s_plugin.delivery.policy import next_delay, parse_retry_after
from s2s_plugin.storage import tables as t
from sample_host.standin import RESET, Reply

from .conftest import click, convert


def _one(pm, s2s, url: str, subid: str = "s1") -> None:
    s2s.add_source("exo", postback_url=url + "/pb?c={external_id}", statuses=["sale"])
    pm.hook.on_click(click=click(subid, "X1"))
    convert(pm, subid)


def test_retry_after_is_honoured(make_s2s, standin, host):
    standin.script("/pb", [Reply(429, "slow down", retry_after=1)], default=(200, "OK"))
    pm, s2s = make_s2s(retry_schedule=[0, 0.05, 0.05])
    _one(pm, s2s, standin.url)
    s2s.drain(timeout=5)
    first, second = host.attempts
    assert (first.outcome, first.http_status, second.outcome) == ("retrying", 429, "delivered")
    # Measured from the attempt's start, so the attempt's own duration (long on a busy machine) is in it.
    waited = (first.next_attempt_at - first.started_at).total_seconds()
    assert 1.0 <= waited < 5
    assert "Retry-After" in first.reason and "429" in first.reason
    gap = standin.requests[1].monotonic - standin.requests[0].monotonic
    assert gap >= 0.95


def test_retry_after_is_capped(make_s2s, standin, host):
    standin.script("/pb", [Reply(503, "", retry_after=86400)], default=(200, "OK"))
    pm, s2s = make_s2s(retry_schedule=[0, 0.05], retry_after_cap=0.3)
    _one(pm, s2s, standin.url)
    s2s.drain(timeout=5)
    first, second = host.attempts
    # Uncapped, the wait would be a day; the attempt's own duration is inside the measured span.
    waited = (first.next_attempt_at - first.started_at).total_seconds()
    assert 0.3 <= waited < 30
    assert "capped" in first.reason and second.outcome == "delivered"


def test_schedule_jitter_is_bounded():
    rng = random.Random(7)
    delays = [next_delay([0, 300], 1, jitter=0.1, rng=rng) for _ in range(500)]
    assert min(delays) >= 300 and max(delays) <= 330 and max(delays) - min(delays) > 20
    assert next_delay([0, 300], 2) is None


def test_connection_reset_and_stall_are_retried(make_s2s, standin, host):
    standin.script("/pb", [RESET, Reply(200, "late", delay=3)], default=(200, "OK"))
    pm, s2s = make_s2s(retry_schedule=[0, 0.05, 0.05], timeout=0.5, connect_timeout=0.5)
    _one(pm, s2s, standin.url)
    s2s.drain(timeout=10)
    outcomes = [(a.attempt, a.outcome) for a in host.attempts]
    assert outcomes == [(1, "retrying"), (2, "retrying"), (3, "delivered")]
    assert "could not reach" in host.attempts[0].reason
    assert "did not answer in time" in host.attempts[1].reason


def test_max_age_fails_an_old_delivery_without_sending(make_s2s, standin, host):
    pm, s2s = make_s2s(max_age=3600)
    _one(pm, s2s, standin.url)
    with s2s.engine.begin() as conn:  # the worker was down for two hours
        conn.execute(update(t.deliveries).values(age_from=time.time() - 7200))
    s2s.drain(timeout=5)
    assert standin.requests == []
    (attempt,) = host.attempts
    assert attempt.outcome == "failed" and "maximum age of 60 min" in attempt.reason and "resend" in attempt.reason


def test_max_age_stops_retries_that_would_come_too_late(make_s2s, standin, host):
    standin.set_default((503, "down"))
    pm, s2s = make_s2s(retry_schedule=[0, 0.05, 5], max_age=1)
    _one(pm, s2s, standin.url)
    s2s.drain(timeout=5)
    assert [a.outcome for a in host.attempts] == ["retrying", "failed"]
    assert "maximum age" in host.attempts[-1].reason and len(standin.requests) == 2


def test_410_fails_and_flags_the_rule(make_s2s, standin, host):
    standin.set_default((410, "gone"))
    pm, s2s = make_s2s()
    _one(pm, s2s, standin.url)
    s2s.drain(timeout=5)
    (attempt,) = host.attempts
    assert attempt.outcome == "failed" and "410" in attempt.reason and "flagged" in attempt.reason
    with s2s.engine.connect() as conn:
        assert conn.execute(select(t.sources.c.gone)).scalar() is True


def test_every_decision_has_its_reason_stored(make_s2s, standin, host):
    standin.script("/pb", [(500, "x"), (404, "no")])
    pm, s2s = make_s2s()
    _one(pm, s2s, standin.url)
    s2s.drain(timeout=5)
    with s2s.engine.connect() as conn:
        stored = conn.execute(select(t.attempts.c.outcome, t.attempts.c.reason).order_by(t.attempts.c.id)).all()
        delivery = conn.execute(select(t.deliveries.c.state, t.deliveries.c.reason)).one()
    assert [o for o, _ in stored] == ["retrying", "failed"]
    assert "HTTP 500" in stored[0][1] and "retrying in" in stored[0][1]
    assert "HTTP 404" in stored[1][1]
    assert delivery == ("failed", stored[1][1])


@pytest.mark.parametrize("value", ["²", "٣", "1e3", "-5", "soon", " ", "Wed, 99 Foo 2099 99:99:99 GMT"])
def test_a_retry_after_that_is_not_seconds_or_a_date_is_ignored(value):
    assert parse_retry_after(value) is None


def test_retry_after_seconds_and_dates():
    assert parse_retry_after(" 30 ") == 30.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412000.0) == 480.0


def test_the_service_reports_delivery_health_after_a_retry(make_s2s, standin, host):
    standin.script("/pb", [Reply(503, "busy")], default=(200, "OK"))
    pm, s2s = make_s2s(retry_schedule=[0, 0.05, 0.05])
    _one(pm, s2s, standin.url)
    s2s.drain(timeout=5)
    health = s2s.health(window_seconds=3600)
    (rule,) = health.rules
    assert rule.rule_id == "source:exo"
    assert (rule.counts["delivered"], rule.counts["retrying"], rule.queued) == (1, 1, 0)
    assert [(c.cause, c.count) for c in rule.causes] == [("http_server_error", 1)]
    assert health.bucket_seconds == 60 and len(health.series) == 60
