"""Playwright driving Debian's Chromium (``apt-get install chromium``), never a downloaded build.

Playwright's sync API leaves its event loop marked as *running* in the calling thread between
calls. A session-wide browser would then make every later ``asyncio.run()`` in the same test run
fail with "cannot be called from a running event loop". ``BrowserSession`` therefore marks the
loop as running only while a test that uses the browser runs (``activate``/``deactivate``).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

CHROMIUM = os.environ.get("S2S_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",  # the tests run as root in CI, where Chromium's sandbox cannot start
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


class BrowserUnavailable(RuntimeError):
    """Chromium or Playwright is missing."""


class BrowserSession:
    """One Playwright driver and one headless Chromium, shared by the tests that need a browser."""

    def __init__(self, executable: str = CHROMIUM, args: list[str] | None = None) -> None:
        self.executable = executable
        self.args = list(CHROMIUM_ARGS if args is None else args)
        self._manager: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.playwright: Any = None
        self.browser: Any = None

    def start(self) -> Any:
        """Start Playwright and launch Chromium headless; return the ``Browser``."""
        if not os.path.exists(self.executable):
            raise BrowserUnavailable(
                f"Chromium is not installed at {self.executable}: run `bash .ci/run` or "
                "`apt-get install -y chromium` (Playwright's own browser downloads are not used)"
            )
        try:
            from playwright.sync_api import sync_playwright
        except ImportError as exc:
            raise BrowserUnavailable(f"Playwright is not installed: pip install -e '.[test]' ({exc})") from exc
        self._manager = sync_playwright()
        self.playwright = self._manager.start()
        self._loop = self._manager._loop
        try:
            self.browser = self.playwright.chromium.launch(
                executable_path=self.executable,
                headless=True,
                args=self.args,
            )
        except BaseException:
            self.stop()
            raise
        return self.browser

    def activate(self) -> None:
        """Mark Playwright's loop as running again before the browser is used."""
        if self._loop is not None and not self._loop.is_closed():
            asyncio._set_running_loop(self._loop)

    def deactivate(self) -> None:
        """Unmark Playwright's loop so code after the test can run its own event loops."""
        if self._loop is not None and asyncio._get_running_loop() is self._loop:
            asyncio._set_running_loop(None)

    def stop(self) -> None:
        """Close the browser and the Playwright driver."""
        self.activate()
        try:
            if self.browser is not None:
                self.browser.close()
        finally:
            self.browser = None
            if self._manager is not None:
                self._manager.__exit__(None, None, None)
                self._manager = None
            self.deactivate()
            self._loop = None
