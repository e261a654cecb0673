"""The delivery health dashboard: the landing page after sign-in."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ..dashboard import choose_window, dashboard_context
from .common import admin, call, tracker_of
from .render import page


@admin
async def dashboard(request: Request) -> Response:
    """``GET /dashboard?window=1h|24h|7d``: each postback rule's deliveries, causes, latency and
    host state over the window; the queue now. A bad window is a 400 (via ``admin``)."""
    window = choose_window(request.query_params.get("window"))
    tracker = tracker_of(request)
    configured = await call(lambda: [*tracker.sources(), *tracker.postbacks()])
    context = await call(dashboard_context, tracker.s2s.engine, window, configured=configured)
    return page(request, "dashboard.html", title="Delivery health", section="dashboard", **context)
