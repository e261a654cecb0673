"""What every platform plugin needs: the URL's inputs, amounts as JSON numbers, hashed identifiers."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, Optional
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from hookspecs import Click, Conversion, PostbackRequest

_SHA256 = re.compile(r"[0-9a-f]{64}")


def split_inputs(url: str, names: tuple[str, ...]) -> tuple[str, dict[str, str]]:
    """``url`` without the query parameters in ``names``, and those parameters (rendered)."""
    parts = urlsplit(url)
    kept, inputs = [], {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key in names:
            inputs[key] = value
        else:
            kept.append((key, value))
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(kept), "")), inputs


def amount(text: Optional[str], fallback: Optional[Decimal]) -> Optional[float]:
    """A JSON number for a payout (float's shortest repr prints 2.5 as 2.5), or None.

    :raises ValueError: when ``text`` is not a number.
    """
    try:
        value = Decimal(text) if text else fallback
    except InvalidOperation:
        raise ValueError(f"value {text!r} in the postback URL is not a number") from None
    return float(value) if value is not None else None


def param(click: Optional[Click], conversion: Conversion, *names: str) -> Optional[str]:
    """The first non-empty click (then conversion) parameter among ``names``."""
    for source in ((click.params if click else {}), conversion.params):
        for name in names:
            value = str(source.get(name) or "").strip()
            if value:
                return value
    return None


def hashed_email(value: Optional[str]) -> Optional[str]:
    """SHA-256 of a trimmed, lower-cased e-mail address; a value already hashed is kept."""
    if not value:
        return None
    value = value.strip().lower()
    return value if _SHA256.fullmatch(value) else hashlib.sha256(value.encode("utf-8")).hexdigest()


def hashed_phone(value: Optional[str]) -> Optional[str]:
    """SHA-256 of a phone number's digits (country code included, no + or spaces); hashes kept."""
    if not value:
        return None
    value = value.strip().lower()
    if _SHA256.fullmatch(value):
        return value
    digits = re.sub(r"\D", "", value)
    return hashlib.sha256(digits.encode("ascii")).hexdigest() if digits else None


def json_post(
    request: PostbackRequest,
    url: str,
    body: Mapping[str, Any],
    *,
    headers: Mapping[str, str] = {},
    secrets: tuple[str, ...] = (),
) -> PostbackRequest:
    """``request`` as a JSON POST of ``body`` to ``url``, with extra ``headers`` and marked ``secrets``."""
    return dataclasses.replace(
        request,
        method="POST",
        url=url,
        headers={**request.headers, **headers, "Content-Type": "application/json"},
        body=json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8"),
        secrets=(*request.secrets, *secrets),
    )


def compact(mapping: dict[str, Any]) -> dict[str, Any]:
    """``mapping`` without empty values (None, "", empty lists and dicts)."""
    return {key: value for key, value in mapping.items() if value not in (None, "", [], {})}
