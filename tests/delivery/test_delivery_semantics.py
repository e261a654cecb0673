"""At-least-once delivery made usable by sources that de-duplicate: ``{delivery_id}`` and the
idempotency header are the same on every retry and resend of a delivery; and marked secrets stay
out of the log even when a source echoes them back."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

import hookspecs
from hookspecs import PostbackRule
from s2s_plugin.errors import ConfigError
from s2s_plugin.resolution.redact import secret_values
from s2s_plugin.resolution.values import DELIVERY_ID_PENDING
from s2s_plugin.settings import DeliverySettings, settings_from_env
from s2s_plugin.storage import tables as t

from .conftest import click, convert


class HostRules:
    """A host keeping postback rules of its own (with headers), given through ``postback_rules``."""

    def __init__(self, *rules: PostbackRule) -> None:
        self.rules = list(rules)

    @hookspecs.hookimpl
    def postback_rules(self, conversion, click):
        return self.rules


def test_delivery_id_is_the_same_in_url_body_and_header_across_retries_and_resends(make_s2s, standin, host):
    pm, s2s = make_s2s(retry_schedule=[0, 0.05, 0.05])
    s2s.add_source("exo", postback_url=standin.url + "/pb?cid={external_id}&dedup={delivery_id}", statuses=["sale"])
    pm.register(
        HostRules(
            PostbackRule(
                id="host:events",
                url=standin.url + "/events",
                method="POST",
                statuses=("sale",),
                body='{"event_id": "{delivery_id}", "click": "{external_id}"}',
                headers={"X-Event": "ev-{delivery_id}"},
            )
        )
    )
    standin.script("/pb", [503, 200])
    standin.script("/events", [503, 200])
    pm.hook.on_click(click=click("s1", "X1"))
    convert(pm, "s1", "sale")
    s2s.drain(timeout=5)
    ids = {a.rule_id: a.delivery_id for a in host.attempts}
    assert [a.outcome for a in host.attempts].count("delivered") == 2
    s2s.resend(ids["source:exo"])
    s2s.resend(ids["host:events"])
    s2s.drain(timeout=5)

    pb, events = standin.requests_for("/pb"), standin.requests_for("/events")
    assert len(pb) == 3 and len(events) == 3  # first try, retry, resend
    assert {r.params["dedup"] for r in pb} == {str(ids["source:exo"])}
    assert {r.json()["event_id"] for r in events} == {str(ids["host:events"])}
    assert {r.headers["X-Event"] for r in events} == {f"ev-{ids['host:events']}"}
    # What is queued and logged carries the real id too, never the stand-in text.
    with s2s.engine.connect() as conn:
        stored = " ".join(f"{r.url} {r.body} {r.headers}" for r in conn.execute(select(t.deliveries)))
        stored += " ".join(f"{r.url} {r.body}" for r in conn.execute(select(t.attempts)))
    assert DELIVERY_ID_PENDING not in stored
    assert f"dedup={ids['source:exo']}" in stored


def test_delivery_id_differs_between_deliveries(make_s2s, standin):
    pm, s2s = make_s2s()
    s2s.add_source("exo", postback_url=standin.url + "/pb?d={delivery_id}&s={status}", statuses=["lead", "sale"])
    for subid in ("a", "b"):
        pm.hook.on_click(click=click(subid, "X"))
        convert(pm, subid, "lead")
        convert(pm, subid, "sale")
    s2s.drain(timeout=5)
    sent = [r.params["d"] for r in standin.requests]
    assert len(sent) == 4 and len(set(sent)) == 4 and all(d.isdigit() for d in sent)


def test_idempotency_header_carries_the_delivery_id_on_every_attempt(make_s2s, standin, host):
    pm, s2s = make_s2s(retry_schedule=[0, 0.05], idempotency_header="Idempotency-Key")
    s2s.add_source("exo", postback_url=standin.url + "/pb?cid={external_id}", statuses=["sale"])
    pm.register(
        HostRules(
            PostbackRule(
                id="host:own",
                url=standin.url + "/own",
                statuses=("sale",),
                headers={"idempotency-key": "mine"},
            )
        )
    )
    standin.script("/pb", [503, 200])
    pm.hook.on_click(click=click("s1", "X1"))
    convert(pm, "s1", "sale")
    s2s.drain(timeout=5)
    delivery = next(a.delivery_id for a in host.attempts if a.rule_id == "source:exo")
    assert [r.headers["Idempotency-Key"] for r in standin.requests_for("/pb")] == [str(delivery)] * 2
    # A rule that sets the header itself keeps its own value.
    assert [r.headers["Idempotency-Key"] for r in standin.requests_for("/own")] == ["mine"]


def test_without_the_setting_no_idempotency_header_is_sent(make_s2s, standin):
    pm, s2s = make_s2s()
    s2s.add_source("exo", postback_url=standin.url + "/pb", statuses=["sale"])
    pm.hook.on_click(click=click("s1"))
    convert(pm, "s1", "sale")
    s2s.drain(timeout=5)
    (request,) = standin.requests
    assert "Idempotency-Key" not in request.headers


def test_test_send_renders_delivery_id_zero(make_s2s, standin):
    _pm, s2s = make_s2s(idempotency_header="Idempotency-Key")
    s2s.add_source("exo", postback_url=standin.url + "/pb?d={delivery_id}", statuses=["sale"])
    result = s2s.test_send("source:exo")
    assert result.outcome == "delivered"
    (request,) = standin.requests
    assert request.params["d"] == "0" and request.headers["Idempotency-Key"] == "0"


def test_idempotency_header_setting_is_checked():
    with pytest.raises(ConfigError, match="not an HTTP header name"):
        DeliverySettings(idempotency_header="Idempotency Key")
    assert settings_from_env({"S2S_IDEMPOTENCY_HEADER": "X-Dedup"}) == {"idempotency_header": "X-Dedup"}


def test_delivery_id_is_a_known_macro_for_the_linter(make_s2s):
    _pm, s2s = make_s2s()
    warnings = s2s.lint("https://s.example/pb?cid={external_id}&d={delivery_id}")
    assert not [w for w in warnings if "delivery_id" in str(w)]


# --- secrets echoed back by a source ----------------------------------------------------------


def test_secrets_echoed_in_answers_never_reach_the_log(make_s2s, standin, host):
    pm, s2s = make_s2s(retry_schedule=[0, 0.05])
    s2s.add_source(
        "exo",
        postback_url=standin.url + "/pb?c={external_id}&api_key=SeCrEt%2B1",
        statuses=["sale"],
        secrets=["api_key"],
    )
    pm.register(
        HostRules(
            PostbackRule(
                id="host:events",
                url=standin.url + "/events",
                method="POST",
                statuses=("sale",),
                secrets=("password", "x-token"),
                body='{"click": "{external_id}", "auth": {"password": "p\\"SeCrEt3"}}',
                headers={"X-Token": "SeCrEt4tok"},
            )
        )
    )
    # A source that quotes the request back: plain, percent-encoded, JSON-escaped, HTML-escaped.
    standin.script("/pb", [(500, "bad key SeCrEt+1 in /pb?api_key=SeCrEt%2B1"), (200, "OK for SeCrEt+1")])
    standin.script(
        "/events",
        [
            (400, json.dumps({"error": "wrong password", "echo": {"password": 'p"SeCrEt3', "token": "SeCrEt4tok"}})),
        ],
    )
    pm.hook.on_click(click=click("s1", "X1"))
    convert(pm, "s1", "sale")
    s2s.drain(timeout=5)
    # The source still got the real values.
    assert standin.requests_for("/pb")[0].params["api_key"] == "SeCrEt+1"
    assert standin.requests_for("/events")[0].headers["X-Token"] == "SeCrEt4tok"

    logged = " ".join(f"{a.url} {a.body} {a.response_body} {a.reason} {a.error}" for a in host.attempts)
    with s2s.engine.connect() as conn:
        logged += " ".join(str(tuple(r)) for r in conn.execute(select(t.attempts)))
        logged += " ".join(str(tuple(r)) for r in conn.execute(select(t.deliveries.c.reason)))
    logged += str(s2s.explain("s1").to_dict())
    assert "SeCrEt" not in logged
    assert "[REDACTED]" in " ".join(a.response_body or "" for a in host.attempts)
    assert {a.outcome for a in host.attempts} == {"retrying", "delivered", "failed"}


def test_test_send_masks_an_echoed_secret(make_s2s, standin):
    _pm, s2s = make_s2s()
    s2s.add_source("exo", postback_url=standin.url + "/pb?api_key=SeCrEt77", statuses=["sale"], secrets=["api_key"])
    standin.script("/pb", [(403, "key SeCrEt77 is not allowed")])
    result = s2s.test_send("source:exo")
    assert result.outcome == "failed"
    assert "SeCrEt77" not in f"{result.url} {result.response_body} {result.reason}"
    assert "[REDACTED]" in result.response_body


def test_secret_values_are_found_by_name_in_query_body_and_headers():
    found = secret_values(
        "https://u:pa55word@s.example/pb?a=1&API_KEY=k3y-value&b=2",
        '{"outer": {"Password": "hunter22", "n": 5}, "list": [{"password": 12345}]}',
        {"X-Token": "tok-123", "Authorization": "Bearer b3arer-token", "Accept": "*/*"},
        ["api_key", "password", "x-token"],
    )
    assert set(found) == {
        "k3y-value",
        "pa55word",
        "hunter22",
        "12345",
        "tok-123",
        "Bearer b3arer-token",
        "b3arer-token",
    }
    # Form bodies too; values too short to be secrets are not searched for.
    assert secret_values("https://s.example/pb", "pin=12&token=abcdef", {}, ["pin", "token"]) == ("abcdef",)
    assert secret_values("https://s.example/pb?k=v", None, {}, []) == ()
