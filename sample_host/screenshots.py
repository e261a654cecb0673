"""``python -m sample_host.screenshots [DIR]``: the one command that regenerates the screenshots
in ``docs/screenshots/`` (the README and the manual show them).

Runs the demo into a temporary database (so the pages show real deliveries, a retry, a skip and a
failure), adds a few refused inbound postbacks, serves the app on loopback and photographs each
page with headless Chromium through Playwright (``pip install -e '.[test]'``; Debian's
``/usr/bin/chromium``, or ``S2S_CHROMIUM``): at a desktop's width, and the dashboard also at a
phone's. ``--only NAME`` (repeatable) takes just those.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import uvicorn

from . import credentials
from .app import create_app
from .demo import run_demo
from .tracker import Tracker

CHROMIUM = os.environ.get("S2S_CHROMIUM", "/usr/bin/chromium")
#: The flags the tests launch Chromium with: no sandbox (root in CI), nothing fetched in the background.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1360, "height": 860}
PHONE = {"width": 375, "height": 740}


@dataclasses.dataclass(frozen=True)
class Shot:
    """One screenshot: its file name (without ``.png``), the page's path and the window's size."""

    name: str
    path: str
    viewport: dict[str, int] = dataclasses.field(default_factory=lambda: dict(VIEWPORT))


def shots(subids: dict[str, str], attempt_id: int) -> list[Shot]:
    """The pages photographed (the sign-in page is taken before signing in), for the demo's clicks."""
    return [
        Shot("dashboard", "/dashboard"),
        Shot("dashboard-phone", "/dashboard", dict(PHONE)),
        Shot("campaigns", "/campaigns"),
        Shot("campaign-postbacks", "/campaigns/exo-summer/postbacks"),
        Shot("sources", "/sources?template=clickadu"),
        Shot("source", "/sources/trafficstars"),
        Shot("sent", "/sent"),
        Shot("attempt", f"/sent/{attempt_id}"),
        Shot("received", "/received"),
        Shot("explain", f"/explain?subid={subids['skipped']}"),
        Shot("explain-failed", f"/explain?subid={subids['rejected']}"),
    ]


@contextlib.contextmanager
def serve(app: Any) -> Iterator[str]:
    """Serve ``app`` on a free loopback port in a thread; yield its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the tracker did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def _refused_postbacks(tracker: Tracker, subid: str) -> None:
    key = tracker.credentials().postback_key
    tracker.receive_postback(key, {"subid": subid, "status": "sale", "payout": "two"}, ip="198.51.100.23")
    tracker.receive_postback(key, {"subid": "0badc0ffee", "status": "sale"}, ip="198.51.100.23")
    tracker.receive_postback(key, {"subid": subid, "status": "chargeback-pending"}, ip="198.51.100.23")
    for _ in range(3):
        tracker.receive_postback("guessed-key", {"subid": "1"}, ip="203.0.113.99")


def take(outdir: Path, only: Sequence[str] = ()) -> list[Path]:
    """Write the screenshots into ``outdir`` (just those named in ``only``, when given); return
    their paths."""
    from playwright.sync_api import sync_playwright

    outdir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="sample-host-shots-") as workdir:
        demo = run_demo(echo=lambda *_: None, keep=True, workdir=Path(workdir))
        tracker = Tracker(demo.database_url, allow_private_targets=True, load_plugins=False)
        try:
            password = credentials.reset_admin_password(tracker.engine)
            _refused_postbacks(tracker, demo.subids["lead_then_sale"])
            retried = next(r for r in tracker.sent_postbacks(outcome="retrying", limit=10))
            wanted = [s for s in shots(demo.subids, retried["id"]) if not only or s.name in only]
            with serve(create_app(tracker)) as base, sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
                try:
                    page = browser.new_page(viewport=VIEWPORT, device_scale_factor=1)
                    written = []
                    if not only or "signin" in only:
                        written.append(photograph(page, base, Shot("signin", "/login"), outdir))
                    page.goto(base + "/login")
                    page.fill("input[name=password]", password)
                    page.click("button[type=submit]")
                    page.wait_for_url(f"{base}/dashboard")
                    written += [photograph(page, base, shot, outdir) for shot in wanted]
                finally:
                    browser.close()
        finally:
            tracker.close()
    return written


def photograph(page: Any, base: str, shot: Shot, outdir: Path) -> Path:
    """Open ``shot``'s page at its window size in ``page`` and save the whole page as a PNG."""
    target = outdir / f"{shot.name}.png"
    page.set_viewport_size(shot.viewport)
    page.goto(base + shot.path)
    page.screenshot(path=str(target), full_page=True)
    return target


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: ``python -m sample_host.screenshots [DIR]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outdir", nargs="?", default="docs/screenshots", type=Path)
    parser.add_argument("--only", action="append", default=[], metavar="NAME", help="take only this one (repeatable)")
    args = parser.parse_args(argv)
    known = ["signin", *(shot.name for shot in shots({"skipped": "", "rejected": ""}, 0))]
    unknown = [name for name in args.only if name not in known]
    if unknown:
        parser.error(f"no screenshot named {', '.join(unknown)}: choose from {', '.join(known)}")
    for path in take(args.outdir, args.only):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
