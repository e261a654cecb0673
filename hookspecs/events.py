"""Event types passed through the hooks: frozen dataclasses, stdlib only."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, Optional

#: The canonical conversion statuses, in the order a conversion usually moves through them.
CANONICAL_STATUSES: tuple[str, ...] = ("lead", "sale", "rejected", "rebill")

#: Every value ``PostbackAttempt.outcome`` can take.
OUTCOMES: tuple[str, ...] = ("delivered", "retrying", "failed", "skipped")


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclasses.dataclass(frozen=True)
class Click:
    """A visit the host recorded on a campaign link.

    ``subid`` is the tracker's own id for the click; ``params`` holds the click's query parameters as
    received (``external_id`` carries the traffic source's click id, ``sub_id_1``..., ``cost``...).
    """

    subid: str
    campaign_id: str
    source_id: Optional[str] = None
    params: Mapping[str, str] = dataclasses.field(default_factory=dict)
    created_at: dt.datetime = dataclasses.field(default_factory=_utcnow)
    ip: Optional[str] = None
    user_agent: Optional[str] = None
    country: Optional[str] = None
    campaign_name: Optional[str] = None


@dataclasses.dataclass(frozen=True)
class Conversion:
    """A conversion, or a status change of one, reported by an affiliate network.

    ``status`` is canonical (see ``CANONICAL_STATUSES``); ``original_status`` is what the network sent.
    ``click`` is the click it belongs to, or None when the host relies on what ``on_click`` stored.
    """

    subid: str
    status: str
    payout: Optional[Decimal] = None
    currency: Optional[str] = None
    tid: Optional[str] = None
    original_status: Optional[str] = None
    params: Mapping[str, str] = dataclasses.field(default_factory=dict)
    created_at: dt.datetime = dataclasses.field(default_factory=_utcnow)
    click: Optional[Click] = None


@dataclasses.dataclass(frozen=True)
class PostbackRule:
    """One postback that may fire for a conversion: a source's postback or a campaign's S2S postback.

    ``statuses`` lists the canonical statuses it fires for. ``payout_mode`` is ``"real"`` (the
    conversion's payout), ``"fixed"`` (``payout_value`` as the amount) or ``"percent"``
    (``payout_value`` percent of the payout); ``min_payout`` suppresses postbacks below it.
    ``id`` must be unique and stable: it is part of the key that stops a postback firing twice.
    """

    id: str
    url: str
    method: str = "GET"
    statuses: Sequence[str] = ("lead", "sale", "rejected", "rebill")
    source_id: Optional[str] = None
    campaign_id: Optional[str] = None
    template: Optional[str] = None
    payout_mode: str = "real"
    payout_value: Optional[Decimal] = None
    min_payout: Optional[Decimal] = None
    body: Optional[str] = None
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    follow_redirects: bool = False
    enabled: bool = True
    name: Optional[str] = None
    #: Names of query parameters, body fields and headers whose values the log shows redacted.
    secrets: Sequence[str] = ()
    #: What the template linter found, filled on the rules ``add_source``/``add_postback`` return
    #: (one sentence each); empty elsewhere. Not part of a rule's identity.
    warnings: Sequence[str] = dataclasses.field(default=(), compare=False)
    #: A source's campaign-link settings (Keitaro's source "Parameters" table): the tracker
    #: parameter that receives the source's click id and the macro the source writes there, and
    #: the source's other macros by tracker parameter (``{"sub_id_1": "{zoneid}", "cost": "{cost}"}``).
    #: None: the template's (sources saved before these settings existed). Campaign postbacks have none.
    click_id_param: Optional[str] = None
    source_macro: Optional[str] = None
    parameters: Optional[Mapping[str, str]] = None


@dataclasses.dataclass(frozen=True)
class SourceTemplate:
    """A traffic source's postback format, as the template library knows it.

    ``source_macro`` is what the source writes in its tracking link (``{conversions_tracking}``),
    ``click_id_param`` the tracker parameter that receives it (usually ``external_id``).
    ``success_body``, when set, is text a 200 answer must contain to count as delivered.
    ``placeholders`` are the account-specific words in ``postback_url`` the operator must replace
    (``GOAL_ID``, ``AID``...); ``confidence`` says how well the format is documented.
    ``parameters`` is the source's "Parameters" table, as Keitaro calls it: the source's other
    macros by the tracker parameter that receives them (``{"sub_id_1": "{zoneid}", "cost": "{cost}"}``),
    in the order the campaign link carries them after the click id.
    """

    name: str
    postback_url: str
    click_id_param: str = "external_id"
    source_macro: Optional[str] = None
    method: str = "GET"
    title: Optional[str] = None
    success_body: Optional[str] = None
    follow_redirects: bool = False
    notes: Optional[str] = None
    citation: Optional[str] = None
    statuses: Sequence[str] = ("sale",)
    #: Names of query parameters, body fields and headers whose values the log shows redacted.
    secrets: Sequence[str] = ()
    placeholders: Sequence[str] = ()
    confidence: Optional[str] = None
    parameters: Mapping[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class PostbackRequest:
    """The HTTP request a postback becomes. ``prepare_request`` hooks return a changed copy.

    ``template`` and ``rule_id`` say which source template and postback rule the request was
    resolved from, so ``classify_response`` can recognise its own source's answers even when the
    URL points elsewhere (a test sink, a proxy). ``secrets`` lists text that must never reach a
    log: a token a ``prepare_request`` hook put in a header, the URL or the body. Each is replaced
    by ``[REDACTED]`` wherever the attempt is recorded (URL, body, response, reason, error).
    Keep all of them with ``dataclasses.replace(request, ...)``.
    """

    method: str
    url: str
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    body: Optional[bytes] = None
    template: Optional[str] = None
    rule_id: Optional[str] = None
    secrets: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class ResolveContext:
    """What a macro or a request is being resolved for: the click, the conversion and the rule."""

    click: Optional[Click]
    conversion: Conversion
    rule: PostbackRule
    extra: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class PostbackAttempt:
    """One delivery attempt of a postback, or the decision not to send it (``attempt == 0``).

    ``outcome`` is one of ``delivered``, ``retrying``, ``failed``, ``skipped``; ``reason`` is one human
    sentence saying why (skipped, failed, retried), and ``cause`` the same as a stable code for
    programs (``status_not_enabled``, ``timeout``, ``http_server_error``...: the table is in the
    delivery docs; None from an older plugin). ``response_body`` is truncated.
    """

    delivery_id: int
    subid: str
    tid: Optional[str]
    status: str
    source_id: Optional[str]
    campaign_id: Optional[str]
    rule_id: str
    method: str
    url: str
    body: Optional[str]
    attempt: int
    outcome: str
    http_status: Optional[int] = None
    response_body: Optional[str] = None
    error: Optional[str] = None
    reason: Optional[str] = None
    duration_ms: Optional[float] = None
    started_at: Optional[dt.datetime] = None
    next_attempt_at: Optional[dt.datetime] = None
    response_truncated: bool = False
    cause: Optional[str] = None

    def to_dict(self) -> dict[str, Any]:
        """The attempt as JSON-ready values (datetimes in ISO 8601)."""
        out = dataclasses.asdict(self)
        for key in ("started_at", "next_attempt_at"):
            if out[key] is not None:
                out[key] = out[key].isoformat()
        return out
