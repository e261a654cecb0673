"""The explain page: for one subid, the failing step said once with what to do about it (a link to
the setting that fixes it), then the chain drawn as a tree: the click, its conversions, their
postbacks and attempts, each with its state; details folded until asked for."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from s2s_plugin.ops.explaintree import STATES

from ..errors import NotFound
from ..fixes import fix_link
from .common import admin, call, tracker_of
from .render import page

#: Tree states of a delivery that can be sent again (a postback not sent never can).
RESENDABLE_STATES = ("delivered", "retrying", "failed", "paused")

#: Tree states that need an operator's eye.
TROUBLE = ("failed", "problem", "retrying", "paused")


def _explain(request: Request, subid: str) -> dict[str, Any]:
    tracker = tracker_of(request)
    explanation = tracker.explain(subid)
    return {
        "explanation": explanation,
        "fix_link": fix_link(explanation.fix, subid),
        "more_problems": _more_problems(explanation),
        "click": tracker.click(subid),
        "received": tracker.received_postbacks(subid=subid, limit=50),
        "waiting": tracker.handoffs.waiting_for(subid),
        "waiting_notes": tracker.waiting_notes(subid),
    }


def _more_problems(explanation: Any) -> int:
    """Steps in the chain that went wrong besides the failing one (the click and a conversion only
    sum up the postbacks under them, and a postback its attempts, so those are not counted; the
    linter's findings are counted in their own fold)."""
    if explanation.tree is None:
        return 0
    return sum(
        1
        for node in explanation.tree.walk()
        if node.state in TROUBLE and node.kind not in ("click", "conversion", "attempt", "check") and not node.failing
    )


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
        resendable_states=RESENDABLE_STATES,
        STATES=STATES,
    )
