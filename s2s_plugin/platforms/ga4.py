"""Google Analytics 4 Measurement Protocol (``ga4``): each conversion as an event of a GA4 stream.

The template's URL carries the stream's ``measurement_id`` and ``api_secret`` (marked secret) and
the event's inputs; ``prepare_request`` builds the JSON body: the visitor's ``client_id`` (a
``client_id`` or ``cid`` click parameter, or the ``_ga`` cookie's value, else the click's subid),
and one event named by status (``generate_lead``, ``purchase``) with ``transaction_id`` (the
delivery id, so a resent purchase is not counted twice), ``value`` and ``currency``. GA4 answers
204 to anything; its validation endpoint (``/debug/mp/collect``) answers a list of problems, which
``classify_response`` reads.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any, Optional

import hookspecs
from hookspecs import PostbackRequest, ResolveContext, SourceTemplate
from s2s_plugin.platforms.events import amount, compact, json_post, param, split_inputs

NAME = "ga4"

INPUTS = ("event_name", "transaction_id", "value", "currency", "timestamp")

#: GA4 drops events whose timestamp is more than 72 hours old: older conversions go without one.
MAX_TIMESTAMP_AGE = 72 * 3600

# The _ga cookie: GA1.1.<random>.<first visit>; the client id is the last two numbers.
_GA_COOKIE = re.compile(r"GA\d\.\d+\.(\d+\.\d+)")

TEMPLATE = SourceTemplate(
    name=NAME,
    title="Google Analytics 4 (Measurement Protocol)",
    postback_url=(
        "https://www.google-analytics.com/mp/collect?measurement_id=MEASUREMENT_ID&api_secret=API_SECRET"
        "&event_name={status:lead=generate_lead sale=purchase rebill=purchase}&transaction_id={delivery_id}"
        "&value={revenue}&currency={currency}&timestamp={timestamp}"
    ),
    click_id_param="client_id",
    source_macro=None,
    method="POST",
    statuses=("lead", "sale"),
    notes=(
        "Replace MEASUREMENT_ID (G-...) and API_SECRET (Admin > Data streams > your stream > "
        "Measurement Protocol API secrets). Pass the visitor's GA client id as the click parameter "
        "client_id (or the _ga cookie as _ga) so the conversion joins the visitor's session; without "
        "it the click's subid is used. To check the events, point the URL at /debug/mp/collect."
    ),
    citation=(
        "https://developers.google.com/analytics/devguides/collection/protocol/ga4/sending-events ; "
        "https://developers.google.com/analytics/devguides/collection/protocol/ga4/validating-events"
    ),
    secrets=("api_secret",),
    placeholders=("MEASUREMENT_ID", "API_SECRET"),
    confidence="high",
)


@hookspecs.hookimpl
def register_source_templates() -> list[SourceTemplate]:
    """The ``ga4`` template."""
    return [TEMPLATE]


def client_id(context: ResolveContext) -> str:
    """The GA client id: a ``client_id``/``cid`` parameter, the ``_ga`` cookie's, else the subid."""
    click, conversion = context.click, context.conversion
    found = param(click, conversion, "client_id", "cid")
    if found:
        return found
    cookie = param(click, conversion, "_ga")
    match = _GA_COOKIE.fullmatch(cookie or "")
    return match.group(1) if match else conversion.subid


def build_event(inputs: dict[str, str], context: ResolveContext, now: Optional[float] = None) -> dict[str, Any]:
    """The Measurement Protocol body for one conversion.

    :raises ValueError: when the event has no name.
    """
    conversion = context.conversion
    name = inputs.get("event_name", "").strip()
    if not name:
        raise ValueError("the postback URL gives no event_name for this status")
    body: dict[str, Any] = {"client_id": client_id(context)}
    stamp = inputs.get("timestamp", "")
    if stamp.isdigit() and (time.time() if now is None else now) - int(stamp) < MAX_TIMESTAMP_AGE:
        body["timestamp_micros"] = int(stamp) * 1_000_000
    body["events"] = [
        {
            "name": name,
            "params": compact(
                {
                    "transaction_id": inputs.get("transaction_id"),
                    "value": amount(inputs.get("value"), conversion.payout),
                    "currency": (inputs.get("currency") or conversion.currency or "").upper() or None,
                }
            ),
        }
    ]
    return body


@hookspecs.hookimpl
def prepare_request(request: PostbackRequest, context: ResolveContext) -> Optional[PostbackRequest]:
    """Turn a ``ga4`` postback into the Measurement Protocol's JSON POST."""
    if request.template != NAME:
        return None
    url, inputs = split_inputs(request.url, INPUTS)
    return json_post(request, url, build_event(inputs, context))


@hookspecs.hookimpl
def classify_response(request: PostbackRequest, response: Any) -> Optional[str]:
    """The validation endpoint's ``validationMessages``: any message means the event was refused."""
    if request.template != NAME or not 200 <= response.status_code < 300 or not response.text.strip():
        return None
    try:
        answer = json.loads(response.text)
    except ValueError:
        return None
    if isinstance(answer, dict) and answer.get("validationMessages"):
        return "failed"
    return None
