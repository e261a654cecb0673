"""The sample host over HTTP: its ASGI app on a real loopback port, a stand-in traffic source."""

from __future__ import annotations

import httpx
import pluggy
import pytest
import sqlalchemy as sa

import hookspecs
from sample_host import db
from sample_host.app import create_app
from sample_host.standin import StandInSource

from .conftest import Host

ATTEMPT_FIELDS = set(hookspecs.PostbackAttempt.__dataclass_fields__)


def _one_line(text: str) -> str:
    assert text.endswith("\n") and "\n" not in text[:-1], repr(text)
    return text.strip()


# --- clicks ---------------------------------------------------------------------------------


def test_click_redirects_to_the_offer_with_its_subid(host: Host, exo_campaign: str) -> None:
    response = host.client.get(
        "/c/summer", params={"external_id": "exo-1", "sub_id_1": "b 1"}, headers={"User-Agent": "UA/1"}
    )
    assert response.status_code == 302
    subid = response.headers["x-subid"]
    assert len(subid) >= 12 and subid.isalnum()
    assert response.headers["location"] == f"https://offer.example/lp?click={subid}"
    click = host.tracker.click(subid)
    assert click.campaign_id == "summer" and click.source_id == "exo"
    assert dict(click.params) == {"external_id": "exo-1", "sub_id_1": "b 1"}
    assert click.user_agent == "UA/1" and click.ip == "127.0.0.1"


def test_every_click_gets_its_own_subid(host: Host, exo_campaign: str) -> None:
    assert len({host.click("summer", external_id="x") for _ in range(5)}) == 5


def test_unknown_campaign_is_a_404_with_one_line(host: Host) -> None:
    response = host.client.get("/c/nope")
    assert response.status_code == 404
    assert "unknown campaign 'nope'" in _one_line(response.text)


def test_a_head_request_checks_the_link_without_recording_a_click(host: Host, exo_campaign: str) -> None:
    with host.tracker.engine.connect() as conn:
        before = conn.execute(sa.select(sa.func.count()).select_from(db.clicks)).scalar()
    assert host.client.head("/c/summer", params={"external_id": "exo-1"}).status_code == 200
    assert host.client.head("/c/nope").status_code == 404
    with host.tracker.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(db.clicks)).scalar() == before


# --- inbound postbacks and delivery ---------------------------------------------------------


def test_click_then_postback_is_delivered_and_logged_with_the_exact_url(
    host: Host, exo_campaign: str, standin: StandInSource
) -> None:
    subid = host.click("summer", external_id="abc&d=1 é")
    response = host.postback(subid=subid, status="sale", payout="2.50", currency="usd", tid="T1")
    assert (response.status_code, response.text.strip()) == (200, "OK")

    host.tracker.s2s.drain(timeout=5)

    (request,) = standin.wait_for(1)
    assert request.raw_query == "goal=g1&tag=abc%26d%3D1%20%C3%A9&value=2.5"
    (row,) = host.sent(subid=subid)
    assert set(row) >= ATTEMPT_FIELDS
    assert row["outcome"] == "delivered" and row["attempt"] == 1 and row["http_status"] == 200
    assert row["url"] == standin.url + request.target
    assert (row["status"], row["source_id"], row["campaign_id"], row["tid"]) == ("sale", "exo", "summer", "T1")
    assert row["rule_id"] == "source:exo" and row["method"] == "GET"
    assert host.tracker.conversions(subid=subid)[0]["payout"] == "2.50"
    (received,) = host.received(subid=subid)
    assert (received["outcome"], received["http_status"]) == ("accepted", 200)


def test_post_postbacks_are_read_from_form_and_json_bodies(host: Host, exo_campaign: str) -> None:
    first, second = host.click("summer", external_id="a"), host.click("summer", external_id="b")
    form = host.client.post(f"/{host.postback_key}/postback", data={"subid": first, "status": "lead"})
    as_json = host.client.post(f"/{host.postback_key}/postback", json={"subid": second, "payout": 3})
    assert (form.status_code, as_json.status_code) == (200, 200)
    assert host.tracker.conversions(subid=first)[0]["status"] == "lead"
    assert host.tracker.conversions(subid=second)[0]["payout"] == "3"


