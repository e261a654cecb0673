"""ExoClick for s2s-postback: the postback template and a reader for ExoClick's plain-text answers.

ExoClick's postback endpoint answers HTTP 200 whatever happened, with ``OK`` or ``ERROR: ...`` in
the body. ``classify_response`` turns that into the outcome an operator expects:

- ``OK``: delivered;
- ``ERROR: This conversion has already been notified and saved.``: delivered (ExoClick has it, so
  a retry cannot help);
- any other ``ERROR: ...`` (``ERROR: Tag is invalid!``): failed, with ExoClick's words in the reason;
- anything else: None, so the default rules decide.
"""

from __future__ import annotations

from typing import Any, Optional
from urllib.parse import urlsplit

import hookspecs
from hookspecs import PostbackRequest, SourceTemplate

__version__ = "0.1.0"

TEMPLATE_NAME = "exoclick"

#: The hosts ExoClick's postbacks go to (``s.magsrv.com`` today; older set-ups use the others).
HOSTS = ("magsrv.com", "exoclick.com", "exosrv.com")

#: ExoClick's answer to a conversion it already has (a repeat, or our retry after a lost answer).
ALREADY_NOTIFIED = "already been notified"

TEMPLATE = SourceTemplate(
    name=TEMPLATE_NAME,
    title="ExoClick",
    postback_url="https://s.magsrv.com/tag.php?goal=GOAL_ID&tag={external_id}&value={revenue}",
    click_id_param="external_id",
    source_macro="{conversions_tracking}",
    method="GET",
    success_body="OK",
    statuses=("sale",),
    notes=(
        "Replace GOAL_ID with the goal id from ExoClick's conversion tracking page. "
        "ExoClick answers OK, or ERROR: ... with HTTP 200; the s2s-exoclick plugin reads the answer."
    ),
    citation="https://docs.exoclick.com/docs/conversion-tracking-api/",
    placeholders=("GOAL_ID",),
    # CPA bidding adds &skey=... (the account's secret key): never show it in the log.
    secrets=("skey",),
    confidence="high",
)


@hookspecs.hookimpl
def register_source_templates() -> list[SourceTemplate]:
    """The ``exoclick`` template (it replaces the built-in one of the same name)."""
    return [TEMPLATE]


def is_exoclick(request: PostbackRequest) -> bool:
    """Whether ``request`` is a postback to ExoClick: by its template, or by ExoClick's hosts."""
    if request.template == TEMPLATE_NAME:
        return True
    host = (urlsplit(request.url).hostname or "").lower()
    return any(host == known or host.endswith("." + known) for known in HOSTS)


def verdict(status_code: int, text: str) -> Optional[str]:
    """The outcome of ExoClick's answer, or None to let the default rules decide."""
    if not 200 <= status_code < 300:
        return None  # 5xx, 429...: the default rules retry or fail as for any source
    answer = text.strip()
    if answer == "OK":
        return "delivered"
    if answer.startswith("ERROR"):
        return "delivered" if ALREADY_NOTIFIED in answer.lower() else "failed"
    return None


@hookspecs.hookimpl
def classify_response(request: PostbackRequest, response: Any) -> Optional[str]:
    """ExoClick's plain-text answers; None for every other source."""
    if not is_exoclick(request):
        return None
    return verdict(response.status_code, response.text)
