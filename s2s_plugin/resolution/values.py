"""Macro values for one postback: the built-in macros of a click, a conversion and a rule.

Keitaro-compatible names, plus the aliases operators paste from Binom and Voluum templates.
"""

from __future__ import annotations

import datetime as dt
import difflib
import random
import zoneinfo
from collections.abc import Mapping
from decimal import Decimal
from typing import Optional

from hookspecs import Click, Conversion, PostbackRule
from s2s_plugin.resolution.money import format_amount
from s2s_plugin.resolution.phpdate import php_date

#: Alias → canonical macro name. Keitaro's own spellings first, then what operators paste from
#: Binom (``{externalid}``, ``{cnv_status}``, ``{cnv_currency}``, ``{clickcost}``, ``{trafficsource}``)
#: and Voluum (``{externalid}``, ``{payout}``) postback URLs.
ALIASES: Mapping[str, str] = {
    "payout": "revenue",
    "conversion_revenue": "revenue",
    "externalid": "external_id",
    "external": "external_id",
    "ts_id": "source",
    "source_id": "source",
    "traffic_source_id": "source",
    "trafficsource": "source",
    "sub_id": "subid",
    "transaction_id": "tid",
    "txid": "tid",
    "conversion_status": "status",
    "cnv_status": "status",
    "cnv_currency": "currency",
    "clickcost": "cost",
    "campaign": "campaign_id",
    "ua": "user_agent",
    "country_code": "country",
    "conversion_time": "conversion_datetime",
    "click_time": "click_datetime",
}

#: Keitaro's click attributes: macros that read the click parameter of that name (the host fills
#: them: the sample host from the visitor's request); empty, not unknown, when the click has none.
CLICK_ATTRIBUTES = frozenset(
    {
        "os",
        "os_version",
        "browser",
        "browser_version",
        "device_type",
        "device_model",
        "language",
        "referrer",
        "region",
        "city",
        "isp",
        "keyword",
        "offer_id",
        "landing_id",
        "creative_id",
        "ad_campaign_id",
        "connection_type",
        "operator",
        "source_url",
    }
)

#: Built-in macro names (after aliasing), for the linter and explain.
BUILTIN_NAMES = frozenset(
    {
        "subid",
        "external_id",
        "tid",
        "status",
        "original_status",
        "revenue",
        "cost",
        "profit",
        "currency",
        "campaign_id",
        "campaign_name",
        "source",
        "ip",
        "user_agent",
        "country",
        "click_datetime",
        "conversion_datetime",
        "date",
        "random",
        "timestamp",
        "delivery_id",
    }
    | {f"sub_id_{n}" for n in range(1, 31)}
    | CLICK_ATTRIBUTES
)

#: Every name a macro may use without a click parameter of that name: built-ins and aliases.
KNOWN_NAMES = BUILTIN_NAMES | frozenset(ALIASES)

#: What ``{delivery_id}`` renders to while the delivery has no id yet. The store puts the id in its
#: place in the same transaction that inserts the delivery (``fill_delivery_id``), so what is queued,
#: sent, logged and resent carries the real id. Unreserved characters only: no encoding changes it.
DELIVERY_ID_PENDING = "__s2s_delivery_id__"

_DEFAULT_DATE = "Y-m-d H:i:s"
# One for every postback (it reads os.urandom, so threads can share it).
_SYSTEM_RANDOM = random.SystemRandom()


def is_known(name: str) -> bool:
    """Whether ``name`` is a built-in macro or an alias of one (case-insensitive, raw ``_`` allowed)."""
    return canonical_name(name.lstrip("_")) in BUILTIN_NAMES


def closest_known(name: str) -> Optional[str]:
    """The macro name ``name`` most likely misspells (``externa_id`` → ``external_id``, ``payot`` →
    ``payout``), or None when nothing is close."""
    match = difflib.get_close_matches(name.lower().lstrip("_"), sorted(KNOWN_NAMES), n=1, cutoff=0.8)
    return match[0] if match else None


def did_you_mean(macro_text: str) -> Optional[str]:
    """``"{externa_id}"`` → ``"did you mean {external_id}?"``; None when nothing is close."""
    name = macro_text.strip("{}").split(":", 1)[0]
    raw = name.startswith("_")
    best = closest_known(name)
    if best is None or best == name.lower().lstrip("_"):
        return None
    return f"did you mean {{{'_' if raw else ''}{best}}}?"


def canonical_name(name: str) -> str:
    """The built-in name a macro refers to (``payout`` → ``revenue``), case-insensitive."""
    lowered = name.lower()
    return ALIASES.get(lowered, lowered)


