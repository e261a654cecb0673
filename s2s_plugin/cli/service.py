"""Building a ``PostbackService`` for a command: the installed entry points plus the core plugin."""

from __future__ import annotations

from typing import Any

from s2s_plugin.entrypoint import ENTRY_POINT_NAME, build_plugin_manager
from s2s_plugin.service import PostbackService
from s2s_plugin.settings import DeliverySettings, settings_from_env


def open_service(database_url: str, **overrides: Any) -> PostbackService:
    """A service on ``database_url`` with settings from ``S2S_*`` variables, then ``overrides``."""
    pm = build_plugin_manager()
    settings = {**settings_from_env(), **{k: v for k, v in overrides.items() if v is not None}}
    service = PostbackService(pm, database_url, DeliverySettings.from_kwargs(**settings))
    service.create_tables()
    pm.register(service, name=ENTRY_POINT_NAME)
    return service
