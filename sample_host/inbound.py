"""Reading an inbound conversion postback (Keitaro's format) into a checked, canonical form.

Pure functions, no I/O: ``parse_postback`` turns the request's parameters into an
``InboundPostback`` or raises a ``HostError`` whose message is the one-line answer to the network.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Optional

from s2s_plugin.resolution.money import parse_payout
from s2s_plugin.resolution.statuses import map_inbound_status, status_mapping

from . import db
from .errors import HostError
from .params import check_text

_CURRENCY = re.compile(r"^[A-Za-z]{3}$")
_MAX_VALUE = 500
_MAX_NAME = 100
_MAX_PARAMS = 100


@dataclasses.dataclass(frozen=True)
class InboundPostback:
    """A conversion report that passed every check. ``status`` None means the network's status is
    one the request asked to ignore."""

    subid: str
    status: Optional[str]
    original_status: Optional[str]
    payout: Optional[Decimal]
    currency: Optional[str]
    tid: Optional[str]
    params: Mapping[str, str]
    #: When the network says the conversion happened (``conversion_time``), or None.
    converted_at: Optional[dt.datetime] = None


def _value(params: Mapping[str, str], name: str) -> Optional[str]:
    value = params.get(name)
    if value is None:
        return None
    value = str(value).strip()
    return value or None


def parse_postback(params: Mapping[str, str]) -> InboundPostback:
    """Check and convert an inbound postback's parameters.

    :raises HostError: with a one-line reason when the subid is missing, the status unknown,
        the payout (or ``revenue``) not a number, the currency not a 3-letter code, or the request
        oversized (too many parameters, a name or value too long).
    """
    if len(params) > _MAX_PARAMS:
        raise HostError(f"too many parameters ({len(params)}): send at most {_MAX_PARAMS}")
    for name, value in params.items():
        if len(str(name)) > _MAX_NAME:
            raise HostError(f"parameter name {str(name)[:40]!r}... is longer than {_MAX_NAME} characters")
        if len(str(value)) > _MAX_VALUE:
            raise HostError(f"parameter {name!r} is longer than {_MAX_VALUE} characters")
    check_text(params.items(), "parameter")
    subid = _value(params, "subid")
    if subid is None:
        raise HostError("subid is missing: send the click's subid as ?subid={subid}")
    original_status = _value(params, "status")
    mapping = status_mapping(params)
    try:
        status = map_inbound_status(original_status, mapping)
        payout = parse_payout(_value(params, "payout") or _value(params, "revenue"))  # Keitaro: payout or revenue
    except ValueError as exc:
        raise HostError(str(exc)) from None
    currency = _value(params, "currency")
    if currency is not None:
        if not _CURRENCY.match(currency):
            raise HostError(f"currency {currency!r} is not a 3-letter code such as USD")
        currency = currency.upper()
    tid = _value(params, "tid")
    # The conversion's columns bound these; refusing here answers the same on every database.
    db.check_lengths(
        db.conversions,
        {"subid": subid, "tid": tid, "original_status": original_status},
        shown={"original_status": "status"},
    )
    return InboundPostback(
        subid=subid,
        status=status,
        original_status=original_status,
        payout=payout,
        currency=currency,
        tid=tid,
        params=dict(params),
        converted_at=parse_conversion_time(_value(params, "conversion_time")),
    )


#: How far ahead of this machine's clock a network's conversion time may be (clocks drift).
_FUTURE_SLACK = dt.timedelta(hours=1)
#: Earlier than this is a mistake (a time in milliseconds read as seconds is far later, not earlier).
_EARLIEST = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)


def parse_conversion_time(value: Optional[str], now: Optional[dt.datetime] = None) -> Optional[dt.datetime]:
    """The network's ``conversion_time``: Unix seconds (``1732871000``, fractions allowed) or ISO 8601
    (``2026-11-29T09:03:20Z``, ``2026-11-29 12:03:20+03:00``; no zone means UTC), as an aware UTC time.

    :raises HostError: for anything else, or a time before 2000 or more than an hour ahead.
    """
    if value is None:
        return None
    moment: Optional[dt.datetime] = None
    if _EPOCH.fullmatch(value):
        try:
            moment = dt.datetime.fromtimestamp(float(value), dt.UTC)
        except (OverflowError, OSError, ValueError):
            moment = None
    else:
        try:
            parsed = dt.datetime.fromisoformat(value)
        except ValueError:
            parsed = None
        if parsed is not None:
            moment = (parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)).astimezone(dt.UTC)
    if moment is None:
        raise HostError(
            f"conversion_time {value[:40]!r} is not Unix seconds or an ISO 8601 time such as 2026-11-29T09:03:20Z"
        )
    if moment < _EARLIEST or moment > (now or db.utcnow()) + _FUTURE_SLACK:
        raise HostError(
            f"conversion_time {value[:40]!r} is {moment:%Y-%m-%d %H:%M:%S} UTC: not a time a conversion can have"
        )
    return moment


_EPOCH = re.compile(r"[0-9]{1,11}(\.[0-9]{1,6})?")
