"""A postback's settings as the sample host takes them from its pages, its CLI and its JSON API.

One place says which settings a source's postback and a campaign postback have, how each is checked,
and how a partial change (``sources edit``, ``PATCH``) is merged into what is stored, so the three
front ends cannot drift apart.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Optional

from hookspecs import PostbackRule

from .errors import HostError

#: Settings every postback has (a source's and a campaign's), as the front ends name them.
POSTBACK_SETTINGS = (
    "method",
    "statuses",
    "payout_mode",
    "payout_value",
    "min_payout",
    "body",
    "content_type",
    "secrets",
    "follow_redirects",
)
#: Settings only a source has: its template's placeholders and its campaign link.
SOURCE_SETTINGS = ("placeholders", "click_id_param", "source_macro", "parameters")

# type/subtype with optional parameters; nothing that could end the header early.
_CONTENT_TYPE = re.compile(r"^[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+(\s*;[^\x00-\x1f\x7f]*)?$")


def check_content_type(value: Optional[str]) -> Optional[str]:
    """A ``Content-Type`` for a postback's body (``application/json``), "" to remove it, None to keep.

    :raises HostError: for anything that is not ``type/subtype[; parameters]``.
    """
    if value is None:
        return None
    value = value.strip()
    if value and not _CONTENT_TYPE.match(value):
        raise HostError(f"content type {value!r} must look like application/json or application/x-www-form-urlencoded")
    return value


def content_type_of(rule: PostbackRule) -> str:
    """The rule's ``Content-Type`` header, "" when it has none (the plugin then picks one for the body)."""
    return next((value for name, value in rule.headers.items() if name.lower() == "content-type"), "")


def headers_with(rule_headers: Mapping[str, str], content_type: Optional[str]) -> dict[str, str]:
    """The rule's headers with its ``Content-Type`` set (or removed for "", kept for None)."""
    headers = dict(rule_headers)
    if content_type is None:
        return headers
    headers = {name: value for name, value in headers.items() if name.lower() != "content-type"}
    if content_type:
        headers["Content-Type"] = content_type
    return headers


def check_body(method: str, body: Optional[str]) -> Optional[str]:
    """The body template (None when empty); a GET postback sends no body, so one is refused there."""
    body = body if body and body.strip() else None
    if body is not None and method.upper() != "POST":
        raise HostError("a body is sent only with method POST: choose POST, or leave the body empty")
    return body


def current_settings(rule: PostbackRule) -> dict[str, Any]:
    """What is stored for ``rule``, under the front ends' names (a partial change starts here)."""
    settings: dict[str, Any] = {
        "url": rule.url,
        "method": rule.method,
        "statuses": list(rule.statuses),
        "payout_mode": rule.payout_mode,
        "payout_value": rule.payout_value,
        "min_payout": rule.min_payout,
        "body": rule.body,
        "content_type": content_type_of(rule),
        "secrets": list(rule.secrets),
        "follow_redirects": rule.follow_redirects,
    }
    if rule.source_id is not None:
        settings.update(
            click_id_param=rule.click_id_param,
            source_macro=rule.source_macro,
            parameters=None if rule.parameters is None else dict(rule.parameters),
        )
    return settings


def merged(rule: PostbackRule, changes: Mapping[str, Any]) -> dict[str, Any]:
    """The rule's settings with ``changes`` applied; a change of None keeps the stored value."""
    settings = current_settings(rule)
    settings.update({name: value for name, value in changes.items() if value is not None})
    return settings


def describe(rule: PostbackRule) -> list[str]:
    """The rule's settings as ``name: value`` lines for the command line (the empty ones left out)."""
    lines = [f"{rule.method} {rule.url}", f"fires for: {', '.join(rule.statuses)}"]
    if rule.payout_mode != "real" or rule.min_payout is not None:
        amount = f" {rule.payout_value}" if rule.payout_mode != "real" and rule.payout_value is not None else ""
        minimum = f", minimum {rule.min_payout}" if rule.min_payout is not None else ""
        lines.append(f"payout: {rule.payout_mode}{amount}{minimum}")
    if rule.body:
        lines.append(f"body: {rule.body}")
    if content_type_of(rule):
        lines.append(f"content type: {content_type_of(rule)}")
    if rule.secrets:
        lines.append(f"secrets: {', '.join(rule.secrets)}")
    if rule.follow_redirects:
        lines.append("follows redirects")
    return lines
