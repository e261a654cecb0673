"""``explain SUBID``: the whole chain for one click as a tree, the failing step first.

The checklist, in the order a postback travels:

1. the click is known to the plugin;
2. the click's traffic source has a postback URL set;
3. the click's campaign has S2S postbacks of its own (or not);
4. the click carried the source's click id;
5. which conversions and statuses arrived, and what was decided for each (new, changed, repeated,
   ignored as reordered or not allowed);
6. for each status that fired: which postbacks it enabled or not, the rendered URL, every attempt
   with the source's answer, and the next retry;
7. what the template linter finds in the postbacks (placeholders left in, unknown macros).

The answer is a tree (``Explanation.tree``, see ``explaintree``): the click, its set-up facts,
each conversion with the postbacks it fired and their attempts, the linter's findings. The first
failing step in checklist order is the headline (``Explanation.headline``), marked once in the
tree, with what to do about it (``Explanation.fix``); the text form is rendered from the tree.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from typing import Any, Optional

from sqlalchemy import Engine, select

from hookspecs import Click, PostbackRule, SourceTemplate
from s2s_plugin.delivery.hostlimits import host_statuses
from s2s_plugin.ops.explaintree import Fix, Node, mark_failing, render_lines, roll_up
from s2s_plugin.resolution.causes import Cause, cause_of
from s2s_plugin.resolution.clickid import click_id_of, describe_click_id_problem
from s2s_plugin.resolution.lint import lint_rule
from s2s_plugin.resolution.redact import parse_secrets, redact_url
from s2s_plugin.resolution.resolve import describe_rule, source_template, uses_click_id
from s2s_plugin.resolution.states import DeliveryState
from s2s_plugin.storage import tables as t
from s2s_plugin.storage.rows import aware, moment
from s2s_plugin.storage.store import Store

# Lint findings that make a postback fail or mean the wrong thing; the others are advice.
_SERIOUS_LINT = {
    "leftover",
    "not-http",
    "unknown-macro",
    "source-macro",
    "double-braces",
    "no-click-id",
    "bad-argument",
    "bad-json",
}


@dataclasses.dataclass(frozen=True)
class Explanation:
    """The answer to "why was (or wasn't) my postback sent?" for one click.

    ``headline`` is the first problem found in checklist order (or the good news); ``tree`` is the
    chain (click, set-up, conversions, postbacks, attempts, linter findings) with that step marked
    ``failing``; ``fix`` says what to change for it; ``lines`` are the tree as text; ``problems``
    lists every problem, most important first; ``str()`` gives the headline and the lines.
    """

    subid: str
    headline: str
    lines: tuple[str, ...]
    problems: tuple[str, ...]
    data: dict[str, Any]
    tree: Optional[Node] = None
    fix: Optional[Fix] = None

    def __str__(self) -> str:
        return "\n".join((self.headline, *self.lines))

    @property
    def failing(self) -> Optional[Node]:
        """The step the headline is about, when it is one of the tree's nodes."""
        return next((node for node in self.tree.walk() if node.failing), None) if self.tree else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: headline, problems, lines, the tree, the fix and the facts behind them."""
        return {
            "subid": self.subid,
            "headline": self.headline,
            "problems": list(self.problems),
            "lines": list(self.lines),
            "tree": self.tree.to_dict() if self.tree else None,
            "fix": self.fix.to_dict() if self.fix else None,
            **self.data,
        }


class _Problems:
    """Problems in checklist order; ``first`` is the headline, with its node and its fix."""

    # Lower rank = earlier in the chain = reported first. A delivery that failed for good (or was not
    # sent) comes before one still being retried, which may yet go through.
    PLUGIN, CONFIG, CLICK_ID, CONVERSIONS, DELIVERY, RETRYING, LINT, FILTERED = range(8)

    def __init__(self) -> None:
        self._items: list[tuple[int, int, str, str, Optional[Fix]]] = []

    def add(self, rank: int, sentence: str, key: str = "", fix: Optional[Fix] = None) -> str:
        self._items.append((rank, len(self._items), sentence, key, fix))
        return sentence

    def drop(self, rank: int) -> None:
        self._items = [item for item in self._items if item[0] != rank]

    def ordered(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(item[2] for item in sorted(self._items)))

    def first(self) -> tuple[str, Optional[Fix]]:
        """The failing step's node key and fix ("" and None when nothing is wrong)."""
        if not self._items:
            return "", None
        _rank, _n, _sentence, key, fix = min(self._items)
        return key, fix


