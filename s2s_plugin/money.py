"""Payout parsing, payout modes and decimal formatting. Pure functions, no I/O."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Optional

from .errors import ConfigError, InputError

PAYOUT_MODES = ("real", "fixed", "percent")

# Eight places covers every currency and crypto payout seen in postbacks; beyond that is float noise.
_PLACES = Decimal("0.00000001")


def parse_payout(text: Optional[str]) -> Optional[Decimal]:
    """Parse a payout as a network sends it ("2.5", "2,50", " 3 "); None or "" means no payout.

    :raises InputError: when the text is not a finite, non-negative number.
    """
    if text is None:
        return None
    cleaned = str(text).strip()
    if not cleaned:
        return None
    # Some networks send a decimal comma; a comma with a dot as well is ambiguous, so refuse it.
    if "," in cleaned and "." not in cleaned:
        cleaned = cleaned.replace(",", ".")
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        raise InputError(f"payout {text!r} is not a number") from None
    if not value.is_finite():
        raise InputError(f"payout {text!r} is not a finite number")
    if value < 0:
        raise InputError(f"payout {text!r} is negative")
    if len(cleaned) > 40:
        raise InputError("payout is too long (more than 40 characters)")
    return value


def to_decimal(value: object) -> Optional[Decimal]:
    """A Decimal from a stored value (Decimal, int, str); floats go through ``str`` to avoid noise."""
    if value is None or value == "":
        return None
    if isinstance(value, Decimal):
        return value
    return Decimal(str(value))


def format_amount(value: Optional[Decimal]) -> str:
    """Format an amount the way sources expect: plain digits, no exponent, no trailing zeros.

    ``Decimal("1E+1")`` → ``"10"``, ``Decimal("2.50")`` → ``"2.5"``, ``None`` → ``""``.
    """
    if value is None:
        return ""
    quantized = value.quantize(_PLACES) if value.as_tuple().exponent < -8 else value
    text = format(quantized, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def apply_payout_mode(payout: Optional[Decimal], mode: str, value: Optional[Decimal]) -> Optional[Decimal]:
    """The amount a postback reports under its payout mode.

    ``real``: the conversion's payout; ``fixed``: ``value``; ``percent``: ``value`` percent of the payout.
    """
    if mode == "real":
        return payout
    if mode == "fixed":
        return value
    if mode == "percent":
        if payout is None or value is None:
            return None
        return payout * value / Decimal(100)
    raise ConfigError(f"unknown payout mode {mode!r}; use one of {', '.join(PAYOUT_MODES)}")
