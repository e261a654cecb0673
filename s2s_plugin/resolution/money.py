"""Payout parsing, payout modes and decimal formatting. Pure functions, no I/O."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Optional

from s2s_plugin.errors import ConfigError, InputError

PAYOUT_MODES = ("real", "fixed", "percent")

# Eight places covers every currency and crypto payout seen in postbacks; beyond that is float noise.
_PLACES = Decimal("0.00000001")

#: No real payout reaches a trillion; "1e999999" is a typo or an attack that would print a million digits.
MAX_PAYOUT = Decimal(10) ** 12


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
    if value >= MAX_PAYOUT:
        raise InputError(f"payout {text!r} is too large (a trillion or more)")
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
    exponent = value.as_tuple().exponent
    # NaN and infinities have a letter for an exponent; they are not amounts and print as they are.
    quantized = value.quantize(_PLACES) if isinstance(exponent, int) and exponent < -8 else value
    text = format(quantized, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def coerce_payout(value: object) -> Optional[Decimal]:
    """A conversion's payout as a Decimal, whatever a host passed: Decimal, int, str, or float
    (through ``str``, so ``0.1 + 0.2`` reports ``0.3``, not float noise).

    :raises InputError: when it is not a finite, non-negative number.
    """
    if value is None or (isinstance(value, Decimal) and value.is_finite() and value >= 0):
        return value
    if isinstance(value, bool):
        raise InputError(f"payout {value!r} is not a number")
    if isinstance(value, (int, float, Decimal)):
        return parse_payout(repr(value) if isinstance(value, float) else str(value))
    return parse_payout(str(value))


def check_payout_settings(mode: str, value: object, min_payout: object) -> tuple[str, Optional[str], Optional[str]]:
    """Check a postback's payout settings; return them as stored (mode, amount text, minimum text).

    ``fixed`` needs ``value`` (the amount to report), ``percent`` needs ``value`` (the percentage);
    ``real`` ignores it. Amounts are formatted without exponent or float noise.

    :raises ConfigError: for an unknown mode, a missing or bad amount, naming the setting.
    """
    if mode not in PAYOUT_MODES:
        raise ConfigError(f"unknown payout mode {mode!r}; use one of {', '.join(PAYOUT_MODES)}")
    amount = _setting("payout_value", value)
    if mode in ("fixed", "percent") and amount is None:
        what = "the amount to report" if mode == "fixed" else "the percentage of the payout to report"
        raise ConfigError(f"payout mode {mode} needs payout_value: {what}")
    return mode, amount, _setting("min_payout", min_payout)


def _setting(name: str, value: object) -> Optional[str]:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ConfigError(f"{name} {value!r} is not a number")
    try:
        amount = Decimal(repr(value) if isinstance(value, float) else str(value).strip())
    except ArithmeticError:
        raise ConfigError(f"{name} {value!r} is not a number") from None
    if not amount.is_finite() or amount < 0:
        raise ConfigError(f"{name} {value!r} must be a non-negative number")
    return format_amount(amount)


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
