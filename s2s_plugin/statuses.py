"""Conversion statuses: canonical names, allowed changes, and the inbound status mapping.

Pure functions shared by the plugin's resolution and any host's inbound postback endpoint.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Optional

from hookspecs import CANONICAL_STATUSES

from .errors import InputError

#: (from, to) status changes a conversion may make.
ALLOWED_CHANGES = frozenset({("lead", "sale"), ("lead", "rejected"), ("sale", "rejected"), ("rebill", "rejected")})

# What networks send, mapped to canonical statuses when the postback carries no mapping parameters.
DEFAULT_ALIASES: Mapping[str, str] = {
    "lead": "lead", "pending": "lead", "hold": "lead", "created": "lead", "new": "lead", "pend": "lead",
    "sale": "sale", "approved": "sale", "approve": "sale", "confirmed": "sale", "paid": "sale",
    "success": "sale", "1": "sale",
    "rejected": "rejected", "reject": "rejected", "declined": "rejected", "canceled": "rejected",
    "cancelled": "rejected", "fraud": "rejected", "trash": "rejected", "refund": "rejected",
    "chargeback": "rejected",
    "rebill": "rebill", "upsell": "rebill",
}

MAPPING_PARAMS = ("lead_status", "sale_status", "rejected_status", "ignore_status")


def _split(value: Optional[str]) -> list[str]:
    return [part.strip().lower() for part in (value or "").split(",") if part.strip()]


def map_inbound_status(raw_status: Optional[str], mapping: Mapping[str, Optional[str]] | None = None) -> Optional[str]:
    """The canonical status for a network's status, Keitaro-style.

    :param raw_status: the network's status as received; empty or None means ``sale``.
    :param mapping: optional ``lead_status``, ``sale_status``, ``rejected_status``, ``ignore_status``
        values, each a comma list of network statuses, checked before the default aliases.
    :return: ``lead``, ``sale``, ``rejected`` or ``rebill``; None when the status is to be ignored.
    :raises InputError: when the status is neither mapped nor a known alias.
    """
    status = (raw_status or "").strip().lower()
    mapping = mapping or {}
    if status in _split(mapping.get("ignore_status")):
        return None
    for canonical in ("lead", "sale", "rejected"):
        if status in _split(mapping.get(f"{canonical}_status")):
            return canonical
    if not status:
        return "sale"
    if status in DEFAULT_ALIASES:
        return DEFAULT_ALIASES[status]
    raise InputError(
        f"unknown status {raw_status!r}; map it with lead_status=, sale_status=, rejected_status= or ignore_status="
    )


def is_allowed_change(old: str, new: str) -> bool:
    """Whether a conversion may move from status ``old`` to ``new``."""
    return (old, new) in ALLOWED_CHANGES


def check_status(status: str) -> str:
    """Return ``status`` when it is canonical; raise InputError naming the canonical ones otherwise."""
    if status not in CANONICAL_STATUSES:
        raise InputError(f"status {status!r} is not one of {', '.join(CANONICAL_STATUSES)}")
    return status


@dataclasses.dataclass(frozen=True)
class KnownConversion:
    """What the plugin already knows of one conversion of a click."""

    id: int
    tid: str
    status: str


@dataclasses.dataclass(frozen=True)
class StatusDecision:
    """What an incoming status means for the click's conversions.

    ``kind``: ``new`` (a new conversion), ``change`` (an allowed status change), ``repeat`` (already
    handled: nothing fires) or ``ignored`` (not allowed: nothing fires). ``conversion_id`` is the
    conversion changed or repeated; ``status`` the status to record; ``adopt_tid`` set when a
    conversion first seen without a tid takes the incoming one.
    """

    kind: str
    status: str
    reason: str
    conversion_id: Optional[int] = None
    previous_status: Optional[str] = None
    adopt_tid: bool = False

    @property
    def fires(self) -> bool:
        """Whether postbacks may fire for this decision."""
        return self.kind in ("new", "change")


def decide(known: Sequence[KnownConversion], tid: Optional[str], status: str) -> StatusDecision:
    """Decide what an incoming (tid, status) does, given the click's known conversions (oldest first).

    A conversion is identified by its ``tid``; a postback without a tid applies to the click's latest
    conversion, so an empty tid never creates a second conversion and never fires one status twice.
    A new tid with ``sale`` or ``rebill`` on a click that already has a sale is a rebill.
    """
    tid = (tid or "").strip()
    if tid:
        for conv in known:
            if conv.tid == tid:
                return _change(conv, status)
        untidied = [c for c in known if c.tid == ""]
        if len(untidied) == 1 and len(known) == 1 and (
            untidied[0].status == status or is_allowed_change(untidied[0].status, status)
        ):
            # A lead reported without a tid, then its sale with one: the same conversion.
            return dataclasses.replace(_change(untidied[0], status), adopt_tid=True)
        if status in ("sale", "rebill") and any(c.status in ("sale", "rebill") for c in known):
            return StatusDecision("new", "rebill", f"new tid {tid!r} on a click that already has a sale: a rebill")
        return StatusDecision("new", status, f"new conversion with tid {tid!r}")
    if not known:
        return StatusDecision("new", status, "first conversion of this click")
    latest = known[-1]
    if status == "rebill" and latest.status != "rebill":
        return StatusDecision("new", "rebill", "rebill of the click's conversion")
    return _change(latest, status)


def _change(conv: KnownConversion, status: str) -> StatusDecision:
    if conv.status == status:
        return StatusDecision(
            "repeat", status, f"status {status} repeated for conversion #{conv.id}: already handled, nothing sent again",
            conv.id, conv.status,
        )
    if is_allowed_change(conv.status, status):
        return StatusDecision("change", status, f"status changed {conv.status} → {status}", conv.id, conv.status)
    if status == "lead" and conv.status in ("sale", "rejected", "rebill"):
        reason = f"lead arrived after {conv.status} (reordered by the network): kept {conv.status}, nothing sent"
    else:
        reason = f"status change {conv.status} → {status} is not allowed: kept {conv.status}, nothing sent"
    return StatusDecision("ignored", conv.status, reason, conv.id, conv.status)
