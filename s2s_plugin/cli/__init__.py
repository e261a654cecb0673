"""``s2s-postback``: the plugin's own command line (worker, explain, templates...).

Each command group lives in its own module and registers itself on ``main``; commands stay thin:
parse, call the service, print.
"""

from __future__ import annotations

from s2s_plugin.cli import checks, inspect, ops, plugins, worker  # noqa: F401  (register their commands)
from s2s_plugin.cli.base import main

__all__ = ["main"]
