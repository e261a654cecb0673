"""``explain SUBID``: the whole chain for one click in plain sentences, the failing step first."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Optional

from sqlalchemy import select

from . import tables as t
from .clickid import describe_click_id_problem, usable_click_id
from .hookcalls import is_failure_note
from .resolve import describe_rule, uses_click_id
from .redact import parse_secrets, redact_url
from .rows import aware

if TYPE_CHECKING:  # pragma: no cover
    from .service import PostbackService


@dataclasses.dataclass(frozen=True)
class Explanation:
    """The answer to "why was (or wasn't) my postback sent?" for one click.

    ``headline`` is the first problem found (or the good news); ``str()`` gives the whole text.
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
        return {"subid": self.subid, "headline": self.headline, "problems": list(self.problems), "lines": list(self.lines), **self.data}


def _when(seconds: Optional[float]) -> str:
    moment = aware(seconds)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "-"


def explain_subid(service: "PostbackService", subid: str) -> Explanation:
    """Walk the checklist for ``subid``: click, source, campaign postbacks, conversions, deliveries."""
    lines: list[str] = []
    problems: list[str] = []
    click = service.store.load_click(subid)
    if click is None:
        problem = (
            f"Click {subid} is unknown to the postback plugin: the host did not call on_click for it "
            "(or the subid is mistyped)."
        )
        return Explanation(subid, problem, (), (problem,), {"click": None, "deliveries": []})

    lines.append(f"Click {subid}: campaign {click.campaign_id}, source {click.source_id or '(none)'}, at {_when(click.created_at.timestamp())}.")
    source_rule = service.store.get_source(click.source_id) if click.source_id else None
    campaign_rules = service.store.list_postbacks(click.campaign_id)
    templates = service.templates()

    external_id = click.params.get("external_id")
    if usable_click_id(external_id):
        lines.append(f"The click carried the source's click id: external_id={external_id}.")
    else:
        template = templates.get(source_rule.template) if source_rule and source_rule.template else None
        problem = describe_click_id_problem(external_id, "external_id", template.source_macro if template else None)
        needing = [r for r in ([source_rule] if source_rule else []) + campaign_rules if uses_click_id(r)]
        sentence = f"The click has no usable click id: {problem}."
        if needing:
            sentence += f" {len(needing)} postback(s) need it and will be skipped."
            problems.append(sentence)
        lines.append(sentence)

    if click.source_id is None:
        lines.append("The click came from no traffic source, so no source postback applies.")
    elif source_rule is None:
        problem = f"Source {click.source_id} has no postback URL set: add one (add_source) so its conversions are reported."
        problems.append(problem)
        lines.append(problem)
    else:
        state = "disabled" if not source_rule.enabled else "enabled"
        lines.append(
            f"Source {click.source_id} has a postback ({state}, template {source_rule.template or 'none'}) for "
            f"statuses {', '.join(source_rule.statuses)}: {redact_url(source_rule.url, source_rule.secrets)}"
        )
    if campaign_rules:
        for rule in campaign_rules:
            lines.append(f"Campaign {click.campaign_id} postback {rule.id} ({rule.method}) for statuses {', '.join(rule.statuses)}: {redact_url(rule.url, rule.secrets)}")
    else:
        lines.append(f"Campaign {click.campaign_id} has no S2S postbacks of its own.")

    with service.engine.connect() as conn:
        events = conn.execute(select(t.events).where(t.events.c.subid == subid).order_by(t.events.c.id)).all()
        deliveries = conn.execute(select(t.deliveries).where(t.deliveries.c.subid == subid).order_by(t.deliveries.c.id)).all()
        attempts = conn.execute(
            select(t.attempts)
            .where(t.attempts.c.delivery_id.in_([d.id for d in deliveries]))
            .order_by(t.attempts.c.delivery_id, t.attempts.c.id)
        ).all()

    if not events:
        problem = "No conversion has arrived for this click: check the affiliate network's postback to the tracker."
        problems.append(problem)
        lines.append(problem)
    for event in events:
        network = f" (network said {event.original_status!r})" if event.original_status and event.original_status != event.status else ""
        tid = f", tid {event.tid}" if event.tid else ""
        payout = f", payout {event.payout}" if event.payout else ""
        sentence = f"{_when(event.created_at)}: conversion status {event.status}{network}{tid}{payout}: {event.reason}."
        if is_failure_note(event.reason):  # a plugin's postback rules are missing for it
            problems.append(sentence)
        lines.append(sentence)

    by_delivery: dict[int, list[Any]] = {}
    for attempt in attempts:
        by_delivery.setdefault(attempt.delivery_id, []).append(attempt)
    rules = {r.id: r for r in ([source_rule] if source_rule else []) + campaign_rules}
    delivery_data = []
    filtered: list[str] = []
    for row in deliveries:
        url = redact_url(row.url, parse_secrets(row.secrets))  # marked secrets never reach the log
        rule = rules.get(row.rule_id)
        what = describe_rule(rule) if rule else f"postback rule {row.rule_id}"
        head = f"Delivery #{row.id}, {what}, status {row.status}: "
        if row.state == "skipped":
            sentence = head + f"not sent: {row.reason}."
            # A status the rule does not fire for is a choice, not a fault: list it after real faults.
            (filtered if "is not enabled for" in (row.reason or "") else problems).append(sentence)
        elif row.state == "delivered":
            sentence = head + f"delivered after {row.attempts} attempt(s) to {url}"
        elif row.state == "failed":
            sentence = head + f"failed after {row.attempts} attempt(s): {row.reason}. URL: {url}"
            problems.append(sentence)
        elif row.state == "leased":
            sentence = head + f"being sent now to {url}"
        elif row.attempts:
            sentence = head + f"waiting to retry at {_when(row.next_attempt_at)} after {row.attempts} attempt(s): {row.reason}. URL: {url}"
            problems.append(sentence)
        else:
            sentence = head + f"queued, due at {_when(row.next_attempt_at)}: {url}"
        lines.append(sentence)
        for attempt in by_delivery.get(row.id, []):
            if attempt.attempt == 0:
                continue
            answer = f"HTTP {attempt.http_status}" if attempt.http_status else (attempt.error or "no answer")
            body = f" {(attempt.response_body or '').strip()[:200]!r}" if attempt.response_body else ""
            lines.append(f"  attempt {attempt.attempt} at {_when(attempt.started_at)}: {attempt.outcome}, {answer}{body}; {attempt.reason}")
        delivery_data.append(
            {
                "delivery_id": row.id, "rule_id": row.rule_id, "status": row.status, "state": row.state,
                "url": url, "attempts": row.attempts, "reason": row.reason,
                "next_attempt_at": aware(row.next_attempt_at).isoformat() if row.next_attempt_at else None,
            }
        )
    problems.extend(filtered)
    if problems:
        headline = problems[0]
    elif deliveries:
        headline = "Every postback for this click was delivered." if all(d.state == "delivered" for d in deliveries) else "Postbacks for this click are on their way."
    else:
        headline = "No postback applied to this click's conversions."
    data = {"click": {"campaign_id": click.campaign_id, "source_id": click.source_id, "params": dict(click.params)}, "deliveries": delivery_data}
    return Explanation(subid, headline, tuple(lines), tuple(problems), data)