def test_the_same_conversion_reported_twice_is_delivered_once(
    host: Host, exo_campaign: str, standin: StandInSource
) -> None:
    subid = host.click("summer", external_id="once")
    for _ in range(2):
        assert host.postback(subid=subid, status="sale", payout="1", tid="T9").status_code == 200
    host.tracker.s2s.drain(timeout=5)
    assert len(standin.requests) == 1
    assert [r["outcome"] for r in host.sent(subid=subid)] == ["delivered"]
    assert len(host.tracker.conversions(subid=subid)) == 1  # the repeat is logged, not recorded again


def test_a_failing_source_is_retried_until_delivered(host: Host, exo_campaign: str, standin: StandInSource) -> None:
    standin.script("/tag.php", [(503, "busy")], default=(200, "OK"))
    subid = host.click("summer", external_id="retry-me")
    host.postback(subid=subid, payout="1")
    host.tracker.s2s.drain(timeout=5)
    standin.wait_for(2)
    outcomes = [(r["attempt"], r["outcome"], r["http_status"]) for r in host.sent(subid=subid)]
    assert outcomes == [(1, "retrying", 503), (2, "delivered", 200)]


def test_a_click_without_a_click_id_is_skipped_with_the_reason(
    host: Host, exo_campaign: str, standin: StandInSource
) -> None:
    subid = host.click("summer", external_id="{conversions_tracking}")
    host.postback(subid=subid, payout="1")
    host.tracker.s2s.drain(timeout=5)
    (row,) = host.sent(subid=subid, outcome="skipped")
    assert row["attempt"] == 0
    assert "{conversions_tracking}" in row["reason"]
    assert standin.requests == []
    explained = host.api.get(f"/api/explain/{subid}")
    assert explained.status_code == 200
    assert "{conversions_tracking}" in explained.json()["text"]


def test_an_ignored_status_is_answered_ok_and_sends_nothing(host: Host, exo_campaign: str) -> None:
    subid = host.click("summer", external_id="x")
    response = host.postback(subid=subid, status="test", ignore_status="test,trash")
    assert response.status_code == 200 and "ignored" in _one_line(response.text)
    assert host.tracker.conversions(subid=subid) == []
    assert host.received(subid=subid)[0]["outcome"] == "ignored"


@pytest.mark.parametrize(
    ("params", "status", "fragment"),
    [
        ({}, 400, "subid is missing"),
        ({"subid": "doesnotexist"}, 404, "unknown subid 'doesnotexist'"),
        ({"subid": "CLICK", "payout": "abc"}, 400, "payout 'abc' is not a number"),
        ({"subid": "CLICK", "status": "weird"}, 400, "unknown status 'weird'"),
    ],
)
def test_bad_inbound_postbacks_get_a_4xx_reason_and_are_logged(
    host: Host, exo_campaign: str, params: dict, status: int, fragment: str
) -> None:
    subid = host.click("summer", external_id="x")
    params = {k: (subid if v == "CLICK" else v) for k, v in params.items()}
    response = host.postback(**params)
    assert response.status_code == status
    assert fragment in _one_line(response.text)
    latest = host.received()[0]
    assert (latest["outcome"], latest["http_status"]) == ("rejected", status)
    assert fragment in latest["reason"]
    assert host.tracker.conversions() == []


def test_a_wrong_postback_key_is_refused_and_logged(host: Host, exo_campaign: str) -> None:
    subid = host.click("summer", external_id="x")
    response = host.client.get("/wrong-key/postback", params={"subid": subid})
    assert response.status_code == 403
    assert "wrong postback key" in _one_line(response.text)
    assert host.received()[0]["reason"].startswith("wrong postback key")
    assert host.tracker.conversions() == []


@pytest.mark.parametrize(
    ("body", "content_type", "fragment"),
    [
        (b"{not json", "application/json", "not valid JSON"),
        (b"[1, 2]", "application/json", "must be an object"),
        (b'{"subid": {"a": 1}}', "application/json", "must be a string or a number"),
        (b"--x\r\ngarbage", "multipart/form-data", "not a valid form"),
    ],
)
def test_bad_postback_bodies_get_a_400(host: Host, body: bytes, content_type: str, fragment: str) -> None:
    response = host.client.post(f"/{host.postback_key}/postback", content=body, headers={"Content-Type": content_type})
    assert response.status_code == 400
    assert fragment in _one_line(response.text)
    assert host.received()[0]["outcome"] == "rejected"