class MacroValues:
    """Values of the built-in macros for one (click, conversion, rule, amount)."""

    def __init__(
        self,
        click: Optional[Click],
        conversion: Conversion,
        rule: PostbackRule,
        amount: Optional[Decimal],
        *,
        rng: Optional[random.Random] = None,
        click_id_param: str = "external_id",
    ) -> None:
        """
        :param amount: the payout after the rule's payout mode (what ``{revenue}`` reports).
        :param click_id_param: the click parameter holding the source's click id (the template's
            ``click_id_param``); ``{external_id}`` reads it.
        """
        self.click = click
        self.conversion = conversion
        self.rule = rule
        self.amount = amount
        self.click_id_param = click_id_param
        self._rng = rng or _SYSTEM_RANDOM

    def click_param(self, name: str) -> Optional[str]:
        """A click parameter by its exact name, else a conversion parameter, else None."""
        if self.click is not None and name in self.click.params:
            return str(self.click.params[name])
        if name in self.conversion.params:
            return str(self.conversion.params[name])
        return None

    def lookup(self, name: str, argument: Optional[str]) -> Optional[str]:
        """The value of macro ``name`` (with its ``argument``), or None when unknown."""
        key = canonical_name(name)
        if argument is not None:
            return self._parameterised(key, argument)
        value = self._simple(key)
        if value is not None:
            return value
        # Any click parameter by its name, exactly as received.
        return self.click_param(name)

    def _simple(self, key: str) -> Optional[str]:
        click, conv = self.click, self.conversion
        if key == "subid":
            return conv.subid
        if key == "external_id":
            return self.click_param(self.click_id_param) or self.click_param("external_id") or ""
        if key == "tid":
            return conv.tid or ""
        if key == "status":
            return conv.status
        if key == "original_status":
            return conv.original_status or conv.status
        if key == "revenue":
            return format_amount(self.amount)
        if key == "cost":
            return format_amount(self._cost())
        if key == "profit":
            cost = self._cost() or Decimal(0)
            return format_amount((self.amount or Decimal(0)) - cost)
        if key == "currency":
            return conv.currency or ""
        if key == "campaign_id":
            return (click.campaign_id if click else self.rule.campaign_id) or ""
        if key == "campaign_name":
            return (click.campaign_name or click.campaign_id) if click else ""
        if key == "source":
            return (click.source_id if click else self.rule.source_id) or ""
        if key in ("ip", "user_agent", "country"):
            return (getattr(click, key, None) if click else None) or self.click_param(key) or ""
        if key.startswith("sub_id_") and key[7:].isdigit() and 1 <= int(key[7:]) <= 30:
            return self.click_param(key) or ""
        if key in CLICK_ATTRIBUTES:
            return self.click_param(key) or ""
        if key == "click_datetime":
            return php_date(_DEFAULT_DATE, _utc(click.created_at)) if click else ""
        if key == "conversion_datetime":
            return php_date(_DEFAULT_DATE, _utc(conv.created_at))
        if key == "date":
            return php_date(_DEFAULT_DATE, _utc(conv.created_at))
        if key == "timestamp":
            return str(int(conv.created_at.timestamp()))
        if key == "random":
            return str(self._rng.randint(1, 999_999_999))
        if key == "delivery_id":
            return DELIVERY_ID_PENDING
        return None

    def _parameterised(self, key: str, argument: str) -> Optional[str]:
        if key == "status":
            return status_alias(self.conversion.status, argument)
        if key in ("date", "conversion_datetime", "click_datetime"):
            moment = self.click.created_at if key == "click_datetime" and self.click else self.conversion.created_at
            return format_date(moment, argument)
        if key == "random":
            low, high = parse_random_range(argument)
            return str(self._rng.randint(low, high))
        # An argument on a plain macro is a default value: {sub_id_1:none}.
        value = self.lookup(key, None)
        return value if value else argument

    def _cost(self) -> Optional[Decimal]:
        raw = self.click_param("cost")
        try:
            return Decimal(raw) if raw else None
        except ArithmeticError:
            return None


def status_alias(status: str, argument: str) -> str:
    """``{status:lead=0 sale=1 rejected=2}``: the source's name for ``status``, or the status itself."""
    for pair in argument.replace(",", " ").split():
        name, sep, alias = pair.partition("=")
        if sep and name.strip().lower() == status:
            return alias.strip()
    return status


def format_date(moment: dt.datetime, argument: str) -> str:
    """``{date:FORMAT,TZ}``: PHP date letters, an optional IANA time zone (UTC by default)."""
    fmt, _, zone = argument.rpartition(",") if "," in argument else (argument, "", "")
    fmt = fmt or _DEFAULT_DATE
    tz: dt.tzinfo = dt.UTC
    if zone.strip():
        try:
            tz = zoneinfo.ZoneInfo(zone.strip())
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            # Not a zone: the comma belonged to the format.
            fmt = argument
    return php_date(fmt, _utc(moment).astimezone(tz))


def parse_random_range(argument: str) -> tuple[int, int]:
    """``"1,999999"`` → ``(1, 999999)``; ``"99"`` → ``(1, 99)``; reversed ranges are swapped and
    anything unreadable falls back to ``(1, 999999999)`` (the linter reports it)."""
    parts = [p.strip() for p in argument.split(",")]
    try:
        low, high = (1, int(parts[0])) if len(parts) == 1 else (int(parts[0]), int(parts[1]))
    except ValueError:
        return 1, 999_999_999
    return (low, high) if low <= high else (high, low)


def _utc(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
