"""TikTok Events API (``tiktok-events``): each conversion as a web event of a TikTok pixel.

The template's URL carries the event's inputs; ``prepare_request`` builds TikTok's JSON body (the
event by status, its time, ``event_id`` = the delivery id so TikTok drops a repeated event, the
``ttclid`` TikTok adds to landing URLs, the visitor's IP address and user agent, e-mail and phone
hashed with SHA-256 when the host passed them, value and currency) and moves the access token
from the URL's ``access_token`` parameter into TikTok's ``Access-Token`` header, masked in the log.
TikTok answers HTTP 200 with a ``code``: 0 when it took the event.
"""

from __future__ import annotations

import json
from typing import Any, Optional

import hookspecs
from hookspecs import PostbackRequest, ResolveContext, SourceTemplate
from s2s_plugin.platforms.events import amount, compact, hashed_email, hashed_phone, json_post, param, split_inputs

NAME = "tiktok-events"

INPUTS = (
    "access_token",
    "event_source_id",
    "event",
    "event_time",
    "event_id",
    "ttclid",
    "value",
    "currency",
    "test_event_code",
)

#: TikTok answer codes worth another attempt: rate limited, and TikTok's internal errors (5xxxx).
RATE_LIMITED = 40100

TEMPLATE = SourceTemplate(
    name=NAME,
    title="TikTok Events API",
    postback_url=(
        "https://business-api.tiktok.com/open_api/v1.3/event/track/?access_token=ACCESS_TOKEN"
        "&event_source_id=PIXEL_CODE&event={status:lead=SubmitForm sale=CompletePayment rebill=CompletePayment}"
        "&event_time={timestamp}&event_id={delivery_id}&ttclid={external_id}&value={revenue}&currency={currency}"
    ),
    click_id_param="ttclid",
    source_macro=None,  # TikTok appends ttclid=... to landing URLs by itself
    method="POST",
    statuses=("lead", "sale"),
    notes=(
        "Replace PIXEL_CODE with your pixel code and ACCESS_TOKEN with the pixel's Events API access "
        "token (Events Manager > your pixel > Settings). TikTok adds ttclid to your campaign link "
        "itself; keep the parameter name ttclid. Add &test_event_code=TEST123 to see events in the "
        "Test events tab."
    ),
    citation="https://business-api.tiktok.com/portal/docs (Events API 2.0, event/track)",
    secrets=("access_token", "access-token"),
    placeholders=("PIXEL_CODE", "ACCESS_TOKEN"),
    confidence="medium",
)


@hookspecs.hookimpl
def register_source_templates() -> list[SourceTemplate]:
    """The ``tiktok-events`` template."""
    return [TEMPLATE]


def build_event(inputs: dict[str, str], context: ResolveContext) -> dict[str, Any]:
    """TikTok's request body for one conversion.

    :raises ValueError: when the pixel code or the event name is missing.
    """
    conversion, click = context.conversion, context.click
    pixel = inputs.get("event_source_id", "").strip()
    if not pixel or pixel == "PIXEL_CODE":
        raise ValueError("the postback URL has no pixel code: set event_source_id=YOUR_PIXEL_CODE")
    event = inputs.get("event", "").strip()
    if not event:
        raise ValueError("the postback URL gives no event for this status")
    email = hashed_email(param(click, conversion, "email", "em"))
    phone = hashed_phone(param(click, conversion, "phone", "ph"))
    body: dict[str, Any] = {
        "event_source": "web",
        "event_source_id": pixel,
        "data": [
            compact(
                {
                    "event": event,
                    "event_time": int(inputs.get("event_time") or conversion.created_at.timestamp()),
                    "event_id": inputs.get("event_id") or None,
                    "user": compact(
                        {
                            "ttclid": inputs.get("ttclid") or param(click, conversion, "ttclid"),
                            "ip": (click.ip if click else None) or param(click, conversion, "ip"),
                            "user_agent": (click.user_agent if click else None)
                            or param(click, conversion, "user_agent"),
                            "email": email,
                            "phone": phone,
                        }
                    ),
                    "properties": compact(
                        {
                            "value": amount(inputs.get("value"), conversion.payout),
                            "currency": (inputs.get("currency") or conversion.currency or "").upper() or None,
                        }
                    ),
                }
            )
        ],
    }
    if inputs.get("test_event_code"):
        body["test_event_code"] = inputs["test_event_code"]
    return body


@hookspecs.hookimpl
def prepare_request(request: PostbackRequest, context: ResolveContext) -> Optional[PostbackRequest]:
    """Turn a ``tiktok-events`` postback into TikTok's JSON POST with the ``Access-Token`` header.

    :raises ValueError: when the URL has no access token (the attempt is not sent and says why).
    """
    if request.template != NAME:
        return None
    url, inputs = split_inputs(request.url, INPUTS)
    token = inputs.get("access_token", "").strip()
    if not token or token == "ACCESS_TOKEN":
        raise ValueError("the postback URL has no access token: set access_token=YOUR_EVENTS_API_TOKEN")
    return json_post(request, url, build_event(inputs, context), headers={"Access-Token": token}, secrets=(token,))


@hookspecs.hookimpl
def classify_response(request: PostbackRequest, response: Any) -> Optional[str]:
    """TikTok answers HTTP 200 with ``{"code": 0, ...}`` when it took the event, another code when not."""
    if request.template != NAME or not 200 <= response.status_code < 300:
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
