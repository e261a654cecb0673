"""Planning a conversion's postbacks with the ``resolve_macro`` hooks: what to send, or why not."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Optional

import pluggy

from hookspecs import Click, Conversion, PostbackRule, ResolveContext
from s2s_plugin.hooks import hookcalls
from s2s_plugin.resolution.causes import Cause
from s2s_plugin.resolution.resolve import PlannedPostback, plan
from s2s_plugin.service.library import TemplateLibrary


class PostbackPlanner:
    """``resolve.plan`` with the plugins' ``resolve_macro`` hooks and the template library.

    Used for every recorded conversion and for test sends; a planner is also a plain callable,
    ``planner(conversion, click, rules)``, which is what the store and ``test_send`` take.
    """

    def __init__(self, pm: pluggy.PluginManager, library: TemplateLibrary) -> None:
        self._pm = pm
        self._library = library

    def __call__(
        self, conversion: Conversion, click: Optional[Click], rules: Sequence[PostbackRule]
    ) -> list[PlannedPostback]:
        return self.plan(conversion, click, rules)

    def plan(
        self, conversion: Conversion, click: Optional[Click], rules: Sequence[PostbackRule]
    ) -> list[PlannedPostback]:
        """Each rule's planned postback for ``conversion``; a failing ``resolve_macro`` hook is
        noted in the reason of the postback it was resolving (the built-in value is used)."""
        notes: dict[str, list[str]] = {}

        def macro_hook(name: str, argument: Optional[str], context: ResolveContext) -> Optional[str]:
            first = hookcalls.call_first(self._pm.hook.resolve_macro, name=name, argument=argument, context=context)
            for failure in first.failures:
                note = f"{failure.describe()} for {{{name}}}, so the next plugin or the built-in value was used"
                if note not in notes.setdefault(context.rule.id, []):
                    notes[context.rule.id].append(note)
            return first.value

        # Without resolve_macro implementations every macro has its built-in value: no hook call per macro.
        hooked = bool(hookcalls.implementations(self._pm.hook.resolve_macro))
        planned = plan(
            conversion, click, rules, templates=self._library.all(), macro_hook=macro_hook if hooked else None
        )
        return [_with_notes(p, notes.get(p.rule.id)) for p in planned] if notes else planned


def _with_notes(planned: PlannedPostback, notes: Optional[list[str]]) -> PlannedPostback:
    if not notes:
        return planned
    reason = "; ".join(([planned.reason] if planned.reason else []) + notes)
    # A skip keeps its own cause; on a due postback, the failing resolve_macro plugin is the note.
    return dataclasses.replace(planned, reason=reason, cause=planned.cause or Cause.PLUGIN_FAILED)