# --- the JSON API ---------------------------------------------------------------------------


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic abc"}])
@pytest.mark.parametrize(
    "path",
    [
        "/api/sources",
        "/api/sent-postbacks",
        "/api/received-postbacks",
        "/api/campaigns",
        "/api/explain/x",
        "/api/nothing-here",
    ],
)
def test_api_needs_the_token(host: Host, headers: dict, path: str) -> None:
    response = host.client.get(path, headers=headers)
    assert response.status_code == 401
    assert set(response.json()) == {"error"}
    assert response.headers["www-authenticate"] == "Bearer"


def test_api_manages_sources_campaigns_and_postbacks(host: Host, standin: StandInSource) -> None:
    created = host.api.post(
        "/api/sources",
        json={
            "id": "ts",
            "template": "trafficstars",
            "postback_url": f"{standin.url}/ts?c={{external_id}}",
            "statuses": ["sale", "rejected"],
        },
    )
    assert created.status_code == 201, created.text
    assert created.json()["id"] == "source:ts"
    assert [s["source_id"] for s in host.api.get("/api/sources").json()["items"]] == ["ts"]

    campaign = host.api.post(
        "/api/campaigns", json={"alias": "dating", "source_id": "ts", "offer_url": "https://offer.example/?s={subid}"}
    )
    assert campaign.status_code == 201, campaign.text
    # TrafficStars' click id, then its parameter table.
    assert campaign.json()["link"] == (
        f"{host.base_url}/c/dating?external_id={{click_id}}&source={{adspot_id}}"
        "&ad_campaign_id={campaign_id}&creative_id={creative_id}&cost={cost}"
        "&keyword={keywords}&sub_id_1={format}&sub_id_2={pricing_model}"
        "&sub_id_3={adspot_name}&sub_id_4={carrier}&sub_id_5={site_host}"
        "&sub_id_6={category}"
    )
    assert [c["alias"] for c in host.api.get("/api/campaigns").json()["items"]] == ["dating"]

    postback = host.api.post(
        "/api/campaigns/dating/postbacks", json={"url": f"{standin.url}/pb?s={{subid}}", "statuses": ["lead"]}
    )
    assert postback.status_code == 201, postback.text
    rule_id = postback.json()["id"]
    assert [p["id"] for p in host.api.get("/api/campaigns/dating/postbacks").json()["items"]] == [rule_id]
    assert host.api.delete(f"/api/postbacks/{rule_id}").status_code == 204
    assert host.api.get("/api/campaigns/dating/postbacks").json()["items"] == []
    assert host.api.delete(f"/api/postbacks/{rule_id}").status_code == 404


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "fragment"),
    [
        ("post", "/api/sources", {"content": b"{oops"}, 400, "not valid JSON"),
        ("post", "/api/sources", {"json": ["x"]}, 400, "must be a JSON object"),
        ("post", "/api/sources", {"json": {"id": "x", "template": "nope"}}, 404, "unknown template 'nope'"),
        ("post", "/api/sources", {"json": {"id": "x"}}, 400, "--template or a --postback-url"),
        (
            "post",
            "/api/campaigns",
            {"json": {"alias": "a", "source_id": "ghost", "offer_url": "https://o.example/"}},
            404,
            "unknown source 'ghost'",
        ),
        ("post", "/api/campaigns", {"json": {"alias": "a", "offer_url": "ftp://o"}}, 400, "not an http"),
        ("post", "/api/campaigns/ghost/postbacks", {"json": {"url": "https://x.example/"}}, 404, "unknown campaign"),
        ("get", "/api/sent-postbacks?outcome=lost", {}, 400, "outcome 'lost'"),
        ("get", "/api/sent-postbacks?since=yesterday", {}, 400, "ISO 8601"),
        ("get", "/api/explain/ghost", {}, 404, "unknown subid"),
        ("post", "/api/deliveries/999/resend", {}, 404, "unknown delivery 999"),
    ],
)
def test_api_errors_are_one_line_json(
    host: Host, method: str, path: str, kwargs: dict, status: int, fragment: str
) -> None:
    response = getattr(host.api, method)(path, **kwargs)
    assert response.status_code == status, response.text
    message = response.json()["error"]
    assert fragment in message and "\n" not in message


