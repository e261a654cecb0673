"""Macro rendering: ``{name}`` (encoded), ``{_name}`` (raw) and ``{name:argument}``. Pure, no I/O.

The values come from a lookup function, so the same renderer serves URLs, bodies and the linter.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
from collections.abc import Callable
from typing import Optional
from urllib.parse import quote

#: ``{name}``, ``{_name}``, ``{name:argument}``. Names start with a letter so JSON braces never match.
MACRO_RE = re.compile(r"\{(_?)([A-Za-z][A-Za-z0-9_]*)(?::([^{}]*))?\}")

# Raw values keep URL structure characters (the operator asked for raw) but never spaces,
# control characters or non-ASCII, which no valid URL can carry.
_RAW_SAFE = "!#$%&'()*+,/:;=?@[]~-._"

Lookup = Callable[[str, Optional[str]], Optional[str]]


@dataclasses.dataclass(frozen=True)
class MacroUse:
    """One macro occurrence in a template."""

    name: str
    argument: Optional[str]
    raw: bool
    text: str


@dataclasses.dataclass(frozen=True)
class Rendered:
    """A rendered template and the macros it used that had no value source (rendered empty)."""

    text: str
    unknown: tuple[str, ...] = ()


def find_macros(template: str) -> list[MacroUse]:
    """Every macro in ``template``, in order."""
    return [macro for _literal, macro in _parts(template or "") if macro is not None]


# A rule's templates are rendered for every conversion: each is split into parts once.
@functools.lru_cache(maxsize=1024)
def _parts(template: str) -> tuple[tuple[str, Optional[MacroUse]], ...]:
    """``template`` as (literal text, the macro after it) pairs; the last pair has no macro."""
    parts: list[tuple[str, Optional[MacroUse]]] = []
    start = 0
    for m in MACRO_RE.finditer(template):
        macro = MacroUse(name=m.group(2), argument=m.group(3), raw=bool(m.group(1)), text=m.group(0))
        parts.append((template[start : m.start()], macro))
        start = m.end()
    parts.append((template[start:], None))
    return tuple(parts)


# Text that cannot be UTF-8 (a lone surrogate from a badly decoded click) becomes "?" instead of
# failing the whole conversion.
def encode_url_value(value: str) -> str:
    """Percent-encode a value so it can never change a URL's structure (``&=#?/``, spaces, CR/LF, unicode)."""
    if _UNRESERVED.match(value):
        return value  # what quote() would return, without its work: most click ids, amounts, statuses
    return quote(value, safe="", errors="replace")


# The characters quote() never escapes (RFC 3986 "unreserved").
_UNRESERVED = re.compile(r"[A-Za-z0-9_.~-]*\Z")


def encode_raw_value(value: str) -> str:
    """Encode only what no URL may contain; structure characters pass through (``{_name}``)."""
    return quote(value, safe=_RAW_SAFE, errors="replace")


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def encode_header_value(value: str) -> str:
    """A value for an HTTP header: control characters (CR/LF above all) dropped, so a value can
    never add a header or end the request's head."""
    return _CONTROL.sub("", value)


def encode_json_value(value: str) -> str:
    """Escape a value for a position inside a JSON string literal."""
    return json.dumps(value, ensure_ascii=False)[1:-1]


ENCODERS: dict[str, Callable[[str], str]] = {
    "url": encode_url_value,
    "json": encode_json_value,
    "header": encode_header_value,
    "text": lambda value: value,
}


def render(template: str, lookup: Lookup, *, encoding: str = "url") -> Rendered:
    """Replace every macro in ``template`` with its value.

    :param lookup: ``lookup(name, argument)`` returns the value, or None for an unknown macro
        (rendered empty and listed in ``Rendered.unknown``).
    :param encoding: how ``{name}`` values are escaped: ``url`` (percent-encoding), ``json`` (inside a
        JSON string), ``header`` (control characters dropped) or ``text``. ``{_name}`` values are
        inserted raw (in URLs minus what no URL may hold, in headers minus control characters).
    """
    encode = ENCODERS[encoding]
    parts = _parts(template or "")
    if len(parts) == 1:
        return Rendered(text=parts[0][0])
    unknown: list[str] = []
    pieces: list[str] = []
    for literal, macro in parts:
        pieces.append(literal)
        if macro is None:
            break
        value = lookup(macro.name, macro.argument)
        if value is None and macro.raw:
            # ``{_foo}`` where ``_foo`` itself is the name (a click parameter starting with "_").
            value = lookup("_" + macro.name, macro.argument)
        if value is None:
            unknown.append(macro.text)
        elif not macro.raw:
            pieces.append(encode(value))
        elif encoding == "url":
            pieces.append(encode_raw_value(value))
        else:
            pieces.append(encode_header_value(value) if encoding == "header" else value)
    return Rendered(text="".join(pieces), unknown=tuple(unknown))
