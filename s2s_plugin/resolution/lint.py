"""The template linter: what in a postback URL (or body) will not work the way the operator thinks.

Pure, no I/O. Warnings, never refusals: an odd URL may still be what the source wants, so
``add_source``/``add_postback`` store it and report the warnings; ``s2s-postback lint URL`` prints them.
"""

from __future__ import annotations

import dataclasses
import json
import re
import zoneinfo
from collections.abc import Iterable, Mapping
from typing import Optional
from urllib.parse import urlsplit

from hookspecs import CANONICAL_STATUSES, PostbackRule, SourceTemplate
from s2s_plugin.resolution.clickid import unsubstituted_macro
from s2s_plugin.resolution.macros import MACRO_RE, MacroUse, find_macros, render
from s2s_plugin.resolution.templates import all_placeholders, builtin_templates
from s2s_plugin.resolution.values import canonical_name, did_you_mean, is_known


@dataclasses.dataclass(frozen=True)
class LintWarning:
    """One finding: a stable ``code`` for programs and a one-sentence ``message`` for people.

    Codes: ``not-http``, ``plain-http``, ``leftover``, ``unknown-macro``, ``source-macro``,
    ``double-braces``, ``bad-argument``, ``no-click-id``, ``html-escaped``, ``whitespace``,
    ``bad-json``, ``get-with-body``.
    """

    code: str
    message: str

    def __str__(self) -> str:
        return self.message


# Words operators are told to replace in trackers' and sources' published URLs (Voluum's REPLACE and
# OPTIONAL, "YOUR_..."), beside the placeholders of the template library.
_GENERIC_LEFTOVERS = {"REPLACE", "OPTIONAL", "impressionId", "conversionValue", "CHANGE_ME", "CHANGEME", "TODO"}
_LEFTOVER_PATTERNS = [
    re.compile(r"^YOUR_[A-Za-z0-9_]+$", re.IGNORECASE),
    re.compile(r"^[A-Z0-9_]+_HERE$"),
    re.compile(r"^INSERT_[A-Z0-9_]+$"),
    re.compile(r"^X{4,}(-X{2,})*$"),  # Zeropark's XXXXXX-XXXX-XXXX-XXXX-XXXXXX
    re.compile(r"^<[^<>]+>$"),  # <AID>, <id>
    re.compile(r"^[A-Z][A-Z0-9_]*_(ID|KEY|NAME|TOKEN|LOGIN|UUID|HASH|CID)$"),  # GOAL_ID, API_KEY, EVENT_NAME
]
_DOUBLE_BRACES = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
# Other trackers' and sources' macro syntaxes: ${SUBID}, [CLICK_ID], %guid%, @@CLICK-ID@@, ##SUB_ID##.
_FOREIGN_MACRO = re.compile(r"\$\{[^{}]+\}|\[[A-Za-z_][^\[\]]*\]|%[A-Za-z_][A-Za-z0-9_]*%|@@[^@]+@@|##[^#]+##")
_WORD = re.compile(r"<[^<>/?&=#]+>|[A-Za-z0-9_\-]+")


def lint(
    url: str,
    *,
    body: Optional[str] = None,
    headers: Optional[Mapping[str, str]] = None,
    method: str = "GET",
    template: Optional[SourceTemplate] = None,
    library: Optional[Mapping[str, SourceTemplate]] = None,
) -> list[LintWarning]:
    """Everything suspicious in a postback's URL, body and headers, most serious first.

    :param template: the source template the postback came from, named in leftover warnings.
    :param library: the template library, for its placeholders and its sources' macros.
    """
    library = library or {}
    warnings: list[LintWarning] = []
    warnings += _check_scheme(url)
    texts = [url, body or "", *(headers or {}).values()]
    warnings += _check_leftovers(url, body, template, library)
    warnings += _check_macros(texts, library)
    warnings += _check_click_id(texts)
    warnings += _check_text(url, body, method)
    return list(dict.fromkeys(warnings))


def lint_rule(rule: PostbackRule, library: Optional[Mapping[str, SourceTemplate]] = None) -> list[LintWarning]:
    """``lint`` for a stored postback rule (its URL, body, headers, method and template)."""
    library = library or {}
    return lint(
        rule.url,
        body=rule.body,
        headers=rule.headers,
        method=rule.method,
        template=library.get(rule.template or ""),
        library=library,
    )


def _check_scheme(url: str) -> list[LintWarning]:
    try:
        parts = urlsplit(url.strip())
    except ValueError as exc:
        return [LintWarning("not-http", f"the URL cannot be read ({exc}): write it as https://host/path?param=value")]
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.netloc:
        shown = f"{scheme}://" if scheme else "no scheme"
        return [
            LintWarning(
                "not-http",
                f"the URL has {shown}: a postback must start with https:// (or http://) and a host, or it is never sent",
            )
        ]
    if scheme == "http":
        return [
            LintWarning(
                "plain-http",
                "the URL uses plain http: the click id and payout travel unencrypted; use https:// if the source accepts it",
            )
        ]
    return []


