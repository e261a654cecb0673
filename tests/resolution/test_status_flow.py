"""Status rules end to end: what a network reports, what is decided and recorded, what is sent."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import httpx

from hookspecs import Click, Conversion
from sample_host.app import create_app
from sample_host.tracker import Tracker


def setup(make_s2s, standin, source_statuses=("sale",), campaign_statuses=("lead", "sale", "rejected", "rebill")):
    pm, s2s = make_s2s()
    s2s.add_source(
        "exo", postback_url=standin.url + "/src?c={external_id}&s={status}&t={tid}", statuses=list(source_statuses)
    )
    s2s.add_postback(
        "summer",
        url=standin.url + "/camp?c={external_id}&s={status}&o={original_status}&t={tid}",
        statuses=list(campaign_statuses),
    )
    pm.hook.on_click(click=Click(subid="c1", campaign_id="summer", source_id="exo", params={"external_id": "E1"}))
    return pm, s2s


def report(s2s, status: str, tid: str | None = None, original: str | None = None, payout: str | None = "3"):
    """Report a conversion through the service and return its decision."""
    conversion = Conversion(
        subid="c1", status=status, tid=tid, original_status=original, payout=Decimal(payout) if payout else None
    )
    return s2s.record(conversion).decision


def sent(standin) -> list[str]:
    return sorted(r.target for r in standin.requests)


def test_original_status_falls_back_to_the_status(make_s2s, standin, host) -> None:
    _pm, s2s = setup(make_s2s, standin, campaign_statuses=("lead",))
    report(s2s, "lead")
    s2s.drain(timeout=5)
    assert sent(standin) == ["/camp?c=E1&s=lead&o=lead&t="]


def test_lead_sale_rejected_each_fires_once_for_the_postbacks_that_enable_it(make_s2s, standin, host) -> None:
    _pm, s2s = setup(make_s2s, standin)
    kinds = [
        report(s2s, "lead", original="pending").kind,
        report(s2s, "lead").kind,
        report(s2s, "sale", original="approved").kind,
        report(s2s, "sale").kind,
        report(s2s, "rejected", original="chargeback").kind,
        report(s2s, "rejected").kind,
    ]
    assert kinds == ["new", "repeat", "change", "repeat", "change", "repeat"]
    s2s.drain(timeout=5)
    assert sent(standin) == [
        "/camp?c=E1&s=lead&o=pending&t=",
        "/camp?c=E1&s=rejected&o=chargeback&t=",
        "/camp?c=E1&s=sale&o=approved&t=",
        "/src?c=E1&s=sale&t=",
    ]
    skipped = sorted((a.rule_id, a.status) for a in host.attempts if a.outcome == "skipped")
    assert skipped == [("source:exo", "lead"), ("source:exo", "rejected")]


def test_sale_before_lead_keeps_the_sale_and_records_why(make_s2s, standin, host) -> None:
    _pm, s2s = setup(make_s2s, standin)
    assert report(s2s, "sale", tid="T1").kind == "new"
    late = report(s2s, "lead", tid="T1")
    assert late.kind == "ignored" and "reordered" in late.reason
    s2s.drain(timeout=5)
    assert sent(standin) == ["/camp?c=E1&s=sale&o=sale&t=T1", "/src?c=E1&s=sale&t=T1"]
    text = str(s2s.explain("c1"))
    assert "lead arrived after sale (reordered by the network): kept sale, nothing sent" in text


def test_rebills_need_a_new_tid(make_s2s, standin, host) -> None:
    _pm, s2s = setup(make_s2s, standin, source_statuses=("sale", "rebill"), campaign_statuses=("rebill",))
    decisions = [
        report(s2s, "sale", tid="T1"),
        report(s2s, "sale", tid="T2"),
        report(s2s, "rebill", tid="T3"),
        report(s2s, "sale", tid="T2"),
        report(s2s, "rebill"),
    ]
    assert [(d.kind, d.status) for d in decisions] == [
        ("new", "sale"),
        ("new", "rebill"),
        ("new", "rebill"),
        ("repeat", "rebill"),
        ("repeat", "rebill"),
    ]
    s2s.drain(timeout=5)
    assert sent(standin) == [
        "/camp?c=E1&s=rebill&o=rebill&t=T3",
        "/camp?c=E1&s=rebill&o=sale&t=T2",
        "/src?c=E1&s=rebill&t=T2",
        "/src?c=E1&s=rebill&t=T3",
        "/src?c=E1&s=sale&t=T1",
    ]


def test_a_conversion_first_seen_without_a_tid_takes_the_next_one(make_s2s, standin, host) -> None:
    _pm, s2s = setup(make_s2s, standin, source_statuses=("sale", "rebill"), campaign_statuses=())
    assert [report(s2s, "sale").kind, report(s2s, "sale", tid="A").kind, report(s2s, "sale", tid="B").status] == [
        "new",
        "repeat",
        "rebill",
    ]
    s2s.drain(timeout=5)
    # The sale once (it had no tid when it fired), then the rebill B.
    assert sent(standin) == ["/src?c=E1&s=rebill&t=B", "/src?c=E1&s=sale&t="]


def test_an_empty_tid_never_splits_or_doubles_a_conversion(make_s2s, standin, host) -> None:
    _pm, s2s = setup(make_s2s, standin, campaign_statuses=("lead", "sale"))
    for tid in (None, "", "  ", None):
        report(s2s, "lead", tid=tid)
    report(s2s, "sale", tid="")
    s2s.drain(timeout=5)
    assert sent(standin) == ["/camp?c=E1&s=lead&o=lead&t=", "/camp?c=E1&s=sale&o=sale&t=", "/src?c=E1&s=sale&t="]


def test_not_allowed_change_is_recorded_and_sends_nothing(make_s2s, standin, host) -> None:
    _pm, s2s = setup(make_s2s, standin)
    report(s2s, "rejected", tid="T1")
    back = report(s2s, "sale", tid="T1")
    assert (
        back.kind == "ignored"
        and back.reason == "status change rejected → sale is not allowed: kept rejected, nothing sent"
    )
    s2s.drain(timeout=5)
    assert sent(standin) == ["/camp?c=E1&s=rejected&o=rejected&t=T1"]


def test_sample_host_inbound_uses_the_shared_mapping(tmp_path: Path, standin, serve_asgi) -> None:
    with (
        Tracker(
            f"sqlite:///{tmp_path / 'host.db'}", allow_private_targets=True, retry_schedule=[0], load_plugins=False
        ) as tracker,
        httpx.Client(timeout=10) as client,
    ):
        creds = tracker.init()
        tracker.add_source(
            "exo",
            postback_url=standin.url + "/src?c={external_id}&s={status}&o={original_status}",
            statuses=["lead", "sale", "rejected"],
        )
        tracker.add_campaign("summer", source_id="exo", offer_url="https://offer.example/?s={subid}")
        client.base_url = serve_asgi(create_app(tracker))
        subid = client.get("/c/summer", params={"external_id": "E9"}, follow_redirects=False).headers["x-subid"]
        mapping = {
            "lead_status": "reg, topup",
            "sale_status": "billed",
            "rejected_status": "canceled,fake",
            "ignore_status": "ping,test",
        }
        answers = [
            client.get(f"/{creds.postback_key}/postback", params={"subid": subid, "status": status, **mapping})
            for status in ("ping", "Topup", "billed", "fake")
        ]
        assert [a.status_code for a in answers] == [200, 200, 200, 200]
        assert "ignored" in answers[0].text
        tracker.s2s.drain(timeout=5)
        assert sent(standin) == ["/src?c=E9&s=lead&o=Topup", "/src?c=E9&s=rejected&o=fake", "/src?c=E9&s=sale&o=billed"]
        assert [c["status"] for c in tracker.conversions()] == ["rejected", "sale", "lead"]
