"""End to end through the hooks, against a real HTTP source on loopback."""

from __future__ import annotations

from decimal import Decimal

import hookspecs
from hookspecs import Click, Conversion


def click(
    subid: str, external_id: str | None = "abc", campaign: str = "summer", source: str | None = "exo", **params: str
) -> Click:
    values = dict(params)
    if external_id is not None:
        values["external_id"] = external_id
    return Click(subid=subid, campaign_id=campaign, source_id=source, params=values)


def convert(pm, subid: str, status: str, payout: str | None = "2.5", tid: str | None = None, **kw) -> None:
    pm.hook.on_conversion(
        conversion=Conversion(subid=subid, status=status, payout=Decimal(payout) if payout else None, tid=tid, **kw)
    )


def test_exact_url_encodes_every_structural_character(make_s2s, standin, host):
    pm, s2s = make_s2s()
    s2s.add_source(
        "exo",
        template="exoclick",
        postback_url=standin.url + "/tag.php?goal=G1&tag={external_id}&value={revenue}",
        statuses=["sale"],
    )
    tricky = "a&b=c #d?e/f ü\r\nX"
    pm.hook.on_click(click=click("s1", tricky))
    convert(pm, "s1", "sale", payout="12.50", currency="USD")
    s2s.drain(timeout=5)
    (request,) = standin.requests
    assert request.raw_query == "goal=G1&tag=a%26b%3Dc%20%23d%3Fe%2Ff%20%C3%BC%0D%0AX&value=12.5"
    assert request.params["tag"] == tricky
    assert set(request.query) == {"goal", "tag", "value"}
    assert [a.outcome for a in host.attempts] == ["delivered"]


def test_status_filter_and_lead_then_sale(make_s2s, standin, host):
    pm, s2s = make_s2s()
    s2s.add_source("exo", postback_url=standin.url + "/src?cid={external_id}&st={status}", statuses=["sale"])
    rule = s2s.add_postback(
        "summer", url=standin.url + "/camp?cid={external_id}&st={status}&p={payout}", statuses=["lead", "sale"]
    )
    pm.hook.on_click(click=click("s1", "X1"))
    convert(pm, "s1", "lead", payout="1")
    s2s.drain(timeout=5)
    assert [r.target for r in standin.requests] == ["/camp?cid=X1&st=lead&p=1"]
    convert(pm, "s1", "sale", payout="5")
    s2s.drain(timeout=5)
    assert sorted(r.target for r in standin.requests[1:]) == ["/camp?cid=X1&st=sale&p=5", "/src?cid=X1&st=sale"]
    skipped = [a for a in host.attempts if a.outcome == "skipped"]
    assert len(skipped) == 1 and skipped[0].rule_id == "source:exo" and skipped[0].status == "lead"
    assert "status lead is not enabled" in skipped[0].reason
    assert rule.id == "postback:1"


def test_same_conversion_reported_twice_sends_once(make_s2s, standin, host):
    pm, s2s = make_s2s()
    s2s.add_source("exo", postback_url=standin.url + "/pb?cid={external_id}", statuses=["sale"])
    pm.hook.on_click(click=click("s1", "X1"))
    for _ in range(3):
        convert(pm, "s1", "sale")
    convert(pm, "s1", "sale", tid="")
    s2s.drain(timeout=5)
    assert len(standin.requests) == 1
    assert len(host.attempts) == 1


def test_retry_after_503_then_success(make_s2s, standin, host):
    pm, s2s = make_s2s(retry_schedule=[0, 0.05, 0.05, 0.05])
    standin.script("/pb", [(503, "busy"), (503, "busy")], default=(200, "OK"))
    s2s.add_source("exo", postback_url=standin.url + "/pb?cid={external_id}", statuses=["sale"])
    pm.hook.on_click(click=click("s1", "X1"))
    convert(pm, "s1", "sale")
    s2s.drain(timeout=10)
    assert [(a.attempt, a.outcome, a.http_status) for a in host.attempts] == [
        (1, "retrying", 503),
        (2, "retrying", 503),
        (3, "delivered", 200),
    ]
    assert host.attempts[0].next_attempt_at is not None and "503" in host.attempts[0].reason
    assert len(standin.requests) == 3


def test_gives_up_after_the_schedule(make_s2s, standin, host):
    pm, s2s = make_s2s(retry_schedule=[0, 0.02])
    standin.script("/pb", [], default=(500, "down"))
    s2s.add_source("exo", postback_url=standin.url + "/pb?cid={external_id}", statuses=["sale"])
    pm.hook.on_click(click=click("s1"))
    convert(pm, "s1", "sale")
    s2s.drain(timeout=5)
    assert [a.outcome for a in host.attempts] == ["retrying", "failed"]
    assert "gave up after 2 attempts" in host.attempts[-1].reason


def test_4xx_fails_without_retry(make_s2s, standin, host):
    pm, s2s = make_s2s()
    standin.script("/pb", [], default=(404, "no such goal"))
    s2s.add_source("exo", postback_url=standin.url + "/pb?cid={external_id}", statuses=["sale"])
    pm.hook.on_click(click=click("s1"))
    convert(pm, "s1", "sale")
    s2s.drain(timeout=5)
    assert [(a.outcome, a.http_status, a.response_body) for a in host.attempts] == [("failed", 404, "no such goal")]


