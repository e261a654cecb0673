"""The Sent postbacks log for people, without a browser: its CSV export (the page's filter, signed
in, streamed in batches, secrets masked, formulas defused) and each row's request and answer inline."""

from __future__ import annotations

import csv
import html
import io
import re

import pytest

from sample_host.logs import SentFilter, cause_counts
from sample_host.sentcsv import export_lines
from sample_host.standin import StandInSource

from .conftest import Admin, Host

SECRET = "acct-key-5f3e9a"


@pytest.fixture
def logged(host: Host, standin: StandInSource) -> dict[str, str]:
    """A source whose postback carries a marked secret and is accepted, a campaign postback whose
    partner refuses it with a body a spreadsheet would run as a formula, and a skipped one:
    subids by what happened."""
    standin.script("/partner", [], default=(400, '=HYPERLINK("https://evil.example","click")'))
    host.tracker.add_source(
        "ts",
        postback_url=f"{standin.url}/ts?clickid={{external_id}}&value={{revenue}}&key={SECRET}",
        statuses=["sale"],
        secrets=["key"],
    )
    host.tracker.add_campaign("dating", source_id="ts", offer_url="https://offer.example/?s={subid}")
    host.tracker.add_postback("dating", url=f"{standin.url}/partner?c={{subid}}", statuses=["sale"])
    sent = host.click("dating", external_id="ts-1")
    skipped = host.click("dating")  # no click id: the source's postback is not sent
    for subid in (sent, skipped):
        assert host.postback(subid=subid, status="sale", payout="1.5").status_code == 200
    host.tracker.s2s.drain(timeout=5)
    return {"sent": sent, "skipped": skipped}


def _csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_csv_export_carries_the_filter_and_masks_secrets(host: Host, admin: Admin, logged: dict[str, str]) -> None:
    everything = admin.get("/sent.csv")
    assert everything.status_code == 200
    assert everything.headers["content-type"] == "text/csv; charset=utf-8"
    assert everything.headers["content-disposition"].startswith('attachment; filename="sent-postbacks-')
    rows = _csv(everything.text)
    assert len(rows) == 4 and [int(r["id"]) for r in rows] == sorted((int(r["id"]) for r in rows), reverse=True)
    assert SECRET not in everything.text
    (accepted,) = [r for r in rows if r["rule_id"] == "source:ts" and r["outcome"] == "delivered"]
    assert accepted["url"].endswith("&key=[REDACTED]") and accepted["subid"] == logged["sent"]
    assert accepted["logged_at"].endswith("+00:00")

    # The page's Export link carries its filter; the export has exactly the page's entries.
    page = admin.get("/sent", params={"outcome": "failed", "campaign": "dating"})
    assert 'href="/sent.csv?campaign=dating&amp;outcome=failed"' in page.text
    failed = _csv(admin.get("/sent.csv", params={"outcome": "failed", "campaign": "dating"}).text)
    assert [(r["rule_id"], r["http_status"]) for r in failed] == [("postback:1", "400")] * 2
    # A body the partner chose cannot become a formula in a spreadsheet.
    assert {r["response_body"] for r in failed} == {'\'=HYPERLINK("https://evil.example","click")'}
    only = _csv(admin.get("/sent.csv", params={"subid": logged["skipped"], "outcome": "skipped"}).text)
    assert [(r["rule_id"], r["attempt"]) for r in only] == [("source:ts", "0")]


def test_csv_export_is_behind_sign_in_and_refuses_a_bad_filter_in_one_line(
    host: Host, admin: Admin, logged: dict[str, str]
) -> None:
    anonymous = host.client.get("/sent.csv")
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/login")
    bad = admin.get("/sent.csv", params={"since": "yesterday"})
    assert bad.status_code == 400 and "since='yesterday' is not an ISO 8601 time" in html.unescape(bad.text)
    assert "Traceback" not in bad.text
    assert admin.get("/sent.csv", params={"outcome": "lost"}).status_code == 400


