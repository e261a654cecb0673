"""Meta Conversions API (``meta-capi``): each conversion as a server event for a Meta pixel.

The template's URL carries the event's inputs; ``prepare_request`` builds Meta's JSON body from
them and from the click (IP address, user agent, ``fbc`` from the ``fbclid`` Meta adds to landing
URLs, ``fbp``, and e-mail and phone hashed with SHA-256 when the host passed them as click or
conversion parameters), then sends it as a POST to ``/{PIXEL_ID}/events``. The access token stays
in the URL's ``access_token`` parameter, which the template marks secret: the log shows it masked.
``event_id`` is the delivery id, so Meta de-duplicates a retried or resent event, and an event the
pixel also sent from the browser with the same id.
"""

from __future__ import annotations

import json
from typing import Any, Optional

import hookspecs
from hookspecs import PostbackRequest, ResolveContext, SourceTemplate
from s2s_plugin.platforms.events import amount, compact, hashed_email, hashed_phone, json_post, param, split_inputs

NAME = "meta-capi"

#: Query parameters of the template that become the event's fields.
INPUTS = (
    "event_name",
    "event_time",
    "event_id",
    "value",
    "currency",
    "action_source",
    "event_source_url",
    "test_event_code",
)

#: Graph API error codes that mean "try later": rate limits and temporary errors.
TEMPORARY_CODES = frozenset({1, 2, 4, 17, 32, 341, 613})

TEMPLATE = SourceTemplate(
    name=NAME,
    title="Meta Conversions API (Facebook, Instagram)",
    postback_url=(
        "https://graph.facebook.com/v21.0/PIXEL_ID/events?access_token=ACCESS_TOKEN"
        "&event_name={status:lead=Lead sale=Purchase rebill=Purchase}&event_time={timestamp}"
        "&event_id={delivery_id}&value={revenue}&currency={currency}"
    ),
    click_id_param="fbclid",
    source_macro=None,  # Meta appends fbclid=... to landing URLs by itself
    method="POST",
    statuses=("lead", "sale"),
    notes=(
        "Replace PIXEL_ID with your pixel (dataset) id and ACCESS_TOKEN with a Conversions API access "
        "token (Events Manager > your pixel > Settings). Keep the fbclid parameter Meta adds to your "
        "campaign link; pass the visitor's fbp cookie, e-mail or phone as click parameters for better "
        "matching (they are hashed before sending). Add &test_event_code=TEST123 to see events in "
        "Events Manager's Test events tab. event_name maps statuses to Meta's standard events."
    ),
    citation=(
        "https://developers.facebook.com/docs/marketing-api/conversions-api/using-the-api ; "
        "https://developers.facebook.com/docs/marketing-api/conversions-api/parameters"
    ),
    secrets=("access_token",),
    placeholders=("PIXEL_ID", "ACCESS_TOKEN"),
    confidence="high",
)


@hookspecs.hookimpl
def register_source_templates() -> list[SourceTemplate]:
    """The ``meta-capi`` template."""
    return [TEMPLATE]


def build_event(inputs: dict[str, str], context: ResolveContext) -> dict[str, Any]:
    """Meta's request body for one conversion; ``inputs`` are the URL's rendered event fields.

    :raises ValueError: when the event has no name or its time is not a number.
    """
    conversion, click = context.conversion, context.click
    name = inputs.get("event_name", "").strip()
    if not name:
        raise ValueError("the postback URL gives no event_name for this status")
    try:
        event_time = int(inputs.get("event_time") or conversion.created_at.timestamp())
    except ValueError:
        raise ValueError(f"event_time {inputs['event_time']!r} in the postback URL is not a Unix time") from None
    fbc = param(click, conversion, "fbc")
    fbclid = param(click, conversion, "fbclid")
    if not fbc and fbclid and click is not None:
        # Meta's format for a click id read from the landing URL: fb.1.<click time in ms>.<fbclid>.
        fbc = f"fb.1.{int(click.created_at.timestamp() * 1000)}.{fbclid}"
    email = hashed_email(param(click, conversion, "em", "email"))
    phone = hashed_phone(param(click, conversion, "ph", "phone"))
    user = compact(
        {
            "client_ip_address": (click.ip if click else None) or param(click, conversion, "ip"),
            "client_user_agent": (click.user_agent if click else None) or param(click, conversion, "user_agent"),
            "fbc": fbc,
            "fbp": param(click, conversion, "fbp"),
            "em": [email] if email else None,
            "ph": [phone] if phone else None,
        }
    )
    event = compact(
        {
            "event_name": name,
            "event_time": event_time,
            "event_id": inputs.get("event_id") or None,
            "action_source": inputs.get("action_source") or "website",
            "event_source_url": inputs.get("event_source_url"),
            "user_data": user,
            "custom_data": compact(
                {
                    "value": amount(inputs.get("value"), conversion.payout),
                    "currency": (inputs.get("currency") or conversion.currency or "").upper() or None,
                }
            ),
        }
    )
    body: dict[str, Any] = {"data": [event]}
    if inputs.get("test_event_code"):
        body["test_event_code"] = inputs["test_event_code"]
    return body


@hookspecs.hookimpl
def prepare_request(request: PostbackRequest, context: ResolveContext) -> Optional[PostbackRequest]:
    """Turn a ``meta-capi`` postback into Meta's JSON POST (the token stays in the URL, masked)."""
    if request.template != NAME:
        return None
    url, inputs = split_inputs(request.url, INPUTS)
    return json_post(request, url, build_event(inputs, context))


@hookspecs.hookimpl
def classify_response(request: PostbackRequest, response: Any) -> Optional[str]:
    """Meta answers ``{"events_received": 1, ...}``; an error names a code, some of them temporary."""
    if request.template != NAME:
        return None
    try:
        answer = json.loads(response.text)
    except ValueError:
        return None  # not Meta's JSON (a proxy's error page): the default rules decide
    if not isinstance(answer, dict):
        return None
    if 200 <= response.status_code < 300:
        return "delivered" if int(answer.get("events_received") or 0) >= 1 else "failed"
    error = answer.get("error")
    if isinstance(error, dict) and (error.get("is_transient") or error.get("code") in TEMPORARY_CODES):
        return "retry"
    return None  # other errors: the default rules (4xx failed, 5xx retried)
