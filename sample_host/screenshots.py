"""``python -m sample_host.screenshots DIR``: screenshots of the tracker's main pages, for the README.

Runs the demo into a temporary database (so the pages show real deliveries, a retry and a skip),
adds a few refused inbound postbacks, serves the app on loopback and photographs each page with
headless Chromium through Playwright (``pip install -e '.[test]'``; Debian's ``/usr/bin/chromium``,
or ``S2S_CHROMIUM``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import uvicorn

from . import credentials
from .app import create_app
from .demo import run_demo
from .tracker import Tracker

CHROMIUM = os.environ.get("S2S_CHROMIUM", "/usr/bin/chromium")
VIEWPORT = {"width": 1360, "height": 860}


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


def take(outdir: Path) -> list[Path]:
    """Write the screenshots into ``outdir``; return their paths."""
    from playwright.sync_api import sync_playwright

    outdir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="sample-host-shots-") as workdir:
        demo = run_demo(echo=lambda *_: None, keep=True, workdir=Path(workdir))
        tracker = Tracker(demo.database_url, allow_private_targets=True, load_plugins=False)
        try:
            password = credentials.reset_admin_password(tracker.engine)
            _refused_postbacks(tracker, demo.subids["lead_then_sale"])
            retried = next(r for r in tracker.sent_postbacks(outcome="retrying", limit=10))
            skipped = demo.subids["skipped"]
            with serve(create_app(tracker)) as base, sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"]
                )
                page = browser.new_page(viewport=VIEWPORT, device_scale_factor=1)
                written = [_shot(page, base, "/login", outdir / "signin.png")]
                page.fill("input[name=password]", password)
                page.click("button[type=submit]")
                page.wait_for_url(f"{base}/campaigns")
                shots = [
                    ("campaigns", "/campaigns"),
                    ("campaign-postbacks", "/campaigns/exo-summer/postbacks"),
                    ("sources", "/sources?template=clickadu"),
                    ("source", "/sources/trafficstars"),
                    ("sent", "/sent"),
                    ("attempt", f"/sent/{retried['id']}"),
                    ("received", "/received"),
                    ("explain", f"/explain?subid={skipped}"),
                ]
                for name, path in shots:
                    written.append(_shot(page, base, path, outdir / f"{name}.png"))
                browser.close()
        finally:
            tracker.close()
    return written


def _shot(page: Any, base: str, path: str, target: Path) -> Path:
    page.goto(base + path)
    page.screenshot(path=str(target), full_page=True)
    return target


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: ``python -m sample_host.screenshots [DIR]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outdir", nargs="?", default="docs/screenshots", type=Path)
    args = parser.parse_args(argv)
    for path in take(args.outdir):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
