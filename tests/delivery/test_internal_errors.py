"""Whatever fails between claim and completion ends as a recorded attempt naming the error, never
as a claim left to expire (which would send the postback again, unseen, at every expiry).

Each test runs against a real loopback source with a one-second lease and then waits past it: a
claim left behind would be taken over and sent again, and the source would count it.
"""

from __future__ import annotations

import dataclasses
import time

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

import hookspecs
from s2s_plugin.delivery import dispatcher as dispatcher_module
from s2s_plugin.delivery.sender import Sender
from s2s_plugin.storage import tables as t
from sample_host.standin import Reply

from .conftest import click, convert

LEASE = 1.0


def _deliver_one(pm, s2s, standin, path: str = "/pb") -> None:
    """Queue one postback to ``standin``, deliver it, then wait past the lease and deliver again."""
    s2s.add_source("exo", postback_url=standin.url + path + "?c={external_id}", statuses=["sale"])
    pm.hook.on_click(click=click("s1", "X1"))
    convert(pm, "s1")
    s2s.drain(timeout=2)
    time.sleep(LEASE + 0.2)  # a claim left behind has expired by now
    s2s.drain(timeout=1)


def _attempts(s2s) -> list:
    with s2s.engine.connect() as conn:
        return conn.execute(select(t.attempts).where(t.attempts.c.attempt > 0).order_by(t.attempts.c.id)).all()


def _delivery(s2s):
    with s2s.engine.connect() as conn:
        return conn.execute(select(t.deliveries)).one()


class _RaisesAfterSending(Sender):
    """A sender that fails after the source has the request, as a decoding bug does."""

    def send(self, request, **kwargs):
        super().send(request, **kwargs)
        raise LookupError("unknown encoding: base64")


def test_an_error_after_sending_is_recorded_once_and_not_sent_again(make_s2s, standin, host):
    pm, s2s = make_s2s(lease_seconds=LEASE)
    s2s.dispatcher.sender = _RaisesAfterSending(s2s.settings)
    _deliver_one(pm, s2s, standin)
    (attempt,) = _attempts(s2s)
    assert len(standin.requests) == 1
    assert attempt.outcome == "failed"
    assert attempt.reason.startswith("internal error: LookupError: unknown encoding: base64")
    assert "not retried" in attempt.reason and "resend" in attempt.reason
    assert (attempt.cause, _delivery(s2s).cause) == ("internal_error_sent", "internal_error_sent")
    assert _delivery(s2s).state == "failed"
    assert [(a.outcome, a.cause) for a in host.attempts] == [("failed", "internal_error_sent")]


def test_a_charset_that_is_no_text_encoding_costs_one_request(make_s2s, standin):
    # Whatever the sender makes of the answer, the source hears of the conversion once.
    standin.set_default(Reply(200, "OK", headers={"Content-Type": "text/plain; charset=base64"}))
    pm, s2s = make_s2s(lease_seconds=LEASE)
    _deliver_one(pm, s2s, standin)
    assert len(standin.requests) == 1
    assert len(_attempts(s2s)) == 1
    assert _delivery(s2s).state in ("delivered", "failed")


class _NeedsClick:
    """A ``prepare_request`` hook, so building a request loads the click from the database."""

    @hookspecs.hookimpl
    def prepare_request(self, request, context):
        return None


def test_an_error_before_sending_retries_on_the_schedule(make_s2s, standin, monkeypatch):
    pm, s2s = make_s2s(lease_seconds=LEASE, retry_schedule=[0, 0.05, 0.1])
    pm.register(_NeedsClick())

    def locked(subid):
        raise OperationalError("SELECT ...", {}, Exception("database is locked"))

    monkeypatch.setattr(s2s.store, "load_click", locked)
    _deliver_one(pm, s2s, standin)
    attempts = _attempts(s2s)
    assert standin.requests == []
    assert [a.outcome for a in attempts] == ["retrying", "retrying", "failed"]
    assert all(a.reason.startswith("not sent: internal error: OperationalError: ") for a in attempts)
    assert {a.cause for a in attempts} == {"internal_error"} and _delivery(s2s).cause == "internal_error"
    assert "database is locked" in attempts[0].reason and "gave up after 3 attempts" in attempts[-1].reason


class _BadHost:
    """A ``prepare_request`` hook that leaves a raw macro in the host part of the URL."""

    @hookspecs.hookimpl
    def prepare_request(self, request, context):
        return dataclasses.replace(request, url="http://[{_sub_id_1}]/pb")


