"""The sample tracker's pages in a real browser: headless Debian Chromium through Playwright, the
app on a real loopback port, a stand-in traffic source receiving the postbacks."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from playwright.sync_api import Page, expect

from sample_host.app import create_app
from sample_host.standin import StandInSource
from sample_host.tracker import Tracker


@pytest.fixture
def served(tracker: Tracker, serve_asgi: Callable[..., str]) -> tuple[str, str, str]:
    """(base URL, admin password, postback key) of the tracker's app on loopback."""
    creds = tracker.init()
    return serve_asgi(create_app(tracker)), creds.admin_password, creds.postback_key


def _sign_in(page: Page, base: str, password: str, start: str = "/campaigns") -> None:
    page.goto(base + start)
    expect(page).to_have_url(f"{base}/login?next={start.replace('/', '%2F')}")
    page.fill("input[name=password]", password)
    page.click("button:has-text('Sign in')")
    expect(page).to_have_url(base + start)


def test_an_operator_runs_a_campaign_from_the_pages(
    page: Page, served: tuple[str, str, str], tracker: Tracker, standin: StandInSource
) -> None:
    base, password, key = served
    _sign_in(page, base, password, "/sent")
    # The stylesheet is served and allowed by the content security policy.
    expect(page.locator("header.top")).to_have_css("background-color", "rgb(29, 35, 48)")

    # A source from the template library, its URL pointed at the stand-in source.
    page.click("nav >> text=Sources")
    page.select_option("select[name=template]", "exoclick")
    page.click("button:has-text('Use this template')")
    expect(page.locator(".template-facts")).to_contain_text("{conversions_tracking}")
    page.fill("input[name=id]", "exo")
    page.fill("input[name=postback_url]", f"{standin.url}/tag.php?goal=g1&tag={{external_id}}&value={{revenue}}")
    page.click("button:has-text('Add source')")
    expect(page.locator("h1")).to_contain_text("exo")
    expect(page.locator("main")).to_contain_text("?external_id={conversions_tracking}")

    # A campaign bought from it, with an S2S postback of its own.
    page.click("text=Create a campaign")
    page.fill("input[name=alias]", "summer")
    page.select_option("select[name=source_id]", "exo")
    page.fill("input[name=offer_url]", f"{standin.url}/offer?click={{subid}}")
    page.click("button:has-text('Add campaign')")
    link = page.locator("#campaign-link").inner_text()
    assert link == f"{base}/c/summer?external_id={{conversions_tracking}}"
    page.click("nav.tabs >> text=S2S postbacks")
    page.fill("input[name=url]", f"{standin.url}/partner?c={{subid}}&s={{status}}&p={{revenue}}")
    page.check("input[name=statuses][value=sale]")
    page.click("button:has-text('Add postback')")
    expect(page.locator("table.grid")).to_contain_text("/partner?c={subid}&s={status}&p={revenue}")

    # The source sends a visitor through the link with its click id substituted: on to the offer.
    page.goto(link.replace("{conversions_tracking}", "exo-click-42"))
    expect(page).to_have_url(f"{standin.url}/offer?click=" + page.url.rsplit("=", 1)[1])
    subid = page.url.rsplit("=", 1)[1]
    assert tracker.click(subid).params["external_id"] == "exo-click-42"

    # The affiliate network reports the sale (and a broken report), server to server.
    with httpx.Client(base_url=base) as network:
        assert (
            network.get(f"/{key}/postback", params={"subid": subid, "status": "sale", "payout": "2.5"}).status_code
            == 200
        )
        assert network.get(f"/{key}/postback", params={"subid": subid, "payout": "abc"}).status_code == 400
    tracker.s2s.drain(timeout=5)

    # The Sent postbacks log shows the delivered postback; its detail shows request and answer.
    page.goto(base + "/campaigns")
    page.click("nav >> text=Sent postbacks")
    source_row = page.locator("tbody tr", has_text="source:exo")
    expect(source_row).to_contain_text("delivered")
    expect(page.locator("tbody tr", has_text="postback:1")).to_contain_text("delivered")
    source_row.locator("a:has-text('Details')").click()
    expect(page.locator("pre.wire").first).to_have_text(f"GET {standin.url}/tag.php?goal=g1&tag=exo-click-42&value=2.5")
    expect(page.locator("main")).to_contain_text("HTTP status: 200")

    # The Received postbacks log shows the rejected report with its reason.
    page.click("nav >> text=Received postbacks")
    rejected = page.locator("tbody tr", has_text="payout 'abc' is not a number")
    expect(rejected).to_contain_text("rejected")
    expect(page.locator("tbody tr", has_text="sale recorded")).to_contain_text("accepted")

    # Explain, then resend the source's postback from there.
    page.click("nav >> text=Explain")
    page.fill("input[name=subid]", subid)
    page.click("button:has-text('Explain')")
    expect(page.locator(".headline")).to_contain_text("Every postback for this click was delivered")
    delivered = page.locator("li.postback", has_text="Source exo's postback")
    delivered.locator("> details > summary").click()
    delivered.locator("> details button:has-text('Resend')").click()
    expect(page.locator(".flash")).to_contain_text("is due again")
    tracker.s2s.drain(timeout=5)
    assert [r.raw_query for r in standin.requests if r.path == "/tag.php"] == ["goal=g1&tag=exo-click-42&value=2.5"] * 2
    page.click("nav >> text=Sent postbacks")
    expect(page.locator("tbody tr", has_text="source:exo").first).to_contain_text("2")

    # Signing out closes every page again.
    page.click("button:has-text('Sign out')")
    page.goto(base + "/sent")
    expect(page).to_have_url(f"{base}/login?next=%2Fsent")


