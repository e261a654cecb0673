"""Checks on the click id a traffic source substituted (or failed to substitute) into a campaign link."""

from __future__ import annotations

import re
from typing import Optional

# What a source's macro looks like when the source did not substitute it: the macro text itself.
_UNSUBSTITUTED = [
    re.compile(r"^\$?\{\{?[^{}]+\}\}?$"),  # {conversions_tracking}, ${SUBID}, {{ctoken}}
    re.compile(r"^\[[^\[\]]+\]$"),  # [CLICK_ID]
    re.compile(r"^%[^%]+%$"),  # %guid%
    re.compile(r"^##[^#]+##$"),  # ##SUB_ID_SHORT##
    re.compile(r"^@@[^@]+@@$"),  # @@CLICK-ID@@
    re.compile(r"^__[A-Z0-9_]+__$"),  # __CLICKID__
    re.compile(r"^<[^<>]+>$"),  # <click_id>
]
_JUNK = {"null", "undefined", "(null)", "none", "nil", "nan"}


def unsubstituted_macro(value: Optional[str]) -> Optional[str]:
    """The value itself when it is a source macro left unsubstituted (``${SUBID}``), else None."""
    if value is None:
        return None
    text = value.strip()
    if any(pattern.match(text) for pattern in _UNSUBSTITUTED):
        return text
    return None


def usable_click_id(value: Optional[str]) -> bool:
    """Whether ``value`` is a real click id: present, not junk, not an unsubstituted macro."""
    if value is None:
        return False
    text = value.strip()
    return bool(text) and text.lower() not in _JUNK and unsubstituted_macro(text) is None


def describe_click_id_problem(value: Optional[str], param: str = "external_id", source_macro: Optional[str] = None) -> str:
    """One sentence for an operator on why the click carries no usable click id and what to do."""
    macro_hint = f" ({source_macro})" if source_macro else ""
    fix = (
        f"put the source's click-id macro{macro_hint} in the campaign link, "
        f"e.g. ?{param}={source_macro or '{click_id}'}"
    )
    if value is None or not value.strip():
        return f"the click has no {param}: {fix}"
    if unsubstituted_macro(value):
        return (
            f"the click's {param} is {value.strip()!r}, a macro the source did not substitute: "
            f"use the source's own click-id macro{macro_hint} in the campaign link"
        )
    return f"the click's {param} is {value.strip()!r}, which is not a click id: {fix}"
