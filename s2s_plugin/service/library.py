"""The template library of one plugin manager: the built-in templates plus every plugin's
``register_source_templates``, built on first use."""

from __future__ import annotations

from typing import Optional

import pluggy

from hookspecs import SourceTemplate
from s2s_plugin.hooks.hookcalls import HookFailure
from s2s_plugin.resolution.templates import find_template, source_templates


class TemplateLibrary:
    """Source templates by name, collected from ``pm`` once, when first asked for.

    Built lazily so plugins registered after ``install`` (a host's own, the ad platforms) still
    bring their templates.
    """

    def __init__(self, pm: pluggy.PluginManager) -> None:
        self._pm = pm
        self._templates: Optional[dict[str, SourceTemplate]] = None
        #: Plugins whose ``register_source_templates`` failed (their templates are missing).
        self.failures: list[HookFailure] = []

    def all(self) -> dict[str, SourceTemplate]:
        """Every template by name. A plugin whose hook fails is left out (logged, and kept in
        ``failures``); the other plugins' templates are still added."""
        if self._templates is None:
            self._templates, self.failures = source_templates(self._pm)
        return self._templates

    def get(self, name: Optional[str]) -> Optional[SourceTemplate]:
        """The template called exactly ``name``, or None (for no name or an unknown one)."""
        return self.all().get(name) if name else None

    def find(self, name: Optional[str]) -> Optional[SourceTemplate]:
        """The template called ``name`` (case-insensitive); None for no name.

        :raises ConfigError: naming the known templates when ``name`` is not one of them.
        """
        return find_template(self.all(), name)
