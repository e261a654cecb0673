"""The explain page: for one subid, why each postback was sent, retried, skipped or failed, with
the click, its conversions and its log entries on one page."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ..errors import NotFound
from .common import admin, call, tracker_of
from .logs import RESENDABLE
from .render import page


def _explain(request: Request, subid: str) -> dict[str, Any]:
    tracker = tracker_of(request)
    explanation = tracker.explain(subid)
    return {
        "explanation": explanation,
        "click": tracker.click(subid),
        "conversions": tracker.conversions(subid=subid),
        "sent": list(reversed(tracker.sent_postbacks(subid=subid, limit=200))),
        "received": tracker.received_postbacks(subid=subid, limit=50),
        "waiting": tracker.handoffs.waiting_for(subid),
        "waiting_notes": tracker.waiting_notes(subid),
    }


@admin
async def explain(request: Request) -> Response:
    """``GET /explain?subid=...``: the whole chain for one click, the failing step first."""
    subid = request.query_params.get("subid", "").strip()
    if not subid:
        return page(request, "explain.html", title="Explain", section="explain", subid="", found=None, error=None)
    try:
        found = await call(_explain, request, subid)
    except NotFound as exc:
        return page(
            request,
            "explain.html",
            status_code=404,
            title="Explain",
            section="explain",
            subid=subid,
            found=None,
            error=str(exc),
        )
    return page(
        request,
        "explain.html",
        title=f"Explain {subid}",
        section="explain",
        subid=subid,
        found=found,
        error=None,
        resendable=RESENDABLE,
    )
