"""Every cause code comes from a real scenario: a rule set up so, a real source on loopback
answering so, a conversion through on_conversion, the real dispatcher. Each checks the code where it
is stored (the delivery, its attempt) and where a host gets it (``PostbackAttempt.cause``).

Codes whose scenario needs more machinery are produced in the tests named in ``ELSEWHERE``."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any, Optional

import pytest
from sqlalchemy import select

import hookspecs
from hookspecs import Conversion, PostbackRule
from s2s_plugin.resolution.causes import Cause
from s2s_plugin.storage import tables as t
from sample_host.standin import Reply
from tests.support.flow import click
from tests.support.hostile import HostileSource, answer
from tests.support.servers import free_port


@dataclasses.dataclass(frozen=True)
class Scenario:
    """``setup(s2s, base_url) -> url`` adds the rule (or returns the URL for a campaign postback
    firing on sale); ``answer`` is the stand-in's answer; the rest is what must be recorded."""

    cause: Cause
    state: str
    outcome: str
    answer: Any = None
    url: str = "/pb?c={external_id}"
    settings: dict[str, Any] = dataclasses.field(default_factory=dict)
    rule: dict[str, Any] = dataclasses.field(default_factory=dict)
    external_id: Optional[str] = "abc"
    payout: str = "2.5"
    status: str = "sale"
    words: str = ""
    plugin: Optional[Callable[[], Any]] = None


class _Judge:
    @hookspecs.hookimpl
    def classify_response(self, request, response):
        return "failed" if "ERROR" in response.text else None


class _Signer:
    @hookspecs.hookimpl
    def prepare_request(self, request, context):
        raise KeyError("token")


SCENARIOS = [
    Scenario(Cause.STATUS_NOT_ENABLED, "skipped", "skipped", status="lead", words="is not enabled for"),
    Scenario(Cause.RULE_DISABLED, "skipped", "skipped", rule={"enabled": False}, words="is disabled"),
    Scenario(Cause.NO_CLICK_ID, "skipped", "skipped", external_id=None, words="needs the source's click id"),
    Scenario(
        Cause.PAYOUT_BELOW_MINIMUM, "skipped", "skipped", rule={"min_payout": "10"}, payout="2.5", words="minimum"
    ),
    Scenario(Cause.BAD_URL, "skipped", "skipped", url="ftp://files.example/pb", words="only http and https"),
    Scenario(Cause.ACCEPTED, "delivered", "delivered", Reply(200, "OK"), words="HTTP 200"),
    Scenario(
        Cause.SUCCESS_TEXT_MISSING,
        "failed",
        "failed",
        Reply(200, "ERROR: Tag is invalid!"),
        rule={"template": "exoclick", "placeholders": {"GOAL_ID": "1b9b"}},
        words="without 'OK'",
    ),
    Scenario(
        Cause.PLUGIN_VERDICT, "failed", "failed", Reply(200, "ERROR: no"), plugin=_Judge, words="judged the HTTP 200"
    ),
    Scenario(Cause.HTTP_REFUSED, "failed", "failed", Reply(400, "bad"), words="refused the postback with HTTP 400"),
    Scenario(Cause.HTTP_GONE, "failed", "failed", Reply(410, "gone"), words="410 Gone"),
    Scenario(
        Cause.HTTP_RATE_LIMITED,
        "due",
        "retrying",
        Reply(429, "slow down", headers={"Retry-After": "120"}),
        settings={"retry_schedule": [0, 1]},
        words="with Retry-After",
    ),
    Scenario(Cause.HTTP_REQUEST_TIMEOUT, "failed", "failed", Reply(408, "late"), words="HTTP 408, a temporary error"),
    Scenario(Cause.HTTP_SERVER_ERROR, "failed", "failed", Reply(503, "busy"), words="gave up after 1 attempts"),
    Scenario(
        Cause.REDIRECT_NOT_FOLLOWED,
        "failed",
        "failed",
        Reply(302, "", headers={"Location": "/elsewhere"}),
        words="which is not followed",
    ),
    Scenario(
        Cause.REDIRECT_REFUSED,
        "failed",
        "failed",
        Reply(302, ""),
        rule={"follow_redirects": True},
        words="without a Location",
    ),
    Scenario(Cause.TIMEOUT, "failed", "failed", Reply(200, "OK", delay=3), settings={"timeout": 0.5}, words="in time"),
    Scenario(
        Cause.PLUGIN_FAILED,
        "due",
        "retrying",
        plugin=_Signer,
        settings={"retry_schedule": [0, 600]},
        words="failed in prepare_request",
    ),
    Scenario(
        Cause.PRIVATE_ADDRESS,
        "failed",
        "failed",
        settings={"allow_private_targets": False},
        words="private or internal address",
    ),
    Scenario(
        Cause.MAX_AGE,
        "failed",
        "failed",
        Reply(200, "OK"),
        settings={"max_age": 0.2, "retry_schedule": [0.5]},
        words="beyond the maximum age",
    ),
]