def _values_and_segments(url: str) -> list[str]:
    """The parts of a URL an operator fills in: path segments and query values (macros removed)."""
    text = MACRO_RE.sub("", url)
    parts = urlsplit(text) if "://" in text else urlsplit("//x/" + text)
    pieces = [seg for seg in parts.path.split("/") if seg]
    for pair in parts.query.split("&"):
        pieces.append(pair.partition("=")[2])
    return pieces


def _check_leftovers(
    url: str, body: Optional[str], template: Optional[SourceTemplate], library: Mapping[str, SourceTemplate]
) -> list[LintWarning]:
    # The built-in templates' words too: a plugin's template of the same name may not list them.
    known = (
        all_placeholders(library)
        | all_placeholders(builtin_templates())
        | set(template.placeholders if template else ())
    )
    found: list[str] = []
    pieces = _values_and_segments(url) + ([MACRO_RE.sub("", body)] if body else [])
    for piece in (_FOREIGN_MACRO.sub("", p) for p in pieces):  # a source's macro is reported as such
        for word in _WORD.findall(piece):
            if word in known or word in _GENERIC_LEFTOVERS or any(p.match(word) for p in _LEFTOVER_PATTERNS):
                found.append(word)
    # {REPLACE}, {YOUR_ID}: a placeholder written as a macro renders empty, which hides it.
    for use in find_macros(url + (body or "")):
        if not is_known(use.name) and (
            use.name in known
            or use.name.upper() in _GENERIC_LEFTOVERS
            or any(p.match(use.name) for p in _LEFTOVER_PATTERNS)
        ):
            found.append(use.text)
    warnings = []
    for word in dict.fromkeys(found):
        bare = word.strip("{}")
        users = sorted({t.name for t in (*library.values(), *builtin_templates().values()) if bare in t.placeholders})
        if template is not None and bare in template.placeholders:
            origin = f" from the {template.name} template"
        elif users and bare not in _GENERIC_LEFTOVERS:
            origin = f" from the {', '.join(users[:3])} template{'s' if len(users) > 1 else ''}"
        else:
            origin = ""
        warnings.append(
            LintWarning(
                "leftover",
                f"{word} is a placeholder{origin}: replace it with your account's value, or the source will reject the postback",
            )
        )
    return warnings


def _source_macro_owners(library: Mapping[str, SourceTemplate]) -> dict[str, list[str]]:
    """Lower-cased macro name → the sources whose campaign links use it (``click_id`` → TrafficStars...)."""
    owners: dict[str, list[str]] = {}
    for template in library.values():
        macro = template.source_macro or ""
        inner = re.sub(r"^[\W_]*|[\W_]*$", "", macro.split("(")[0]).lower()
        if inner:
            owners.setdefault(inner, []).append(template.title or template.name)
    return owners


def _check_macros(texts: Iterable[str], library: Mapping[str, SourceTemplate]) -> list[LintWarning]:
    warnings: list[LintWarning] = []
    owners = _source_macro_owners(library)
    joined = "\n".join(texts)
    for match in _DOUBLE_BRACES.finditer(joined):
        warnings.append(
            LintWarning(
                "double-braces",
                f"{match.group(0)} has double braces: macros here take one pair, e.g. {{{_suggest(match.group(1))}}}",
            )
        )
    for use in _single_brace_macros(joined):
        if is_known(use.name):
            warnings += _check_argument(use.name, use.argument, use.text)
            continue
        lowered = use.name.lower()
        if use.name.upper() in _GENERIC_LEFTOVERS or any(p.match(use.name) for p in _LEFTOVER_PATTERNS):
            continue  # reported as a leftover
        hint = did_you_mean(use.text)
        if hint:
            warnings.append(LintWarning("unknown-macro", f"{use.text} is not a known macro and renders empty: {hint}"))
        elif lowered in owners or lowered in ("clickid", "click_id"):
            named = owners.get(lowered, [])[:3]
            if len(named) == 1:
                whose = f"{named[0]} writes it in its campaign links"
            elif named:
                whose = f"{', '.join(named)} write it in their campaign links"
            else:
                whose = "sources write such macros in their campaign links"
            extra = (
                "; in Binom and Voluum {clickid} is the tracker's own click id, here {subid}"
                if lowered == "clickid"
                else ""
            )
            warnings.append(
                LintWarning(
                    "source-macro",
                    f"{use.text} is a traffic source's macro, not a tracker macro ({whose}): use {{external_id}} "
                    f"for the source's click id, unless your campaign link passes a parameter named {use.name}{extra}",
                )
            )
        else:
            warnings.append(
                LintWarning(
                    "unknown-macro",
                    f"{use.text} is not a built-in macro: it is filled from a click parameter named {use.name}, "
                    "and left empty when the click has none",
                )
            )
    # Macros of other syntaxes (${SUBID}, [CLICK_ID], %guid%) are sent literally.
    for word in _FOREIGN_MACRO.findall(joined):
        if unsubstituted_macro(word):
            warnings.append(
                LintWarning(
                    "source-macro",
                    f"{word} is a traffic source's macro, not a tracker macro, and is sent literally: use {{external_id}} "
                    "for the source's click id",
                )
            )
    return warnings


