"""The explain page in a real browser (headless Debian Chromium through Playwright): a skipped and a
failed click drawn as a tree, the failing step said once, and its fix link opening the page that
changes the setting."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from sample_host.standin import StandInSource

from .conftest import Host


@pytest.fixture
def two_clicks(host: Host, standin: StandInSource) -> tuple[str, str]:
    """(skipped subid, failed subid): a click of campaign summer without ExoClick's click id, and
    one of campaign winter whose own postback still holds a placeholder its partner refuses (404)."""
    standin.script("/partner", [], default=(404, "unknown goal REPLACE"))
    host.tracker.add_source(
        "exo", template="exoclick", postback_url=f"{standin.url}/tag.php?goal=g1&tag={{external_id}}&value={{revenue}}"
    )
    host.tracker.add_campaign("summer", source_id="exo", offer_url="https://offer.example/lp?click={subid}")
    host.tracker.add_campaign("winter", source_id="exo", offer_url="https://offer.example/lp?click={subid}")
    host.tracker.add_postback("summer", url=f"{standin.url}/own?c={{subid}}", statuses=["sale"])
    host.tracker.add_postback("winter", url=f"{standin.url}/partner?c={{subid}}&goal=REPLACE", statuses=["sale"])
    skipped = host.click("summer", external_id="{conversions_tracking}")
    failed = host.click("winter", external_id="exo-77")
    for subid in (skipped, failed):
        assert host.postback(subid=subid, status="sale", payout="4", tid=f"T-{subid}").status_code == 200
    host.tracker.s2s.drain(timeout=5)
    return skipped, failed


def _sign_in(page: Page, host: Host, start: str) -> None:
    page.goto(host.base_url + start)
    page.fill("input[name=password]", host.admin_password)
    page.click("button:has-text('Sign in')")
    expect(page.locator("h1")).to_have_text("Explain a click")


def _state(page: Page, key: str) -> str:
    """The state a node shows: its sign's spoken label."""
    return page.locator(f"li#{key} > .step .sym").get_attribute("aria-label") or ""


def test_a_skipped_click_is_drawn_as_a_tree_with_the_click_id_as_its_one_cause(
    page: Page, host: Host, two_clicks: tuple[str, str]
) -> None:
    skipped, _ = two_clicks
    explanation = host.tracker.explain(skipped)
    _sign_in(page, host, f"/explain?subid={skipped}")

    # The failing step first, once, with what to do.
    verdict = page.locator("#verdict")
    expect(verdict.locator("h2")).to_have_text(explanation.headline)
    expect(verdict).to_contain_text("What to do: Make sure the source opens campaign summer's link")
    assert page.locator("main").inner_text().count(explanation.headline) == 1

    # The tree: click → its set-up and conversion → the postbacks → the attempt, each with its state.
    tree = page.locator("ol.tree")
    expect(tree.locator("> li.click > .step .what")).to_have_text(f"Click {skipped}")
    expect(tree.locator("li.conversion > .step .what")).to_have_text("sale · payout 4")
    postbacks = tree.locator("li.conversion > ol > li.postback")
    expect(postbacks).to_have_count(2)
    expect(postbacks.nth(0).locator("> .step")).to_contain_text("Source exo's postback · sale")
    expect(postbacks.nth(0).locator("> .step .summary")).to_have_text("not sent: the click has no usable click id")
    assert _state(page, postbacks.nth(0).get_attribute("id") or "") == "not sent"
    expect(postbacks.nth(1).locator("> .step")).to_contain_text("delivered on attempt 1")
    expect(postbacks.nth(1).locator("li.attempt > .step")).to_contain_text("Attempt 1")
    assert _state(page, "click-id") == "problem"

    # The click id step is the one marked as the cause; the postback it stopped only points at it.
    expect(page.locator(".failing")).to_have_count(1)
    expect(page.locator("li#click-id")).to_have_class(re.compile(r"\bfailing\b"))
    expect(page.locator(".cause-mark")).to_have_count(1)
    note = postbacks.nth(0).locator("> details .note")
    expect(note).to_be_hidden()  # folded until asked for
    postbacks.nth(0).locator("> details > summary").click()
    expect(note).to_have_text("See the click id step above.")

    # The fix: the campaign's link, where the source's click-id macro belongs.
    page.click("#fix-link")
    expect(page).to_have_url(f"{host.base_url}/campaigns/summer#campaign-link")
    expect(page.locator("#campaign-link")).to_contain_text("external_id={conversions_tracking}")