def _when(seconds: Optional[float]) -> str:
    moment = aware(seconds)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "-"


def _in(seconds: Optional[float], now: float) -> str:
    if seconds is None:
        return ""
    delta = seconds - now
    if delta <= 0:
        return " (due now)"
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if delta >= size:
            return f" (in {delta / size:.0f} {unit})"
    return f" (in {delta:.0f} s)"


def _snippet(text: Optional[str], limit: int = 200) -> str:
    cleaned = " ".join((text or "").split())
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"


def _rule_sentence(rule: PostbackRule) -> str:
    state = "" if rule.enabled else " (disabled)"
    template = f", template {rule.template}" if rule.template else ""
    payout = ""
    if rule.payout_mode == "fixed":
        payout = f", reports a fixed {rule.payout_value}"
    elif rule.payout_mode == "percent":
        payout = f", reports {rule.payout_value}% of the payout"
    if rule.min_payout is not None:
        payout += f", only from a payout of {rule.min_payout}"
    statuses = ", ".join(rule.statuses) or "no status"
    return f"fires for {statuses}{template}{payout}{state}: {rule.method} {redact_url(rule.url, rule.secrets)}"


def _rule_fix(
    rule_id: str, campaign_id: Optional[str], setting: str, action: str, delivery_id: Optional[int] = None
) -> Fix:
    kind, _, key = rule_id.partition(":")
    source_id = key if kind == "source" else None
    return Fix(action, setting, rule_id=rule_id, source_id=source_id, campaign_id=campaign_id, delivery_id=delivery_id)


