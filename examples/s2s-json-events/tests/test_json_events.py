"""s2s-json-events: TikTok's JSON body, the token header, and TikTok's answer codes."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from decimal import Decimal

import pluggy
import pytest
import s2s_json_events

import hookspecs
from hookspecs import Click, Conversion, PostbackRequest, PostbackRule, ResolveContext

TOKEN = "tt-access-7c1f0e"
WHEN = dt.datetime(2024, 11, 21, 14, 13, 23, tzinfo=dt.UTC)
URL = "https://business-api.tiktok.com/open_api/v1.3/event/track/?event_source_id=C0PIX&ttclid=E.C.P.abc&value=2.5&currency=USD"


@dataclasses.dataclass
class Answer:
    status_code: int
    text: str
    headers: dict = dataclasses.field(default_factory=dict)


@pytest.fixture
def pm(monkeypatch) -> pluggy.PluginManager:
    monkeypatch.setenv("S2S_TIKTOK_ACCESS_TOKEN", TOKEN)
    monkeypatch.delenv("S2S_TIKTOK_EVENTS", raising=False)
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    pm.register(s2s_json_events, name="json_events")
    return pm


def context(status: str = "sale", tid: str | None = "T-77", payout: str = "9.75") -> ResolveContext:
    click = Click(
        subid="s1",
        campaign_id="summer",
        source_id="tiktok",
        params={"ttclid": "E.C.P.abc"},
        ip="203.0.113.7",
        user_agent="Mozilla/5.0",
    )
    conversion = Conversion(
        subid="s1", status=status, payout=Decimal(payout), currency="EUR", tid=tid, created_at=WHEN, click=click
    )
    rule = PostbackRule(id="source:tiktok", url=URL, method="POST", source_id="tiktok", template="tiktok-events")
    return ResolveContext(click=click, conversion=conversion, rule=rule)


def prepare(pm, url: str = URL, **kw) -> PostbackRequest:
    request = PostbackRequest("POST", url, template="tiktok-events", rule_id="source:tiktok")
    (changed,) = [r for r in pm.hook.prepare_request(request=request, context=context(**kw)) if r is not None]
    return changed


def test_prepare_request_builds_tiktoks_json_event(pm):
    request = prepare(pm)
    assert request.method == "POST"
    assert request.url == "https://business-api.tiktok.com/open_api/v1.3/event/track/"
    assert request.headers == {"Access-Token": TOKEN, "Content-Type": "application/json"}
    assert json.loads(request.body) == {
        "event_source": "web",
        "event_source_id": "C0PIX",
        "data": [
            {
                "event": "CompletePayment",
                "event_time": int(WHEN.timestamp()),
                "event_id": "T-77",
                "user": {"ttclid": "E.C.P.abc", "ip": "203.0.113.7", "user_agent": "Mozilla/5.0"},
                "properties": {"value": 2.5, "currency": "USD"},  # the URL's rendered values win
            }
        ],
    }
    assert request.secrets == (TOKEN,) and request.template == "tiktok-events"


@pytest.mark.parametrize(
    ("status", "event"), [("lead", "SubmitForm"), ("sale", "CompletePayment"), ("rebill", "CompletePayment")]
)
def test_prepare_request_names_the_event_by_status(pm, status, event):
    assert json.loads(prepare(pm, status=status).body)["data"][0]["event"] == event


def test_prepare_request_event_names_from_configuration_and_url(pm, monkeypatch):
    monkeypatch.setenv("S2S_TIKTOK_EVENTS", "lead=CompleteRegistration, sale=PlaceAnOrder")
    assert json.loads(prepare(pm, status="lead").body)["data"][0]["event"] == "CompleteRegistration"
    assert json.loads(prepare(pm, URL + "&event=Subscribe").body)["data"][0]["event"] == "Subscribe"


def test_prepare_request_falls_back_to_the_conversion_and_the_subid(pm):
    body = json.loads(prepare(pm, URL.split("&value")[0] + "&test_event_code=TEST123", tid=None).body)
    assert body["data"][0]["event_id"] == "s1"
    assert body["data"][0]["properties"] == {"value": 9.75, "currency": "EUR"}
    assert body["test_event_code"] == "TEST123"


@pytest.mark.parametrize(
    ("url", "status", "message"),
    [
        (URL.replace("C0PIX", "PIXEL_CODE"), "sale", "set event_source_id=YOUR_PIXEL_CODE"),
        (URL, "rejected", "TikTok has no event for a rejected conversion"),
        (URL.replace("value=2.5", "value=abc"), "sale", "value 'abc' in the postback URL is not a number"),
    ],
)
def test_prepare_request_refuses_what_tiktok_would_refuse(pm, url, status, message):
    with pytest.raises(ValueError, match=message):
        prepare(pm, url, status=status)


def test_prepare_request_without_a_token_raises_naming_the_variable(pm, monkeypatch):
    monkeypatch.delenv("S2S_TIKTOK_ACCESS_TOKEN")
    with pytest.raises(RuntimeError, match="S2S_TIKTOK_ACCESS_TOKEN is not set"):
        prepare(pm)


def test_prepare_request_leaves_other_sources_alone(pm):
    other = PostbackRequest("GET", "https://partner.example/pb?c=1", template="exoclick")
    assert pm.hook.prepare_request(request=other, context=context()) == []


@pytest.mark.parametrize(
    ("status", "text", "expected"),
    [
        (200, '{"code": 0, "message": "OK", "request_id": "r1", "data": {}}', "delivered"),
        (200, '{"code": 40100, "message": "Too many requests"}', "retry"),
        (200, '{"code": 51000, "message": "Internal error"}', "retry"),
        (200, '{"code": 40002, "message": "Invalid event_source_id"}', "failed"),
        (200, "not json", None),
        (500, '{"code": 0}', None),
    ],
)
def test_classify_response_reads_tiktoks_codes(pm, status, text, expected):
    request = PostbackRequest("POST", s2s_json_events.ENDPOINT, template="tiktok-events")
    assert pm.hook.classify_response(request=request, response=Answer(status, text)) == expected


def test_register_source_templates_gives_the_tiktok_template(pm):
    (batch,) = pm.hook.register_source_templates()
    (template,) = batch
    assert (template.name, template.method, template.click_id_param) == ("tiktok-events", "POST", "ttclid")
    assert "{external_id}" in template.postback_url and "event_source_id=PIXEL_CODE" in template.postback_url
    pm.check_pending()
