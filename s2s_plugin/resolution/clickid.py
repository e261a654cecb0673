"""Checks on the click id a traffic source substituted (or failed to substitute) into a campaign link.

A source writes its click-id macro into the campaign link (``?external_id={conversions_tracking}``)
and replaces it with the real id on every click. When the link is opened outside the source's
campaign, or the macro is misspelt, the tracker receives the macro text itself: such a click has no
click id, and a postback built from it would be rejected by the source (or worse, credited to nobody).
"""

from __future__ import annotations

import re
from typing import Any, Optional
from urllib.parse import unquote

# What a source's macro looks like when the source did not substitute it: the macro text itself.
# Delimiters seen in real sources' and trackers' templates.
_UNSUBSTITUTED = [
    re.compile(r"^\$?\{\{?\s*\$?[^{}]+\}\}?$"),  # {conversions_tracking}, ${SUBID}, {{ctoken}}, {$cpv}
    re.compile(r"^\[\[?[^\[\]]+\]\]?$"),  # [CLICK_ID], [[c4]]
    re.compile(r"^%%?[A-Za-z_][A-Za-z0-9_.\-]*%%?$"),  # %guid%, %%CLICK_ID%%
    re.compile(r"^##[^#]+##$"),  # ##SUB_ID_SHORT(action)##
    re.compile(r"^@@[^@]+@@$"),  # @@CLICK-ID@@
    re.compile(r"^__[A-Za-z0-9_]+__$"),  # __CLICKID__
    re.compile(r"^_~[^~]+~_$"),  # _~click_id~_
    re.compile(r"^<[^<>]+>$"),  # <click_id>
]
# One pattern for all of them: a click id is checked for every postback of every conversion.
_UNSUBSTITUTED_ANY = re.compile("|".join(f"(?:{pattern.pattern})" for pattern in _UNSUBSTITUTED))
# Values that are certainly not a click id: empty markers from scripts, and macro names written
# without their delimiters (copied from a documentation page).
_JUNK = {
    "null",
    "undefined",
    "(null)",
    "none",
    "nil",
    "nan",
    "false",
    "-",
    "click_id",
    "clickid",
    "external_id",
    "externalid",
    "subid",
    "sub_id",
    "replace",
    "your_click_id",
}


def unsubstituted_macro(value: Optional[str]) -> Optional[str]:
    """The value itself when it is a source macro left unsubstituted (``${SUBID}``), else None.

    A macro that arrives percent-encoded (``%24%7BSUBID%7D``) is recognised too.
    """
    if value is None:
        return None
    text = value.strip()
    # Percent-decoded only when there is something to decode (this runs for every postback).
    for candidate in dict.fromkeys((text, unquote(text).strip())) if "%" in text else (text,):
        if candidate and _UNSUBSTITUTED_ANY.match(candidate):
            return text
    return None


def usable_click_id(value: Optional[str]) -> bool:
    """Whether ``value`` is a real click id: present, not junk, not an unsubstituted macro."""
    if value is None:
        return False
    text = str(value).strip()
    return bool(text) and text.lower() not in _JUNK and unsubstituted_macro(text) is None


def click_id_of(click: Any, param: str = "external_id") -> Optional[str]:
    """The source's click id carried by ``click`` in parameter ``param``, or None when it has none.

    None covers every way a click can lack it: no parameter, an empty one, junk such as ``null``,
    or the source's macro left unsubstituted (``${SUBID}``, ``{conversions_tracking}``...).
    """
    if click is None:
        return None
    value = (click.params or {}).get(param)
    return str(value).strip() if usable_click_id(value) else None


def describe_click_id_problem(
    value: Optional[str],
    param: str = "external_id",
    source_macro: Optional[str] = None,
    source_name: Optional[str] = None,
) -> str:
    """One sentence for an operator on why the click carries no usable click id and what to do.

    :param source_macro: the macro the source writes in its tracking link (from its template), named
        in the fix so the operator knows exactly what to paste.
    :param source_name: the source's name for the sentence ("ExoClick").
    """
    whose = (f"{source_name}'" if source_name.endswith("s") else f"{source_name}'s") if source_name else "the source's"
    macro = source_macro or "{click_id}"
    example = f"?{param}={macro}"
    if source_macro:
        fix = f"put {whose} click-id macro {source_macro} in the campaign link, e.g. {example}"
    else:
        fix = (
            f"put {whose} click-id macro in the campaign link, e.g. {example} "
            "(the source's documentation names its macro)"
        )
    if value is None or not str(value).strip():
        return f"the click has no {param}: {fix}"
    text = str(value).strip()
    if unsubstituted_macro(text):
        if source_macro and text == source_macro:
            return (
                f"the click's {param} is {text!r}, {whose} own macro, which the source did not substitute: "
                f"the campaign link ({example}) was opened outside the source's campaign (a test click or "
                "a bot), so only clicks the source sends can be reported"
            )
        return f"the click's {param} is {text!r}, a macro the source did not substitute: {fix}"
    return f"the click's {param} is {text!r}, which is not a click id: {fix}"