def explain_subid(subid: str, *, store: Store, engine: Engine, templates: Mapping[str, SourceTemplate]) -> Explanation:
    """Walk the checklist for ``subid``: click, source, campaign postbacks, click id, conversions and
    their decisions, deliveries and attempts, and what the linter finds in the postbacks.

    :param store: the click and the rules that apply to it.
    :param engine: the outbox's database (conversions, deliveries, attempts, hosts' circuits).
    :param templates: the template library, for the source's template and the linter.
    """
    now = time.time()
    click = store.load_click(subid)
    if click is None:
        problem = (
            f"Click {subid} is unknown to the postback plugin: the host did not call on_click for it "
            "(or the subid is mistyped)."
        )
        root = Node(
            "click", "failed", f"Click {subid}", "unknown to the postback plugin", problem, key="click", failing=True
        )
        fix = Fix("Check the subid; if it is right, make the host call on_click for every click it records.", "click")
        return Explanation(
            subid, problem, (), (problem,), {"click": None, "conversions": [], "deliveries": []}, root, fix
        )

    problems = _Problems()
    library = templates
    source_rule = store.get_source(click.source_id) if click.source_id else None
    campaign_rules = store.list_postbacks(click.campaign_id)
    rules = ([source_rule] if source_rule else []) + campaign_rules
    source = source_template(click, rules, library)
    param = source.click_id_param if source else "external_id"

    children: list[Node] = []
    children += _configuration(click, source_rule, campaign_rules, problems)
    children.append(_click_id(click, rules, source, problems))

    with engine.connect() as conn:
        events = conn.execute(select(t.events).where(t.events.c.subid == subid).order_by(t.events.c.id)).all()
        deliveries = conn.execute(select(t.deliveries).where(t.of_subid(subid)).order_by(t.deliveries.c.id)).all()
        attempts = conn.execute(
            select(t.attempts)
            .where(t.attempts.c.delivery_id.in_([d.id for d in deliveries]))
            .order_by(t.attempts.c.delivery_id, t.attempts.c.id)
        ).all()
    # Hosts not answering: their due deliveries wait for a probe, whatever their own schedule says.
    statuses = host_statuses(engine, sorted({d.host for d in deliveries if d.state == DeliveryState.DUE and d.host}))
    down = {host: status for host, status in statuses.items() if status.is_open}
    by_delivery: dict[int, list[Any]] = {}
    for attempt in attempts:
        by_delivery.setdefault(attempt.delivery_id, []).append(attempt)
    rules_by_id = {rule.id: rule for rule in rules}

    conversion_data, delivery_data = [], []
    shown: set[int] = set()
    if not events:
        sentence = problems.add(
            _Problems.CONVERSIONS,
            "No conversion has arrived for this click: check the affiliate network's postback to the tracker "
            "(its Received postbacks log) and that it sends this subid.",
            "no-conversion",
            Fix(
                "Check that the affiliate network's postback to the tracker sends this subid (its Received "
                "postbacks log shows what arrived).",
                "network_postback",
                campaign_id=click.campaign_id,
            ),
        )
        children.append(
            Node("no-conversion", "problem", "No conversion", "none has arrived", sentence, key="no-conversion")
        )
    for event in events:
        # The deliveries an event queued were written in the same transaction, at the same instant.
        fired = [d for d in deliveries if d.conversion_id == event.conversion_id and d.created_at == event.created_at]
        postbacks = []
        for row in fired:
            shown.add(row.id)
            postbacks.append(
                _delivery_node(row, rules_by_id, by_delivery.get(row.id, []), problems, now, library, down)
            )
            delivery_data.append(_delivery_data(row, by_delivery.get(row.id, [])))
        children.append(_event_node(event, tuple(postbacks), problems))
        conversion_data.append(
            {
                "at": moment(event.created_at).isoformat(),
                "status": event.status,
                "original_status": event.original_status,
                "tid": event.tid,
                "payout": event.payout,
                "decision": event.decision,
                "reason": event.reason,
                "cause": event.cause,
                "deliveries": [row.id for row in fired],
            }
        )
    for row in deliveries:
        if row.id not in shown:
            children.append(_delivery_node(row, rules_by_id, by_delivery.get(row.id, []), problems, now, library, down))
            delivery_data.append(_delivery_data(row, by_delivery.get(row.id, [])))

    children += _lint_nodes(rules, library, problems)

    sendable = [d for d in deliveries if d.state != DeliveryState.SKIPPED]
    filtered = [d for d in deliveries if d.state == DeliveryState.SKIPPED and _cause(d) == Cause.STATUS_NOT_ENABLED]
    if any(d.state != DeliveryState.FAILED for d in sendable):
        # Some postbacks went: the ones a status does not fire are a choice, not the answer.
        problems.drop(_Problems.FILTERED)
    ordered = problems.ordered()
    others = f"; {len(filtered)} other(s) are not enabled for the status that arrived" if filtered else ""
    if ordered:
        headline = ordered[0]
    elif sendable and all(d.state == DeliveryState.DELIVERED for d in sendable):
        headline = f"Every postback for this click was delivered ({len(sendable)}){others}."
    elif sendable:
        headline = f"Postbacks for this click are on their way ({len(sendable)}){others}."
    else:
        headline = "No postback applied to this click's conversions."
    failing_key, first_fix = problems.first()
    events_state = roll_up(
        [node.state for node in children if node.kind in ("conversion", "postback", "no-conversion")]
    )
    root = Node(
        "click",
        # A click whose only trouble is a retry shows the retry; any other problem shows as one.
        events_state if not ordered or events_state in ("failed", "paused", "retrying") else "problem",
        f"Click {subid}",
        f"campaign {click.campaign_id}, source {click.source_id or 'none'}",
        f"Click {subid}: campaign {click.campaign_id}, source {click.source_id or '(none)'}, "
        f"at {_when(click.created_at.timestamp())}.",
        at=click.created_at,
        children=tuple(children),
        key="click",
    )
    root = mark_failing(root, failing_key)
    data = {
        "click": {
            "campaign_id": click.campaign_id,
            "source_id": click.source_id,
            "params": dict(click.params),
            "click_id": click_id_of(click, param),
        },
        "rules": [
            {
                "rule_id": r.id,
                "statuses": list(r.statuses),
                "enabled": r.enabled,
                "url": redact_url(r.url, r.secrets),
                "method": r.method,
            }
            for r in rules
        ],
        "conversions": conversion_data,
        "deliveries": delivery_data,
    }
    return Explanation(subid, headline, tuple(render_lines(root)), ordered, data, root, first_fix)