def test_missing_click_id_is_skipped_with_reason(make_s2s, standin, host):
    pm, s2s = make_s2s()
    s2s.add_source(
        "exo", template="exoclick", postback_url=standin.url + "/tag.php?tag={external_id}", statuses=["sale"]
    )
    pm.hook.on_click(click=click("none", None))
    pm.hook.on_click(click=click("macro", "{conversions_tracking}"))
    convert(pm, "none", "sale")
    convert(pm, "macro", "sale")
    s2s.drain(timeout=5)
    assert standin.requests == []
    reasons = {a.subid: a.reason for a in host.attempts}
    assert all(a.outcome == "skipped" and a.attempt == 0 for a in host.attempts)
    assert "has no external_id" in reasons["none"] and "{conversions_tracking}" in reasons["none"]
    assert "did not substitute" in reasons["macro"]
    explanation = s2s.explain("none")
    assert "external_id" in explanation.headline and "campaign link" in explanation.headline


def test_every_attempt_reported_once(make_s2s, standin, host):
    pm, s2s = make_s2s(retry_schedule=[0, 0.02, 0.02])
    standin.script("/flaky", [(503, "")], default=(200, "OK"))
    s2s.add_source("exo", postback_url=standin.url + "/flaky?c={external_id}", statuses=["lead", "sale"])
    s2s.add_postback("summer", url=standin.url + "/camp?c={external_id}", statuses=["sale"])
    for n in range(5):
        pm.hook.on_click(click=click(f"s{n}", f"X{n}"))
        convert(pm, f"s{n}", "lead")
        convert(pm, f"s{n}", "sale")
    s2s.drain(timeout=10)
    keys = [(a.delivery_id, a.attempt) for a in host.attempts]
    assert len(keys) == len(set(keys))
    stored = s2s.attempts(limit=1000)
    assert sorted(keys) == sorted((a.delivery_id, a.attempt) for a in stored)
    # 5 clicks x (source lead, source sale, campaign sale, campaign lead skipped) deliveries
    assert sum(1 for a in host.attempts if a.outcome == "delivered") == 15
    assert sum(1 for a in host.attempts if a.outcome == "skipped") == 5


def test_post_postback_with_json_body(make_s2s, standin, host):
    pm, s2s = make_s2s()
    s2s.add_postback(
        "summer",
        url=standin.url + "/events",
        method="POST",
        statuses=["sale"],
        body='{"click_id": "{external_id}", "value": "{revenue}"}',
    )
    pm.hook.on_click(click=click("s1", 'quo"te'))
    convert(pm, "s1", "sale", payout="3")
    s2s.drain(timeout=5)
    (request,) = standin.requests
    assert request.method == "POST"
    assert request.json() == {"click_id": 'quo"te', "value": "3"}
    assert request.headers["content-type"] == "application/json"


def test_unknown_macro_renders_empty_and_is_named(make_s2s, standin, host):
    pm, s2s = make_s2s()
    s2s.add_postback("summer", url=standin.url + "/pb?c={external_id}&x={externa_id}", statuses=["sale"])
    pm.hook.on_click(click=click("s1", "X"))
    convert(pm, "s1", "sale")
    s2s.drain(timeout=5)
    assert standin.requests[0].target == "/pb?c=X&x="
    assert "{externa_id}" in host.attempts[0].reason


def test_private_target_refused_by_default(make_s2s, standin, host):
    pm, s2s = make_s2s(allow_private_targets=False)
    s2s.add_source("exo", postback_url=standin.url + "/pb?c={external_id}", statuses=["sale"])
    pm.hook.on_click(click=click("s1"))
    convert(pm, "s1", "sale")
    s2s.drain(timeout=5)
    assert standin.requests == []
    (attempt,) = host.attempts
    assert attempt.outcome == "failed" and "private or internal address" in attempt.reason


def test_background_dispatcher_delivers_without_drain(make_s2s, standin, host):
    pm, s2s = make_s2s()
    s2s.add_source("exo", postback_url=standin.url + "/pb?c={external_id}", statuses=["sale"])
    s2s.start()
    pm.hook.on_click(click=click("s1", "BG"))
    convert(pm, "s1", "sale")
    (request,) = standin.wait_for(1, timeout=5)
    assert request.params == {"c": "BG"}


def test_conversion_click_used_when_on_click_was_not_called(make_s2s, standin, host):
    pm, s2s = make_s2s()
    s2s.add_source("exo", postback_url=standin.url + "/pb?c={external_id}&s={sub_id_1}", statuses=["sale"])
    pm.hook.on_conversion(conversion=Conversion(subid="s9", status="sale", click=click("s9", "CC", sub_id_1="zone 7")))
    s2s.drain(timeout=5)
    assert standin.requests[0].target == "/pb?c=CC&s=zone%207"


def test_unknown_click_is_skipped_with_reason(make_s2s, standin, host):
    pm, s2s = make_s2s()
    rule = hookspecs.PostbackRule(id="host:1", url=standin.url + "/pb?c={subid}", statuses=("sale",))

    class HostRules:
        @hookspecs.hookimpl
        def postback_rules(self, conversion, click):
            return [rule]

    pm.register(HostRules())
    convert(pm, "ghost", "sale")
    s2s.drain(timeout=5)
    assert standin.requests == []
    assert "unknown to the postback plugin" in host.attempts[0].reason
