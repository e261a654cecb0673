"""The test-postback button: render a rule with sample values and send it now, outside the queue
and the logs, and show exactly what went out and what came back."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ..errors import HostError
from .campaigns import STATUSES
from .common import admin, call, form_values, tracker_of
from .render import page


def _back(rule: Any) -> str:
    return f"/sources/{rule.source_id}" if rule.source_id else f"/campaigns/{rule.campaign_id}/postbacks"


def _sample(rule: Any) -> dict[str, str]:
    return {
        "status": (list(rule.statuses) or ["sale"])[0],
        "payout": "1.00",
        "currency": "USD",
        "external_id": "test-click-id",
    }


@admin
async def test_form(request: Request) -> Response:
    """``GET /rules/{rule_id}/test``: the sample values to send the rule with."""
    tracker = tracker_of(request)
    rule = await call(tracker.rule, request.path_params["rule_id"])
    return page(
        request,
        "test_send.html",
        title=f"Test {rule.id}",
        section="sources" if rule.source_id else "campaigns",
        rule=rule,
        back=_back(rule),
        form=_sample(rule),
        statuses=STATUSES,
        result=None,
        error=None,
    )


@admin
async def test_send(request: Request) -> Response:
    """``POST /rules/{rule_id}/test``: send it, show the request and the answer."""
    tracker = tracker_of(request)
    values = await form_values(request)
    rule = await call(tracker.rule, request.path_params["rule_id"])
    form = {
        **_sample(rule),
        **{k: v.strip() for k, v in values.items() if k in ("status", "payout", "currency", "external_id")},
    }
    result, error = None, None
    try:
        result = await call(
            tracker.test_send,
            rule.id,
            status=form["status"] or None,
            payout=form["payout"],
            currency=form["currency"],
            external_id=form["external_id"],
        )
    except HostError as exc:
        error = str(exc)
    return page(
        request,
        "test_send.html",
        status_code=400 if error else 200,
        title=f"Test {rule.id}",
        section="sources" if rule.source_id else "campaigns",
        rule=rule,
        back=_back(rule),
        form=form,
        statuses=STATUSES,
        result=result,
        error=error,
    )
