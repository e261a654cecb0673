"""``sample-host demo``: a whole tracker against a stand-in traffic source, in a few seconds.

No set-up: an embedded SQLite database in a temporary directory, a stand-in traffic source on
loopback playing three real sources (their template URLs, host pointed at the stand-in), clicks and
conversions sent through the tracker's real web app, then the Sent postbacks log and one
``explain`` printed. One source answers 503 twice before it recovers, one click came without the
source's click id, and one campaign postback still carries a placeholder its partner refuses, so the
log shows a delivery, a retry, a skip and a failure side by side, and ``explain`` names each cause.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import shutil
import tempfile
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

import httpx

from .app import create_app
from .errors import HostError
from .standin import StandInSource
from .tables import SENT_POSTBACK_COLUMNS, format_table
from .tracker import Tracker

Echo = Callable[[str], Any]

#: Short retries so the failing source recovers within the demo (the default waits 5 s, then 5 min).
DEMO_RETRY_SCHEDULE = [0, 0.2, 0.5, 1.0]

# Account-specific slots in the templates (goal id, account id...), filled as an operator would.
_ACCOUNT_VALUES = {
    "GOAL_ID": "1b9b3786eae526755467c2593d194005",
    "AID": "482913",
    "TID": "7731",
    "KEY": "demo-account-key",
}
_PLACEHOLDER = re.compile(r"(?<==)([A-Z][A-Z0-9_]*)(?=&|$)")

OFFER_URL = "https://offers.example/landing?click={subid}"


@dataclasses.dataclass
class DemoResult:
    """What the demo did, for whoever runs it from Python (the tests)."""

    database_url: str
    subids: dict[str, str]
    sent_postbacks: list[dict[str, Any]]
    received_by_source: list[str]
    explain_text: str
    explain_failed_text: str = ""


def point_at_standin(template_url: str, base_url: str) -> str:
    """The template's postback URL with its host replaced by the stand-in's and its account
    placeholders filled: same path, same query, same macros."""
    parts = urllib.parse.urlsplit(template_url)
    query = _PLACEHOLDER.sub(lambda m: _ACCOUNT_VALUES.get(m[1], f"demo-{m[1].lower()}"), parts.query)
    return f"{base_url}{parts.path}" + (f"?{query}" if query else "")


def _path_of(url: str) -> str:
    return urllib.parse.urlsplit(url).path


class _Demo:
    """Visitors and networks talking to the tracker's real ASGI app, in process."""

    def __init__(self, tracker: Tracker, client: httpx.AsyncClient, postback_key: str, echo: Echo) -> None:
        self.tracker = tracker
        self.client = client
        self.key = postback_key
        self.echo = echo

    async def click(self, campaign: str, **params: str) -> str:
        response = await self.client.get(f"/c/{campaign}", params=params, follow_redirects=False)
        if response.status_code != 302:
            raise HostError(f"the demo click on {campaign} got {response.status_code}: {response.text.strip()}")
        subid = response.headers["x-subid"]
        shown = "&".join(f"{k}={v}" for k, v in params.items())
        self.echo(f"  click    /c/{campaign}?{shown}  -> subid {subid}")
        return subid

    async def conversion(self, subid: str, **params: str) -> None:
        response = await self.client.get(f"/{self.key}/postback", params={"subid": subid, **params})
        shown = " ".join(f"{k}={v}" for k, v in params.items())
        self.echo(f"  postback subid={subid} {shown}  -> {response.status_code} {response.text.strip()}")
        if response.status_code != 200:
            raise HostError(f"the demo conversion for {subid} was refused: {response.text.strip()}")


def deliver_all(tracker: Tracker, timeout: float = 15.0) -> None:
    """Drain the outbox until no delivery is waiting for a retry (or ``timeout`` passes)."""
    deadline = time.monotonic() + timeout
    while True:
        tracker.s2s.drain(timeout=max(1.0, deadline - time.monotonic()))
        if not _waiting_for_retry(tracker) or time.monotonic() >= deadline:
            return
        time.sleep(0.1)


def _waiting_for_retry(tracker: Tracker) -> bool:
    # The host's own log knows: a delivery whose latest attempt says "retrying" is still due.
    latest: dict[int, str] = {}
    for row in tracker.sent_postbacks(limit=10_000):
        latest[row["delivery_id"]] = row["outcome"]
    return any(outcome == "retrying" for outcome in latest.values())


def run_demo(
    echo: Echo = print, keep: bool = False, workdir: Optional[Path] = None, database_url: Optional[str] = None
) -> DemoResult:
    """Run the demo, printing as it goes; return what happened.

    :param keep: keep the temporary database (and print its URL) instead of deleting it.
    :param workdir: where to put the database (a new temporary directory when None).
    :param database_url: run on this database instead (its sources, campaigns and logs gain the
        demo's; it is kept).
    """
    if database_url:
        with StandInSource() as standin:
            return _run(standin, database_url, echo, keep=True)
    own_dir = workdir is None
    directory = Path(tempfile.mkdtemp(prefix="sample-host-demo-")) if workdir is None else Path(workdir)
    database_url = f"sqlite:///{directory / 'demo.db'}"
    try:
        with StandInSource() as standin:
            return _run(standin, database_url, echo, keep)
    finally:
        if own_dir and not keep:
            shutil.rmtree(directory, ignore_errors=True)


