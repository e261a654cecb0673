"""The delivery health dashboard (``/dashboard``), the landing page after sign-in: what it shows
after real deliveries to a stand-in source, its window parameter, and its charts."""

from __future__ import annotations

import html
import re
import time

import httpx
from sqlalchemy import insert

from s2s_plugin.resolution.causes import Cause
from s2s_plugin.resolution.ruleid import RuleId
from s2s_plugin.storage import tables as t
from sample_host.charts import sparkline, summary, timeline
from sample_host.dashboard import WINDOWS, cause_view, choose_window
from sample_host.standin import StandInSource
from tests.host.conftest import Admin, Host, sign_in


def _text(response: httpx.Response) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", response.text)).split())


def _row(page: str, rule_id: str) -> str:
    found = re.search(rf'<tr data-rule="{re.escape(rule_id)}">(.*?)</tr>', page, re.S)
    assert found, f"no row for {rule_id}"
    return found.group(1)


def _cell(row: str, outcome: str) -> int:
    found = re.search(rf'data-outcome="{outcome}">(\d+)<', row)
    assert found, outcome
    return int(found.group(1))


def test_signing_in_lands_on_the_dashboard_and_it_needs_sign_in(host: Host) -> None:
    assert host.client.get("/dashboard").headers["location"] == "/login?next=%2Fdashboard"
    with httpx.Client(base_url=host.base_url, follow_redirects=True) as browser:
        form = browser.get("/")  # the root sends a signed-out visitor to sign in...
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
        signed = browser.post("/login", data={"csrf_token": token, "password": host.admin_password})
        assert signed.url.path == "/dashboard" and signed.status_code == 200  # ... and on to the dashboard
        assert "Delivery health" in signed.text
        assert browser.get("/").url.path == "/dashboard"


def test_the_dashboard_counts_each_postback_and_names_its_causes(
    host: Host, admin: Admin, exo_campaign: str, standin: StandInSource
) -> None:
    tracker = host.tracker
    tracker.add_postback("summer", url=f"{standin.url}/partner?c={{external_id}}", statuses=["sale"])
    tracker.add_source("quiet", postback_url=f"{standin.url}/quiet?c={{external_id}}")  # no traffic at all
    standin.script("/partner", default=(404, "no such goal"))
    for n in range(3):
        host.postback(subid=host.click("summer", external_id=f"ck{n}"), status="sale", payout="1")
    host.postback(subid=host.click("summer"), status="sale", payout="1")  # no click id: both skipped
    tracker.s2s.drain(timeout=5)

    page = admin.get("/dashboard?window=1h")
    assert page.status_code == 200
    source_row, partner_row = _row(page.text, "source:exo"), _row(page.text, "postback:1")
    assert [_cell(source_row, o) for o in ("delivered", "retrying", "failed", "skipped")] == [3, 0, 0, 1]
    assert [_cell(partner_row, o) for o in ("delivered", "retrying", "failed", "skipped")] == [0, 0, 3, 1]
    refused = re.search(
        r'<div data-cause="http_refused"><strong>(\d+)</strong> <span[^>]*>([^<]+)</span> <a href="([^"]+)"',
        partner_row,
    )
    assert refused and refused.groups() == ("3", html.escape(Cause.HTTP_REFUSED.label), "/postbacks/1/edit#rule-url")
    assert '<div data-cause="no_click_id"><strong>1</strong>' in source_row
    assert "Campaign summer · postback 1" in partner_row and 'href="/campaigns/summer/postbacks"' in partner_row
    assert re.search(r"\d+ ms / \d+ ms", source_row)  # latency p50 / p95
    quiet = _row(page.text, "source:quiet")  # listed all the same: a source gone silent is news
    assert [_cell(quiet, o) for o in ("delivered", "retrying", "failed", "skipped")] == [0, 0, 0, 0]
    assert page.text.index('data-rule="source:quiet"') > page.text.index('data-rule="postback:1"')  # busy first
    text = _text(page)
    assert 'id="total-failed">3<' in page.text and 'id="total-skipped">2<' in page.text
    # The chart says what it shows, in words, for screen readers.
    assert 'aria-label="3 delivered and 3 failed over 60 minutes' in page.text
    assert "Nothing is overdue." in text
    assert standin.url.split("//")[1] in text  # the host, and that it is sending


