"""Building a ``PostbackService`` for a command: the installed entry points plus the core plugin."""

from __future__ import annotations

from typing import Any

from s2s_plugin.entrypoint import build_plugin_manager
from s2s_plugin.service import PostbackService, build_service
from s2s_plugin.settings import DeliverySettings, settings_from_env


def open_service(database_url: str, **overrides: Any) -> PostbackService:
    """A service on ``database_url`` with settings from ``S2S_*`` variables, then ``overrides``."""
    settings = {**settings_from_env(), **{k: v for k, v in overrides.items() if v is not None}}
    return build_service(build_plugin_manager(), database_url, DeliverySettings.from_kwargs(**settings))
