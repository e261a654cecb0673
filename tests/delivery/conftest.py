"""Fixtures for delivery tests: an installed plugin on SQLite or PostgreSQL, and a host log."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pluggy
import pytest

import hookspecs
import s2s_plugin
from hookspecs import Click, Conversion

ROOT = Path(__file__).resolve().parents[2]


class RecordingHost:
    """A host that keeps every ``on_postback_sent`` report, like a "Sent postbacks" log."""

    def __init__(self) -> None:
        self.attempts: list[hookspecs.PostbackAttempt] = []

    @hookspecs.hookimpl
    def on_postback_sent(self, attempt: hookspecs.PostbackAttempt) -> None:
        self.attempts.append(attempt)


@pytest.fixture
def host() -> RecordingHost:
    return RecordingHost()


@pytest.fixture
def make_s2s(tmp_path: Any, host: RecordingHost) -> Iterator[Any]:
    """``make_s2s(database_url=None, **settings) -> (pm, service)``; SQLite file by default; closed after."""
    made: list[s2s_plugin.PostbackService] = []

    def factory(database_url: str | None = None, **settings: Any) -> tuple[pluggy.PluginManager, s2s_plugin.PostbackService]:
        pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        pm.add_hookspecs(hookspecs)
        pm.register(host, name="host")
        settings.setdefault("allow_private_targets", True)
        settings.setdefault("retry_schedule", [0, 0.05, 0.1])
        service = s2s_plugin.install(pm, database_url=database_url or f"sqlite:///{tmp_path}/s2s.db", **settings)
        made.append(service)
        return pm, service

    yield factory
    for service in made:
        service.close()


def click(subid: str, external_id: str = "abc", campaign: str = "summer", source: str | None = "exo") -> Click:
    return Click(subid=subid, campaign_id=campaign, source_id=source, params={"external_id": external_id})


def convert(pm: Any, subid: str, status: str = "sale", payout: str = "2.5", **kw: Any) -> None:
    pm.hook.on_conversion(conversion=Conversion(subid=subid, status=status, payout=Decimal(payout), **kw))


def process_env(**extra: str) -> dict[str, str]:
    """Environment for a child process that imports this worktree's packages."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("S2S_")}
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.update(extra)
    return env


def cli(*args: str) -> list[str]:
    """The ``s2s-postback`` command line, run from this worktree."""
    return [sys.executable, "-m", "s2s_plugin", *args]
