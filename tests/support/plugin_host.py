"""A host for the plugin's tests: a plugin manager with the plugin installed and a recording log."""

from __future__ import annotations

from typing import Any

import pluggy

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


def install_for_test(
    host: RecordingHost, database_url: str, **settings: Any
) -> tuple[pluggy.PluginManager, s2s_plugin.PostbackService]:
    """A plugin manager with ``host`` registered and the plugin installed on ``database_url``.

    Loopback targets are allowed and retries come quickly unless ``settings`` say otherwise.
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    pm.register(host, name="host")
    settings.setdefault("allow_private_targets", True)
    settings.setdefault("retry_schedule", [0, 0.05, 0.1])
    return pm, s2s_plugin.install(pm, database_url=database_url, **settings)