def _run(
    scenario: Scenario, make_s2s, standin, host, base_url: Optional[str] = None, database_url: Optional[str] = None
) -> tuple[Any, list[Any], Any]:
    """Set the scenario up, deliver, and return the delivery row, its attempt rows, the last report."""
    settings = {"retry_schedule": [0], **scenario.settings}
    pm, s2s = make_s2s(database_url, **settings)
    if scenario.plugin is not None:
        pm.register(scenario.plugin(), name="third-party")
    if scenario.answer is not None:
        standin.set_default(scenario.answer)
    base = base_url or standin.url
    url = scenario.url if "://" in scenario.url else base + scenario.url
    rule = dict(scenario.rule)
    template = rule.pop("template", None)
    if template:
        s2s.add_source("exo", template=template, postback_url=url, statuses=["sale"], **rule)
        source = "exo"
    else:
        enabled = rule.pop("enabled", True)
        added = s2s.add_postback("summer", url=url, statuses=["sale"], **rule)
        if not enabled:
            s2s.update_postback(added.id, enabled=False)
        source = None
    subid = "c1"
    visit = click(subid, source=source)
    if scenario.external_id is None:
        visit = dataclasses.replace(visit, params={})
    pm.hook.on_click(click=visit)
    conversion = Conversion(subid=subid, status=scenario.status, payout=scenario.payout, tid="T1")
    pm.hook.on_conversion(conversion=conversion)
    if scenario.cause is Cause.MAX_AGE:
        time.sleep(0.6)  # older than max_age by the time it falls due
    s2s.drain(timeout=3)
    with s2s.engine.connect() as conn:
        (delivery,) = conn.execute(select(t.deliveries).where(t.of_subid(subid))).all()
        attempts = conn.execute(
            select(t.attempts).where(t.attempts.c.delivery_id == delivery.id).order_by(t.attempts.c.id)
        ).all()
    reports = [a for a in host.attempts if a.delivery_id == delivery.id]
    return delivery, attempts, reports[-1] if reports else None


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.cause.value)
def test_each_cause_is_stored_with_its_sentence_and_reported(scenario, make_s2s, standin, host):
    delivery, attempts, reported = _run(scenario, make_s2s, standin, host)
    assert (delivery.state, delivery.cause) == (scenario.state, scenario.cause), delivery.reason
    assert scenario.words in delivery.reason
    last = attempts[-1]
    assert (last.outcome, last.cause) == (scenario.outcome, scenario.cause), last.reason
    assert reported is not None and (reported.outcome, reported.cause) == (scenario.outcome, scenario.cause.value)
    assert reported.reason == last.reason


@pytest.mark.parametrize("cause", [Cause.NO_CLICK_ID, Cause.HTTP_RATE_LIMITED, Cause.PLUGIN_FAILED], ids=str)
def test_codes_are_stored_and_reported_on_postgresql(cause, make_s2s, standin, host, fresh_pg_url):
    (scenario,) = [s for s in SCENARIOS if s.cause is cause]
    delivery, attempts, reported = _run(scenario, make_s2s, standin, host, database_url=fresh_pg_url)
    assert (delivery.state, delivery.cause, attempts[-1].cause) == (scenario.state, cause, cause)
    assert reported.cause == cause.value


def test_a_source_that_is_not_listening_is_a_connection_failure(make_s2s, standin, host):
    scenario = Scenario(Cause.CONNECTION_FAILED, "failed", "failed", words="could not reach the source")
    delivery, _attempts, reported = _run(scenario, make_s2s, standin, host, base_url=f"http://127.0.0.1:{free_port()}")
    assert (delivery.cause, reported.cause) == (Cause.CONNECTION_FAILED, "connection_failed"), delivery.reason


def test_an_answer_that_is_not_http_has_its_own_cause(make_s2s, standin, host):
    scenario = Scenario(Cause.NOT_HTTP, "failed", "failed", words="not HTTP")
    with HostileSource({"/pb": answer(b"SSH-2.0-OpenSSH_9.6\r\n")}) as source:
        delivery, _attempts, reported = _run(scenario, make_s2s, standin, host, base_url=source.url)
    assert (delivery.cause, reported.cause) == (Cause.NOT_HTTP, "not_http"), delivery.reason