def _configuration(
    click: Click, source_rule: Optional[PostbackRule], campaign_rules: Sequence[PostbackRule], problems: _Problems
) -> list[Node]:
    nodes = []
    if click.source_id is None:
        nodes.append(
            Node(
                "setup",
                "info",
                "Source postback",
                "none: the click came from no traffic source",
                "Source postback: the click came from no traffic source, so no source postback applies.",
                key="source-postback",
            )
        )
    elif source_rule is None:
        sentence = problems.add(
            _Problems.CONFIG,
            f"Source {click.source_id} has no postback URL set: add one (add_source, or sample-host sources add) "
            "so the source learns about its conversions.",
            "source-postback",
            Fix(
                f"Give source {click.source_id} a postback URL.",
                "source_postback",
                rule_id=f"source:{click.source_id}",
                source_id=click.source_id,
                campaign_id=click.campaign_id,
            ),
        )
        nodes.append(
            Node("setup", "problem", "Source postback", "no postback URL set", sentence, key="source-postback")
        )
    else:
        sentence = f"Source postback: source {click.source_id}'s postback {_rule_sentence(source_rule)}"
        summary = f"source {click.source_id}'s fires for {', '.join(source_rule.statuses) or 'no status'}"
        nodes.append(
            Node(
                "setup",
                "ok" if source_rule.enabled else "problem",
                "Source postback",
                summary,
                sentence,
                key="source-postback",
            )
        )
        if not source_rule.enabled:
            disabled = problems.add(
                _Problems.CONFIG,
                f"Source {click.source_id}'s postback is disabled: enable it to send.",
                "source-postback",
                _rule_fix(source_rule.id, click.campaign_id, "enabled", f"Enable source {click.source_id}'s postback."),
            )
            nodes.append(
                Node("setup", "problem", "Source postback disabled", "disabled", disabled, key="source-disabled")
            )
    if campaign_rules:
        rule_nodes = tuple(
            Node(
                "rule",
                "info" if rule.enabled else "skipped",
                rule.id,
                f"fires for {', '.join(rule.statuses) or 'no status'}{'' if rule.enabled else ' (disabled)'}",
                f"{rule.id} {_rule_sentence(rule)}",
                key=f"rule-{rule.id}",
            )
            for rule in campaign_rules
        )
        nodes.append(
            Node(
                "setup",
                "ok",
                "Campaign postbacks",
                f"campaign {click.campaign_id} has {len(campaign_rules)}",
                f"Campaign postbacks: campaign {click.campaign_id} has {len(campaign_rules)}:",
                children=rule_nodes,
                key="campaign-postbacks",
            )
        )
    else:
        nodes.append(
            Node(
                "setup",
                "info",
                "Campaign postbacks",
                f"campaign {click.campaign_id} has none",
                f"Campaign postbacks: campaign {click.campaign_id} has no S2S postbacks of its own.",
                key="campaign-postbacks",
            )
        )
    return nodes


def _click_id(click: Click, rules: Sequence[PostbackRule], template: Any, problems: _Problems) -> Node:
    param = template.click_id_param if template else "external_id"
    value = click_id_of(click, param)
    if value is not None:
        sentence = f"Click id: the click carried the source's click id, {param}={value}."
        return Node("setup", "ok", "Click id", f"{param}={value}", sentence, key="click-id")
    problem = describe_click_id_problem(
        click.params.get(param),
        param=param,
        source_macro=template.source_macro if template else None,
        source_name=(template.title or template.name) if template else None,
    )
    received = click.params.get(param)
    summary = f"{param} is {received!r}, not a click id" if received else f"the click has no {param}"
    needing = [r for r in rules if uses_click_id(r)]
    sentence = f"Click id: none usable, {problem}."
    if needing:
        sentence += f" {len(needing)} postback(s) need it, so they are not sent for this click."
        macro = template.source_macro if template and template.source_macro else None
        example = f"?{param}={macro}" if macro else f"?{param}= with the source's click-id macro"
        fix = _rule_fix(
            f"source:{click.source_id}" if click.source_id else needing[0].id,
            click.campaign_id,
            "campaign_link",
            f"Make sure the source opens campaign {click.campaign_id}'s link with its click id ({example}); "
            "a click opened by hand or by a bot cannot be reported.",
        )
        problems.add(_Problems.CLICK_ID, sentence, "click-id", fix)
        return Node(
            "setup",
            "problem",
            "Click id",
            summary + f": {len(needing)} postback(s) cannot be sent",
            sentence,
            key="click-id",
            cause="click-id",
        )
    return Node(
        "setup",
        "info",
        "Click id",
        summary + ": no postback needs it",
        sentence + " No postback here needs it.",
        key="click-id",
    )


