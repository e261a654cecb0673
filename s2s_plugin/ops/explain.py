"""``explain SUBID``: the whole chain for one click in plain sentences, the failing step first.

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

The first line (``Explanation.headline``) is the first failing step in that order, so it names the
cause; every step follows as a sentence.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Optional

from sqlalchemy import select

from hookspecs import Click, PostbackRule
from s2s_plugin.delivery.hostlimits import host_statuses
from s2s_plugin.hooks.hookcalls import is_failure_note
from s2s_plugin.resolution.clickid import click_id_of, describe_click_id_problem
from s2s_plugin.resolution.lint import lint_rule
from s2s_plugin.resolution.redact import parse_secrets, redact_url
from s2s_plugin.resolution.resolve import describe_rule, source_template, uses_click_id
from s2s_plugin.storage import tables as t
from s2s_plugin.storage.rows import aware, moment

if TYPE_CHECKING:  # pragma: no cover
    from s2s_plugin.service import PostbackService

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

    ``headline`` is the first problem found in checklist order (or the good news); ``lines`` walk the
    whole checklist; ``problems`` lists every problem, most important first; ``str()`` gives the
    headline and the lines.
    """

    subid: str
    headline: str
    lines: tuple[str, ...]
    problems: tuple[str, ...]
    data: dict[str, Any]

    def __str__(self) -> str:
        return "\n".join((self.headline, *self.lines))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: headline, problems, lines and the facts behind them."""
        return {
            "subid": self.subid,
            "headline": self.headline,
            "problems": list(self.problems),
            "lines": list(self.lines),
            **self.data,
        }


class _Problems:
    """Problems in checklist order; ``first`` is the headline."""

    # Lower rank = earlier in the chain = reported first. A delivery that failed for good (or was not
    # sent) comes before one still being retried, which may yet go through.
    PLUGIN, CONFIG, CLICK_ID, CONVERSIONS, DELIVERY, RETRYING, LINT, FILTERED = range(8)

    def __init__(self) -> None:
        self._items: list[tuple[int, int, str]] = []

    def add(self, rank: int, sentence: str) -> str:
        self._items.append((rank, len(self._items), sentence))
        return sentence

    def drop(self, rank: int) -> None:
        self._items = [item for item in self._items if item[0] != rank]

    def ordered(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(sentence for _rank, _n, sentence in sorted(self._items)))


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


def explain_subid(service: PostbackService, subid: str) -> Explanation:
    """Walk the checklist for ``subid``: click, source, campaign postbacks, click id, conversions and
    their decisions, deliveries and attempts, and what the linter finds in the postbacks."""
    now = time.time()
    click = service.store.load_click(subid)
    if click is None:
        problem = (
            f"Click {subid} is unknown to the postback plugin: the host did not call on_click for it "
            "(or the subid is mistyped)."
        )
        return Explanation(subid, problem, (), (problem,), {"click": None, "conversions": [], "deliveries": []})

    problems = _Problems()
    lines: list[str] = []
    library = service.templates()
    source_rule = service.store.get_source(click.source_id) if click.source_id else None
    campaign_rules = service.store.list_postbacks(click.campaign_id)
    rules = ([source_rule] if source_rule else []) + campaign_rules
    source = source_template(click, rules, library)
    param = source.click_id_param if source else "external_id"

    lines.append(
        f"Click {subid}: campaign {click.campaign_id}, source {click.source_id or '(none)'}, "
        f"at {_when(click.created_at.timestamp())}."
    )
    lines += _configuration(click, source_rule, campaign_rules, problems)
    lines += _click_id(click, rules, source, problems)

    with service.engine.connect() as conn:
        events = conn.execute(select(t.events).where(t.events.c.subid == subid).order_by(t.events.c.id)).all()
        deliveries = conn.execute(select(t.deliveries).where(t.of_subid(subid)).order_by(t.deliveries.c.id)).all()
        attempts = conn.execute(
            select(t.attempts)
            .where(t.attempts.c.delivery_id.in_([d.id for d in deliveries]))
            .order_by(t.attempts.c.delivery_id, t.attempts.c.id)
        ).all()
    # Hosts not answering: their due deliveries wait for a probe, whatever their own schedule says.
    statuses = host_statuses(service.engine, sorted({d.host for d in deliveries if d.state == "due" and d.host}))
    down = {host: status for host, status in statuses.items() if status.is_open}
    by_delivery: dict[int, list[Any]] = {}
    for attempt in attempts:
        by_delivery.setdefault(attempt.delivery_id, []).append(attempt)
    rules_by_id = {rule.id: rule for rule in rules}

    conversion_data, delivery_data = [], []
    shown: set[int] = set()
    if not events:
        lines.append(
            problems.add(
                _Problems.CONVERSIONS,
                "No conversion has arrived for this click: check the affiliate network's postback to the tracker "
                "(its Received postbacks log) and that it sends this subid.",
            )
        )
    else:
        lines.append(f"Conversions ({len(events)} report{'s' if len(events) != 1 else ''} from the network):")
    for event in events:
        lines.append("  " + _event_sentence(event, problems))
        # The deliveries an event queued were written in the same transaction, at the same instant.
        fired = [d for d in deliveries if d.conversion_id == event.conversion_id and d.created_at == event.created_at]
        for row in fired:
            shown.add(row.id)
            lines += _delivery_lines(row, rules_by_id, by_delivery.get(row.id, []), problems, now, library, down)
            delivery_data.append(_delivery_data(row, by_delivery.get(row.id, [])))
        conversion_data.append(
            {
                "at": moment(event.created_at).isoformat(),
                "status": event.status,
                "original_status": event.original_status,
                "tid": event.tid,
                "payout": event.payout,
                "decision": event.decision,
                "reason": event.reason,
                "deliveries": [row.id for row in fired],
            }
        )
    leftover = [row for row in deliveries if row.id not in shown]
    if leftover:
        lines.append("Other deliveries for this click:")
        for row in leftover:
            lines += _delivery_lines(row, rules_by_id, by_delivery.get(row.id, []), problems, now, library, down)
            delivery_data.append(_delivery_data(row, by_delivery.get(row.id, [])))

    warnings = _lint_lines(rules, library, problems)
    lines += warnings

    sendable = [d for d in deliveries if d.state != "skipped"]
    filtered = [d for d in deliveries if d.state == "skipped" and "is not enabled for" in (d.reason or "")]
    if any(d.state in ("delivered", "due", "leased") for d in sendable):
        # Some postbacks went: the ones a status does not fire are a choice, not the answer.
        problems.drop(_Problems.FILTERED)
    ordered = problems.ordered()
    others = f"; {len(filtered)} other(s) are not enabled for the status that arrived" if filtered else ""
    if ordered:
        headline = ordered[0]
    elif sendable and all(d.state == "delivered" for d in sendable):
        headline = f"Every postback for this click was delivered ({len(sendable)}){others}."
    elif sendable:
        headline = f"Postbacks for this click are on their way ({len(sendable)}){others}."
    else:
        headline = "No postback applied to this click's conversions."
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
    return Explanation(subid, headline, tuple(lines), ordered, data)


def _configuration(
    click: Click, source_rule: Optional[PostbackRule], campaign_rules: Sequence[PostbackRule], problems: _Problems
) -> list[str]:
    lines = []
    if click.source_id is None:
        lines.append("Source postback: the click came from no traffic source, so no source postback applies.")
    elif source_rule is None:
        lines.append(
            problems.add(
                _Problems.CONFIG,
                f"Source {click.source_id} has no postback URL set: add one (add_source, or sample-host sources add) "
                "so the source learns about its conversions.",
            )
        )
    else:
        lines.append(f"Source postback: source {click.source_id}'s postback {_rule_sentence(source_rule)}")
        if not source_rule.enabled:
            lines.append(
                problems.add(_Problems.CONFIG, f"Source {click.source_id}'s postback is disabled: enable it to send.")
            )
    if campaign_rules:
        lines.append(f"Campaign postbacks: campaign {click.campaign_id} has {len(campaign_rules)}:")
        lines += [f"  {rule.id} {_rule_sentence(rule)}" for rule in campaign_rules]
    else:
        lines.append(f"Campaign postbacks: campaign {click.campaign_id} has no S2S postbacks of its own.")
    return lines


def _click_id(click: Click, rules: Sequence[PostbackRule], template: Any, problems: _Problems) -> list[str]:
    param = template.click_id_param if template else "external_id"
    value = click_id_of(click, param)
    if value is not None:
        return [f"Click id: the click carried the source's click id, {param}={value}."]
    problem = describe_click_id_problem(
        click.params.get(param),
        param=param,
        source_macro=template.source_macro if template else None,
        source_name=(template.title or template.name) if template else None,
    )
    needing = [r for r in rules if uses_click_id(r)]
    sentence = f"Click id: none usable, {problem}."
    if needing:
        sentence += f" {len(needing)} postback(s) need it, so they are not sent for this click."
        return [problems.add(_Problems.CLICK_ID, sentence)]
    return [sentence + " No postback here needs it."]


def _event_sentence(event: Any, problems: _Problems) -> str:
    network = (
        f" (network said {event.original_status!r})"
        if event.original_status and event.original_status != event.status
        else ""
    )
    tid = f", tid {event.tid}" if event.tid else ", no tid"
    payout = f", payout {event.payout}" if event.payout else ""
    sentence = f"{_when(event.created_at)}: {event.status}{network}{tid}{payout}: {event.reason}."
    if is_failure_note(event.reason):  # a plugin's postback rules are missing for it
        problems.add(_Problems.PLUGIN, sentence)
    return sentence


def _delivery_lines(
    row: Any,
    rules: dict[str, PostbackRule],
    attempts: list[Any],
    problems: _Problems,
    now: float,
    library: Any,
    down: Optional[dict[str, Any]] = None,
) -> list[str]:
    url = redact_url(row.url, parse_secrets(row.secrets))  # marked secrets never reach the log
    rule = rules.get(row.rule_id)
    what = describe_rule(rule) if rule else f"postback rule {row.rule_id}"
    head = f"{what[0].upper()}{what[1:]}, status {row.status} (delivery #{row.id})"
    sent = [a for a in attempts if a.attempt > 0]
    if row.state == "skipped":
        sentence = f"{head}: not sent: {row.reason}."
        # A status the rule does not fire for is a choice, not a fault: reported last.
        rank = _Problems.FILTERED if "is not enabled for" in (row.reason or "") else _Problems.DELIVERY
        problems.add(rank, sentence)
        return [f"    {sentence}"]
    if row.state == "delivered":
        sentence = f"{head}: delivered on attempt {row.attempts}."
    elif row.state == "failed":
        # What the linter finds in the rule is the likely cause of a refusal: say it on the same line.
        hints = [
            w.message
            for w in (lint_rule(rule, library) if rule else [])
            if w.code in ("leftover", "unknown-macro", "source-macro")
        ]
        hint = f" Likely cause: {'; '.join(hints)}." if hints else ""
        sentence = problems.add(
            _Problems.DELIVERY, f"{head}: failed after {row.attempts} attempt(s): {row.reason}.{hint}"
        )
    elif row.state == "leased":
        sentence = f"{head}: being sent now."
    elif down and row.host in down:
        status = down[row.host]
        sentence = problems.add(
            _Problems.RETRYING,
            f"{head}: waiting, {row.attempts} attempt(s) made: {status.describe()}; its postbacks wait without "
            "spending attempts until a probe succeeds.",
        )
    elif row.attempts:
        sentence = problems.add(
            _Problems.RETRYING,
            f"{head}: not delivered yet after {row.attempts} attempt(s): {row.reason}; "
            f"next attempt at {_when(row.next_attempt_at)}{_in(row.next_attempt_at, now)}.",
        )
    else:
        sentence = f"{head}: queued, first attempt at {_when(row.next_attempt_at)}{_in(row.next_attempt_at, now)}."
    lines = [f"    {sentence}", f"      URL: {row.method} {url}"]
    for attempt in sent:
        answer = f"HTTP {attempt.http_status}" if attempt.http_status else (attempt.error or "no answer")
        body = f" {_snippet(attempt.response_body)!r}" if attempt.response_body else ""
        retry = f"; next attempt at {_when(attempt.next_attempt_at)}" if attempt.next_attempt_at else ""
        lines.append(
            f"      attempt {attempt.attempt} at {_when(attempt.started_at)}: {attempt.outcome}, {answer}{body}; {attempt.reason}{retry}"
        )
    return lines


def _delivery_data(row: Any, attempts: list[Any]) -> dict[str, Any]:
    return {
        "delivery_id": row.id,
        "rule_id": row.rule_id,
        "status": row.status,
        "state": row.state,
        "url": redact_url(row.url, parse_secrets(row.secrets)),
        "attempts": row.attempts,
        "reason": row.reason,
        "next_attempt_at": moment(row.next_attempt_at).isoformat() if row.next_attempt_at else None,
        "attempt_log": [
            {
                "attempt": a.attempt,
                "outcome": a.outcome,
                "http_status": a.http_status,
                "response_body": _snippet(a.response_body, 500) or None,
                "reason": a.reason,
                "started_at": moment(a.started_at).isoformat() if a.started_at else None,
            }
            for a in attempts
        ],
    }


def _lint_lines(rules: Sequence[PostbackRule], library: Any, problems: _Problems) -> list[str]:
    lines = []
    for rule in rules:
        for warning in lint_rule(rule, library):
            sentence = f"Check {describe_rule(rule)}: {warning.message}."
            lines.append(sentence)
            if _serious(warning, rule):
                problems.add(_Problems.LINT, sentence)
    return lines


def _serious(warning: Any, rule: PostbackRule) -> bool:
    """Whether a lint finding is a fault for this rule rather than advice."""
    if warning.code == "no-click-id":
        # A campaign postback to a partner or an analytics tool may well key on {subid} alone.
        return rule.source_id is not None
    if warning.code == "unknown-macro":
        # A misspelling; a name that is not built in may be a click parameter the link carries.
        return "did you mean" in warning.message
    return warning.code in _SERIOUS_LINT
