"""Every extension hook, end to end through a plugin manager against a real source on loopback.

Each hook has its semantics tested (who is asked, in which order, what the answer does) and its
failure tested: one plugin's exception never stops the others or loses a delivery, and the attempt
(or the conversion's event) names the plugin.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json

import hookspecs
from hookspecs import PostbackRule, SourceTemplate

from .support import convert, make_click, registered

# --- register_source_templates --------------------------------------------------------------


class Templates:
    def __init__(self, *templates: SourceTemplate, error: Exception | None = None) -> None:
        self.templates, self.error = list(templates), error

    @hookspecs.hookimpl
    def register_source_templates(self):
        if self.error is not None:
            raise self.error
        return self.templates


def test_register_source_templates_adds_and_replaces_templates(make_s2s, standin, host):
    pm, s2s = make_s2s()
    mine = SourceTemplate(
        name="acme",
        postback_url=standin.url + "/acme?cid={external_id}",
        source_macro="[CID]",
        statuses=("lead", "sale"),
    )
    exo = SourceTemplate(
        name="exoclick", postback_url=standin.url + "/exo?tag={external_id}", source_macro="{conversions_tracking}"
    )
    with registered(pm, Templates(mine, exo), "acme"):
        assert s2s.templates()["acme"] == mine
        assert s2s.templates()["exoclick"] == exo  # a plugin's template replaces the built-in one
        assert "propellerads" in s2s.templates()  # the other built-ins stay
        s2s.add_source("a", template="acme")
        pm.hook.on_click(click=make_click("s1", "C1", source="a"))
        convert(pm, "s1", "lead")
        s2s.drain(timeout=5)
    assert [r.target for r in standin.requests] == ["/acme?cid=C1"]
    assert s2s.campaign_link("a", "https://t.example", "summer") == "https://t.example/c/summer?external_id=[CID]"


def test_register_source_templates_failing_plugin_is_left_out_and_named(make_s2s, standin, caplog):
    pm, s2s = make_s2s()
    good = SourceTemplate(name="acme", postback_url=standin.url + "/acme?cid={external_id}")
    with (
        registered(pm, Templates(good), "acme"),
        registered(pm, Templates(error=RuntimeError("no file")), "broken"),
        registered(pm, Templates("not a template"), "sloppy"),
    ):  # type: ignore[arg-type]
        library = s2s.templates()
    assert library["acme"] == good and "exoclick" in library
    assert sorted(f.describe() for f in s2s.template_failures) == [
        "plugin 'broken' failed in register_source_templates: RuntimeError: no file",
        "plugin 'sloppy' failed in register_source_templates: it returned a list holding str 'not a template', not SourceTemplate",
    ]
    assert "plugin 'broken' failed in register_source_templates" in caplog.text


# --- resolve_macro --------------------------------------------------------------------------


class Macros:
    def __init__(self, values: dict[str, str], error: Exception | None = None) -> None:
        self.values, self.error, self.seen = values, error, []

    @hookspecs.hookimpl
    def resolve_macro(self, name, argument, context):
        self.seen.append((name, argument, context.rule.id, context.click.subid, context.conversion.status))
        if self.error is not None:
            raise self.error
        return self.values.get(name)


def test_resolve_macro_first_result_wins_and_may_override_a_builtin(make_s2s, standin, host):
    pm, s2s = make_s2s()
    s2s.add_source(
        "exo", postback_url=standin.url + "/pb?goal={exo_goal:sale}&v={revenue}&c={external_id}", statuses=["sale"]
    )
    early, late = Macros({"exo_goal": "g&1", "revenue": "9.99"}), Macros({"exo_goal": "never"})
    with registered(pm, late, "late"), registered(pm, early, "early"):
        pm.hook.on_click(click=make_click("s1", "C1"))
        convert(pm, "s1", "sale", payout="2.5")
        s2s.drain(timeout=5)
    assert [r.target for r in standin.requests] == ["/pb?goal=g%261&v=9.99&c=C1"]  # encoded like a built-in
    assert ("exo_goal", "sale", "source:exo", "s1", "sale") in early.seen
    assert not any(name == "exo_goal" for name, *_ in late.seen)
    assert host.attempts[0].outcome == "delivered" and host.attempts[0].reason == "the source answered HTTP 200"


def test_resolve_macro_failing_plugin_falls_through_and_is_named_on_the_attempt(make_s2s, standin, host):
    pm, s2s = make_s2s()
    s2s.add_source("exo", postback_url=standin.url + "/pb?goal={exo_goal}&c={external_id}", statuses=["sale"])
    with (
        registered(pm, Macros({"exo_goal": "G7"}), "fallback"),
        registered(pm, Macros({}, error=KeyError("goals")), "broken"),
    ):
        pm.hook.on_click(click=make_click("s1", "C1"))
        convert(pm, "s1", "sale")
        s2s.drain(timeout=5)
    assert [r.target for r in standin.requests] == ["/pb?goal=G7&c=C1"]  # the next plugin answered
    (attempt,) = host.attempts
    assert attempt.outcome == "delivered"
    assert "plugin 'broken' failed in resolve_macro: KeyError: 'goals' for {exo_goal}" in attempt.reason


# --- prepare_request ------------------------------------------------------------------------


class JsonBody:
    """Turns the GET postback into a JSON POST built from the conversion."""

    @hookspecs.hookimpl
    def prepare_request(self, request, context):
        body = {
            "click": context.click.params["external_id"],
            "status": context.conversion.status,
            "value": str(context.conversion.payout),
            "rule": context.rule.id,
        }
        return dataclasses.replace(
            request,
            method="POST",
            body=json.dumps(body).encode(),
            headers={**request.headers, "Content-Type": "application/json"},
        )


class Signature:
    """Signs whatever body it is given: it must see the JSON body made before it."""

    secret = b"s3cret-signing-key"

    @hookspecs.hookimpl(trylast=True)
    def prepare_request(self, request, context):
        digest = hmac.new(self.secret, request.body or b"", hashlib.sha256).hexdigest()
        return dataclasses.replace(request, headers={**request.headers, "X-Signature": digest})


class Broken:
    def __init__(self, error: Exception) -> None:
        self.error = error

    @hookspecs.hookimpl
    def prepare_request(self, request, context):
        raise self.error


def test_prepare_request_each_sees_the_previous_result(make_s2s, standin, host):
    pm, s2s = make_s2s()
    s2s.add_source("exo", postback_url=standin.url + "/events?c={external_id}", statuses=["sale"])
    with registered(pm, Signature(), "signature"), registered(pm, JsonBody(), "json_body"):
        pm.hook.on_click(click=make_click("s1", "C1"))
        convert(pm, "s1", "sale", payout="4.5")
        s2s.drain(timeout=5)
    (request,) = standin.requests
    assert request.method == "POST"
    assert request.json() == {"click": "C1", "status": "sale", "value": "4.5", "rule": "source:exo"}
    assert request.headers["x-signature"] == hmac.new(Signature.secret, request.body, hashlib.sha256).hexdigest()
    (attempt,) = host.attempts
    assert (attempt.method, attempt.outcome) == ("POST", "delivered")
    assert json.loads(attempt.body)["click"] == "C1"


def test_prepare_request_failure_retries_with_the_plugin_named_and_never_sends(make_s2s, standin, host):
    pm, s2s = make_s2s(retry_schedule=[0, 0.05, 0.05])
    s2s.add_source("exo", postback_url=standin.url + "/events?c={external_id}", statuses=["sale"])
    broken = Broken(RuntimeError("token store unreachable"))
    with registered(pm, JsonBody(), "json_body"), registered(pm, broken, "token"):
        pm.hook.on_click(click=make_click("s1", "C1"))
        convert(pm, "s1", "sale")
        s2s.drain(timeout=0.01)  # the first attempt only
        assert standin.requests == []  # a request the plugin could not prepare is never sent
        first = host.attempts[0]
        assert (first.attempt, first.outcome, first.http_status) == (1, "retrying", None)
        assert (
            "not sent: plugin 'token' failed in prepare_request: RuntimeError: token store unreachable" in first.reason
        )
        assert first.error == "plugin 'token' failed in prepare_request: RuntimeError: token store unreachable"
        assert first.next_attempt_at is not None
        # The operator fixes the plugin; the delivery was kept, and the next attempt goes out.
        pm.unregister(name="token")
        pm.register(JsonBody(), name="token")  # any working plugin in its place
        s2s.drain(timeout=5)
    assert [(a.attempt, a.outcome) for a in host.attempts] == [(1, "retrying"), (2, "delivered")]
    assert len(standin.requests) == 1 and standin.requests[0].method == "POST"


def test_prepare_request_every_failing_plugin_is_named_and_the_others_still_run(make_s2s, standin, host):
    pm, s2s = make_s2s(retry_schedule=[0])
    s2s.add_source("exo", postback_url=standin.url + "/events?c={external_id}", statuses=["sale"])

    class Counting:
        calls = 0

        @hookspecs.hookimpl(trylast=True)
        def prepare_request(self, request, context):
            Counting.calls += 1

    with (
        registered(pm, Broken(ValueError("one")), "first_broken"),
        registered(pm, Broken(ValueError("two")), "second_broken"),
        registered(pm, Counting(), "counting"),
    ):
        pm.hook.on_click(click=make_click("s1"))
        convert(pm, "s1", "sale")
        s2s.drain(timeout=5)
    assert Counting.calls == 1 and standin.requests == []
    (attempt,) = host.attempts
    assert attempt.outcome == "failed" and "gave up after 1 attempts" in attempt.reason
    assert "plugin 'first_broken' failed in prepare_request: ValueError: one" in attempt.reason
    assert "plugin 'second_broken' failed in prepare_request: ValueError: two" in attempt.reason


def test_prepare_request_secrets_are_redacted_everywhere_the_attempt_is_recorded(make_s2s, standin, host):
    pm, s2s = make_s2s(retry_schedule=[0])
    token = "tok_9f8e7d6c5b4a"

    class Token:
        @hookspecs.hookimpl
        def prepare_request(self, request, context):
            return dataclasses.replace(
                request,
                url=request.url + "&access_token=" + token,
                body=f'{{"token": "{token}"}}'.encode(),
                headers={**request.headers, "Access-Token": token},
                secrets=(*request.secrets, token),
            )

    standin.script("/events", [(401, f"invalid token {token}")])
    s2s.add_source("exo", postback_url=standin.url + "/events?c={external_id}", statuses=["sale"])
    with registered(pm, Token(), "token"):
        pm.hook.on_click(click=make_click("s1"))
        convert(pm, "s1", "sale")
        s2s.drain(timeout=5)
    (request,) = standin.requests
    assert request.headers["access-token"] == token and request.params["access_token"] == token  # sent as is
    (attempt,) = host.attempts
    recorded = (
        json.dumps(attempt.to_dict()) + json.dumps([a.to_dict() for a in s2s.attempts()]) + str(s2s.explain("s1"))
    )
    assert token not in recorded
    assert attempt.url.endswith("&access_token=[REDACTED]")
    assert attempt.response_body == "invalid token [REDACTED]"
    assert json.loads(attempt.body) == {"token": "[REDACTED]"}


def test_prepare_request_sees_which_template_and_rule_the_request_is_for(make_s2s, standin):
    pm, s2s = make_s2s()
    seen = []

    class Look:
        @hookspecs.hookimpl
        def prepare_request(self, request, context):
            seen.append((request.template, request.rule_id, context.rule.template, context.rule.source_id))

    s2s.add_source(
        "exo", template="exoclick", postback_url=standin.url + "/tag.php?tag={external_id}", statuses=["sale"]
    )
    with registered(pm, Look(), "look"):
        pm.hook.on_click(click=make_click("s1"))
        convert(pm, "s1", "sale")
        s2s.drain(timeout=5)
    assert seen == [("exoclick", "source:exo", "exoclick", "exo")]


# --- classify_response ----------------------------------------------------------------------


class Classifier:
    def __init__(self, verdict=None, error: Exception | None = None) -> None:
        self.verdict, self.error, self.seen = verdict, error, []

    @hookspecs.hookimpl
    def classify_response(self, request, response):
        self.seen.append((request.template, response.status_code, response.text, response.headers.get("content-type")))
        if self.error is not None:
            raise self.error
        if callable(self.verdict):
            return self.verdict(request, response)
        return self.verdict


def errors_fail(request, response):
    return "failed" if response.text.startswith("ERROR") else None


def test_classify_response_first_result_wins_and_the_body_is_in_the_reason(make_s2s, standin, host):
    pm, s2s = make_s2s()
    standin.script("/tag.php", [(200, "ERROR: Tag is invalid!")], default=(200, "OK"))
    s2s.add_source(
        "exo", template="exoclick", postback_url=standin.url + "/tag.php?tag={external_id}", statuses=["sale"]
    )
    never = Classifier("delivered")
    with registered(pm, never, "never"), registered(pm, Classifier(errors_fail), "exo"):
        for n in (1, 2):  # one after the other: the first answer scripted is the error
            pm.hook.on_click(click=make_click(f"s{n}", f"C{n}"))
            convert(pm, f"s{n}", "sale")
            s2s.drain(timeout=5)
    by_subid = {a.subid: a for a in host.attempts}
    assert by_subid["s1"].outcome == "failed"
    assert by_subid["s1"].reason == "plugin 'exo' judged the HTTP 200 answer 'ERROR: Tag is invalid!': failed"
    assert by_subid["s2"].outcome == "delivered"  # None from "exo": the next plugin decides
    assert by_subid["s2"].reason == "plugin 'never' judged the HTTP 200 answer 'OK': delivered"
    assert len(never.seen) == 1


def test_classify_response_retry_verdict_retries_even_a_200(make_s2s, standin, host):
    pm, s2s = make_s2s(retry_schedule=[0, 0.05])
    standin.script("/pb", [(200, "BUSY, try later")], default=(200, "OK"))
    s2s.add_source("exo", postback_url=standin.url + "/pb?c={external_id}", statuses=["sale"])
    busy = Classifier(lambda request, response: "retry" if "BUSY" in response.text else None)
    with registered(pm, busy, "busy"):
        pm.hook.on_click(click=make_click("s1"))
        convert(pm, "s1", "sale")
        s2s.drain(timeout=5)
    assert [(a.attempt, a.outcome) for a in host.attempts] == [(1, "retrying"), (2, "delivered")]


def test_classify_response_failing_plugin_falls_back_to_the_default_rules(make_s2s, standin, host):
    pm, s2s = make_s2s(retry_schedule=[0, 0.05])
    standin.script("/pb", [(503, "busy")], default=(200, "OK"))
    s2s.add_source("exo", postback_url=standin.url + "/pb?c={external_id}", statuses=["sale"])
    with (
        registered(pm, Classifier(error=ValueError("bad json")), "broken"),
        registered(pm, Classifier("perhaps"), "odd"),
    ):
        pm.hook.on_click(click=make_click("s1"))
        convert(pm, "s1", "sale")
        s2s.drain(timeout=5)
    first, second = host.attempts
    assert (first.outcome, first.http_status, second.outcome) == ("retrying", 503, "delivered")
    assert first.reason.startswith("the source answered HTTP 503, a temporary error")
    for attempt in (first, second):
        assert (
            "plugin 'broken' failed in classify_response: ValueError: bad json, so its verdict was not used"
            in attempt.reason
        )
        assert "plugin 'odd' failed in classify_response: it returned 'perhaps'" in attempt.reason
        assert "plugin 'broken' failed in classify_response: ValueError: bad json" in attempt.error


# --- postback_rules -------------------------------------------------------------------------


class HostRules:
    def __init__(self, *rules: PostbackRule, error: Exception | None = None) -> None:
        self.rules, self.error, self.calls = list(rules), error, []

    @hookspecs.hookimpl
    def postback_rules(self, conversion, click):
        self.calls.append((conversion.subid, conversion.status, click.subid if click else None))
        if self.error is not None:
            raise self.error
        return self.rules


def test_postback_rules_from_every_plugin_are_resolved_with_the_plugins_own(make_s2s, standin, host):
    pm, s2s = make_s2s()
    s2s.add_source("exo", postback_url=standin.url + "/own?c={external_id}", statuses=["sale"])
    crm = HostRules(PostbackRule(id="crm:1", url=standin.url + "/crm?s={subid}&p={payout}", statuses=("sale",)))
    partner = HostRules(PostbackRule(id="partner:7", url=standin.url + "/partner?c={external_id}", statuses=("lead",)))
    with registered(pm, crm, "crm"), registered(pm, partner, "partner"):
        pm.hook.on_click(click=make_click("s1", "C1"))
        convert(pm, "s1", "sale", payout="3")
        s2s.drain(timeout=5)
        convert(pm, "s1", "sale", payout="3")  # a repeat: no postback fires twice
        s2s.drain(timeout=5)
    assert sorted(r.target for r in standin.requests) == ["/crm?s=s1&p=3", "/own?c=C1"]
    assert crm.calls[0] == ("s1", "sale", "s1")
    skipped = [a for a in host.attempts if a.outcome == "skipped"]
    assert [(a.rule_id, a.status) for a in skipped] == [("partner:7", "sale")]


def test_postback_rules_failing_plugin_is_named_in_explain_and_the_rest_is_delivered(make_s2s, standin, host):
    pm, s2s = make_s2s()
    s2s.add_source("exo", postback_url=standin.url + "/own?c={external_id}", statuses=["sale"])
    crm = HostRules(PostbackRule(id="crm:1", url=standin.url + "/crm?s={subid}", statuses=("sale",)))
    with registered(pm, crm, "crm"), registered(pm, HostRules(error=ConnectionError("crm db down")), "broken_store"):
        pm.hook.on_click(click=make_click("s1", "C1"))
        convert(pm, "s1", "sale")
        s2s.drain(timeout=5)
    assert sorted(r.target for r in standin.requests) == ["/crm?s=s1", "/own?c=C1"]
    assert all(a.outcome == "delivered" for a in host.attempts)
    explanation = s2s.explain("s1")
    assert (
        "plugin 'broken_store' failed in postback_rules: ConnectionError: crm db down; its postback rules were not resolved"
        in explanation.headline
    )
    assert explanation.problems[0] == explanation.headline


def test_postback_rules_wrong_answer_is_refused_without_losing_the_conversion(make_s2s, standin, host):
    pm, s2s = make_s2s()
    s2s.add_source("exo", postback_url=standin.url + "/own?c={external_id}", statuses=["sale"])
    with registered(pm, HostRules({"id": "x"}), "sloppy"):  # type: ignore[arg-type]
        pm.hook.on_click(click=make_click("s1", "C1"))
        convert(pm, "s1", "sale")
        s2s.drain(timeout=5)
    assert [r.target for r in standin.requests] == ["/own?c=C1"]
    assert "plugin 'sloppy' failed in postback_rules: it returned a list holding dict" in s2s.explain("s1").headline
