"""The s2s-postback hook contract: markers, event types and hook specifications.

Plugin authors depend on this package alone. It imports nothing heavier than pluggy::

    import hookspecs

    @hookspecs.hookimpl
    def classify_response(request, response):
        ...

``PROJECT_NAME`` is at once the plugin manager's name, the marker name and the entry-point group.
"""

from __future__ import annotations

from .events import (
    CANONICAL_STATUSES,
    OUTCOMES,
    Click,
    Conversion,
    PostbackAttempt,
    PostbackRequest,
    PostbackRule,
    ResolveContext,
    SourceTemplate,
)
from .markers import PROJECT_NAME, hookimpl, hookspec
from .specs import (
    classify_response,
    on_click,
    on_conversion,
    on_postback_sent,
    postback_rules,
    prepare_request,
    register_source_templates,
    resolve_macro,
)

__all__ = [
    "CANONICAL_STATUSES",
    "OUTCOMES",
    "PROJECT_NAME",
    "Click",
    "Conversion",
    "PostbackAttempt",
    "PostbackRequest",
    "PostbackRule",
    "ResolveContext",
    "SourceTemplate",
    "classify_response",
    "hookimpl",
    "hookspec",
    "on_click",
    "on_conversion",
    "on_postback_sent",
    "postback_rules",
    "prepare_request",
    "register_source_templates",
    "resolve_macro",
]