def _event_node(event: Any, postbacks: tuple[Node, ...], problems: _Problems) -> Node:
    network = (
        f" (network said {event.original_status!r})"
        if event.original_status and event.original_status != event.status
        else ""
    )
    tid = f", tid {event.tid}" if event.tid else ", no tid"
    payout = f", payout {event.payout}" if event.payout else ""
    sentence = f"{_when(event.created_at)}: {event.status}{network}{tid}{payout}: {event.reason}."
    key = f"event-{event.id}"
    # A status the rule does not fire for is a choice: it does not colour the conversion.
    state = roll_up(["ignored" if n.cause == Cause.STATUS_NOT_ENABLED else n.state for n in postbacks], "ignored")
    if event.cause == Cause.PLUGIN_FAILED:  # a plugin's postback rules are missing for it
        problems.add(
            _Problems.PLUGIN,
            sentence,
            key,
            Fix("Fix or remove the plugin named in the reason; conversions it missed can then be resent.", "plugin"),
        )
        state = "problem"
    title = event.status + (f" (network: {event.original_status})" if network else "")
    title += f" · payout {event.payout}" if event.payout else ""
    return Node(
        "conversion",
        state,
        title,
        event.reason or "",
        sentence,
        at=aware(event.created_at),
        children=postbacks,
        key=key,
    )


def _cause(row: Any) -> Optional[Cause]:
    """Why a delivery was not sent, failed, is retried or waits: its stored cause code (None when
    it went, is being sent, or has none)."""
    if row.state in (DeliveryState.DELIVERED, DeliveryState.LEASED):
        return None
    return cause_of(row.cause)


#: Short sentences for each cause, for a picture (the reason keeps the details).
_CAUSE_SUMMARIES = {
    Cause.STATUS_NOT_ENABLED: "the status is not enabled for it",
    Cause.NO_CLICK_ID: "the click has no usable click id",
    Cause.RULE_DISABLED: "the postback is disabled",
    Cause.PAYOUT_BELOW_MINIMUM: "the payout is below its minimum",
    Cause.CLICK_UNKNOWN: "the click was unknown to the plugin",
    Cause.BAD_URL: "its URL is not http or https",
}


def _cause_setting(cause: Optional[Cause]) -> str:
    """The setting (``explaintree.SETTINGS``) that fixes a cause, from the catalogue; a rule's
    postback URL when the fix lies elsewhere (a delivery setting) or there is none."""
    fix = cause.info.fix if cause else None
    return fix.setting if fix is not None and fix.scope not in ("settings", "delivery") else "postback_url"


def _failure_fix(
    cause: Optional[Cause], what: str, rule_id: str, campaign_id: Optional[str], delivery_id: int, hinted: bool
) -> Fix:
    """What to do about a delivery that failed for good: the linter's likely cause first, else the
    catalogue's advice for its cause, and then resend it."""
    resend = f"then resend delivery #{delivery_id}."
    catalogue = cause.info.fix if cause else None
    if hinted or catalogue is None:
        hint = " (see the likely cause)" if hinted else ""
        return _rule_fix(rule_id, campaign_id, "postback_url", f"Correct {what}'s URL{hint}, {resend}", delivery_id)
    advice = catalogue.advice.rstrip(".")
    if catalogue.scope in ("rule", "source"):
        return _rule_fix(rule_id, campaign_id, catalogue.setting, f"{advice}; {resend}", delivery_id)
    if catalogue.scope == "settings":  # an install() keyword or S2S_* variable: no page changes it
        return _rule_fix(
            rule_id,
            campaign_id,
            "delivery_settings",
            f"{advice} (delivery setting {catalogue.setting}); {resend}",
            delivery_id,
        )
    return _rule_fix(rule_id, campaign_id, catalogue.setting, f"{advice}.", delivery_id)