def test_test_postback_and_postback_editing_in_the_browser(
    page: Page, served: tuple[str, str, str], tracker: Tracker, standin: StandInSource
) -> None:
    base, password, _ = served
    tracker.add_source(
        "exo", template="exoclick", postback_url=f"{standin.url}/tag.php?tag={{external_id}}&v={{revenue}}"
    )
    tracker.add_campaign("summer", source_id="exo", offer_url="https://offer.example/")
    tracker.add_postback("summer", url=f"{standin.url}/partner?c={{external_id}}", statuses=["sale"])
    _sign_in(page, base, password, "/sources")

    page.locator("tbody tr", has_text="exo").locator("a:has-text('Test')").click()
    page.fill("input[name=external_id]", "probe-7")
    page.fill("input[name=payout]", "9.99")
    page.click("button:has-text('Send test postback')")
    expect(page.locator("#result")).to_contain_text("delivered")
    expect(page.locator("#result pre.wire").first).to_have_text(f"GET {standin.url}/tag.php?tag=probe-7&v=9.99")
    assert [r.raw_query for r in standin.requests] == ["tag=probe-7&v=9.99"]

    # A form error is shown on the form, with what was typed.
    page.goto(base + "/campaigns/summer/postbacks")
    page.click("a:has-text('Edit')")
    page.select_option("select[name=payout_mode]", "fixed")
    page.click("button:has-text('Save')")
    expect(page.locator(".flash.bad")).to_contain_text("payout mode fixed needs payout_value")
    page.fill("input[name=payout_value]", "1.25")
    page.click("button:has-text('Save')")
    expect(page.locator("table.grid")).to_contain_text("fixed 1.25")
    page.click("button:has-text('Delete')")
    expect(page.locator("main")).to_contain_text("has no S2S postbacks")
    assert tracker.postbacks("summer") == []


