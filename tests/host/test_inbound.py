"""Inbound postbacks at Keitaro's level, over HTTP: parameters, answers, refusals, and conversions
that survive the postback plugin being down."""

from __future__ import annotations

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.exc import OperationalError

from sample_host import db
from sample_host.app import create_app
from sample_host.standin import StandInSource

from .conftest import Broken, Host


def _one_line(text: str) -> str:
    assert text.endswith("\n") and "\n" not in text[:-1], repr(text)
    return text.strip()


@pytest.fixture
def partner(host: Host, exo_campaign: str, standin: StandInSource) -> str:
    """A campaign postback on ``summer`` that shows every conversion field it was given."""
    host.tracker.add_postback(
        "summer",
        url=f"{standin.url}/partner?s={{subid}}&st={{status}}&p={{revenue}}&cur={{currency}}&tid={{tid}}&b={{sub_id_1}}",
        statuses=["lead", "sale", "rejected", "rebill"],
    )
    return f"{standin.url}/partner"


def test_keitaro_parameters_reach_the_postback(host: Host, partner: str, standin: StandInSource) -> None:
    subid = host.click("summer", external_id="x", sub_id_1="banner-a")
    answer = host.postback(
        subid=subid,
        status="approved",
        revenue="3.10",
        currency="eur",
        tid="T-9",
        sub_id_1="banner-b",
        sub_id_31="ignored",
    )
    assert (answer.status_code, answer.text) == (200, "OK\n")
    host.tracker.s2s.drain(timeout=5)
    partner_request = next(r for r in standin.wait_for(2) if r.path == "/partner")
    assert partner_request.raw_query == f"s={subid}&st=sale&p=3.1&cur=EUR&tid=T-9&b=banner-b"
    # sub_id_N updates the click itself (Keitaro does the same); other names are only parameters.
    assert host.tracker.click(subid).params == {"external_id": "x", "sub_id_1": "banner-b"}
    (conversion,) = host.tracker.conversions(subid=subid)
    assert (conversion["status"], conversion["original_status"], conversion["payout"]) == ("sale", "approved", "3.10")


def test_status_mapping_parameters_map_a_networks_own_words(host: Host, partner: str) -> None:
    subid = host.click("summer", external_id="x")
    mapped = host.postback(subid=subid, status="reg", lead_status="reg,trial", sale_status="paid")
    assert mapped.status_code == 200
    paid = host.client.post(
        f"/{host.postback_key}/postback",
        data={"subid": subid, "status": "paid", "lead_status": "reg", "sale_status": "paid"},
    )
    assert paid.status_code == 200
    assert [c["status"] for c in host.tracker.conversions(subid=subid)] == ["sale", "lead"]


def test_the_answer_text_is_configurable_and_return_wins(host: Host, exo_campaign: str) -> None:
    subid = host.click("summer", external_id="x")
    host.tracker.set_inbound_settings(response_text="accepted, thanks")
    assert host.postback(subid=subid, status="lead").text == "accepted, thanks\n"
    assert host.postback(subid=subid, status="sale", **{"return": "SUCCESS"}).text == "SUCCESS\n"
    # The answer is one line, whatever the request asked for.
    assert host.postback(subid=subid, status="rejected", **{"return": "a\r\nSet-Cookie: x"}).text == "a Set-Cookie: x\n"


@pytest.mark.parametrize(
    ("params", "status", "fragment"),
    [
        ({"subid": "CLICK", "currency": "dollars"}, 400, "3-letter code"),
        ({"subid": "CLICK", "tid": "t" * 501}, 400, "longer than 500"),
        ({"subid": "CLICK", "x" * 101: "1"}, 400, "longer than 100"),
        ({"subid": "CLICK", **{f"p{n}": "1" for n in range(100)}}, 400, "too many parameters"),
        ({"subid": "CLICK", "revenue": "1e999999"}, 400, "payout '1e999999' is too large"),
    ],
)
def test_oversize_and_malformed_values_get_a_4xx_and_are_logged_bounded(
    host: Host, exo_campaign: str, params: dict, status: int, fragment: str
) -> None:
    subid = host.click("summer", external_id="x")
    params = {k: (subid if v == "CLICK" else v) for k, v in params.items()}
    response = host.client.post(f"/{host.postback_key}/postback", data=params)
    assert response.status_code == status
    assert fragment in _one_line(response.text)
    latest = host.received()[0]
    assert (latest["outcome"], latest["http_status"]) == ("rejected", status) and fragment in latest["reason"]
    assert len(latest["params"]) <= 50 and all(len(k) <= 100 and len(v) <= 300 for k, v in latest["params"].items())
    assert host.tracker.conversions() == []