async def _traffic(tracker: Tracker, postback_key: str, echo: Echo) -> dict[str, str]:
    """Clicks and conversions through the tracker's web app; returns the subids by role."""
    transport = httpx.ASGITransport(app=create_app(tracker))
    async with httpx.AsyncClient(transport=transport, base_url="http://tracker.local") as client:
        demo = _Demo(tracker, client, postback_key, echo)
        echo("")
        echo("Clicks (each source substituted its click id into the campaign link):")
        subids = {
            "lead_then_sale": await demo.click("exo-summer", external_id="exo-8f14e45f", sub_id_1="banner 300x250"),
            "retried": await demo.click("propeller-vpn", external_id="pa-2c9a1", sub_id_1="zone-1187"),
            "rejected": await demo.click("ts-dating", external_id="ts-77d3b0"),
            # Opened without the source's substitution: the macro is still in the link.
            "skipped": await demo.click("exo-summer", external_id="{conversions_tracking}"),
        }
        echo("")
        echo("Conversions (inbound postbacks from affiliate networks):")
        await demo.conversion(subids["lead_then_sale"], status="lead", tid="T-1001")
        await demo.conversion(subids["lead_then_sale"], status="approved", payout="2.50", currency="USD", tid="T-1001")
        await demo.conversion(subids["retried"], status="sale", payout="1.2", currency="USD", tid="T-2001")
        await demo.conversion(subids["rejected"], status="sale", payout="0.85", currency="EUR", tid="T-3001")
        await demo.conversion(subids["rejected"], status="chargeback", tid="T-3001")
        await demo.conversion(subids["skipped"], status="sale", payout="4", currency="USD", tid="T-4001")
    return subids


def _run(standin: StandInSource, database_url: str, echo: Echo, keep: bool) -> DemoResult:
    tracker = Tracker(
        database_url,
        allow_private_targets=True,  # the stand-in source listens on loopback
        retry_schedule=DEMO_RETRY_SCHEDULE,
        connect_timeout=2.0,
        timeout=5.0,
        load_plugins=False,
    )
    try:
        creds = tracker.init()
        templates = tracker.templates()
        echo(f"s2s-postback demo: a tracker, and a stand-in traffic source on {standin.url}")
        echo("")
        echo("Sources (real templates, host pointed at the stand-in):")
        urls = {}
        for source_id, statuses in (
            ("exoclick", ["sale"]),
            ("propellerads", ["sale"]),
            ("trafficstars", ["sale", "rejected"]),
        ):
            urls[source_id] = point_at_standin(templates[source_id].postback_url, standin.url)
            tracker.add_source(source_id, template=source_id, postback_url=urls[source_id], statuses=statuses)
            echo(f"  {source_id:<13} {', '.join(statuses):<14} {urls[source_id]}")
        # PropellerAds' endpoint is down for two requests, then recovers.
        standin.script(
            _path_of(urls["propellerads"]),
            [(503, "Service Unavailable"), (503, "Service Unavailable")],
            default=(200, "OK"),
        )

        tracker.add_campaign("exo-summer", source_id="exoclick", offer_url=OFFER_URL, name="Summer sale (ExoClick)")
        tracker.add_campaign("propeller-vpn", source_id="propellerads", offer_url=OFFER_URL, name="VPN (PropellerAds)")
        tracker.add_campaign("ts-dating", source_id="trafficstars", offer_url=OFFER_URL, name="Dating (TrafficStars)")
        partner_url = (
            f"{standin.url}/partner/s2s?click={{subid}}&status={{status}}"
            "&payout={revenue}&currency={currency}&banner={sub_id_1}"
        )
        tracker.add_postback("exo-summer", url=partner_url, statuses=["lead", "sale"])
        # Pasted from an old set-up with its goal placeholder never filled in: the partner refuses it.
        broken_url = f"{standin.url}/old-partner/pb?click={{subid}}&goal=REPLACE"
        tracker.add_postback("ts-dating", url=broken_url, statuses=["sale"])
        standin.script("/old-partner", [], default=(404, "unknown goal REPLACE"))
        echo("")
        echo("Campaigns: exo-summer, propeller-vpn, ts-dating; exo-summer also has an S2S postback (lead, sale):")
        echo(f"  {partner_url}")
        echo("and ts-dating one whose goal placeholder was never filled in (sale):")
        echo(f"  {broken_url}")

        subids = asyncio.run(_traffic(tracker, creds.postback_key, echo))
        echo("")
        echo("Delivering (PropellerAds answers 503 twice, then recovers)...")
        deliver_all(tracker)
        sent = tracker.sent_postbacks(limit=1000)
        echo("")
        echo("Sent postbacks log")
        echo(format_table(sent, SENT_POSTBACK_COLUMNS))
        received = [r.describe() for r in standin.requests]
        echo("")
        echo("What the stand-in traffic source received:")
        for line in received:
            echo(f"  {line}")
        explanation = str(tracker.explain(subids["skipped"]))
        echo("")
        echo(f"sample-host explain {subids['skipped']}   (the click that came without a click id)")
        echo(explanation)
        failed_explanation = str(tracker.explain(subids["rejected"]))
        echo("")
        echo(f"sample-host explain {subids['rejected']}   (the click whose campaign postback failed)")
        echo(failed_explanation)
        if keep:
            echo("")
            echo(f"Kept the demo database: sample-host --db {database_url} logs")
        return DemoResult(database_url, subids, sent, received, explanation, failed_explanation)
    finally:
        tracker.close()