def test_api_filters_the_sent_postbacks_log_and_resends(host: Host, exo_campaign: str, standin: StandInSource) -> None:
    delivered = host.click("summer", external_id="one")
    skipped = host.click("summer", external_id="")
    host.postback(subid=delivered, payout="1")
    host.postback(subid=skipped, payout="1")
    host.tracker.s2s.drain(timeout=5)

    assert [r["subid"] for r in host.sent(outcome="delivered")] == [delivered]
    assert [r["subid"] for r in host.sent(outcome="skipped")] == [skipped]
    assert len(host.sent(source="exo")) == 2 and host.sent(source="other") == []
    assert host.sent(since="2999-01-01T00:00:00Z") == []
    assert len(host.sent(until="2999-01-01T00:00:00Z")) == 2

    (row,) = host.sent(subid=delivered)
    response = host.api.post(f"/api/deliveries/{row['delivery_id']}/resend")
    assert response.status_code == 202, response.text
    host.tracker.s2s.drain(timeout=5)
    standin.wait_for(2)
    assert [r["attempt"] for r in host.sent(subid=delivered)] == [1, 2]


def test_secrets_are_stored_hashed_or_not_at_all(host: Host) -> None:
    with host.tracker.engine.connect() as conn:
        stored = {r.key: r.value for r in conn.execute(sa.select(db.settings))}
    assert host.admin_password not in stored.values()
    assert "admin_password" not in stored and stored["admin_password_hash"].startswith("scrypt$")


def test_host_plugin_manager_is_built_the_pluggy_way(host: Host) -> None:
    pm = host.tracker.pm
    assert isinstance(pm, pluggy.PluginManager) and pm.project_name == hookspecs.PROJECT_NAME
    assert pm.get_plugin("sample_host") is host.tracker.sent_log
    assert host.tracker.s2s in pm.get_plugins()


def test_served_with_its_dispatcher_the_app_delivers_on_its_own(tracker, standin: StandInSource, serve_asgi) -> None:
    """What ``sample-host serve`` runs: the app and the delivery dispatcher, no drain needed."""
    creds = tracker.init()
    tracker.add_source("exo", template="exoclick", postback_url=f"{standin.url}/t?tag={{external_id}}")
    tracker.add_campaign("summer", source_id="exo", offer_url="https://offer.example/")
    base_url = serve_asgi(create_app(tracker, run_dispatcher=True))
    with httpx.Client(base_url=base_url) as client:
        subid = client.get("/c/summer", params={"external_id": "live"}).headers["x-subid"]
        assert client.get(f"/{creds.postback_key}/postback", params={"subid": subid}).status_code == 200
    (request,) = standin.wait_for(1, timeout=10)
    assert request.raw_query == "tag=live"


def test_api_takes_payout_settings_and_filters_received_postbacks_by_time(host: Host, exo_campaign: str) -> None:
    created = host.api.post(
        "/api/campaigns/summer/postbacks",
        json={
            "url": "https://partner.example/pb?c={external_id}&k=S3CRET",
            "statuses": ["sale"],
            "payout_mode": "percent",
            "payout_value": 40,
            "min_payout": "0.5",
            "secrets": ["k"],
        },
    )
    assert created.status_code == 201, created.text
    rule = created.json()
    assert (rule["payout_mode"], rule["payout_value"], rule["min_payout"], rule["secrets"]) == (
        "percent",
        "40",
        "0.5",
        ["k"],
    )
    bad = host.api.post("/api/campaigns/summer/postbacks", json={"url": "https://p.example/", "payout_value": [1]})
    assert bad.status_code == 400 and "'payout_value' must be a number" in bad.json()["error"]
    host.postback(subid=host.click("summer", external_id="x"))
    assert len(host.received(since="2000-01-01T00:00:00Z")) == 1
    assert host.received(until="2000-01-01T00:00:00Z") == []
