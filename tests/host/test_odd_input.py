"""Odd input on every admin page and API endpoint gets a 4xx with its reason, never a 500 (nor a
503 hiding one), on SQLite and on PostgreSQL.

Every route of the app is listed in ``FIELDS`` with the query, form or JSON fields it reads; a route
missing from the list fails the first test, so a new page cannot skip this check.
"""

from __future__ import annotations

import html
import re
import urllib.parse
from collections.abc import Iterator

import httpx
import pytest

from sample_host.app import create_app
from sample_host.standin import StandInSource

from .conftest import Admin, Host, sign_in

#: Values real requests have carried: a superscript digit (``str.isdigit`` says yes, ``int`` says
#: no), URLs ``urlsplit`` rejects or that hold a raw macro in the host, numbers too big for any
#: column, a NUL byte (PostgreSQL refuses it in text), times that leave the calendar once moved to
#: UTC, and a value longer than any column.
ODD = [
    "²",
    "http://[::1/pb",
    "http://{_sub_id_1}/pb",
    "9" * 40,
    "a\x00b",
    "0001-01-01T00:00:00+01:00",
    "x" * 3000,
]

#: Where the two databases differ, each gets the walk: SQLite overflows on huge numbers, while
#: PostgreSQL refuses NUL bytes and values longer than their column (which SQLite stores).
ON_DATABASES = [("sqlite", odd) for odd in ODD if odd not in ("a\x00b", "x" * 3000)] + [
    ("postgresql", odd) for odd in ("9" * 40, "a\x00b", "x" * 3000)
]


_CAMPAIGN = ("alias", "source_id", "offer_url", "name")
_RULE = ("url", "method", "statuses", "payout_mode", "payout_value", "min_payout", "secrets")
_SOURCE = ("postback_url", "method", "statuses", "payout_mode", "payout_value", "min_payout", "secrets")
_API_RULE = _RULE + ("body", "content_type", "follow_redirects")
_API_SOURCE = ("postback_url",) + _API_RULE[1:] + ("placeholders", "click_id_param", "source_macro", "parameters")
_PAGE_SOURCE = _SOURCE + (
    "body",
    "content_type",
    "follow_redirects",
    "click_id_param",
    "source_macro",
    "param_name",
    "param_macro",
)
_SENT = ("subid", "source", "campaign", "outcome", "since", "until", "before", "after")
_RECEIVED = ("subid", "outcome", "since", "until", "before", "after")

#: (method, route pattern) -> the fields the handler reads (query for GET, form or JSON otherwise).
FIELDS: dict[tuple[str, str], tuple[str, ...]] = {
    ("GET", "/"): (),
    ("GET", "/login"): ("next",),
    ("POST", "/login"): ("next", "password"),
    ("POST", "/logout"): (),
    ("GET", "/dashboard"): ("window",),
    ("GET", "/campaigns"): (),
    ("POST", "/campaigns"): _CAMPAIGN,
    ("GET", "/campaigns/{alias}"): (),
    ("POST", "/campaigns/{alias}"): _CAMPAIGN[1:],
    ("GET", "/campaigns/{alias}/postbacks"): (),
    ("POST", "/campaigns/{alias}/postbacks"): _API_RULE,
    ("GET", "/postbacks/{number:int}/edit"): (),
    ("POST", "/postbacks/{number:int}/edit"): _API_RULE,
    ("POST", "/postbacks/{number:int}/delete"): (),
    ("GET", "/sources"): ("template",),
    ("POST", "/sources"): ("id", "template") + _PAGE_SOURCE,
    ("GET", "/sources/{source_id}"): (),
    ("POST", "/sources/{source_id}"): _PAGE_SOURCE,
    ("POST", "/sources/{source_id}/delete"): (),
    ("GET", "/rules/{rule_id}/test"): (),
    ("POST", "/rules/{rule_id}/test"): ("status", "payout", "currency", "external_id"),
    ("GET", "/sent"): _SENT,
    ("GET", "/sent.csv"): _SENT[:6],
    ("GET", "/sent/{entry_id:int}"): (),
    ("POST", "/deliveries/{delivery_id:int}/resend"): ("next",),
    ("GET", "/received"): _RECEIVED,
    ("GET", "/explain"): ("subid",),
    ("GET", "/handoffs"): (),
    ("POST", "/handoffs/{conversion_id:int}/retry"): (),
    ("GET", "/settings"): (),
    ("POST", "/settings"): ("response_text", "allowed_ips"),
    ("GET", "/api/sources"): (),
    ("POST", "/api/sources"): ("id", "template") + _API_SOURCE,
    ("GET", "/api/sources/{source_id}"): (),
    ("PATCH", "/api/sources/{source_id}"): _API_SOURCE,
    ("GET", "/api/templates"): (),
    ("GET", "/api/campaigns"): (),
    ("POST", "/api/campaigns"): _CAMPAIGN,
    ("GET", "/api/campaigns/{alias}/postbacks"): (),
    ("POST", "/api/campaigns/{alias}/postbacks"): _API_RULE,
    ("GET", "/api/postbacks/{postback_id}"): (),
    ("PATCH", "/api/postbacks/{postback_id}"): _API_RULE,
    ("DELETE", "/api/postbacks/{postback_id}"): (),
    ("GET", "/api/sent-postbacks"): _SENT[:6] + ("limit",),
    ("GET", "/api/received-postbacks"): _RECEIVED[:4] + ("limit",),
    ("POST", "/api/deliveries/{delivery_id:int}/resend"): (),
    ("GET", "/api/explain/{subid}"): (),
    ("GET", "/api/handoffs"): (),
    ("GET", "/metrics"): (),
}

