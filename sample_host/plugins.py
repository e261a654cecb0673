"""Building the host's plugin manager the pluggy way, and loading third-party plugins safely."""

from __future__ import annotations

import importlib.metadata
import logging
import os
import warnings

import pluggy

import hookspecs

log = logging.getLogger(__name__)

#: Set to 1 to load no third-party plugins from the ``s2s_postback`` entry-point group.
DISABLE_PLUGINS_ENV = "SAMPLE_HOST_DISABLE_PLUGINS"


def make_plugin_manager() -> pluggy.PluginManager:
    """A fresh plugin manager with the s2s-postback hook specifications (one per tracker instance)."""
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    return pm


def load_third_party_plugins(pm: pluggy.PluginManager) -> list[str]:
    """Register the plugins installed in the ``s2s_postback`` entry-point group; return their names.

    The postback plugin's own entry point is skipped: the host installs it explicitly with its own
    database, and a second copy configured from environment variables would deliver twice. A plugin
    that fails to load is skipped with a warning naming it, so one broken package cannot take the
    tracker down.
    """
    if os.environ.get(DISABLE_PLUGINS_ENV, "").strip() in ("1", "true", "yes"):
        return []
    loaded = []
    for entry_point in importlib.metadata.entry_points(group=hookspecs.PROJECT_NAME):
        if entry_point.name == hookspecs.PROJECT_NAME or entry_point.value.startswith("s2s_plugin"):
            continue
        if pm.get_plugin(entry_point.name) is not None or pm.is_blocked(entry_point.name):
            continue
        try:
            pm.register(entry_point.load(), name=entry_point.name)
        except Exception as exc:  # noqa: BLE001  (any failure of foreign code is reported, not fatal)
            warnings.warn(
                f"s2s_postback plugin {entry_point.name!r} ({entry_point.value}) was not loaded: {exc}",
                RuntimeWarning,
                stacklevel=2,
            )
            continue
        loaded.append(entry_point.name)
    return loaded
