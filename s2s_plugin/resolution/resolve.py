"""Resolution: which postbacks a conversion fires, and the exact requests. Pure: no I/O.

Given the click, the conversion (with its decided status) and the rules that apply, ``plan`` returns
one ``PlannedPostback`` per rule: due to be sent, or skipped with the reason an operator needs.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Optional
from urllib.parse import urlsplit

from hookspecs import Click, Conversion, PostbackRule, ResolveContext, SourceTemplate
from s2s_plugin.resolution.causes import Cause
from s2s_plugin.resolution.clickid import click_id_of, describe_click_id_problem
from s2s_plugin.resolution.links import DEFAULT_CLICK_ID_PARAM
from s2s_plugin.resolution.macros import find_macros, render
from s2s_plugin.resolution.money import apply_payout_mode, format_amount
from s2s_plugin.resolution.ruleid import RuleId
from s2s_plugin.resolution.states import DeliveryState
from s2s_plugin.resolution.values import DELIVERY_ID_PENDING, MacroValues, canonical_name, did_you_mean

#: A URL that urlsplit would give the http or https scheme (checked without splitting it).
_HTTP_START = re.compile(r"https?://", re.IGNORECASE)

#: ``hook(name, argument, context)``: the ``resolve_macro`` hook, or None.
MacroHook = Callable[[str, Optional[str], ResolveContext], Optional[str]]


@dataclasses.dataclass(frozen=True)
class PlannedPostback:
    """One rule's verdict for one conversion status: ``due`` (to send) or ``skipped``.

    ``cause`` and ``reason`` say why it is skipped; for a due postback, what resolution noticed
    (unknown macros), or None.
    """

    rule: PostbackRule
    state: DeliveryState
    method: str
    url: str
    body: Optional[str]
    headers: Mapping[str, str]
    reason: Optional[str] = None
    unknown_macros: tuple[str, ...] = ()
    cause: Optional[Cause] = None


def describe_rule(rule: PostbackRule) -> str:
    """How an operator would name a rule: "source exo's postback", "campaign summer's postback #3"."""
    rule_id = RuleId.parse(rule.id)
    if rule_id.kind == "source" and rule.source_id:
        return f"source {rule.source_id}'s postback"
    if rule_id.kind == "postback" and rule.campaign_id:
        return f"campaign {rule.campaign_id}'s postback #{rule_id.key}"
    return f"postback rule {rule.id}"


def uses_click_id(rule: PostbackRule) -> bool:
    """Whether the rule's URL or body needs the source's click id (``{external_id}`` or an alias)."""
    return _uses_click_id(rule.url, rule.body)


# Asked for every conversion of a rule: the answer depends on its templates only.
@functools.lru_cache(maxsize=1024)
def _uses_click_id(url: str, body: Optional[str]) -> bool:
    return any(canonical_name(m.name) == "external_id" for m in find_macros(url + (body or "")))


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
    templates = templates or {}
    source = source_template(click, rules, templates)
    return [
        plan_one(conversion, click, rule, templates=templates, macro_hook=macro_hook, source=source) for rule in rules
    ]


def source_template(
    click: Optional[Click], rules: Sequence[PostbackRule], templates: Mapping[str, SourceTemplate]
) -> Optional[SourceTemplate]:
    """The template of the click's traffic source, as the source's own campaign-link settings
    (click-id parameter and macro) change it; None for a custom source with neither.

    Campaign postbacks have no template of their own, but the click id they need still comes from
    the source, so this is what tells an operator which macro belongs in the campaign link.
    """
    if click is None or not click.source_id:
        return None
    for rule in rules:
        if rule.source_id == click.source_id:
            own = own_link_template(templates.get(rule.template or ""), rule)
            if own is not None:
                return own
    return None


def own_link_template(template: Optional[SourceTemplate], rule: PostbackRule) -> Optional[SourceTemplate]:
    """``template`` with the source's own click-id parameter and macro (``rule``'s, where set).

    A custom source that set either gets a template of its own, named after the source, so the
    click id is read from its parameter and a missing one is explained with its macro.
    """
    param = rule.click_id_param or (template.click_id_param if template else DEFAULT_CLICK_ID_PARAM)
    macro = rule.source_macro or (template.source_macro if template else None)
    if template is not None and (param, macro) == (template.click_id_param, template.source_macro):
        return template
    if template is None and param == DEFAULT_CLICK_ID_PARAM and macro is None:
        return None
    base = template or SourceTemplate(name=rule.source_id or rule.id, postback_url=rule.url)
    return dataclasses.replace(base, click_id_param=param, source_macro=macro)


def rule_template(
    rule: PostbackRule, templates: Mapping[str, SourceTemplate], source: Optional[SourceTemplate] = None
) -> Optional[SourceTemplate]:
    """The template that explains ``rule``'s click id: its own (with a source's own click-id
    settings), else the click's source's."""
    if rule.source_id:
        own = own_link_template(templates.get(rule.template or ""), rule)
        if own is not None:
            return own
    elif rule.template and rule.template in templates:
        return templates[rule.template]
    return source


def plan_one(
    conversion: Conversion,
    click: Optional[Click],
    rule: PostbackRule,
    *,
    templates: Mapping[str, SourceTemplate],
    macro_hook: Optional[MacroHook] = None,
    source: Optional[SourceTemplate] = None,
) -> PlannedPostback:
    """Plan one rule: check it applies, then render its URL, body and headers.

    :param source: the click's source template (see ``source_template``), for click-id hints.
    """
    method = (rule.method or "GET").upper()

    def skipped(cause: Cause, reason: str, url: str = rule.url) -> PlannedPostback:
        return PlannedPostback(
            rule, DeliveryState.SKIPPED, method, url, rule.body, dict(rule.headers), reason, cause=cause
        )

    # describe_rule() is called only for a skip reason: most postbacks are due.
    if not rule.enabled:
        return skipped(Cause.RULE_DISABLED, f"{describe_rule(rule)} is disabled")
    if conversion.status not in rule.statuses:
        enabled = ", ".join(rule.statuses) or "none"
        return skipped(
            Cause.STATUS_NOT_ENABLED,
            f"status {conversion.status} is not enabled for {describe_rule(rule)} (enabled: {enabled})",
        )
    if click is None:
        return skipped(
            Cause.CLICK_UNKNOWN,
            f"click {conversion.subid} is unknown to the postback plugin: the host must call on_click "
            "for every click, or pass conversion.click",
        )
    template = rule_template(rule, templates, source)
    param = template.click_id_param if template else "external_id"
    if uses_click_id(rule) and click_id_of(click, param) is None:
        problem = describe_click_id_problem(
            click.params.get(param),
            param=param,
            source_macro=template.source_macro if template else None,
            source_name=(template.title or template.name) if template else None,
        )
        return skipped(Cause.NO_CLICK_ID, f"{describe_rule(rule)} needs the source's click id, but {problem}")
    amount = apply_payout_mode(conversion.payout, rule.payout_mode, rule.payout_value)
    if rule.min_payout is not None and (amount is None or amount < rule.min_payout):
        return skipped(
            Cause.PAYOUT_BELOW_MINIMUM,
            f"payout {format_amount(amount) or 'none'} is below {describe_rule(rule)}'s minimum of {format_amount(rule.min_payout)}",
        )

    values = MacroValues(click, conversion, rule, amount, click_id_param=param)
    lookup: Callable[[str, Optional[str]], Optional[str]] = values.lookup
    if macro_hook is not None:
        hook = macro_hook
        context = ResolveContext(click=click, conversion=conversion, rule=rule)

        def hooked_lookup(name: str, argument: Optional[str]) -> Optional[str]:
            value = hook(name, argument, context)
            return str(value) if value is not None else values.lookup(name, argument)

        lookup = hooked_lookup

    url = render(rule.url, lookup, encoding="url")
    body = render(rule.body, lookup, encoding=body_encoding(rule.body)) if rule.body else None
    headers = {key: render(value, lookup, encoding="header").text for key, value in rule.headers.items()}
    unknown = url.unknown + (body.unknown if body else ())
    # Rendered URLs nearly always start with their scheme: urlsplit only for the others.
    scheme = "http" if _HTTP_START.match(url.text) else urlsplit(url.text).scheme.lower()
    if scheme not in ("http", "https"):
        return skipped(
            Cause.BAD_URL,
            f"{describe_rule(rule)} has URL {url.text!r}: only http and https postbacks can be sent",
            url.text,
        )
    reason = None
    if unknown:
        reason = f"unknown macro{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} rendered empty"
        hints = [hint for hint in (did_you_mean(m) for m in unknown) if hint]
        if hints:
            reason += f" ({'; '.join(hints)})"
    return PlannedPostback(
        rule,
        DeliveryState.DUE,
        method,
        url.text,
        body.text if body else None,
        headers,
        reason,
        unknown,
        Cause.UNKNOWN_MACRO if unknown else None,
    )


def uses_delivery_id(planned: PlannedPostback) -> bool:
    """Whether the rendered request still waits for its delivery's id (``{delivery_id}``)."""
    return (
        DELIVERY_ID_PENDING in planned.url
        or (planned.body is not None and DELIVERY_ID_PENDING in planned.body)
        or any(DELIVERY_ID_PENDING in value for value in planned.headers.values())
    )


def fill_delivery_id(planned: PlannedPostback, delivery_id: int | str) -> PlannedPostback:
    """``planned`` with ``{delivery_id}`` rendered as ``delivery_id``, in the URL, body and headers."""
    value = str(delivery_id)
    return dataclasses.replace(
        planned,
        url=planned.url.replace(DELIVERY_ID_PENDING, value),
        body=planned.body.replace(DELIVERY_ID_PENDING, value) if planned.body is not None else None,
        headers={key: text.replace(DELIVERY_ID_PENDING, value) for key, text in planned.headers.items()},
    )
