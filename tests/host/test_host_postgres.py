"""The sample host on PostgreSQL, given by URL like SQLite: the same flow over HTTP."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from sample_host.app import create_app
from sample_host.standin import StandInSource
from sample_host.tracker import Tracker

from .conftest import Broken


def test_click_postback_and_delivery_on_postgresql(
    fresh_pg_url: str, standin: StandInSource, serve_asgi: Callable[..., str]
) -> None:
    with Tracker(fresh_pg_url, allow_private_targets=True, load_plugins=False) as tracker:
        creds = tracker.init()
        tracker.add_source(
            "exo", template="exoclick", postback_url=f"{standin.url}/t?tag={{external_id}}&v={{revenue}}"
        )
        tracker.add_campaign("summer", source_id="exo", offer_url="https://offer.example/?s={subid}")
        base_url = serve_asgi(create_app(tracker))
        with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {creds.api_token}"}) as client:
            subid = client.get("/c/summer", params={"external_id": "pg-1"}).headers["x-subid"]
            answer = client.get(f"/{creds.postback_key}/postback", params={"subid": subid, "payout": "1.5"})
            assert (answer.status_code, answer.text.strip()) == (200, "OK")
            tracker.s2s.drain(timeout=5)
            (row,) = client.get("/api/sent-postbacks", params={"subid": subid}).json()["items"]
    assert row["outcome"] == "delivered"
    assert row["url"] == f"{standin.url}/t?tag=pg-1&v=1.5"
    assert row["started_at"].endswith("+00:00")


def test_refusals_handoffs_log_pages_and_metrics_on_postgresql(fresh_pg_url: str, standin: StandInSource) -> None:
    from sample_host.logs import SentFilter
    from sample_host.metrics import collect, render

    with Tracker(fresh_pg_url, allow_private_targets=True, load_plugins=False) as tracker:
        key = tracker.init().postback_key
        tracker.add_source("exo", postback_url=f"{standin.url}/t?tag={{external_id}}")
        tracker.add_campaign("summer", source_id="exo", offer_url="https://offer.example/")
        click, _ = tracker.record_click("summer", {"external_id": "pg"})
        for _ in range(3):
            assert tracker.receive_postback("wrong", {"subid": "x" * 300}, ip="203.0.113.5").http_status == 403
        tracker.pm.register(Broken(), name="broken")
        assert tracker.receive_postback(key, {"subid": click.subid, "payout": "2"}).http_status == 200
        tracker.pm.unregister(name="broken")
        assert tracker.handoffs.waiting() == 1 and tracker.hand_over_waiting().taken == 1
        tracker.s2s.drain(timeout=5)
        page = tracker.sent_page(SentFilter(campaign="summer"), limit=10)
        text = render(collect(tracker))
    assert [row["outcome"] for row in page.rows] == ["delivered"] and page.older is None
    assert 'sample_host_refused_postbacks_total{kind="wrong_key"} 3' in text
    assert "sample_host_postback_attempt_duration_seconds_count 1" in text