#: Routes not under test here: the public campaign link and inbound postback (their own tests), and
#: the catch-all 404 of the API.
SKIPPED = {"/c/{campaign_alias}", "/{postback_key}/postback", "/api/{path:path}"}

#: Values that make each form valid, so the one odd field is what the handler meets.
VALID = {
    "alias": "fresh",
    "name": "Fresh",
    "source_id": "exo",
    "offer_url": "https://offer.example/?s={subid}",
    "url": "https://partner.example/pb?c={external_id}",
    "postback_url": "https://partner.example/pb?c={external_id}",
    "method": "GET",
    "statuses": "sale",
    "payout_mode": "real",
    "payout_value": "",
    "min_payout": "",
    "secrets": "",
    "id": "fresh",
    "template": "exoclick",
    "status": "sale",
    "payout": "1.00",
    "currency": "USD",
    "external_id": "e",
    "next": "/sent",
    "body": "",
    "content_type": "",
    "click_id_param": "",
    "source_macro": "",
    "response_text": "OK",
    "allowed_ips": "",
    "password": "wrong",
}

_PARAM = re.compile(r"{(\w+)(?::(\w+))?}")


def _routes() -> Iterator[tuple[str, str]]:
    from starlette.routing import Mount, Route

    def walk(routes: list, prefix: str = "") -> Iterator[tuple[str, str]]:
        for route in routes:
            if isinstance(route, Mount):
                if route.path != "/static":
                    yield from walk(route.routes, prefix + route.path)
            elif isinstance(route, Route):
                for method in sorted((route.methods or {"GET"}) - {"HEAD"}):
                    yield method, prefix + route.path

    return walk(create_app("sqlite://").routes)


def test_every_route_is_listed_with_the_fields_it_reads() -> None:
    routes = {(method, path) for method, path in _routes() if path not in SKIPPED}
    assert routes == set(FIELDS)


def _path(pattern: str, odd: str | None) -> str:
    """A concrete path: real ids of the fixture's records, or the odd value in every parameter."""
    real = {
        "alias": "summer",
        "number": "1",
        "source_id": "exo",
        "rule_id": "source:exo",
        "entry_id": "1",
        "delivery_id": "1",
        "subid": "SUBID",
        "postback_id": "1",
        "conversion_id": "1",
    }
    return _PARAM.sub(lambda m: urllib.parse.quote(odd, safe="") if odd is not None else real[m.group(1)], pattern)