def _single_brace_macros(text: str) -> list[MacroUse]:
    """Macros not inside ``{{...}}`` (those are reported as double braces, once)."""
    uses = []
    for match in MACRO_RE.finditer(text):
        if text[match.start() - 1 : match.start()] == "{" and text[match.end() : match.end() + 1] == "}":
            continue
        uses.append(
            MacroUse(name=match.group(2), argument=match.group(3), raw=bool(match.group(1)), text=match.group(0))
        )
    return uses


def _suggest(inner: str) -> str:
    name = inner.strip().lstrip("$_")
    if is_known(name):
        return name.lower()
    return "external_id" if "click" in name.lower() or "token" in name.lower() else name


def _check_argument(name: str, argument: Optional[str], text: str) -> list[LintWarning]:
    if argument is None:
        return []
    key = canonical_name(name.lstrip("_"))
    if key == "status":
        problems = []
        for pair in argument.replace(",", " ").split():
            status, sep, _alias = pair.partition("=")
            if not sep or status.strip().lower() not in CANONICAL_STATUSES:
                problems.append(pair)
        if problems:
            return [
                LintWarning(
                    "bad-argument",
                    f"{text}: {', '.join(problems)} is not status=value with a status among {', '.join(CANONICAL_STATUSES)}, "
                    "e.g. {status:lead=0 sale=1 rejected=2}",
                )
            ]
    elif key in ("date", "conversion_datetime", "click_datetime") and "," not in argument and _is_zone(argument):
        # {date:Europe/Kyiv} reads the zone as date letters: the format comes first.
        return [
            LintWarning(
                "bad-argument",
                f"{text}: write the format first, then the zone, e.g. {{{name}:Y-m-d H:i:s,{argument.strip()}}}",
            )
        ]
    elif key in ("date", "conversion_datetime", "click_datetime") and "," in argument:
        zone = argument.rpartition(",")[2].strip()
        if ("/" in zone or zone.upper() in ("UTC", "GMT")) and not _is_zone(zone):
            return [
                LintWarning(
                    "bad-argument", f"{text}: {zone!r} is not a time zone; use an IANA name such as Europe/Kyiv"
                )
            ]
    elif key == "random":
        parts = [p.strip() for p in argument.split(",")]
        if not all(p.lstrip("-").isdigit() for p in parts) or len(parts) > 2:
            return [
                LintWarning("bad-argument", f"{text}: the range must be two whole numbers, e.g. {{random:1,999999}}")
            ]
    return []


def _is_zone(text: str) -> bool:
    try:
        zoneinfo.ZoneInfo(text.strip())
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _check_click_id(texts: Iterable[str]) -> list[LintWarning]:
    uses = [m for text in texts for m in find_macros(text)]
    if any(canonical_name(m.name) == "external_id" for m in uses):
        return []
    return [
        LintWarning(
            "no-click-id",
            "the postback has no {external_id}: the source cannot tell which of its clicks converted; "
            "put {external_id} where the source expects its click id",
        )
    ]


def _check_text(url: str, body: Optional[str], method: str) -> list[LintWarning]:
    warnings = []
    if "&amp;" in url:
        warnings.append(
            LintWarning("html-escaped", "the URL contains &amp;, an HTML-escaped &: write a plain & between parameters")
        )
    outside = MACRO_RE.sub("", url)
    if any(ch.isspace() for ch in outside.strip()) or url != url.strip():
        warnings.append(
            LintWarning("whitespace", "the URL contains spaces or line breaks: remove them, or write a space as %20")
        )
    if body and body.lstrip().startswith(("{", "[")):
        try:
            json.loads(render(body, lambda _name, _arg: "0", encoding="json").text)
        except json.JSONDecodeError as exc:
            warnings.append(
                LintWarning(
                    "bad-json",
                    f"the body looks like JSON but is not valid JSON once filled in ({exc.msg} at character {exc.pos})",
                )
            )
    if body and method.upper() == "GET":
        warnings.append(
            LintWarning(
                "get-with-body", "the postback has a body but is sent with GET, where sources ignore bodies: use POST"
            )
        )
    return warnings
