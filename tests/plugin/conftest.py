"""Fixtures for the plugin's own tests: a plugin manager with the plugin installed and a host log."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pluggy
import pytest

import hookspecs
import s2s_plugin


class RecordingHost:
    """A host that keeps every ``on_postback_sent`` report, like a "Sent postbacks" log."""

    def __init__(self) -> None:
        self.attempts: list[hookspecs.PostbackAttempt] = []

    @hookspecs.hookimpl
    def on_postback_sent(self, attempt: hookspecs.PostbackAttempt) -> None:
        self.attempts.append(attempt)

    def outcomes(self) -> list[tuple[str, int, str]]:
        """(rule_id, attempt, outcome) of every report, in order."""
        return [(a.rule_id, a.attempt, a.outcome) for a in self.attempts]


@pytest.fixture
def host() -> RecordingHost:
    return RecordingHost()


@pytest.fixture
def make_s2s(tmp_path: Any, host: RecordingHost) -> Iterator[Any]:
    """``make_s2s(**settings)`` -> (pm, service), installed on a fresh SQLite file; closed after."""
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