def test_a_failed_postback_is_marked_once_and_its_fix_opens_the_postback_to_edit(
    page: Page, host: Host, two_clicks: tuple[str, str], standin: StandInSource
) -> None:
    _, failed = two_clicks
    explanation = host.tracker.explain(failed)
    failing = explanation.failing
    assert failing is not None and failing.delivery_id is not None
    _sign_in(page, host, f"/explain?subid={failed}")

    expect(page.locator("#verdict h2")).to_have_text(explanation.headline)
    assert "REPLACE is a placeholder" in explanation.headline
    assert page.locator("main").inner_text().count(explanation.headline) == 1
    node = page.locator(f"li#{failing.key}")
    expect(node).to_have_class(re.compile(r"\bfailing\b"))
    expect(node.locator("> .step .summary")).to_have_text("failed after 1 attempt(s): HTTP 404")
    expect(node.locator("> .step .cause-mark")).to_have_text("the cause")
    assert _state(page, failing.key) == "failed"
    attempt = node.locator("li.attempt")
    expect(attempt.locator("> .step")).to_contain_text("failed, HTTP 404")
    answer = attempt.locator("details p", has_text="Answer:")
    expect(answer).to_be_hidden()
    attempt.locator("> details > summary").click()
    expect(answer).to_have_text("Answer: unknown goal REPLACE")
    # The placeholder the headline blames is the linter's one problem, folded with its advice.
    checks = page.locator("details.checks")
    expect(checks.locator("> summary")).to_have_text(re.compile(r"\(\d+, 1 a problem\)$"))
    expect(checks.locator("li.state-problem")).to_contain_text("REPLACE is a placeholder")
    expect(checks.locator("li.state-problem")).to_be_hidden()
    expect(page.locator("#verdict")).not_to_contain_text("more step")
    # The source's own postback went through: one cause, one mark.
    expect(page.locator("li.postback.state-delivered")).to_have_count(1)
    expect(page.locator(".failing")).to_have_count(1)

    # The fix opens the postback's URL field; once corrected, resend from the verdict.
    page.click("#fix-link")
    expect(page).to_have_url(re.compile(rf"{re.escape(host.base_url)}/postbacks/\d+/edit#rule-url$"))
    expect(page.locator("#rule-url input")).to_have_value(re.compile("goal=REPLACE"))
    page.go_back()
    page.locator("#verdict button:has-text('Resend')").click()
    expect(page.locator(".flash")).to_contain_text(f"Delivery #{failing.delivery_id} is due again")
    expect(page).to_have_url(f"{host.base_url}/explain?subid={failed}")


def test_the_json_api_gives_the_same_tree_and_fix(host: Host, two_clicks: tuple[str, str]) -> None:
    skipped, failed = two_clicks
    for subid in two_clicks:
        answer = host.api.get(f"/api/explain/{subid}")
        assert answer.status_code == 200
        body = answer.json()
        assert body["tree"] == host.tracker.explain(subid).tree.to_dict()  # type: ignore[union-attr]
        failing = [n for n in _walk(body["tree"]) if n["failing"]]
        assert len(failing) == 1 and failing[0]["sentence"] == body["headline"]
    assert host.api.get(f"/api/explain/{skipped}").json()["fix"]["setting"] == "campaign_link"
    assert host.api.get(f"/api/explain/{failed}").json()["fix"]["setting"] == "postback_url"


def _walk(node: dict) -> list[dict]:
    return [node, *(found for child in node["children"] for found in _walk(child))]
