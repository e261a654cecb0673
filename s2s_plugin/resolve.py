"""Resolution: which postbacks a conversion fires, and the exact requests. Pure: no I/O.

Given the click, the conversion (with its decided status) and the rules that apply, ``plan`` returns
one ``PlannedPostback`` per rule: due to be sent, or skipped with the reason an operator needs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Optional
from urllib.parse import urlsplit

from hookspecs import Click, Conversion, PostbackRule, ResolveContext, SourceTemplate

from .clickid import describe_click_id_problem, usable_click_id
from .macros import find_macros, render
from .money import apply_payout_mode, format_amount
from .values import MacroValues, canonical_name

#: ``hook(name, argument, context)``: the ``resolve_macro`` hook, or None.
MacroHook = Callable[[str, Optional[str], ResolveContext], Optional[str]]


@dataclasses.dataclass(frozen=True)
class PlannedPostback:
    """One rule's verdict for one conversion status: ``due`` (to send) or ``skipped``."""

    rule: PostbackRule
    state: str
    method: str
    url: str
    body: Optional[str]
    headers: Mapping[str, str]
    reason: Optional[str] = None
    unknown_macros: tuple[str, ...] = ()


def describe_rule(rule: PostbackRule) -> str:
    """How an operator would name a rule: "source exo's postback", "campaign summer's postback #3"."""
    if rule.id.startswith("source:") and rule.source_id:
        return f"source {rule.source_id}'s postback"
    if rule.id.startswith("postback:") and rule.campaign_id:
        return f"campaign {rule.campaign_id}'s postback #{rule.id.split(':', 1)[1]}"
    return f"postback rule {rule.id}"


def uses_click_id(rule: PostbackRule) -> bool:
    """Whether the rule's URL or body needs the source's click id (``{external_id}`` or an alias)."""
    return any(canonical_name(m.name) == "external_id" for m in find_macros(rule.url + (rule.body or "")))


def body_encoding(body: str) -> str:
    """``json`` for a JSON body template, ``url`` for a form body."""
    return "json" if body.lstrip().startswith(("{", "[")) else "url"


def plan(
    conversion: Conversion,
    click: Optional[Click],
    rules: Sequence[PostbackRule],
    *,
    templates: Mapping[str, SourceTemplate] | None = None,
    macro_hook: Optional[MacroHook] = None,
) -> list[PlannedPostback]:
    """Plan every rule for ``conversion`` (whose ``status`` is the status being fired)."""
    return [plan_one(conversion, click, rule, templates=templates or {}, macro_hook=macro_hook) for rule in rules]


def plan_one(
    conversion: Conversion,
    click: Optional[Click],
    rule: PostbackRule,
    *,
    templates: Mapping[str, SourceTemplate],
    macro_hook: Optional[MacroHook] = None,
) -> PlannedPostback:
    """Plan one rule: check it applies, then render its URL, body and headers."""
    method = (rule.method or "GET").upper()

    def skipped(reason: str, url: str = rule.url) -> PlannedPostback:
        return PlannedPostback(rule, "skipped", method, url, rule.body, dict(rule.headers), reason)

    what = describe_rule(rule)
    if not rule.enabled:
        return skipped(f"{what} is disabled")
    if conversion.status not in rule.statuses:
        enabled = ", ".join(rule.statuses) or "none"
        return skipped(f"status {conversion.status} is not enabled for {what} (enabled: {enabled})")
    if click is None:
        return skipped(
            f"click {conversion.subid} is unknown to the postback plugin: the host must call on_click "
            "for every click, or pass conversion.click"
        )
    if uses_click_id(rule) and not usable_click_id(click.params.get("external_id")):
        template = templates.get(rule.template or "") if rule.template else None
        problem = describe_click_id_problem(
            click.params.get("external_id"),
            param=template.click_id_param if template else "external_id",
            source_macro=template.source_macro if template else None,
        )
        return skipped(f"{what} needs the source's click id, but {problem}")
    amount = apply_payout_mode(conversion.payout, rule.payout_mode, rule.payout_value)
    if rule.min_payout is not None and (amount is None or amount < rule.min_payout):
        return skipped(
            f"payout {format_amount(amount) or 'none'} is below {what}'s minimum of {format_amount(rule.min_payout)}"
        )

    values = MacroValues(click, conversion, rule, amount)
    context = ResolveContext(click=click, conversion=conversion, rule=rule)

    def lookup(name: str, argument: Optional[str]) -> Optional[str]:
        if macro_hook is not None:
            value = macro_hook(name, argument, context)
            if value is not None:
                return str(value)
        return values.lookup(name, argument)

    url = render(rule.url, lookup, encoding="url")
    body = render(rule.body, lookup, encoding=body_encoding(rule.body)) if rule.body else None
    headers = {key: render(value, lookup, encoding="text").text for key, value in rule.headers.items()}
    unknown = url.unknown + (body.unknown if body else ())
    scheme = urlsplit(url.text).scheme.lower()
    if scheme not in ("http", "https"):
        return skipped(f"{what} has URL {url.text!r}: only http and https postbacks can be sent", url.text)
    reason = None
    if unknown:
        reason = f"unknown macro{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} rendered empty"
    return PlannedPostback(
        rule, "due", method, url.text, body.text if body else None, headers, reason, unknown
    )