def test_a_url_urlsplit_rejects_ends_as_one_failed_attempt(make_s2s, standin):
    pm, s2s = make_s2s(lease_seconds=LEASE)
    pm.register(_BadHost())
    _deliver_one(pm, s2s, standin)
    (attempt,) = _attempts(s2s)
    assert standin.requests == []
    assert attempt.outcome == "failed" and attempt.reason


class _FailingPrepare:
    @hookspecs.hookimpl
    def prepare_request(self, request, context):
        raise KeyError("token")


class _FailingClassify:
    @hookspecs.hookimpl
    def classify_response(self, request, response):
        raise ValueError("cannot parse the answer")


def test_a_raising_prepare_request_hook_sends_nothing_and_ends_recorded(make_s2s, standin):
    pm, s2s = make_s2s(lease_seconds=LEASE, retry_schedule=[0, 0.05])
    pm.register(_FailingPrepare(), name="signer")
    _deliver_one(pm, s2s, standin)
    attempts = _attempts(s2s)
    assert standin.requests == []
    assert [a.outcome for a in attempts] == ["retrying", "failed"]
    assert all("plugin 'signer' failed in prepare_request: KeyError" in a.reason for a in attempts)


def test_a_raising_classify_response_hook_leaves_the_default_rules(make_s2s, standin):
    pm, s2s = make_s2s(lease_seconds=LEASE)
    pm.register(_FailingClassify(), name="judge")
    _deliver_one(pm, s2s, standin)
    (attempt,) = _attempts(s2s)
    assert len(standin.requests) == 1
    assert attempt.outcome == "delivered"
    assert "plugin 'judge' failed in classify_response: ValueError: cannot parse the answer" in attempt.reason


def test_an_error_while_deciding_keeps_the_record_and_sends_once(make_s2s, standin, host, monkeypatch):
    standin.set_default((500, "busy"))
    pm, s2s = make_s2s(lease_seconds=LEASE)

    def broken(row, result, attempt_no):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(s2s.dispatcher, "_decide", broken)
    _deliver_one(pm, s2s, standin)
    (attempt,) = _attempts(s2s)
    assert len(standin.requests) == 1
    assert attempt.outcome == "failed" and attempt.http_status == 500
    assert attempt.reason.startswith("internal error: ZeroDivisionError: division by zero, while recording the attempt")
    assert "HTTP 500" in attempt.reason and "not retried" in attempt.reason
    assert [a.outcome for a in host.attempts] == ["failed"]


def test_an_error_while_redacting_records_nothing_unredacted(make_s2s, standin, monkeypatch):
    pm, s2s = make_s2s(lease_seconds=LEASE)

    def broken(url, names):
        raise RuntimeError("redaction failed")

    monkeypatch.setattr(dispatcher_module, "redact_url", broken)
    s2s.add_source("exo", postback_url=standin.url + "/pb?c={external_id}&key=K1", statuses=["sale"], secrets=["key"])
    pm.hook.on_click(click=click("s1", "X1"))
    convert(pm, "s1")
    s2s.drain(timeout=2)
    time.sleep(LEASE + 0.2)
    s2s.drain(timeout=1)
    (attempt,) = _attempts(s2s)
    assert len(standin.requests) == 1
    # The source took it: delivered, with the URL (which holds the secret) left out.
    assert attempt.outcome == "delivered" and attempt.url is None
    assert attempt.reason.startswith("internal error: RuntimeError: redaction failed, while recording the attempt")
    assert "K1" not in repr(tuple(attempt))


@pytest.mark.parametrize("stage", ["record", "last resort"])
def test_a_crash_in_the_attempts_own_handling_still_ends_recorded(make_s2s, standin, monkeypatch, stage):
    pm, s2s = make_s2s(lease_seconds=LEASE)

    def broken(*args, **kwargs):
        raise AssertionError("a bug")

    monkeypatch.setattr(s2s.dispatcher, "_recorded", broken)
    monkeypatch.setattr(dispatcher_module, "_recorded_plainly", broken)
    if stage == "last resort":
        monkeypatch.setattr(s2s.dispatcher, "_deliver", broken)
    _deliver_one(pm, s2s, standin)
    (attempt,) = _attempts(s2s)
    assert len(standin.requests) == (1 if stage == "record" else 0)
    assert attempt.outcome == "failed" and attempt.reason.startswith("internal error: AssertionError: a bug")
    assert _delivery(s2s).state == "failed"


def test_a_failure_in_the_host_limits_keeps_the_result(make_s2s, standin, monkeypatch):
    pm, s2s = make_s2s(lease_seconds=LEASE)

    def broken(*args, **kwargs):
        raise RuntimeError("a bug in the host's limits")

    monkeypatch.setattr(s2s.dispatcher._hosts, "record", broken)
    _deliver_one(pm, s2s, standin)
    (attempt,) = _attempts(s2s)
    assert len(standin.requests) == 1
    assert attempt.outcome == "delivered" and _delivery(s2s).state == "delivered"


