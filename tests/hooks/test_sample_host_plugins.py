"""The sample host loads plugins with ``s2s_plugin.hooks.plugins``: a broken one does not take it down."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from s2s_plugin.hooks.plugins import PluginLoadWarning
from sample_host.app import create_app
from sample_host.cli import main as sample_host_cli
from sample_host.tracker import Tracker

WATCHER = """
    import hookspecs

    SEEN = []

    @hookspecs.hookimpl
    def on_conversion(conversion):
        SEEN.append((conversion.subid, conversion.status))
"""


def test_a_broken_plugin_does_not_take_the_host_down(
    fake_dist, tmp_path: Path, serve_asgi: Callable[..., str], standin
) -> None:
    fake_dist("watcher_s2s", WATCHER, dist="watcher-s2s", version="3.1.0")
    fake_dist("broken_s2s", "import not_installed_dependency", dist="broken-s2s", version="0.2.0")
    with pytest.warns(
        PluginLoadWarning, match=r"plugin 'broken_s2s' \(broken-s2s 0.2.0\) was not loaded: ModuleNotFoundError"
    ):
        tracker = Tracker(f"sqlite:///{tmp_path / 'tracker.db'}", allow_private_targets=True)
    with tracker:
        assert "watcher_s2s" in tracker.plugins and "broken_s2s" not in tracker.plugins
        creds = tracker.init()
        tracker.add_source("exo", postback_url=standin.url + "/pb?c={external_id}", statuses=["sale"])
        tracker.add_campaign("summer", source_id="exo", offer_url="https://offer.example/?s={subid}")
        with httpx.Client(base_url=serve_asgi(create_app(tracker)), timeout=10) as client:
            subid = client.get("/c/summer", params={"external_id": "X1"}).headers["x-subid"]
            answer = client.get(f"/{creds.postback_key}/postback", params={"subid": subid, "status": "sale"})
        assert answer.status_code == 200, answer.text
        tracker.s2s.drain(timeout=5)
        import watcher_s2s

        assert [(subid, "sale")] == watcher_s2s.SEEN
        assert [r.target for r in standin.requests] == ["/pb?c=X1"]


def test_sample_host_plugins_lists_versions_hooks_and_the_skipped(fake_dist, tmp_path: Path) -> None:
    fake_dist("watcher_s2s", WATCHER, dist="watcher-s2s", version="3.1.0")
    fake_dist("broken_s2s", "raise RuntimeError('refuses to start')", dist="broken-s2s", version="0.2.0")
    db = f"sqlite:///{tmp_path / 'tracker.db'}"
    with pytest.warns(PluginLoadWarning):
        text = CliRunner().invoke(sample_host_cli, ["plugins", "--db", db])
    assert text.exit_code == 0, text.output
    assert "watcher_s2s  watcher-s2s 3.1.0\n    hooks: on_conversion\n" in text.output
    assert re.search(r"^sample_host  \S+.*\n    hooks: on_postback_sent$", text.output, re.M)  # the host's own log
    assert "broken_s2s  broken-s2s 0.2.0  NOT LOADED: RuntimeError: refuses to start" in text.output
    with pytest.warns(PluginLoadWarning):
        listed = CliRunner().invoke(sample_host_cli, ["plugins", "--db", db, "--json"])
    data = json.loads(listed.output)
    by_name = {p["name"]: p for p in data["plugins"]}
    assert by_name["watcher_s2s"]["version"] == "3.1.0" and by_name["watcher_s2s"]["hooks"] == ["on_conversion"]
    assert by_name["s2s_postback"]["hooks"] == ["on_click", "on_conversion"]
    assert [s["name"] for s in data["skipped"]] == ["broken_s2s"]


def test_sample_host_honours_the_block_list(fake_dist, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_dist("watcher_s2s", WATCHER, dist="watcher-s2s")
    monkeypatch.setenv("S2S_DISABLE_PLUGINS", "watcher-s2s")
    result = CliRunner().invoke(sample_host_cli, ["plugins", "--db", f"sqlite:///{tmp_path / 'tracker.db'}"])
    assert "watcher_s2s  watcher-s2s 1.0.0  NOT LOADED: disabled by S2S_DISABLE_PLUGINS" in result.output
