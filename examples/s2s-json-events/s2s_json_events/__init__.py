"""TikTok Events API for s2s-postback: each conversion becomes a JSON event with an access token.

Ad platforms with an events API (TikTok's Events API, Meta's Conversions API) do not take a GET
postback: they want a JSON POST describing the event, authenticated with an access token. This
plugin turns the postbacks of sources made from its ``tiktok-events`` template into exactly that.

The template's postback URL carries the event's inputs as query parameters, so the plugin's usual
machinery fills and checks them (click id present, payout mode, currency)::

    https://business-api.tiktok.com/open_api/v1.3/event/track/
        ?event_source_id=PIXEL_CODE&ttclid={external_id}&value={revenue}&currency={currency}

``prepare_request`` moves them into TikTok's JSON body (event name by status, event time, event id
for deduplication, the click id, value and currency), removes them from the URL and adds the
``Access-Token`` header from ``S2S_TIKTOK_ACCESS_TOKEN``. The token is marked secret: it is never
written to the Sent postbacks log. ``classify_response`` reads TikTok's answer, which is HTTP 200
with a ``code`` that says whether the event was accepted.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, Optional
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import hookspecs
from hookspecs import PostbackRequest, ResolveContext, SourceTemplate

__version__ = "0.1.0"

TEMPLATE_NAME = "tiktok-events"
ENDPOINT = "https://business-api.tiktok.com/open_api/v1.3/event/track/"
TIKTOK_HOST = "business-api.tiktok.com"

#: The Events API access token (TikTok Ads Manager > Events > your pixel > Settings).
TOKEN_ENV = "S2S_TIKTOK_ACCESS_TOKEN"
#: Optional event names by status, e.g. ``lead=CompleteRegistration,sale=PlaceAnOrder``.
EVENTS_ENV = "S2S_TIKTOK_EVENTS"

#: TikTok standard events for the canonical statuses. A rejection has no TikTok event.
DEFAULT_EVENTS: Mapping[str, str] = {"lead": "SubmitForm", "sale": "CompletePayment", "rebill": "CompletePayment"}

#: TikTok answer codes worth another attempt: rate limited, and TikTok's internal errors (5xxxx).
RATE_LIMITED = 40100

TEMPLATE = SourceTemplate(
    name=TEMPLATE_NAME,
    title="TikTok Events API",
    postback_url=ENDPOINT + "?event_source_id=PIXEL_CODE&ttclid={external_id}&value={revenue}&currency={currency}",
    click_id_param="ttclid",
    source_macro=None,  # TikTok appends ttclid=... to the landing URL by itself
    method="POST",
    statuses=("lead", "sale"),
    notes=(
        "Replace PIXEL_CODE with your pixel code and set S2S_TIKTOK_ACCESS_TOKEN where the delivery "
        "runs. TikTok adds ttclid to your campaign link itself; keep the parameter name ttclid."
    ),
    citation="https://business-api.tiktok.com/portal/docs (Events API 2.0: event/track)",
    placeholders=("PIXEL_CODE",),
    secrets=("access-token",),
    confidence="medium",
)


@hookspecs.hookimpl
def register_source_templates() -> list[SourceTemplate]:
    """The ``tiktok-events`` template."""
    return [TEMPLATE]


def is_tiktok(request: PostbackRequest) -> bool:
    """Whether ``request`` is one of this plugin's: by its template, or by TikTok's API host."""
    return request.template == TEMPLATE_NAME or (urlsplit(request.url).hostname or "").lower() == TIKTOK_HOST


def event_names() -> dict[str, str]:
    """Event name by status: the defaults, overridden by ``S2S_TIKTOK_EVENTS``."""
    names = dict(DEFAULT_EVENTS)
    for pair in os.environ.get(EVENTS_ENV, "").split(","):
        status, _, event = pair.partition("=")
        if status.strip() and event.strip():
            names[status.strip().lower()] = event.strip()
    return names


def _number(text: Optional[str], fallback: Optional[Decimal]) -> Optional[float]:
    try:
        amount = Decimal(text) if text else fallback
    except InvalidOperation:
        raise ValueError(f"value {text!r} in the postback URL is not a number") from None
    # A JSON number: float's shortest repr prints 2.5 as 2.5, never 2.500000001.
    return float(amount) if amount is not None else None


def build_event(query: dict[str, str], context: ResolveContext) -> dict[str, Any]:
    """TikTok's request body for one conversion. ``query`` holds the URL's rendered parameters.

    :raises ValueError: when the pixel code or the status's event name is missing.
    """
    conversion, click = context.conversion, context.click
    pixel = query.pop("event_source_id", "").strip()
    if not pixel or pixel == "PIXEL_CODE":
        raise ValueError(
            "the postback URL has no pixel code: set event_source_id=YOUR_PIXEL_CODE in the source's postback URL"
        )
    event = query.pop("event", "").strip() or event_names().get(conversion.status)
    if not event:
        raise ValueError(
            f"TikTok has no event for a {conversion.status} conversion: remove {conversion.status} from this "
            f"source's statuses, or name one in {EVENTS_ENV}"
        )
    user = {
        "ttclid": query.pop("ttclid", "") or (click.params.get("ttclid") if click else None),
        "ip": click.ip if click else None,
        "user_agent": click.user_agent if click else None,
    }
    properties = {
        "value": _number(query.pop("value", None), conversion.payout),
        "currency": query.pop("currency", "") or conversion.currency,
    }
    body: dict[str, Any] = {
        "event_source": "web",
        "event_source_id": pixel,
        "data": [
            {
                "event": event,
                "event_time": int(conversion.created_at.timestamp()),
                # TikTok drops a second event with the same id: a retried postback counts once.
                "event_id": conversion.tid or conversion.subid,
                "user": {key: value for key, value in user.items() if value},
                "properties": {key: value for key, value in properties.items() if value is not None and value != ""},
            }
        ],
    }
    if query.get("test_event_code"):
        body["test_event_code"] = query.pop("test_event_code")
    return body


@hookspecs.hookimpl
def prepare_request(request: PostbackRequest, context: ResolveContext) -> Optional[PostbackRequest]:
    """Turn a ``tiktok-events`` postback into TikTok's JSON POST with the access-token header.

    :raises RuntimeError: when ``S2S_TIKTOK_ACCESS_TOKEN`` is not set (the attempt is not sent and
        retries later, naming this plugin and the variable).
    """
    if not is_tiktok(request):
        return None
    token = os.environ.get(TOKEN_ENV, "").strip()
    if not token:
        raise RuntimeError(f"{TOKEN_ENV} is not set: give it the pixel's Events API access token")
    parts = urlsplit(request.url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    body = build_event(query, context)
    url = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))
    headers = {**request.headers, "Access-Token": token, "Content-Type": "application/json"}
    return dataclasses.replace(
        request,
        method="POST",
        url=url,
        headers=headers,
        body=json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8"),
        secrets=(*request.secrets, token),
    )


@hookspecs.hookimpl
def classify_response(request: PostbackRequest, response: Any) -> Optional[str]:
    """TikTok answers HTTP 200 with ``{"code": 0, ...}`` when it took the event, another code when not."""
    if not is_tiktok(request) or not 200 <= response.status_code < 300:
        return None
    try:
        code = json.loads(response.text).get("code")
    except (ValueError, AttributeError):
        return None  # not TikTok's JSON: the default rules decide
    if code == 0:
        return "delivered"
    if code == RATE_LIMITED or (isinstance(code, int) and code >= 50000):
        return "retry"
    return "failed"