# --- the invariant, end to end -------------------------------------------------------------

KINDS = ("ok", "b64", "flaky", "slow", "after", "judge", "prep", "decide", "build")


class _RaisesAfterSendingTo(Sender):
    def send(self, request, **kwargs):
        result = super().send(request, **kwargs)
        if "/after" in request.url:
            raise LookupError("unknown encoding: base64")
        return result


class _FailsFor:
    """``prepare_request`` and ``classify_response`` hooks that raise for some sources only."""

    @hookspecs.hookimpl
    def prepare_request(self, request, context):
        if "/prep" in request.url:
            raise KeyError("token")
        return None

    @hookspecs.hookimpl
    def classify_response(self, request, response):
        if "/judge" in request.url:
            raise ValueError("cannot parse the answer")
        return None


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_every_request_that_reached_the_source_is_an_attempt(make_s2s, standin, monkeypatch, request, database):
    """Sources failing at every stage at once, on the background dispatcher, with a lease shorter
    than the slow source's answer: per delivery, the requests the source saw equal the attempts
    recorded as sent."""
    url = request.getfixturevalue("fresh_pg_url") if database == "postgresql" else None
    standin.script("/b64", default=Reply(200, "OK", headers={"Content-Type": "text/plain; charset=base64"}))
    standin.script("/flaky", [503, 503])
    standin.script("/slow", default=Reply(200, "OK", delay=1.5))  # longer than the lease: renewed
    pm, s2s = make_s2s(url, lease_seconds=LEASE, poll_interval=0.1, timeout=3, retry_schedule=[0, 0.05, 0.1])
    s2s.dispatcher.sender = _RaisesAfterSendingTo(s2s.settings)
    pm.register(_FailsFor())
    decide = s2s.dispatcher._decide

    def decide_failing_for_some(row, result, attempt_no):
        if "/decide" in row.url:
            raise ZeroDivisionError("division by zero")
        return decide(row, result, attempt_no)

    monkeypatch.setattr(s2s.dispatcher, "_decide", decide_failing_for_some)
    load_click = s2s.store.load_click

    def load_click_failing_for_some(subid):
        if subid.startswith("build"):
            raise OperationalError("SELECT ...", {}, Exception("database is locked"))
        return load_click(subid)

    monkeypatch.setattr(s2s.store, "load_click", load_click_failing_for_some)
    for kind in KINDS:
        s2s.add_source(kind, postback_url=f"{standin.url}/{kind}?d={{delivery_id}}", statuses=["sale"])
        for n in range(3):
            pm.hook.on_click(click=click(f"{kind}{n}", f"X{n}", source=kind))
            convert(pm, f"{kind}{n}")
    s2s.start()

    def settled() -> bool:
        with s2s.engine.connect() as conn:
            return not conn.execute(
                select(t.deliveries.c.id).where(t.deliveries.c.state.in_(("due", "leased")))
            ).first()

    deadline = time.monotonic() + 10
    while not settled() and time.monotonic() < deadline:
        time.sleep(0.05)
    settled_in_time = settled()
    time.sleep(LEASE + 0.3)  # a claim left behind has expired by now, and been taken up again
    s2s.close()

    sent = {}
    for request in standin.requests:
        sent[int(request.params["d"])] = sent.get(int(request.params["d"]), 0) + 1
    with s2s.engine.connect() as conn:
        rows = conn.execute(select(t.deliveries.c.id, t.deliveries.c.source_id)).all()
        attempts = conn.execute(
            select(t.attempts.c.delivery_id, t.attempts.c.reason).where(t.attempts.c.attempt > 0)
        ).all()
    recorded = {}
    for attempt in attempts:
        if not attempt.reason.startswith("not sent"):
            recorded[attempt.delivery_id] = recorded.get(attempt.delivery_id, 0) + 1
    invisible = {
        row.source_id: sent.get(row.id, 0) - recorded.get(row.id, 0)
        for row in rows
        if sent.get(row.id, 0) != recorded.get(row.id, 0)
    }
    assert invisible == {}  # sources, and the requests each saw beyond the attempts recorded
    assert settled_in_time
    by_kind = {kind: sum(sent.get(row.id, 0) for row in rows if row.source_id == kind) for kind in KINDS}
    assert by_kind == {
        "ok": 3,
        "b64": 3,
        "flaky": 5,
        "slow": 3,
        "after": 3,
        "judge": 3,
        "prep": 0,
        "decide": 3,
        "build": 0,
    }
