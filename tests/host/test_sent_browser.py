"""The Sent postbacks log in a real browser (headless Debian Chromium through Playwright): filtered
by cause, a row's request and answer opened inline, the CSV download of the filter, secrets masked,
and a cause's fix link opening the setting."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

from playwright.sync_api import Page, expect

from sample_host.standin import StandInSource

from .conftest import Host

SECRET = "acct-key-5f3e9a"


def test_an_operator_filters_by_cause_reads_a_row_and_downloads_the_csv(
    page: Page, host: Host, standin: StandInSource
) -> None:
    standin.script("/partner", [], default=(400, "unknown goal REPLACE"))
    host.tracker.add_source(
        "ts",
        postback_url=f"{standin.url}/ts?clickid={{external_id}}&key={SECRET}",
        statuses=["sale"],
        secrets=["key"],
    )
    host.tracker.add_campaign("dating", source_id="ts", offer_url="https://offer.example/?s={subid}")
    host.tracker.add_postback("dating", url=f"{standin.url}/partner?c={{subid}}&goal=REPLACE", statuses=["sale"])
    clicks = [host.click("dating", external_id=f"ts-{n}") for n in range(2)] + [host.click("dating")]
    for subid in clicks:
        assert host.postback(subid=subid, status="sale", payout="1.5").status_code == 200
    host.tracker.s2s.drain(timeout=5)

    page.goto(f"{host.base_url}/sent")
    page.fill("input[name=password]", host.admin_password)
    page.click("button:has-text('Sign in')")
    expect(page.locator("h1")).to_have_text("Sent postbacks")
    rows = page.locator("table.log tbody tr")
    expect(rows).to_have_count(6)

    # Grouped by cause: the partner's refusals first; one click filters the log to them.
    groups = page.locator("#causes li[data-cause]")
    expect(groups.first).to_have_attribute("data-cause", "http_refused")
    expect(groups.first.locator(".cause-filter")).to_have_text("3 Refused (HTTP 4xx)")
    groups.first.locator(".cause-filter").click()
    expect(page).to_have_url(f"{host.base_url}/sent?cause=http_refused")
    expect(page.locator("select[name=cause]")).to_have_value("http_refused")
    expect(rows).to_have_count(3)
    for n in range(3):
        expect(rows.nth(n).locator(".cause-tag")).to_have_text("Refused (HTTP 4xx)")

    # A row's request and answer, folded until asked for.
    exchange = rows.first.locator("details.exchange")
    expect(exchange.locator("pre.answer")).to_be_hidden()
    exchange.locator("summary").click()
    expect(exchange.locator("pre.request")).to_have_text(
        re.compile(rf"^GET {re.escape(standin.url)}/partner\?c=\w+&goal=REPLACE$")
    )
    expect(exchange.locator("pre.answer")).to_have_text("unknown goal REPLACE")
    expect(exchange).to_contain_text("Answer: HTTP 400")

    # The CSV of the current filter, downloaded by the browser.
    with page.expect_download() as info:
        page.click("#export-csv")
    download = info.value
    assert download.suggested_filename.startswith("sent-postbacks-") and download.suggested_filename.endswith(".csv")
    exported = list(csv.DictReader(io.StringIO(Path(download.path()).read_text(encoding="utf-8"))))
    assert [(r["rule_id"], r["cause"], r["http_status"]) for r in exported] == [
        ("postback:1", "http_refused", "400")
    ] * 3
    assert sorted(r["subid"] for r in exported) == sorted(clicks)

    # The source's postback: its marked secret masked in the row, the answer and the export.
    page.select_option("select[name=cause]", "accepted")
    page.click("button:has-text('Filter')")
    expect(rows).to_have_count(2)
    rows.first.locator("details.exchange summary").click()
    expect(rows.first.locator("pre.request")).to_have_text(re.compile(r"&key=\[REDACTED\]$"))
    assert SECRET not in page.content()
    with page.expect_download() as info:
        page.click("#export-csv")
    masked = Path(info.value.path()).read_text(encoding="utf-8")
    assert "key=[REDACTED]" in masked and SECRET not in masked

    # A cause's fix opens the setting that fixes it: the refused postback's URL.
    page.goto(f"{host.base_url}/sent?cause=http_refused")
    page.locator("#causes li[data-cause=http_refused] a.fix").click()
    expect(page).to_have_url(re.compile(rf"{re.escape(host.base_url)}/postbacks/\d+/edit#rule-url$"))
    expect(page.locator("#rule-url input")).to_have_value(re.compile("goal=REPLACE"))