def test_csv_export_reads_in_batches_newest_first(host: Host, logged: dict[str, str]) -> None:
    pieces = list(export_lines(host.tracker.engine, SentFilter(), batch=3))
    assert len(pieces) == 3  # the header, a batch of three, the last entry
    rows = _csv("".join(pieces))
    everything = host.tracker.sent_postbacks(limit=100)
    assert [int(r["id"]) for r in rows] == [entry["id"] for entry in reversed(everything)]


def test_each_row_shows_its_request_and_answer_inline(host: Host, admin: Admin, logged: dict[str, str]) -> None:
    page = admin.get("/sent", params={"outcome": "failed"}).text
    assert page.count('<details class="exchange">') == 2
    assert "<summary>Request and answer</summary>" in page
    assert "/partner?c=" in page and "HTTP 400" in page
    assert "=HYPERLINK(&#34;https://evil.example&#34;,&#34;click&#34;)" in page  # escaped, shown as sent
    delivered = admin.get("/sent", params={"source": "ts", "outcome": "delivered"}).text
    assert "&amp;key=[REDACTED]" in delivered and SECRET not in delivered
    skipped = admin.get("/sent", params={"outcome": "skipped"}).text
    assert "Not sent: nothing went out." in skipped


def test_the_log_groups_and_filters_by_cause_with_links_to_the_fixing_setting(
    host: Host, admin: Admin, logged: dict[str, str]
) -> None:
    page = admin.get("/sent").text
    # Every cause of the log, most frequent first, each a link that filters by it.
    groups = re.findall(r'<li data-cause="([a-z_]+)"', page)
    assert groups == ["http_refused", "accepted", "no_click_id"]
    assert 'href="/sent?cause=http_refused"' in page
    refused = admin.get("/sent", params={"cause": "http_refused"}).text
    assert refused.count('<details class="exchange">') == 2 and "/partner?c=" in refused
    assert "source:ts" not in refused.split("<tbody>")[1]
    # The fix of a cause links to the setting: the refused postback's URL, the campaign's link.
    number = host.tracker.postbacks("dating")[0].id.split(":")[1]
    assert f'href="/postbacks/{number}/edit#rule-url" class="fix"' in refused
    no_click_id = admin.get("/sent", params={"cause": "no_click_id"}).text
    assert 'href="/campaigns/dating#campaign-link" class="fix"' in no_click_id
    # The same filter for the export; an unknown cause is a one-line 400.
    rows = _csv(admin.get("/sent.csv", params={"cause": "no_click_id"}).text)
    assert [(r["subid"], r["cause"], r["outcome"]) for r in rows] == [(logged["skipped"], "no_click_id", "skipped")]
    bad = admin.get("/sent", params={"cause": "gremlins"})
    assert bad.status_code == 400 and "cause 'gremlins' is not a cause code" in html.unescape(bad.text)


def test_an_attempts_page_names_its_cause_and_links_its_fix(host: Host, admin: Admin, logged: dict[str, str]) -> None:
    (refused, *_) = host.sent(subid=logged["sent"], outcome="failed")
    page = admin.get(f"/sent/{refused['id']}").text
    number = host.tracker.postbacks("dating")[0].id.split(":")[1]
    cause = page.split('<dd id="cause">', 1)[1].split("</dd>", 1)[0]
    assert 'href="/sent?cause=http_refused"' in cause and "Refused (HTTP 4xx)" in cause
    assert f'href="/postbacks/{number}/edit#rule-url"' in cause


def test_cause_counts_read_only_the_newest_entries_of_a_long_log(host: Host, logged: dict[str, str]) -> None:
    newest = host.tracker.sent_postbacks(limit=2)  # oldest first
    counted = cause_counts(host.tracker.engine, SentFilter(), window=2)
    expected: dict[str, int] = {}
    for entry in newest:
        expected[entry["cause"]] = expected.get(entry["cause"], 0) + 1
    assert {c.cause: c.count for c in counted} == expected
    assert sum(c.count for c in cause_counts(host.tracker.engine, SentFilter())) == 4