@pytest.fixture
def odd_host(any_host: Host, standin: StandInSource) -> Iterator[tuple[Host, Admin]]:
    """A tracker with a source, a campaign with a postback, a click, a conversion and its attempt,
    and an admin signed in (on SQLite and on PostgreSQL)."""
    tracker = any_host.tracker
    tracker.add_source("exo", template="exoclick", postback_url=f"{standin.url}/t?tag={{external_id}}")
    tracker.add_campaign("summer", source_id="exo", offer_url="https://offer.example/?s={subid}")
    tracker.add_postback("summer", url=f"{standin.url}/p?c={{external_id}}", statuses=["sale"])
    subid = any_host.click("summer", external_id="x")
    assert any_host.postback(subid=subid, status="sale").status_code == 200
    tracker.s2s.drain(timeout=5)
    client = sign_in(any_host.base_url, any_host.admin_password)
    try:
        yield any_host, Admin(client)
    finally:
        client.close()


def _request(host: Host, admin: Admin, method: str, pattern: str, path: str, data: dict[str, str]) -> httpx.Response:
    if pattern.startswith("/api") or pattern == "/metrics":
        if method in ("GET", "DELETE"):
            return host.api.request(method, path, params=data)
        return host.api.request(method, path, json=data)
    if method == "GET":
        return admin.get(path, params=data)
    return admin.post(path, data)


def _no_server_error(response: httpx.Response, what: object) -> None:
    assert response.status_code < 500, (what, response.status_code, response.text[:300])
    if response.status_code >= 400 and "json" in response.headers.get("content-type", ""):
        assert "\n" not in response.json()["error"], what


@pytest.mark.parametrize(
    ("any_database_url", "odd"),
    ON_DATABASES,
    indirect=["any_database_url"],
    ids=[f"{db}-{odd[:12]!r}" for db, odd in ON_DATABASES],
)
def test_odd_values_in_every_field_get_a_4xx_never_a_500(odd_host: tuple[Host, Admin], odd: str) -> None:
    host, admin = odd_host
    for (method, pattern), fields in FIELDS.items():
        if pattern in ("/logout",):
            continue
        for field in fields:
            data = {name: VALID[name] for name in fields if name in VALID}
            data[field] = odd
            response = _request(host, admin, method, pattern, _path(pattern, None), data)
            _no_server_error(response, (method, pattern, field))
        if "{" in pattern:
            response = _request(host, admin, method, pattern, _path(pattern, odd), {})
            _no_server_error(response, (method, pattern, "path"))
    assert admin.get("/campaigns").status_code == 200  # still signed in: nothing above broke the session


@pytest.mark.parametrize(
    ("path", "fragment"),
    [
        ("/sent?before=%C2%B2", "before='²' must be a whole number"),
        ("/received?after=" + "9" * 40, "must be a whole number"),
        ("/sent?since=0001-01-01T00:00:00%2B01:00", "is not a time"),
        ("/sent?subid=a%00b", "NUL"),
    ],
)
def test_odd_filters_are_a_400_with_the_reason(odd_host: tuple[Host, Admin], path: str, fragment: str) -> None:
    _, admin = odd_host
    response = admin.get(path)
    assert response.status_code == 400 and fragment in html.unescape(response.text)


@pytest.mark.parametrize("url", ["http://[::1/pb", "http://h:99999/pb", "http://{_sub_id_1}/pb"])
def test_a_url_urlsplit_rejects_is_a_400_on_the_forms_and_the_api(odd_host: tuple[Host, Admin], url: str) -> None:
    host, admin = odd_host
    page = admin.post("/campaigns/summer/postbacks", {**{k: VALID[k] for k in _RULE}, "url": url})
    assert page.status_code == 400 and "URL" in page.text
    api = host.api.post("/api/campaigns/summer/postbacks", json={"url": url, "statuses": ["sale"]})
    assert api.status_code == 400 and "URL" in api.json()["error"]
    if "{" not in url:  # an offer URL may put the subid anywhere, even in the host name
        offer = admin.post("/campaigns", {**{k: VALID[k] for k in _CAMPAIGN}, "offer_url": url})
        assert offer.status_code == 400 and "is not an http:// or https:// URL" in offer.text
    assert [c["alias"] for c in host.tracker.campaigns()] == ["summer"]
    assert len(host.tracker.postbacks("summer")) == 1
