"""The project's name and pluggy markers, in a module of their own so the specs can import them
while the package is still being imported."""

from __future__ import annotations

from typing import Final

import pluggy

#: At once the plugin manager's name, the marker name and the entry-point group.
PROJECT_NAME: Final = "s2s_postback"

hookspec: Final = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl: Final = pluggy.HookimplMarker(PROJECT_NAME)
