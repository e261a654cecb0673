"""Built-in ad-platform APIs: the exact JSON each one puts on the wire, and how their answers count.

Each source's URL points at a stand-in on loopback instead of the platform: the hooks recognise
their requests by the template, so everything else is what production sends.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from decimal import Decimal

import pytest

from hookspecs import Click, Conversion

CLICK_TIME = dt.datetime(2026, 11, 20, 10, 0, 0, tzinfo=dt.UTC)


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def meta_source(s2s, standin, extra: str = "") -> None:
    s2s.add_source(
        "fb",
        template="meta-capi",
        statuses=["lead", "sale"],
        postback_url=standin.url
        + "/v21.0/PIX123/events?access_token=EAAtok3n&event_name={status:lead=Lead sale=Purchase}"
        "&event_time={timestamp}&event_id={delivery_id}&value={revenue}&currency={currency}" + extra,
    )


def visit(pm, subid: str = "s1", **params: str) -> None:
    pm.hook.on_click(
        click=Click(
            subid=subid,
            campaign_id="summer",
            source_id="fb",
            created_at=CLICK_TIME,
            ip="203.0.113.9",
            user_agent="Mozilla/5.0 (X11; Linux x86_64)",
            params=params,
        )
    )


def convert(
    pm, subid: str = "s1", status: str = "sale", payout: str = "4.20", created_at: dt.datetime | None = None
) -> None:
    pm.hook.on_conversion(
        conversion=Conversion(
            subid=subid,
            status=status,
            payout=Decimal(payout),
            currency="usd",
            created_at=created_at or dt.datetime(2026, 11, 21, 8, 30, tzinfo=dt.UTC),
        )
    )


def test_meta_capi_sends_metas_event_json_with_hashed_identifiers(make_s2s, standin, host):
    pm, s2s = make_s2s()
    meta_source(s2s, standin, "&test_event_code=TEST42")
    standin.script("/v21.0/PIX123/events", [(200, '{"events_received":1,"messages":[],"fbtrace_id":"AbC"}')])
    visit(
        pm, fbclid="IwAR0abc", fbp="fb.1.1700000000000.123", email=" Jane.Doe@Example.COM ", phone="+1 (650) 555-1212"
    )
    convert(pm)
    s2s.drain(timeout=5)

    (request,) = standin.requests
    delivery_id = host.attempts[0].delivery_id
    assert request.method == "POST" and request.path == "/v21.0/PIX123/events"
    assert request.params == {"access_token": "EAAtok3n"}  # the event's inputs moved into the body
    assert request.headers["Content-Type"] == "application/json"
    assert request.json() == {
        "data": [
            {
                "event_name": "Purchase",
                "event_time": int(dt.datetime(2026, 11, 21, 8, 30, tzinfo=dt.UTC).timestamp()),
                "event_id": str(delivery_id),
                "action_source": "website",
                "user_data": {
                    "client_ip_address": "203.0.113.9",
                    "client_user_agent": "Mozilla/5.0 (X11; Linux x86_64)",
                    "fbc": f"fb.1.{int(CLICK_TIME.timestamp() * 1000)}.IwAR0abc",
                    "fbp": "fb.1.1700000000000.123",
                    "em": [sha256("jane.doe@example.com")],
                    "ph": [sha256("16505551212")],
                },
                "custom_data": {"value": 4.2, "currency": "USD"},
            }
        ],
        "test_event_code": "TEST42",
    }
    (attempt,) = host.attempts
    assert attempt.outcome == "delivered"
    assert "EAAtok3n" not in f"{attempt.url} {attempt.body} {attempt.reason}"
    assert "access_token=[REDACTED]" in attempt.url


def test_meta_capi_lead_without_optional_identifiers_keeps_the_body_minimal(make_s2s, standin):
    pm, s2s = make_s2s()
    meta_source(s2s, standin)
    standin.script("/v21.0/PIX123/events", [(200, '{"events_received":1}')])
    pm.hook.on_click(click=Click(subid="s1", campaign_id="summer", source_id="fb", created_at=CLICK_TIME))
    convert(pm, status="lead", payout="0")
    s2s.drain(timeout=5)
    (event,) = standin.requests[0].json()["data"]
    assert event["event_name"] == "Lead"
    assert "user_data" not in event  # nothing known about the visitor: no empty fields
    assert event["custom_data"] == {"value": 0.0, "currency": "USD"}


@pytest.mark.parametrize(
    ("status", "answer", "outcome"),
    [
        (200, '{"events_received":0,"messages":["dropped"]}', "failed"),
        (400, '{"error":{"message":"Invalid OAuth access token.","type":"OAuthException","code":190}}', "failed"),
        (400, '{"error":{"message":"User request limit reached","code":17}}', "retrying"),
        (500, '{"error":{"message":"An unknown error occurred","code":1,"is_transient":true}}', "retrying"),
        (200, "<html>proxy</html>", "delivered"),
    ],
)
def test_meta_capi_answers_decide_the_outcome(make_s2s, standin, host, status, answer, outcome):
    pm, s2s = make_s2s(retry_schedule=[0, 60])
    meta_source(s2s, standin)
    standin.script("/v21.0/PIX123/events", [(status, answer)])
    visit(pm)
    convert(pm)
    s2s.drain(timeout=3)
    assert [a.outcome for a in host.attempts] == [outcome]


def test_ga4_sends_the_measurement_protocol_body(make_s2s, standin, host):
    pm, s2s = make_s2s()
    s2s.add_source(
        "ga",
        template="ga4",
        statuses=["lead", "sale"],
        postback_url=standin.url + "/mp/collect?measurement_id=G-TEST1&api_secret=s3cr3tKey"
        "&event_name={status:lead=generate_lead sale=purchase}&transaction_id={delivery_id}"
        "&value={revenue}&currency={currency}&timestamp={timestamp}",
    )
    standin.script("/mp/collect", [(204, "")])
    pm.hook.on_click(
        click=Click(subid="s1", campaign_id="summer", source_id="ga", params={"_ga": "GA1.1.1234567890.1700000000"})
    )
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    convert(pm, created_at=now)
    s2s.drain(timeout=5)
    (request,) = standin.requests
    assert request.method == "POST" and request.params == {"measurement_id": "G-TEST1", "api_secret": "s3cr3tKey"}
    assert request.json() == {
        "client_id": "1234567890.1700000000",
        "timestamp_micros": int(now.timestamp()) * 1_000_000,
        "events": [
            {
                "name": "purchase",
                "params": {
                    "transaction_id": str(host.attempts[0].delivery_id),
                    "value": 4.2,
                    "currency": "USD",
                },
            }
        ],
    }
    assert host.attempts[0].outcome == "delivered"
    assert "s3cr3tKey" not in host.attempts[0].url


def test_ga4_old_conversions_go_without_a_timestamp_and_validation_messages_fail(make_s2s, standin, host):
    pm, s2s = make_s2s()
    s2s.add_source(
        "ga",
        template="ga4",
        statuses=["sale"],
        postback_url=standin.url + "/debug/mp/collect?measurement_id=G-TEST1&api_secret=s3cr3tKey"
        "&event_name=purchase&transaction_id={delivery_id}&value={revenue}&currency={currency}&timestamp={timestamp}",
    )
    standin.script("/debug/mp/collect", [(200, json.dumps({"validationMessages": [{"description": "bad currency"}]}))])
    pm.hook.on_click(click=Click(subid="s9", campaign_id="summer", source_id="ga"))
    convert(pm, subid="s9", created_at=dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
    s2s.drain(timeout=5)
    body = standin.requests[0].json()
    assert "timestamp_micros" not in body and body["client_id"] == "s9"
    assert [a.outcome for a in host.attempts] == ["failed"]


def test_platform_templates_are_in_the_library_with_their_secrets(make_s2s):
    _pm, s2s = make_s2s()
    library = s2s.templates()
    assert library["meta-capi"].method == "POST" and library["meta-capi"].secrets == ("access_token",)
    assert library["ga4"].secrets == ("api_secret",)
    for name in ("meta-capi", "tiktok-events", "ga4"):
        assert library[name].citation.startswith("https://")


def tiktok_source(s2s, standin) -> None:
    s2s.add_source(
        "tt",
        template="tiktok-events",
        statuses=["lead", "sale"],
        postback_url=standin.url + "/open_api/v1.3/event/track/?access_token=tt-t0ken-9f&event_source_id=C0PIX"
        "&event={status:lead=SubmitForm sale=CompletePayment}&event_time={timestamp}&event_id={delivery_id}"
        "&ttclid={external_id}&value={revenue}&currency={currency}",
    )


def test_tiktok_events_sends_tiktoks_json_with_the_token_in_its_header(make_s2s, standin, host):
    pm, s2s = make_s2s()
    tiktok_source(s2s, standin)
    standin.script("/open_api/v1.3/event/track/", [(200, '{"code":0,"message":"OK"}')])
    pm.hook.on_click(
        click=Click(
            subid="s1",
            campaign_id="summer",
            source_id="tt",
            ip="203.0.113.9",
            user_agent="Mozilla/5.0",
            params={"ttclid": "E.C.P.abc", "email": "A@B.example"},
        )
    )
    convert(pm)
    s2s.drain(timeout=5)
    (request,) = standin.requests
    assert request.method == "POST" and request.path == "/open_api/v1.3/event/track/" and request.params == {}
    assert request.headers["Access-Token"] == "tt-t0ken-9f"
    assert request.json() == {
        "event_source": "web",
        "event_source_id": "C0PIX",
        "data": [
            {
                "event": "CompletePayment",
                "event_time": int(dt.datetime(2026, 11, 21, 8, 30, tzinfo=dt.UTC).timestamp()),
                "event_id": str(host.attempts[0].delivery_id),
                "user": {
                    "ttclid": "E.C.P.abc",
                    "ip": "203.0.113.9",
                    "user_agent": "Mozilla/5.0",
                    "email": sha256("a@b.example"),
                },
                "properties": {"value": 4.2, "currency": "USD"},
            }
        ],
    }
    (attempt,) = host.attempts
    assert attempt.outcome == "delivered"
    assert "tt-t0ken-9f" not in f"{attempt.url} {attempt.body} {attempt.reason} {attempt.response_body}"


@pytest.mark.parametrize(
    ("answer", "outcome"), [('{"code":40001,"message":"bad pixel"}', "failed"), ('{"code":40100}', "retrying")]
)
def test_tiktok_answer_codes_decide(make_s2s, standin, host, answer, outcome):
    pm, s2s = make_s2s(retry_schedule=[0, 60])
    tiktok_source(s2s, standin)
    standin.script("/open_api/v1.3/event/track/", [(200, answer)])
    pm.hook.on_click(click=Click(subid="s1", campaign_id="summer", source_id="tt", params={"ttclid": "X"}))
    convert(pm)
    s2s.drain(timeout=3)
    assert [a.outcome for a in host.attempts] == [outcome]


def test_a_plugin_with_its_own_template_of_that_name_replaces_the_built_in_platform(
    tmp_path, host, standin, monkeypatch
):
    import pluggy
    import s2s_json_events

    import hookspecs
    import s2s_plugin

    monkeypatch.setenv("S2S_TIKTOK_ACCESS_TOKEN", "env-token-1")
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    pm.register(host, name="host")
    pm.register(s2s_json_events, name="json_events")  # loaded first, as entry points are
    s2s = s2s_plugin.install(pm, f"sqlite:///{tmp_path}/s.db", allow_private_targets=True)
    try:
        assert pm.get_plugin("s2s_postback.tiktok-events") is None
        assert pm.get_plugin("s2s_postback.meta-capi") is not None
        s2s.add_source(
            "tt",
            template="tiktok-events",
            statuses=["sale"],
            postback_url=standin.url
            + "/track?event_source_id=C0PIX&ttclid={external_id}&value={revenue}&currency={currency}",
        )
        standin.script("/track", [(200, '{"code":0}')])
        pm.hook.on_click(click=Click(subid="s1", campaign_id="summer", source_id="tt", params={"ttclid": "X"}))
        convert(pm)
        s2s.drain(timeout=5)
        (request,) = standin.requests
        # Turned into JSON once, by the plugin: its token, its body.
        assert request.headers["Access-Token"] == "env-token-1"
        assert request.json()["data"][0]["user"]["ttclid"] == "X"
        assert [a.outcome for a in host.attempts] == ["delivered"]
    finally:
        s2s.close()


def test_a_plain_postback_loads_no_click_for_the_built_in_platforms(make_s2s, standin, monkeypatch):
    pm, s2s = make_s2s()
    s2s.add_postback("summer", url=standin.url + "/pb?c={subid}", statuses=["sale"])  # a plain one, beside the platform
    meta_source(s2s, standin)
    standin.script("/v21.0/PIX123/events", [(200, '{"events_received":1}')])
    loads: list[str] = []
    real = s2s.store.load_click
    monkeypatch.setattr(s2s.store, "load_click", lambda subid: loads.append(subid) or real(subid))
    visit(pm)
    convert(pm)
    s2s.drain(timeout=5)
    assert len(standin.requests) == 2
    # Only the platform's own postback needed the click (for its user data); the plain one did not.
    assert loads == ["s1"]
