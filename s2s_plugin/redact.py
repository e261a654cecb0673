"""Keeping marked secrets (``PostbackRequest.secrets``) out of everything that is recorded."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Optional
from urllib.parse import quote, quote_plus

REDACTED = "[REDACTED]"


def _forms(secret: str) -> set[str]:
    # A secret may come back percent-encoded (in a URL) or JSON-escaped (echoed in an answer).
    return {secret, quote(secret, safe=""), quote_plus(secret, safe="")}


def redact(text: Optional[str], secrets: Iterable[str]) -> Optional[str]:
    """``text`` with every occurrence of every secret (and its URL-encoded forms) replaced."""
    if not text:
        return text
    forms = sorted({form for secret in secrets if secret for form in _forms(secret)}, key=len, reverse=True)
    for form in forms:
        text = text.replace(form, REDACTED)
    return text
