"""The shape of an explanation: one tree per click, and its plain-text form.

``explain SUBID`` builds a tree of ``Node`` objects: the click at the root; under it the set-up
that decides what can be sent (the source's postback, the campaign's postbacks, the click id), then
each conversion report the network sent, under each the postbacks (deliveries) it fired, under each
delivery its attempts; last, what the template linter finds in the postbacks. Every node carries
its state, its time, a short summary for a picture of the chain and the full sentence for the text
form. The step that failed first is marked once (``Node.failing``) and the ``Fix`` says what to
change and where.

Everything here is pure: pages draw the tree, the CLI prints ``render_lines``; neither reads the
database again.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from typing import Any, Optional

#: Node states, with the symbol a picture shows for each and the word a screen reader says.
STATES: dict[str, tuple[str, str]] = {
    "delivered": ("✓", "delivered"),
    "ok": ("✓", "fine"),
    "retrying": ("↻", "retrying"),
    "queued": ("…", "queued"),
    "sending": ("→", "being sent"),
    "paused": ("⏸", "host paused"),
    "failed": ("✗", "failed"),
    "problem": ("✗", "problem"),
    "skipped": ("–", "not sent"),
    "ignored": ("–", "nothing sent"),
    "advice": ("!", "advice"),
    "info": ("•", ""),
}

# Worst first: the state a conversion (or the click) shows for the postbacks under it. A postback
# not sent is final, so it weighs more than one still retrying.
_ROLL_UP = ("failed", "problem", "skipped", "paused", "retrying", "sending", "queued", "delivered", "ignored")

#: Where a fix is made: the setting an operator changes (hosts turn it into a link).
SETTINGS = (
    "campaign_link",  # the link the source is given, with its click-id macro
    "postback_url",  # a postback rule's URL (placeholders, macros, the address)
    "statuses",  # the statuses a postback rule fires for
    "enabled",  # a postback rule switched off
    "payout",  # a postback rule's payout mode or minimum payout
    "source_postback",  # a source without a postback
    "network_postback",  # the affiliate network's postback to the tracker
    "plugin",  # a third-party plugin that failed
    "host",  # the source's server is not answering: nothing to change here, it is retried
    "click",  # the host tracker does not report clicks to the plugin
    "delivery_settings",  # an install() keyword or S2S_* variable (timeouts, max_age...)
    "resend",  # nothing to change: send the postback again
)


@dataclasses.dataclass(frozen=True)
class Fix:
    """What to do about the failing step: one sentence, and the setting it is made in.

    ``setting`` is one of ``SETTINGS``; ``rule_id`` (``source:ID`` or ``postback:N``),
    ``source_id``, ``campaign_id`` and ``delivery_id`` say whose setting it is, so a host can link
    to the page that changes it (and offer to resend the delivery afterwards).
    """

    action: str
    setting: str
    rule_id: Optional[str] = None
    source_id: Optional[str] = None
    campaign_id: Optional[str] = None
    delivery_id: Optional[int] = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Node:
    """One step of the chain.

    :param kind: ``click``, ``setup`` (a fact that decides what can be sent), ``rule`` (one of the
        campaign's postbacks, under its ``setup`` node), ``conversion``, ``no-conversion``,
        ``postback`` (one delivery: a postback rule for one conversion status), ``attempt`` or
        ``check`` (a template linter finding).
    :param state: a key of ``STATES``.
    :param title: a few words naming the step ("Source exo's postback · sale").
    :param summary: a short sentence for a picture ("not sent: no usable click id").
    :param sentence: the full sentence of the text form (``render_lines``).
    :param at: when it happened (aware UTC), if it is an event.
    :param details: more lines, folded away in a picture (the request, the answer); the text form
        prints a postback's under its sentence.
    :param note: a longer account a picture folds away with the details (the full reason), empty
        where the summary says it all or where it would repeat the failing step.
    :param key: an id unique in the tree (``delivery-7``), for anchors and for ``failing``.
    :param cause: why it was not sent or failed, as a short code, when known.
    :param failing: whether this is the step that failed first (the headline's).
    :param entry_id: the Sent log entry behind it (a delivery's last attempt), for a link.
    :param delivery_id: the delivery a ``postback`` node is, for a resend.
    """

    kind: str
    state: str
    title: str
    summary: str
    sentence: str
    at: Optional[dt.datetime] = None
    details: tuple[str, ...] = ()
    note: str = ""
    children: tuple[Node, ...] = ()
    key: str = ""
    cause: Optional[str] = None
    failing: bool = False
    entry_id: Optional[int] = None
    delivery_id: Optional[int] = None

    @property
    def symbol(self) -> str:
        """✓, ↻, ✗, –, ⏸... for the state."""
        return STATES.get(self.state, STATES["info"])[0]

    @property
    def state_label(self) -> str:
        """The state in words ("host paused"), for screen readers and the text form."""
        return STATES.get(self.state, STATES["info"])[1]

    def walk(self) -> Iterator[Node]:
        """This node and every node under it, depth first, in order."""
        yield self
        for child in self.children:
            yield from child.walk()

    def find(self, key: str) -> Optional[Node]:
        """The node with ``key`` in this tree, or None."""
        return next((node for node in self.walk() if node.key == key), None)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, children included."""
        return {
            "kind": self.kind,
            "state": self.state,
            "symbol": self.symbol,
            "title": self.title,
            "summary": self.summary,
            "sentence": self.sentence,
            "at": self.at.isoformat() if self.at else None,
            "details": list(self.details),
            "note": self.note,
            "key": self.key,
            "cause": self.cause,
            "failing": self.failing,
            "entry_id": self.entry_id,
            "delivery_id": self.delivery_id,
            "children": [child.to_dict() for child in self.children],
        }


def roll_up(states: list[str], default: str = "info") -> str:
    """The state a parent shows for its children's: the worst of them (a failure over a skip over
    a retry over a delivery). Pass a skip that is a choice (a status the rule does not fire for)
    as ``ignored``: it weighs least."""
    for state in _ROLL_UP:
        if state in states:
            return state
    return default


def mark_failing(root: Node, key: Optional[str]) -> Node:
    """``root`` with the node ``key`` marked as the failing step (no change when None or absent)."""
    if not key:
        return root

    def mark(node: Node) -> Node:
        children = tuple(mark(child) for child in node.children)
        if node.key == key:
            return dataclasses.replace(node, failing=True, children=children)
        return dataclasses.replace(node, children=children) if children != node.children else node

    return mark(root)


def render_lines(root: Node) -> list[str]:
    """The text form of a tree, as ``explain`` prints it under its headline.

    The click's line first; its set-up facts, one line each (a campaign's postbacks indented under
    theirs); the conversions under a count, each with its postbacks (indented 4) and their request
    and attempts (indented 6); postbacks of no conversion shown under their own heading; the
    linter's findings last.
    """
    lines = [root.sentence]
    conversions = [node for node in root.children if node.kind == "conversion"]
    headed_conversions = headed_others = False
    for node in root.children:
        if node.kind == "conversion":
            if not headed_conversions:
                count = len(conversions)
                lines.append(f"Conversions ({count} report{'s' if count != 1 else ''} from the network):")
                headed_conversions = True
            lines.append(f"  {node.sentence}")
            for postback in node.children:
                lines += _postback_lines(postback)
        elif node.kind == "postback":
            if not headed_others:
                lines.append("Other deliveries for this click:")
                headed_others = True
            lines += _postback_lines(node)
        else:  # set-up, a missing conversion, a linter finding
            lines.append(node.sentence)
            lines += [f"  {child.sentence}" for child in node.children]
    return lines


def _postback_lines(node: Node) -> list[str]:
    lines = [f"    {node.sentence}"]
    lines += [f"      {line}" for line in node.details]
    lines += [f"      {attempt.sentence}" for attempt in node.children]
    return lines