def _delivery_node(
    row: Any,
    rules: dict[str, PostbackRule],
    attempts: list[Any],
    problems: _Problems,
    now: float,
    library: Any,
    down: Optional[dict[str, Any]] = None,
) -> Node:
    url = redact_url(row.url, parse_secrets(row.secrets))  # marked secrets never reach the log
    rule = rules.get(row.rule_id)
    what = describe_rule(rule) if rule else f"postback rule {row.rule_id}"
    What = f"{what[0].upper()}{what[1:]}"
    head = f"{What}, status {row.status} (delivery #{row.id})"
    title = f"{What} · {row.status}"
    key = f"delivery-{row.id}"
    cause = _cause(row)
    campaign_id = rule.campaign_id if rule and rule.campaign_id else None
    sent = [a for a in attempts if a.attempt > 0]
    last_entry = attempts[-1].id if attempts else None
    last = sent[-1] if sent else None
    at = aware(last.started_at if last and last.started_at else row.created_at)

    def fix(action: str) -> Fix:
        return _rule_fix(row.rule_id, campaign_id, _cause_setting(cause), action, row.id)

    if row.state == DeliveryState.SKIPPED:
        sentence = f"{head}: not sent: {row.reason}."
        # A status the rule does not fire for is a choice, not a fault: reported last.
        if cause == Cause.STATUS_NOT_ENABLED:
            problems.add(
                _Problems.FILTERED,
                sentence,
                key,
                fix(f"Enable status {row.status} for {what} if the source should hear of it."),
            )
        elif cause == Cause.NO_CLICK_ID:
            # The click id step above is the cause: this delivery is where it shows.
            problems.add(
                _Problems.DELIVERY,
                sentence,
                "click-id",
                fix(f"Make sure the source opens the campaign link with its click id, so {what} can be sent."),
            )
        else:
            problems.add(
                _Problems.DELIVERY, sentence, key, fix(f"Change {what}'s settings so it applies, then resend.")
            )
        summary = f"not sent: {_CAUSE_SUMMARIES[cause] if cause in _CAUSE_SUMMARIES else _snippet(row.reason, 80)}"
        # The click id step says why at length; a postback it stopped only points there.
        note = "See the click id step above." if cause == Cause.NO_CLICK_ID else f"Not sent: {row.reason}."
        return Node(
            "postback",
            "skipped",
            title,
            summary,
            sentence,
            at=at,
            note=note,
            key=key,
            cause=cause,
            entry_id=last_entry,
            delivery_id=row.id,
        )
    fix_now: Optional[Fix] = None
    rank: Optional[int] = None
    if row.state == DeliveryState.DELIVERED:
        state, summary, tail = "delivered", f"delivered on attempt {row.attempts}", ""
    elif row.state == DeliveryState.FAILED:
        # What the linter finds in the rule is the likely cause of a refusal: say it on the same line.
        hints = [
            w.message
            for w in (lint_rule(rule, library) if rule else [])
            if w.code in ("leftover", "unknown-macro", "source-macro")
        ]
        hint = f" Likely cause: {'; '.join(hints)}." if hints else ""
        state, summary = "failed", f"failed after {row.attempts} attempt(s): {_answer(last)}"
        tail = f"failed after {row.attempts} attempt(s): {row.reason}.{hint}"
        rank = _Problems.DELIVERY
        fix_now = _failure_fix(cause, what, row.rule_id, campaign_id, row.id, bool(hints))
    elif row.state == DeliveryState.LEASED:
        state, summary, tail = "sending", "being sent now", ""
    elif down and row.host in down:
        state, summary = "paused", f"waiting: source host {row.host} is not answering"
        tail = (
            f"waiting, {row.attempts} attempt(s) made: {down[row.host].describe()}; its postbacks wait without "
            "spending attempts until a probe succeeds."
        )
        rank = _Problems.RETRYING
        fix_now = _rule_fix(
            row.rule_id,
            campaign_id,
            "host",
            f"Nothing to change here: the postback goes out when {row.host} answers again; ask the source "
            "if it stays down.",
            row.id,
        )
    elif row.attempts:
        state = "retrying"
        summary = f"retrying after {row.attempts} attempt(s), next{_in(row.next_attempt_at, now) or ' -'}"
        tail = (
            f"not delivered yet after {row.attempts} attempt(s): {row.reason}; "
            f"next attempt at {_when(row.next_attempt_at)}{_in(row.next_attempt_at, now)}."
        )
        rank = _Problems.RETRYING
        fix_now = _rule_fix(
            row.rule_id,
            campaign_id,
            "host",
            f"Nothing to change unless the source keeps refusing: it is retried on schedule, or resend "
            f"delivery #{row.id} now.",
            row.id,
        )
    else:
        state, summary = "queued", f"queued, first attempt{_in(row.next_attempt_at, now) or ' soon'}"
        tail = f"queued, first attempt at {_when(row.next_attempt_at)}{_in(row.next_attempt_at, now)}."
    sentence = f"{head}: {tail or summary + '.'}"
    if rank is not None:
        problems.add(rank, sentence, key, fix_now)
    return Node(
        "postback",
        state,
        title,
        summary,
        sentence,
        at=at,
        details=(f"URL: {row.method} {url}",),
        note=tail[:1].upper() + tail[1:] if tail else "",
        children=tuple(_attempt_node(attempt) for attempt in sent),
        key=key,
        cause=cause,
        entry_id=last_entry,
        delivery_id=row.id,
    )


