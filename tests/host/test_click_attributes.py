"""Keitaro's click attributes: the sample host fills them from the visitor's request, and every
postback can use them as macros."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from mmdb_writer import MMDBWriter
from netaddr import IPSet
from playwright.sync_api import Page

from sample_host.app import create_app
from sample_host.standin import StandInSource
from sample_host.tracker import Tracker
from sample_host.visitors import GeoIP, click_attributes, language, user_agent_attributes

from .conftest import test_tracker

CHROME_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
)
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.1 Mobile/15E148 Safari/604.1"
)
IPAD = (
    "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 "
    "Mobile/15E148 Safari/604.1"
)
GALAXY = (
    "Mozilla/5.0 (Linux; Android 13; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 "
    "Mobile Safari/537.36"
)
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"


@pytest.mark.parametrize(
    ("agent", "expected"),
    [
        (
            CHROME_WINDOWS,
            {
                "os": "Windows",
                "os_version": "10",
                "browser": "Chrome",
                "browser_version": "120.0",
                "device_type": "desktop",
            },
        ),
        (
            IPHONE,
            {
                "os": "iOS",
                "os_version": "17.1",
                "browser": "Mobile Safari",
                "browser_version": "17.1",
                "device_type": "mobile",
                "device_model": "iPhone",
            },
        ),
        (
            IPAD,
            {
                "os": "iOS",
                "os_version": "16.6",
                "browser": "Mobile Safari",
                "browser_version": "16.6",
                "device_type": "tablet",
                "device_model": "iPad",
            },
        ),
        (
            GALAXY,
            {
                "os": "Android",
                "os_version": "13",
                "browser": "Chrome Mobile",
                "browser_version": "120.0",
                "device_type": "mobile",
                "device_model": "SM-S918B",
            },
        ),
        (GOOGLEBOT, {"browser": "Googlebot", "browser_version": "2.1", "device_type": "bot"}),
        ("", {}),
    ],
)
def test_the_user_agent_gives_os_browser_and_device(agent: str, expected: dict[str, str]) -> None:
    assert user_agent_attributes(agent) == expected


@pytest.mark.parametrize(
    ("header", "code"),
    [("uk-UA,uk;q=0.9,en;q=0.8", "uk"), ("en;q=0.5, pt-BR", "pt"), ("*", None), ("", None), ("de;q=x, fr;q=0.1", "fr")],
)
def test_the_language_is_the_preferred_one(header: str, code: str | None) -> None:
    assert language(header) == code


@pytest.fixture
def geo_database(tmp_path: Path) -> str:
    """A MaxMind-format City database: loopback is in Kyiv, 203.0.113.0/24 in Lisbon (with an ISP)."""
    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoIP2-City")
    writer.insert_network(
        IPSet(["127.0.0.0/8"]),
        {
            "country": {"iso_code": "UA", "names": {"en": "Ukraine"}},
            "subdivisions": [{"iso_code": "30", "names": {"en": "Kyiv City"}}],
            "city": {"names": {"en": "Kyiv"}},
        },
    )
    writer.insert_network(
        IPSet(["203.0.113.0/24"]),
        {
            "country": {"iso_code": "PT"},
            "city": {"names": {"en": "Lisbon"}},
            "traits": {"isp": "Example Telecom"},
        },
    )
    path = tmp_path / "city.mmdb"
    writer.to_db_file(str(path))
    return str(path)


def test_geoip_gives_country_region_city_and_isp(geo_database: str) -> None:
    geo = GeoIP(geo_database)
    try:
        assert geo.lookup("127.0.0.1") == {"country": "UA", "region": "Kyiv City", "city": "Kyiv"}
        assert geo.lookup("203.0.113.9") == {"country": "PT", "city": "Lisbon", "isp": "Example Telecom"}
        assert geo.lookup("198.51.100.1") == {} and geo.lookup("not an address") == {} and geo.lookup(None) == {}
    finally:
        geo.close()
    assert click_attributes(user_agent=None, accept_language=None, referrer="https://news.example/a", ip=None) == {
        "referrer": "https://news.example/a"
    }


@pytest.fixture
def geo_tracker(tmp_path: Path, geo_database: str) -> Iterator[Tracker]:
    with test_tracker(f"sqlite:///{tmp_path}/t.db", geoip_database=geo_database) as tracker:
        yield tracker


def _campaign(tracker: Tracker, standin: StandInSource) -> None:
    tracker.add_source(
        "exo",
        statuses=["sale"],
        postback_url=standin.url + "/pb?c={external_id}&os={os}&osv={os_version}&b={browser}&dt={device_type}"
        "&lang={language}&ref={referrer}&geo={country}-{region}-{city}&isp={isp}&kw={keyword}",
    )
    tracker.add_campaign("summer", source_id="exo", offer_url=standin.url + "/offer?s={subid}")


def test_a_click_through_the_app_carries_the_visitors_attributes_to_the_postback(
    geo_tracker: Tracker, serve_asgi: Callable[..., str], standin: StandInSource
) -> None:
    _campaign(geo_tracker, standin)
    base = serve_asgi(create_app(geo_tracker))
    answer = httpx.get(
        f"{base}/c/summer?external_id=x1&keyword=shoes",
        follow_redirects=False,
        headers={"User-Agent": IPHONE, "Accept-Language": "pt-PT,pt;q=0.9", "Referer": "https://news.example/a"},
    )
    assert answer.status_code in (302, 303, 307)
    subid = answer.headers["location"].rsplit("=", 1)[1]
    click = geo_tracker.click(subid)
    assert click.country == "UA"  # 127.0.0.1 is in Kyiv in the test database
    assert {k: click.params[k] for k in ("os", "browser", "device_type", "language", "city", "keyword")} == {
        "os": "iOS",
        "browser": "Mobile Safari",
        "device_type": "mobile",
        "language": "pt",
        "city": "Kyiv",
        "keyword": "shoes",
    }
    geo_tracker.receive_postback(geo_tracker.init().postback_key, {"subid": subid, "status": "sale"})
    geo_tracker.s2s.drain(timeout=5)
    (request,) = [r for r in standin.requests if r.path == "/pb"]
    assert request.params == {
        "c": "x1",
        "os": "iOS",
        "osv": "17.1",
        "b": "Mobile Safari",
        "dt": "mobile",
        "lang": "pt",
        "ref": "https://news.example/a",
        "geo": "UA-Kyiv City-Kyiv",
        "isp": "",
        "kw": "shoes",
    }


def test_a_link_parameter_of_the_same_name_wins_over_the_detected_one(
    geo_tracker: Tracker, standin: StandInSource
) -> None:
    _campaign(geo_tracker, standin)
    click, _ = geo_tracker.record_click(
        "summer", {"external_id": "x", "os": "given-by-source"}, user_agent=CHROME_WINDOWS
    )
    assert click.params["os"] == "given-by-source" and click.params["browser"] == "Chrome"


def test_a_real_browsers_click_is_recorded_with_its_attributes(
    page: Page, tracker: Tracker, serve_asgi: Callable[..., str], standin: StandInSource
) -> None:
    _campaign(tracker, standin)
    base = serve_asgi(create_app(tracker))
    page.context.set_extra_http_headers({"Accept-Language": "uk-UA,uk;q=0.9,en;q=0.5"})
    page.goto(f"{base}/c/summer?external_id=from-chromium")
    standin.wait_for(1)  # the offer page first; Chromium may ask the offer's host for a favicon after it
    (offer,) = standin.requests_for("/offer")
    subid = offer.params["s"]
    click = tracker.click(subid)
    browser_ua = page.evaluate("navigator.userAgent")
    assert click.user_agent == browser_ua
    assert click.params["browser"] in ("HeadlessChrome", "Chrome") and click.params["os"] == "Linux"
    assert click.params["device_type"] == "desktop" and click.params["language"] == "uk"
    assert click.params["browser_version"] == ".".join(browser_ua.split("Chrome/")[1].split(".")[:2])
