"""Outcome and retry rules for one answer from a source. Pure functions."""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Sequence
from typing import Optional

from s2s_plugin.resolution.causes import Cause

DELIVERED, RETRY, FAILED = "delivered", "retry", "failed"


def classify_status(status_code: int, text: str, success_body: Optional[str]) -> tuple[str, Cause, str]:
    """Default outcome of an HTTP answer, with its cause and reason.

    2xx delivered (unless the template's ``success_body`` is missing from the body); 408, 429 and 5xx
    retry; 410 failed (the rule is flagged); other 4xx and unfollowed redirects failed.
    """
    if 200 <= status_code < 300:
        if success_body and success_body not in text:
            snippet = " ".join(text.split())[:120]
            return (
                FAILED,
                Cause.SUCCESS_TEXT_MISSING,
                f"the source answered HTTP {status_code} without {success_body!r}: {snippet!r}",
            )
        return DELIVERED, Cause.ACCEPTED, f"the source answered HTTP {status_code}"
    if status_code in (408, 429) or status_code >= 500:
        return (
            RETRY,
            _TEMPORARY.get(status_code, Cause.HTTP_SERVER_ERROR),
            f"the source answered HTTP {status_code}, a temporary error",
        )
    if status_code == 410:
        return (
            FAILED,
            Cause.HTTP_GONE,
            "the source answered HTTP 410 Gone: the postback URL is retired; the rule is flagged",
        )
    if 300 <= status_code < 400:
        return (
            FAILED,
            Cause.REDIRECT_NOT_FOLLOWED,
            f"the source answered a redirect (HTTP {status_code}), which is not followed: "
            "fix the postback URL or allow redirects for this template",
        )
    return FAILED, Cause.HTTP_REFUSED, f"the source refused the postback with HTTP {status_code}"


_TEMPORARY = {408: Cause.HTTP_REQUEST_TIMEOUT, 429: Cause.HTTP_RATE_LIMITED}


def parse_retry_after(value: Optional[str], now: Optional[float] = None) -> Optional[float]:
    """Seconds to wait from a ``Retry-After`` header (delta seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    # ASCII digits only: str.isdigit() also accepts "²" and other digits float() refuses.
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment is None:
        return None
    return max(0.0, moment.timestamp() - (time.time() if now is None else now))


def next_delay(
    schedule: Sequence[float],
    attempts_done: int,
    *,
    retry_after: Optional[float] = None,
    retry_after_cap: float = 3600.0,
    jitter: float = 0.1,
    rng: Optional[random.Random] = None,
) -> Optional[float]:
    """Seconds until the next attempt after ``attempts_done`` attempts, or None when none is left.

    The schedule's delay gets up to ``jitter`` (a fraction) added, so retries of many postbacks to one
    source spread out; a ``Retry-After`` longer than that is honoured up to ``retry_after_cap``.
    """
    if attempts_done >= len(schedule):
        return None
    base = schedule[attempts_done]
    delay = base + base * jitter * (rng or random).random()
    if retry_after is not None:
        delay = max(delay, min(retry_after, retry_after_cap))
    return delay