def _answer(attempt: Any) -> str:
    if attempt is None:
        return "no attempt"
    return f"HTTP {attempt.http_status}" if attempt.http_status else (attempt.error or "no answer")


_ATTEMPT_STATES = {"delivered": "delivered", "retrying": "retrying", "failed": "failed", "skipped": "skipped"}


def _attempt_node(attempt: Any) -> Node:
    answer = _answer(attempt)
    body = f" {_snippet(attempt.response_body)!r}" if attempt.response_body else ""
    retry = f"; next attempt at {_when(attempt.next_attempt_at)}" if attempt.next_attempt_at else ""
    sentence = f"attempt {attempt.attempt} at {_when(attempt.started_at)}: {attempt.outcome}, {answer}{body}; {attempt.reason}{retry}"
    details = [f"Reason: {attempt.reason}"] if attempt.reason else []
    if attempt.response_body:
        details.append(f"Answer: {_snippet(attempt.response_body, 500)}")
    if attempt.next_attempt_at:
        details.append(f"Next attempt at {_when(attempt.next_attempt_at)}")
    return Node(
        "attempt",
        _ATTEMPT_STATES.get(attempt.outcome, "info"),
        f"Attempt {attempt.attempt}",
        f"{attempt.outcome}, {answer}",
        sentence,
        at=aware(attempt.started_at),
        details=tuple(details),
        key=f"attempt-{attempt.id}",
        entry_id=attempt.id,
    )


def _delivery_data(row: Any, attempts: list[Any]) -> dict[str, Any]:
    return {
        "delivery_id": row.id,
        "rule_id": row.rule_id,
        "status": row.status,
        "state": row.state,
        "url": redact_url(row.url, parse_secrets(row.secrets)),
        "attempts": row.attempts,
        "reason": row.reason,
        "cause": row.cause,
        "next_attempt_at": moment(row.next_attempt_at).isoformat() if row.next_attempt_at else None,
        "attempt_log": [
            {
                "attempt": a.attempt,
                "outcome": a.outcome,
                "http_status": a.http_status,
                "response_body": _snippet(a.response_body, 500) or None,
                "reason": a.reason,
                "cause": a.cause,
                "started_at": moment(a.started_at).isoformat() if a.started_at else None,
            }
            for a in attempts
        ],
    }


def _lint_nodes(rules: Sequence[PostbackRule], library: Any, problems: _Problems) -> list[Node]:
    nodes = []
    for rule in rules:
        what = describe_rule(rule)
        for n, warning in enumerate(lint_rule(rule, library)):
            sentence = f"Check {what}: {warning.message}."
            key = f"check-{rule.id}-{n}"
            serious = _serious(warning, rule)
            if serious:
                problems.add(
                    _Problems.LINT,
                    sentence,
                    key,
                    _rule_fix(rule.id, rule.campaign_id, "postback_url", f"Correct {what}'s URL."),
                )
            title = f"Check {what}"
            nodes.append(
                Node(
                    "check",
                    "problem" if serious else "advice",
                    title,
                    warning.message,
                    sentence,
                    key=key,
                    cause=warning.code,
                )
            )
    return nodes


def _serious(warning: Any, rule: PostbackRule) -> bool:
    """Whether a lint finding is a fault for this rule rather than advice."""
    if warning.code == "no-click-id":
        # A campaign postback to a partner or an analytics tool may well key on {subid} alone.
        return rule.source_id is not None
    if warning.code == "unknown-macro":
        # A misspelling; a name that is not built in may be a click parameter the link carries.
        return "did you mean" in warning.message
    return warning.code in _SERIOUS_LINT
