"""The Waiting conversions page: recorded conversions the postback plugin has not taken yet, the
stuck ones first, each with its tries, last error and next try, and a button to hand it over now."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ..handoff import STUCK_AFTER
from .common import admin, call, tracker_of
from .render import flash, page, see_other

#: Waiting conversions listed at most (the stuck ones first, so they are always among them).
SHOWN = 200


@admin
async def handoffs(request: Request) -> Response:
    """``GET /handoffs``: the waiting conversions (at most ``SHOWN``), stuck ones first."""
    handoffs = tracker_of(request).handoffs
    rows = await call(handoffs.waiting_list, limit=SHOWN)
    return page(
        request,
        "handoffs.html",
        title="Waiting conversions",
        section="received",
        rows=rows,
        waiting=await call(handoffs.waiting),
        stuck=await call(handoffs.stuck),
        shown=SHOWN,
        stuck_after=STUCK_AFTER,
    )


@admin
async def retry(request: Request) -> Response:
    """``POST /handoffs/{conversion_id}/retry``: hand a waiting conversion (and its click's) over now."""
    conversion_id = request.path_params["conversion_id"]
    handed = await call(tracker_of(request).hand_over_now, conversion_id)
    if handed.complete:
        flash(request, f"Conversion #{conversion_id} was handed to the postback plugin.")
    else:
        flash(request, f"The postback plugin did not take conversion #{conversion_id}: {handed.error}", "bad")
    return see_other("/handoffs")
