"""s2s-postback: server-to-server postbacks for ad trackers, as a pluggy plugin.

A host installs it on its plugin manager::

    s2s = s2s_plugin.install(pm, database_url="sqlite:///s2s.db")
    s2s.add_source("exo", template="exoclick", statuses=["sale"])

then calls ``on_click`` and ``on_conversion`` through its hooks; the plugin resolves, queues and
delivers the postbacks and reports each attempt through ``on_postback_sent``.
"""

from s2s_plugin.errors import ConfigError, InputError, S2SError
from s2s_plugin.hooks.plugins import load_plugins, make_plugin_manager
from s2s_plugin.ops.explain import Explanation
from s2s_plugin.service import PostbackService, install
from s2s_plugin.settings import DEFAULT_RETRY_SCHEDULE, DeliverySettings

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_RETRY_SCHEDULE",
    "ConfigError",
    "DeliverySettings",
    "Explanation",
    "InputError",
    "PostbackService",
    "S2SError",
    "__version__",
    "install",
    "load_plugins",
    "make_plugin_manager",
]