def test_an_oversize_body_is_a_413(host: Host) -> None:
    response = host.client.post(
        f"/{host.postback_key}/postback",
        content=b"subid=" + b"a" * 70_000,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 413
    assert "larger than" in _one_line(response.text)
    assert host.received()[0]["http_status"] == 413


def test_wrong_key_probes_are_counted_not_stored_one_by_one(host: Host, exo_campaign: str) -> None:
    for n in range(12):
        answer = host.client.post(f"/guess-{n}/postback", params={"subid": "x" * 400}, data={"junk": "y" * 5000})
        assert answer.status_code == 403 and "wrong postback key" in _one_line(answer.text)
    (logged,) = host.received()  # only the first, in full
    assert logged["reason"].startswith("wrong postback key") and 100 < len(logged["subid"]) <= 200
    assert "junk" not in logged["params"]  # the body of a refused request is never read
    (summary,) = host.tracker.refusals.summary()
    assert (summary.kind, summary.ip, summary.count) == ("wrong_key", "127.0.0.1", 12)


def test_an_address_refused_too_often_is_throttled_without_touching_the_database(host: Host) -> None:
    host.tracker.refusals.limit = 5
    codes = [host.client.get("/nope/postback", params={"subid": "1"}).status_code for _ in range(8)]
    assert codes == [403] * 5 + [429] * 3
    assert host.tracker.refusals.summary()[0].count == 5
    assert host.tracker.refusals.throttled == 3


def test_the_allow_list_refuses_other_addresses_before_reading(host: Host, exo_campaign: str) -> None:
    subid = host.click("summer", external_id="x")
    host.tracker.set_inbound_settings(allowed_ips=["10.0.0.0/8", "2001:db8::/32"])
    refused = host.postback(subid=subid)
    assert refused.status_code == 403
    assert "address 127.0.0.1 may not send postbacks" in _one_line(refused.text)
    assert host.tracker.conversions() == []
    assert host.tracker.refusals.summary()[0].kind == "address_not_allowed"

    host.tracker.set_inbound_settings(allowed_ips=["10.0.0.0/8", "127.0.0.1"])
    assert host.postback(subid=subid).status_code == 200
    host.tracker.set_inbound_settings(allowed_ips=[])  # empty: any address with the key
    assert host.postback(subid=subid, status="rejected").status_code == 200


def test_the_allow_list_takes_only_addresses_and_networks(host: Host) -> None:
    from sample_host.errors import HostError

    with pytest.raises(HostError, match=r"'10\.0\.0\.300' is not an IP address or network"):
        host.tracker.set_inbound_settings(allowed_ips=["10.0.0.1, 10.0.0.300"])


# --- a valid conversion is never lost ----------------------------------------------------------


def _waiting(host: Host) -> list[int]:
    with host.tracker.engine.connect() as conn:
        return list(
            conn.execute(sa.select(db.handoffs.c.conversion_id).order_by(db.handoffs.c.conversion_id)).scalars()
        )


def test_a_failing_plugin_keeps_the_conversion_and_the_tracker_hands_it_over_later(
    host: Host, exo_campaign: str, standin: StandInSource
) -> None:
    subid = host.click("summer", external_id="kept")
    host.tracker.pm.register(Broken(), name="broken")
    try:
        response = host.postback(subid=subid, payout="5")
    finally:
        host.tracker.pm.unregister(name="broken")
    # Recorded by the tracker: the network gets its success answer, not a 5xx.
    assert (response.status_code, response.text) == (200, "OK\n")
    (conversion,) = host.tracker.conversions(subid=subid)
    assert _waiting(host) == [conversion["id"]]
    (received,) = host.received(subid=subid)
    assert received["outcome"] == "accepted" and "did not take it yet (RuntimeError: disk full)" in received["reason"]

    handed = host.tracker.hand_over_waiting()
    assert (handed.taken, handed.error) == (1, None) and _waiting(host) == []
    host.tracker.s2s.drain(timeout=5)
    (request,) = standin.wait_for(1)
    assert request.raw_query == "goal=g1&tag=kept&value=5"


def test_with_the_plugins_database_down_conversions_wait_in_order_and_recover_at_start(
    tracker, standin: StandInSource, serve_asgi, monkeypatch: pytest.MonkeyPatch
) -> None:
    creds = tracker.init()
    tracker.add_source(
        "exo", postback_url=f"{standin.url}/pb?c={{external_id}}&s={{status}}", statuses=["lead", "sale"]
    )
    tracker.add_campaign("summer", source_id="exo", offer_url="https://offer.example/")
    record = tracker.s2s.store.record_conversion

    def database_down(*args, **kwargs):
        raise OperationalError("INSERT INTO s2s_deliveries ...", {}, Exception("database is locked"))

    monkeypatch.setattr(tracker.s2s.store, "record_conversion", database_down)
    app = create_app(tracker, handoff_interval=3600)
    with httpx.Client(base_url=serve_asgi(app)) as client:
        subid = client.get("/c/summer", params={"external_id": "c1"}).headers["x-subid"]
        for status in ("lead", "sale"):
            answer = client.get(f"/{creds.postback_key}/postback", params={"subid": subid, "status": status})
            assert answer.status_code == 200
    assert len(tracker.handoffs.waiting_for(subid)) == 2
    assert "OperationalError" in tracker.handoffs.waiting_for(subid)[0]["last_error"]

    # The plugin's database is back; a restarted app hands everything over, oldest first.
    monkeypatch.setattr(tracker.s2s.store, "record_conversion", record)
    with httpx.Client(base_url=serve_asgi(create_app(tracker, handoff_interval=3600))) as client:
        assert client.get("/login").status_code == 200
    assert tracker.handoffs.waiting() == 0
    tracker.s2s.drain(timeout=5)
    assert sorted(r.raw_query for r in standin.wait_for(2)) == ["c=c1&s=lead", "c=c1&s=sale"]


def test_a_later_conversion_never_overtakes_a_waiting_one(host: Host, exo_campaign: str) -> None:
    host.tracker.add_source(
        "exo", template="exoclick", postback_url="https://exo.example/t?tag={external_id}", statuses=["lead", "sale"]
    )
    subid = host.click("summer", external_id="x")
    host.tracker.pm.register(Broken(), name="broken")
    try:
        host.postback(subid=subid, status="lead")
    finally:
        host.tracker.pm.unregister(name="broken")
    assert host.postback(subid=subid, status="sale").status_code == 200
    # The waiting lead went to the plugin first, then the sale: both were decided in order.
    explanation = host.tracker.explain(subid).to_dict()
    assert [d["status"] for d in explanation["deliveries"]] == ["lead", "sale"]
    assert host.tracker.handoffs.waiting() == 0
