"""The plugin as an ``s2s_postback`` entry point, configured from ``S2S_*`` environment variables.

For hosts that load entry points instead of calling ``install``: ``on_click`` and ``on_conversion``
queue postbacks in ``S2S_DATABASE_URL``; an ``s2s-postback worker`` process (same variables)
delivers them. Extension hooks (``postback_rules``, ``resolve_macro``...) come from the other
installed entry points. A host that calls ``install`` on the same plugin manager replaces this one.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Optional

import pluggy

import hookspecs
from hookspecs import Click, Conversion
from s2s_plugin.hooks.plugins import make_plugin_manager

if TYPE_CHECKING:  # pragma: no cover  (built lazily: the service imports the whole plugin)
    from s2s_plugin.service import PostbackService


def build_plugin_manager() -> pluggy.PluginManager:
    """A plugin manager with the hook contract and the installed third-party plugins.

    Built by ``s2s_plugin.hooks.plugins.make_plugin_manager``: a plugin that fails to load is skipped
    with a warning (``S2S_PLUGINS_STRICT=1`` raises), ``S2S_DISABLE_PLUGINS`` is honoured, and this
    plugin's own entry point is left for the caller to replace with a configured service.
    """
    return make_plugin_manager()


class EntryPointPlugin:
    """Queues postbacks from environment configuration; the service is built on first use."""

    def __init__(self) -> None:
        self._service: Optional[PostbackService] = None
        self._lock = threading.Lock()

    def service(self) -> PostbackService:
        """The ``PostbackService`` behind this plugin, built from the environment on first call."""
        if self._service is None:
            with self._lock:
                if self._service is None:
                    from s2s_plugin.service import build_service
                    from s2s_plugin.settings import DeliverySettings, database_url_from_env, settings_from_env

                    self._service = build_service(
                        build_plugin_manager(),
                        database_url_from_env(),
                        DeliverySettings.from_kwargs(**settings_from_env()),
                    )
        return self._service

    @hookspecs.hookimpl
    def on_click(self, click: Click) -> None:
        """Remember the click in ``S2S_DATABASE_URL``."""
        self.service().on_click(click=click)

    @hookspecs.hookimpl
    def on_conversion(self, conversion: Conversion) -> None:
        """Queue the conversion's postbacks in ``S2S_DATABASE_URL`` for a worker to deliver."""
        self.service().on_conversion(conversion=conversion)

    def close(self) -> None:
        """Release the database, if the service was built."""
        if self._service is not None:
            self._service.close()
            self._service = None


plugin = EntryPointPlugin()
