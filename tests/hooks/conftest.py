"""Fixtures for the third-party plugin tests.

- ``host`` / ``make_s2s``: the plugin installed on a fresh plugin manager (shared with tests/plugin).
- ``fake_dist``: installs a small plugin distribution (a module, its METADATA and its
  ``s2s_postback`` entry point) in a temporary directory on ``sys.path``, so plugin loading is
  tested through the real ``importlib.metadata`` entry-point machinery, without pip.
"""

from __future__ import annotations

import importlib
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.plugin_host import RecordingHost  # noqa: F401  (host and make_s2s come from tests/conftest.py)


@pytest.fixture(autouse=True)
def plugin_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Plugin loading as configured by each test, not by the shell that runs the tests."""
    monkeypatch.delenv("S2S_DISABLE_PLUGINS", raising=False)
    monkeypatch.delenv("S2S_PLUGINS_STRICT", raising=False)


@pytest.fixture
def fake_dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., str]]:
    """``fake_dist(module, source, *, dist=..., version=..., entry_name=..., entry_value=...)``.

    Writes ``module.py`` with ``source`` and a distribution declaring the entry point
    ``entry_name = entry_value`` (default: ``module = module``); returns the entry-point name.
    """
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    modules: list[str] = []

    def install(
        module: str,
        source: str,
        *,
        dist: str | None = None,
        version: str = "1.0.0",
        entry_name: str | None = None,
        entry_value: str | None = None,
    ) -> str:
        dist = dist or module.replace("_", "-")
        entry_name = entry_name or module
        (site / f"{module}.py").write_text(textwrap.dedent(source), "utf-8")
        info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n", "utf-8")
        (info / "entry_points.txt").write_text(f"[s2s_postback]\n{entry_name} = {entry_value or module}\n", "utf-8")
        modules.append(module)
        importlib.invalidate_caches()
        return entry_name

    yield install
    for module in modules:
        sys.modules.pop(module, None)