def test_a_stuck_conversion_is_found_and_handed_over_from_the_pages(
    page: Page, served: tuple[str, str, str], tracker: Tracker, standin: StandInSource
) -> None:
    import hookspecs
    from sample_host.handoff import STUCK_AFTER

    class Poison:
        @hookspecs.hookimpl
        def on_conversion(self, conversion: hookspecs.Conversion) -> None:
            raise ValueError("cannot store this click")

    base, password, key = served
    tracker.add_source("exo", postback_url=f"{standin.url}/pb?c={{external_id}}", statuses=["sale"])
    tracker.add_campaign("summer", source_id="exo", offer_url="https://offer.example/")
    click, _ = tracker.record_click("summer", {"external_id": "late"})
    tracker.pm.register(Poison(), name="poison")
    try:
        assert tracker.receive_postback(key, {"subid": click.subid, "status": "sale"}).http_status == 200
        for _ in range(STUCK_AFTER - 1):
            tracker.hand_over_waiting()
    finally:
        tracker.pm.unregister(name="poison")

    _sign_in(page, base, password, "/received")
    page.click("text=See the waiting conversions")
    expect(page.locator("h1")).to_have_text("Waiting conversions")
    row = page.locator("table.log tbody tr")
    expect(row).to_contain_text("stuck")
    expect(row).to_contain_text("ValueError: cannot store this click")
    row.locator("a", has_text=click.subid).click()
    expect(page.locator("main")).to_contain_text("3 failed tries (stuck)")
    page.go_back()
    page.click("button:has-text('Hand over now')")
    expect(page.locator(".flash.good")).to_contain_text("was handed to the postback plugin")
    expect(page.locator("main")).to_contain_text("Nothing is waiting")
    tracker.s2s.drain(timeout=5)
    assert [r.raw_query for r in standin.wait_for(1)] == ["c=late"]


def test_a_custom_sources_parameter_table_in_the_browser_and_a_click_through_its_link(
    page: Page, served: tuple[str, str, str], tracker: Tracker, standin: StandInSource
) -> None:
    base, password, key = served
    _sign_in(page, base, password, "/sources")
    page.fill("input[name=id]", "own")
    page.fill("input[name=postback_url]", f"{standin.url}/pb?c={{external_id}}&z={{sub_id_1}}")
    page.select_option("#add select[name=method]", "POST")
    page.fill("textarea[name=body]", '{"cost": "{cost}", "p": "{revenue}"}')
    page.fill("input[name=content_type]", "application/json")
    page.check("input[name=follow_redirects]")
    page.fill("input[name=click_id_param]", "clickid")
    page.fill("input[name=source_macro]", "[CLICK_ID]")
    page.locator("input[name=param_name]").nth(0).fill("sub_id_1")
    page.locator("input[name=param_macro]").nth(0).fill("[ZONE]")
    page.locator("input[name=param_name]").nth(1).fill("cost")
    page.locator("input[name=param_macro]").nth(1).fill("[PRICE]")
    page.click("button:has-text('Add source')")
    expect(page.locator("h1")).to_contain_text("own")
    expect(page.locator("main")).to_contain_text("?clickid=[CLICK_ID]&sub_id_1=[ZONE]&cost=[PRICE]")
    expect(page.locator("input[name=follow_redirects]")).to_be_checked()

    page.click("text=Create a campaign")
    page.fill("input[name=alias]", "summer")
    page.select_option("select[name=source_id]", "own")
    page.fill("input[name=offer_url]", f"{standin.url}/offer?s={{subid}}")
    page.click("button:has-text('Add campaign')")
    link = page.locator("#campaign-link").inner_text()
    assert link == f"{base}/c/summer?clickid=[CLICK_ID]&sub_id_1=[ZONE]&cost=[PRICE]"

    # The source substitutes its macros; the click keeps them under the tracker's names.
    page.goto(link.replace("[CLICK_ID]", "ck-5").replace("[ZONE]", "z-9").replace("[PRICE]", "0.02"))
    subid = page.url.rsplit("=", 1)[1]
    params = tracker.click(subid).params
    assert {name: params[name] for name in ("clickid", "sub_id_1", "cost")} == {
        "clickid": "ck-5",
        "sub_id_1": "z-9",
        "cost": "0.02",
    }
    # Beside the link's parameters, the visitor's attributes (the browser's own request).
    assert set(params) - {"clickid", "sub_id_1", "cost"} <= {
        "os",
        "os_version",
        "browser",
        "browser_version",
        "device_type",
        "language",
    }
    with httpx.Client(base_url=base) as network:
        assert (
            network.get(f"/{key}/postback", params={"subid": subid, "status": "sale", "payout": "3"}).status_code == 200
        )
    tracker.s2s.drain(timeout=5)
    sent = [r for r in standin.requests if r.path == "/pb"]
    assert [(r.method, r.raw_query, r.headers["content-type"], r.body) for r in sent] == [
        ("POST", "c=ck-5&z=z-9", "application/json", b'{"cost": "0.02", "p": "3"}')
    ]
