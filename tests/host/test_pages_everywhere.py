"""Every page of the sample tracker in a real browser (Debian's Chromium through Playwright), on the
demo's data: axe-core finds no serious or critical accessibility violation, and at a phone's width
(375 px) the page never scrolls sideways and every link of the navigation can be seen and tapped.

axe-core is vendored (``tests/support/axe/``, see its README) and injected into each page by
Playwright; the pages themselves allow no script, so it is added through the browser's own
channel, which the content security policy does not govern.

One tracker, one server and one signed-in browser context serve the whole module.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from starlette.routing import Route

from sample_host import credentials
from sample_host.app import create_app
from sample_host.demo import run_demo
from sample_host.pages import routes
from sample_host.screenshots import Shot, photograph, shots
from sample_host.tracker import Tracker
from tests.support import uvicorn_server

AXE = Path(__file__).resolve().parent.parent / "support" / "axe" / "axe.min.js"
PHONE = {"width": 375, "height": 740}
DESKTOP = {"width": 1280, "height": 860}

#: Impacts that fail the check (axe's scale: minor, moderate, serious, critical).
FAILING_IMPACTS = ("serious", "critical")


class Site:
    """The demo tracker served on loopback, with the ids its pages are reached by."""

    def __init__(self, base: str, password: str, tracker: Tracker, subids: dict[str, str]) -> None:
        self.base = base
        self.password = password
        self.tracker = tracker
        self.subids = subids
        self.campaign = tracker.campaigns()[0]["alias"]
        self.source = tracker.sources()[0].source_id
        self.postback = next(rule for c in tracker.campaigns() for rule in tracker.postbacks(c["alias"]))
        self.sent_entry = tracker.sent_postbacks(limit=1)[0]["id"]

    def pages(self) -> dict[str, str]:
        """Every page an operator reaches, signed in, by a name for the test's id."""
        skipped, rejected = self.subids["skipped"], self.subids["rejected"]
        return {
            "dashboard": "/dashboard",
            "campaigns": "/campaigns",
            "campaign": f"/campaigns/{self.campaign}",
            "campaign-postbacks": f"/campaigns/{self.campaign}/postbacks",
            "postback-edit": f"/postbacks/{self.postback.id.split(':')[1]}/edit",
            "sources": "/sources",
            "sources-template": "/sources?template=clickadu",
            "source": f"/sources/{self.source}",
            "test-send": f"/rules/source:{self.source}/test",
            "sent": "/sent",
            "sent-filtered": "/sent?outcome=failed",
            "sent-entry": f"/sent/{self.sent_entry}",
            "received": "/received",
            "handoffs": "/handoffs",
            "explain": "/explain",
            "explain-skipped": f"/explain?subid={skipped}",
            "explain-failed": f"/explain?subid={rejected}",
            "settings": "/settings",
            "not-found": "/campaigns/no-such-campaign",
            "bad-input": "/dashboard?window=forever",
        }


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    workdir = tmp_path_factory.mktemp("everywhere")
    # In a thread of its own: the demo runs event loops, and Playwright's looks running in this one
    # while a browser test sets up (tests/support/browser.py).
    with ThreadPoolExecutor(1) as pool:
        demo = pool.submit(run_demo, echo=lambda *_: None, keep=True, workdir=workdir).result()
    tracker = Tracker(demo.database_url, allow_private_targets=True, load_plugins=False)
    try:
        password = credentials.reset_admin_password(tracker.engine)
        with uvicorn_server(create_app(tracker, handoff_interval=3600)) as base:
            yield Site(base, password, tracker, demo.subids)
    finally:
        tracker.close()


@pytest.fixture(scope="module")
def signed_in(browser: Any, site: Site) -> Iterator[Any]:
    """A page in a browser context signed in once for the whole module."""
    context = browser.new_context(viewport=DESKTOP)
    context.set_default_timeout(10_000)
    page = context.new_page()
    page.goto(site.base + "/")
    page.fill("input[name=password]", site.password)
    page.click("button[type=submit]")
    page.wait_for_url(site.base + "/dashboard")
    try:
        yield page
    finally:
        context.close()


def axe_violations(page: Any, rules: tuple[str, ...] = ()) -> list[str]:
    """Serious and critical axe-core violations of the page shown, one line each (only ``rules``,
    when given)."""
    if not page.evaluate("() => typeof axe === 'object'"):
        page.evaluate(AXE.read_text())
    options: dict[str, Any] = {"resultTypes": ["violations"]}
    if rules:
        options["runOnly"] = {"type": "rule", "values": list(rules)}
    result = page.evaluate("async (options) => await axe.run(document, options)", options)
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {', '.join(str(n['target']) for n in v['nodes'][:3])}"
        for v in result["violations"]
        if v["impact"] in FAILING_IMPACTS
    ]