def test_the_queue_and_a_host_that_does_not_answer_are_shown(
    host: Host, admin: Admin, exo_campaign: str, standin: StandInSource
) -> None:
    subid = host.click("summer", external_id="late")
    host.postback(subid=subid, status="sale", payout="1")  # queued, never drained
    time.sleep(0.05)
    target = standin.url.split("//")[1]
    now = time.time()
    with host.tracker.s2s.engine.begin() as conn:
        conn.execute(
            insert(t.hosts).values(
                host=target, state="open", failures=5, opened_at=now - 60, next_probe_at=now + 240,
                concurrency_limit=3, updated_at=now,
            )
        )  # fmt: skip
    page = admin.get("/dashboard")
    text = _text(page)
    assert 'id="queue-depth">1<' in page.text
    assert f"source:exo for click {subid}" in text and "Oldest due" in text
    assert f'href="/explain?subid={subid}"' in page.text
    assert re.search(rf"{re.escape(target)} paused not answering since [-\d: ]+; next probe at [-\d: ]+", text)


def test_a_bad_window_is_a_one_line_400(admin: Admin) -> None:
    for bad in ("forever", "2h", "%00", "1h'--"):
        answer = admin.get("/dashboard", params={"window": bad})
        assert answer.status_code == 400, bad
        assert "window must be one of 24h, 1h, 7d" in _text(answer)
    assert admin.get("/dashboard", params={"window": "7d"}).status_code == 200
    assert choose_window(None) is choose_window("") is WINDOWS["24h"]


def test_a_cause_reads_as_its_label_and_leads_to_the_setting_that_fixes_it() -> None:
    no_click_id = cause_view("no_click_id", 2, RuleId.parse("postback:4"), "summer")
    assert (no_click_id.label, no_click_id.fix_href) == ("No click id", "/campaigns/summer#campaign-link")
    assert cause_view("status_not_enabled", 1, RuleId.parse("source:exo")).fix_href == "/sources/exo#rule-statuses"
    timeout = cause_view("timeout", 5, RuleId.parse("source:exo"))
    assert timeout.fix_href == "" and "(setting timeout)" in timeout.fix
    assert cause_view("something_newer", 1).label == "Something newer"  # a code this version does not know


def test_charts_are_inline_svg_scaled_to_the_busiest_bucket() -> None:
    series = [(4, 0), (0, 2), (0, 0), (8, 1)]
    spark = str(sparkline(series, "hour"))
    assert spark.startswith("<svg") and "style=" not in spark and "<script" not in spark
    assert spark.count('class="delivered"') == 2 and spark.count('class="failed"') == 2
    heights = [float(h) for h in re.findall(r'class="delivered"[^>]*height="([\d.]+)"', spark)]
    assert heights[1] == 2 * heights[0]  # 8 against 4
    assert summary(series, "hour") == "12 delivered and 3 failed over 4 hours; at most 9 attempts in one hour"
    labelled = str(timeline(series, "hour", ["10:00", "11:00", "12:00", "13:00"]))
    assert "<title>13:00: 8 delivered, 1 failed</title>" in labelled and "12:00" not in labelled  # empty: no bar
    empty = str(timeline([(0, 0)] * 60, "minute"))
    assert "<rect" not in empty and "0 delivered and 0 failed over 60 minutes" in empty
    assert "&lt;b&gt;" in str(sparkline([(1, 0)], "<b>"))  # labels are escaped


def test_the_dashboard_on_postgresql_and_sqlite_prints_no_secret(any_host: Host, standin: StandInSource) -> None:
    tracker = any_host.tracker
    tracker.add_source("exo", postback_url=f"{standin.url}/pb?c={{external_id}}&key=ACCOUNT-SECRET-9", secrets=["key"])
    tracker.add_campaign("summer", source_id="exo", offer_url="https://offer.example/")
    standin.script("/pb", [(503, "busy")], default=(200, "OK"))
    any_host.postback(subid=any_host.click("summer", external_id="k1"), status="sale", payout="1")
    tracker.s2s.drain(timeout=5)
    client = sign_in(any_host.base_url, any_host.admin_password)
    try:
        for window in ("1h", "24h", "7d"):
            page = client.get("/dashboard", params={"window": window})
            assert page.status_code == 200
            row = _row(page.text, "source:exo")
            assert [_cell(row, o) for o in ("delivered", "retrying", "failed", "skipped")] == [1, 1, 0, 0]
            assert '<div data-cause="http_server_error"><strong>1</strong>' in row
            assert "ACCOUNT-SECRET-9" not in page.text
    finally:
        client.close()