def test_a_host_name_that_does_not_resolve_is_retried_as_dns_failed(make_s2s, standin, host):
    scenario = Scenario(Cause.DNS_FAILED, "due", "retrying", settings={"retry_schedule": [0, 600]})
    delivery, _attempts, reported = _run(scenario, make_s2s, standin, host, base_url="http://pb.nowhere.invalid")
    assert (delivery.state, delivery.cause, reported.cause) == ("due", Cause.DNS_FAILED, "dns_failed")
    assert "could not be resolved" in delivery.reason


def test_an_unknown_macro_is_the_queued_deliverys_note_until_it_is_sent(make_s2s, standin, host):
    pm, s2s = make_s2s(retry_schedule=[0])
    s2s.add_postback("summer", url=standin.url + "/pb?c={external_id}&z={zoneid_typo}", statuses=["sale"])
    pm.hook.on_click(click=click("c1", source=None))
    pm.hook.on_conversion(conversion=Conversion(subid="c1", status="sale", payout="1", tid="T1"))
    with s2s.engine.connect() as conn:
        queued = conn.execute(select(t.deliveries)).one()
    assert (queued.state, queued.cause) == ("due", Cause.UNKNOWN_MACRO) and "unknown macro" in queued.reason
    s2s.drain(timeout=3)
    with s2s.engine.connect() as conn:
        sent = conn.execute(select(t.deliveries)).one()
    # Sent: the cause is now the answer's, the note stays in the sentence.
    assert (sent.state, sent.cause) == ("delivered", Cause.ACCEPTED) and "unknown macro" in sent.reason


class _HostRules:
    """A host that keeps postback rules of its own (``postback_rules``)."""

    def __init__(self, url: str) -> None:
        self.url = url

    @hookspecs.hookimpl
    def postback_rules(self, conversion, click):
        return [PostbackRule(id="host:1", url=self.url, statuses=("sale",))]


def test_a_conversion_for_a_click_the_plugin_never_saw_is_skipped_as_click_unknown(make_s2s, standin, host):
    pm, s2s = make_s2s()
    pm.register(_HostRules(standin.url + "/pb"), name="host-rules")
    pm.hook.on_conversion(conversion=Conversion(subid="never-seen", status="sale", payout="1", tid="T1"))
    s2s.drain(timeout=3)
    with s2s.engine.connect() as conn:
        delivery = conn.execute(select(t.deliveries)).one()
        attempt = conn.execute(select(t.attempts)).one()
    assert (delivery.state, delivery.cause, attempt.cause) == ("skipped", Cause.CLICK_UNKNOWN, Cause.CLICK_UNKNOWN)
    assert "unknown to the postback plugin" in delivery.reason
    assert [(a.outcome, a.cause) for a in host.attempts] == [("skipped", "click_unknown")]
    assert standin.requests == []


#: Codes produced by scenarios that need more machinery, and the tests that produce them.
ELSEWHERE = {
    Cause.TLS_FAILED: "tests/delivery/test_tls.py::test_a_certificate_from_an_unknown_authority_is_refused",
    Cause.BAD_REQUEST: "tests/delivery/test_hostile_sender.py::test_a_request_that_cannot_be_sent_fails_at_once_and_reaches_nobody",
    Cause.INTERNAL_ERROR: "tests/delivery/test_internal_errors.py::test_an_error_before_sending_retries_on_the_schedule",
    Cause.INTERNAL_ERROR_SENT: "tests/delivery/test_internal_errors.py::test_an_error_after_sending_is_recorded_once_and_not_sent_again",
    Cause.HOST_NOT_ANSWERING: "tests/delivery/test_isolation.py::test_a_deferred_delivery_keeps_its_retries_and_max_age",
    Cause.LATE_RESULT: "tests/delivery/test_database_faults.py::test_a_result_whose_claim_was_taken_over_is_logged_and_reported_as_late",
}


def test_every_code_has_a_scenario():
    here = {s.cause for s in SCENARIOS} | {
        Cause.CLICK_UNKNOWN,
        Cause.CONNECTION_FAILED,
        Cause.NOT_HTTP,
        Cause.DNS_FAILED,
        Cause.UNKNOWN_MACRO,
    }
    assert here.isdisjoint(ELSEWHERE)
    assert here | set(ELSEWHERE) == set(Cause)
