"""Conversion statuses: canonical names, allowed changes, and the inbound status mapping.

Pure functions shared by the plugin's resolution and any host's inbound postback endpoint.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Optional

from hookspecs import CANONICAL_STATUSES
from s2s_plugin.errors import InputError

#: (from, to) status changes a conversion may make.
ALLOWED_CHANGES = frozenset({("lead", "sale"), ("lead", "rejected"), ("sale", "rejected"), ("rebill", "rejected")})

# What networks send, mapped to canonical statuses when the postback carries no mapping parameters.
DEFAULT_ALIASES: Mapping[str, str] = {
    "lead": "lead",
    "pending": "lead",
    "hold": "lead",
    "created": "lead",
    "new": "lead",
    "pend": "lead",
    "sale": "sale",
    "approved": "sale",
    "approve": "sale",
    "confirmed": "sale",
    "paid": "sale",
    "success": "sale",
    "1": "sale",
    "rejected": "rejected",
    "reject": "rejected",
    "declined": "rejected",
    "canceled": "rejected",
    "cancelled": "rejected",
    "fraud": "rejected",
    "trash": "rejected",
    "refund": "rejected",
    "chargeback": "rejected",
    "rebill": "rebill",
    "upsell": "rebill",
}

#: Inbound postback parameters that map a network's own status names (comma lists), Keitaro's names.
MAPPING_PARAMS = ("lead_status", "sale_status", "rejected_status", "ignore_status")


def status_mapping(params: Mapping[str, Optional[str]]) -> dict[str, str]:
    """The status-mapping parameters present (and not empty) in an inbound postback's parameters."""
    return {name: str(params[name]) for name in MAPPING_PARAMS if str(params.get(name) or "").strip()}


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

    The rules, as an operator moving from Keitaro expects them:

    - A conversion is identified by its ``tid``; a postback without a tid applies to the click's
      latest conversion, so an empty tid never creates a second conversion and never fires one
      status twice.
    - A tid the click has not seen, with ``sale`` or ``rebill``, on a click that already has a sale,
      is a rebill (a new conversion). ``rebill`` with the tid of a sale is that sale's rebill.
    - A click's only conversion, reported without a tid, takes the tid of the next report about it
      (lead without a tid, then its sale with one).
    - Allowed changes: lead → sale, lead → rejected, sale → rejected, rebill → rejected. The same
      status again is a repeat; a lead arriving after its sale or rejection was reordered by the
      network. Neither fires anything, and both are recorded with the reason.
    """
    tid = (tid or "").strip()
    if tid:
        for conv in reversed(known):
            if conv.tid == tid:
                if status == "rebill" and conv.status == "sale":
                    return StatusDecision(
                        "new",
                        "rebill",
                        f"rebill of conversion #{conv.id} (same tid {tid!r}): a new conversion",
                        previous_status=conv.status,
                    )
                return _change(conv, status)
        if len(known) == 1 and known[0].tid == "":
            only = known[0]
            merged = _change(only, status)
            reordered = status == "lead" and only.status in ("sale", "rejected")
            if merged.kind in ("change", "repeat") or reordered:
                # A lead reported without a tid, then its sale with one: the same conversion.
                return dataclasses.replace(merged, adopt_tid=True)
        if status in ("sale", "rebill") and any(c.status in ("sale", "rebill") for c in known):
            return StatusDecision("new", "rebill", f"new tid {tid!r} on a click that already has a sale: a rebill")
        if known:
            return StatusDecision(
                "new", status, f"new conversion with tid {tid!r} (the click's conversion #{len(known) + 1})"
            )
        return StatusDecision("new", status, f"first conversion of this click, tid {tid!r}")
    if not known:
        return StatusDecision("new", status, "first conversion of this click")
    latest = known[-1]
    if status == "rebill" and latest.status != "rebill":
        return StatusDecision("new", "rebill", f"rebill of conversion #{latest.id}: a new conversion")
    if status == "rebill":
        return StatusDecision(
            "repeat",
            status,
            f"rebill without a tid repeated for conversion #{latest.id}: nothing sent again "
            "(networks must send a new tid with every rebill)",
            latest.id,
            latest.status,
        )
    return _change(latest, status)


def _change(conv: KnownConversion, status: str) -> StatusDecision:
    if conv.status == status or (conv.status == "rebill" and status == "sale"):
        # A "sale" for a conversion recorded as a rebill is the network repeating that rebill's report.
        return StatusDecision(
            "repeat",
            conv.status,
            f"status {status} repeated for conversion #{conv.id}: already handled, nothing sent again",
            conv.id,
            conv.status,
        )
    if is_allowed_change(conv.status, status):
        return StatusDecision("change", status, f"status changed {conv.status} → {status}", conv.id, conv.status)
    if status == "lead" and conv.status in ("sale", "rejected", "rebill"):
        reason = f"lead arrived after {conv.status} (reordered by the network): kept {conv.status}, nothing sent"
    else:
        reason = f"status change {conv.status} → {status} is not allowed: kept {conv.status}, nothing sent"
    return StatusDecision("ignored", conv.status, reason, conv.id, conv.status)
