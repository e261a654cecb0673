"""``s2s-postback``: the plugin's own command line (worker, explain, templates...).

Each command group lives in its own module and registers itself on ``main``; commands stay thin:
parse, call the service, print.
"""

from __future__ import annotations

from .base import main
from . import checks, inspect, ops, plugins, worker  # noqa: F401,E402  (register their commands)

__all__ = ["main"]