def phone_width_problems(page: Any) -> list[str]:
    """What breaks at a phone's width: the page scrolling sideways, a navigation link out of view or
    covered by something else."""
    problems = []
    widths = page.evaluate("() => [document.documentElement.scrollWidth, document.body.scrollWidth, innerWidth]")
    if max(widths[:2]) > widths[2]:
        problems.append(f"the page is {max(widths[:2])} px wide in a {widths[2]} px window")
    for link in page.locator("header nav a, header .signout button, header .brand").all():
        box = link.bounding_box()
        name = link.inner_text().strip()
        if box is None or box["width"] < 1:
            problems.append(f"{name!r} is not shown")
            continue
        if box["x"] < 0 or box["x"] + box["width"] > PHONE["width"] + 0.5:
            problems.append(f"{name!r} reaches past the screen's edge ({box})")
        if box["height"] < 24:
            problems.append(f"{name!r} is too small to tap ({box['height']:.0f} px high)")
        centre_hit = page.evaluate(
            "([x, y, el]) => { const hit = document.elementFromPoint(x, y); return hit === el || el.contains(hit); }",
            [box["x"] + box["width"] / 2, box["y"] + box["height"] / 2, link.element_handle()],
        )
        if not centre_hit:
            problems.append(f"{name!r} is covered by another element")
    return problems


#: The pages walked, by name (``Site.pages`` maps each to its path).
PAGE_NAMES = [
    "dashboard",
    "campaigns",
    "campaign",
    "campaign-postbacks",
    "postback-edit",
    "sources",
    "sources-template",
    "source",
    "test-send",
    "sent",
    "sent-filtered",
    "sent-entry",
    "received",
    "handoffs",
    "explain",
    "explain-skipped",
    "explain-failed",
    "settings",
    "not-found",
    "bad-input",
]


def test_the_walk_covers_every_page_route(site: Site) -> None:
    """A page added to the app without being added here fails this test."""
    walked = [path.split("?")[0] for path in site.pages().values()]
    assert sorted(site.pages()) == sorted(PAGE_NAMES)
    missed = [
        route.path
        for route in routes()
        if isinstance(route, Route)
        and "GET" in (route.methods or ())
        and route.path not in ("/", "/login")  # the root redirects; sign-in is walked signed out
        and not route.path.endswith(".csv")  # a download, not a page
        and not any(route.path_regex.match(path) for path in walked)
    ]
    assert missed == [], "add these pages to Site.pages (and PAGE_NAMES) so the browser checks them"


@pytest.mark.parametrize("name", PAGE_NAMES)
def test_each_page_passes_axe_and_fits_a_phone(signed_in: Any, site: Site, name: str) -> None:
    page = signed_in
    path = site.pages()[name]
    page.set_viewport_size(DESKTOP)
    answer = page.goto(site.base + path)
    expected = {"not-found": 404, "bad-input": 400}.get(name, 200)
    assert answer is not None and answer.status == expected, f"{path}: {answer and answer.status}"
    assert page.locator("header nav a").count() == 7  # signed in: the whole navigation
    violations = axe_violations(page)
    page.set_viewport_size(PHONE)
    # What a narrow window changes: tables that scroll in place must be reachable by keyboard.
    violations += axe_violations(page, ("scrollable-region-focusable",))
    assert violations + phone_width_problems(page) == [], path


def test_the_sign_in_page_passes_axe_and_fits_a_phone(browser: Any, site: Site) -> None:
    context = browser.new_context(viewport=DESKTOP)
    try:
        page = context.new_page()
        page.goto(site.base + "/login")
        assert axe_violations(page) == []
        page.set_viewport_size(PHONE)
        assert phone_width_problems(page) == []
        page.fill("input[name=password]", "wrong")
        page.click("button[type=submit]")
        assert page.locator("[role=alert], .flash.bad").count() >= 1
        assert axe_violations(page) == []  # with its error shown
    finally:
        context.close()


def test_the_navigation_works_at_a_phones_width(signed_in: Any, site: Site) -> None:
    """Tapping through the navigation on a phone reaches each section."""
    page = signed_in
    page.set_viewport_size(PHONE)
    page.goto(site.base + "/dashboard")
    for label, path in [("Campaigns", "/campaigns"), ("Sent postbacks", "/sent"), ("Dashboard", "/dashboard")]:
        page.locator("header nav a", has_text=re.compile(f"^{label}$")).click()
        page.wait_for_url(site.base + path)
        assert page.locator('header nav a[aria-current="page"]').inner_text() == label
    # The dashboard as cards passes axe at this width too.
    assert axe_violations(page) == []


def test_the_keyboard_reaches_the_content_past_the_navigation(signed_in: Any, site: Site) -> None:
    """The first Tab shows a skip link; following it moves on to the page's content."""
    page = signed_in
    page.set_viewport_size(DESKTOP)
    page.goto(site.base + "/dashboard")
    page.keyboard.press("Tab")
    skip = page.locator("a.skip")
    assert page.evaluate("() => document.activeElement.className") == "skip"
    box = skip.bounding_box()
    assert box is not None and box["x"] >= 0 and box["y"] >= 0  # on screen once focused
    page.keyboard.press("Enter")
    assert page.url.endswith("/dashboard#content")
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.querySelector('main').contains(document.activeElement)")


def test_the_screenshot_command_photographs_a_page_at_its_size(signed_in: Any, site: Site, tmp_path: Path) -> None:
    """``python -m sample_host.screenshots`` (docs/development.md) saves each page with ``photograph``."""
    shot = Shot("dashboard-phone", "/dashboard", dict(PHONE))
    written = photograph(signed_in, site.base, shot, tmp_path)
    assert written == tmp_path / "dashboard-phone.png"
    png = written.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", png[16:24])[0] == 375  # the whole page, at a phone's width
    assert {s.name for s in shots(site.subids, site.sent_entry)} >= {"dashboard", "explain", "explain-failed"}
