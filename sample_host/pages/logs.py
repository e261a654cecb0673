"""The two logs: Sent postbacks (filters, pages, an attempt's detail, resend) and Received
postbacks (every inbound postback, accepted or refused, with the reason)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

import hookspecs
from s2s_plugin.delivery.hostlimits import host_statuses
from s2s_plugin.resolution.causes import Cause
from s2s_plugin.resolution.ruleid import RuleId

from ..dashboard import cause_view
from ..errors import HostError
from ..logs import CAUSE_WINDOW, RECEIVED_OUTCOMES, ReceivedFilter, SentFilter, cause_counts, parse_time
from ..security import safe_next
from ..sentcsv import export_lines
from .common import admin, call, form_values, int_param, tracker_of
from .render import flash, page, see_other

PER_PAGE = 50

#: Sent log entries whose delivery can be sent again (a skipped postback never can).
RESENDABLE = ("delivered", "retrying", "failed")


def _filter_values(request: Request, names: tuple[str, ...]) -> dict[str, str]:
    return {name: request.query_params.get(name, "").strip() for name in names}


#: The Sent log's filters, as query parameters (the page's form, its pager and its CSV link).
SENT_FILTERS = ("subid", "source", "campaign", "outcome", "cause", "since", "until")


def _sent_filter(values: dict[str, str]) -> SentFilter:
    """The Sent log filter from its query parameters; raises ``HostError`` for a bad one."""
    return SentFilter(
        subid=values["subid"] or None,
        source=values["source"] or None,
        campaign=values["campaign"] or None,
        outcome=values["outcome"] or None,
        since=parse_time(values["since"], "since"),
        until=parse_time(values["until"], "until"),
        cause=values["cause"] or None,
    )


def _causes(tracker: Any, filters: SentFilter, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The causes of what the other filters select (each a link that filters by it), and each
    row's cause with the link to the setting that fixes it."""
    counts = cause_counts(tracker.engine, dataclasses.replace(filters, cause=None))
    groups = [
        cause_view(c.cause, c.count, RuleId.parse(c.rule_id) if c.rule_id else None, c.campaign_id) for c in counts
    ]
    per_row = {
        row["id"]: cause_view(row["cause"], 1, RuleId.parse(row["rule_id"]), row.get("campaign_id"))
        for row in rows
        if row.get("cause")
    }
    return {
        "cause_groups": groups,
        "row_causes": per_row,
        "cause_window": CAUSE_WINDOW if sum(c.count for c in counts) >= CAUSE_WINDOW else None,
    }


@admin
async def sent(request: Request) -> Response:
    """``GET /sent``: the Sent postbacks log, newest first, filtered and paged."""
    values = _filter_values(request, SENT_FILTERS)
    tracker = tracker_of(request)
    try:
        filters = _sent_filter(values)
        result = await call(
            tracker.sent_page,
            filters,
            before=int_param(request, "before"),
            after=int_param(request, "after"),
            limit=PER_PAGE,
        )
        causes = await call(_causes, tracker, filters, result.rows)
        error = None
    except HostError as exc:
        result, error, causes = None, str(exc), {"cause_groups": [], "row_causes": {}, "cause_window": None}
    choices = await call(_choices, request)
    return page(
        request,
        "sent.html",
        status_code=400 if error else 200,
        title="Sent postbacks",
        section="sent",
        filters=values,
        result=result,
        error=error,
        outcomes=hookspecs.OUTCOMES,
        resendable=RESENDABLE,
        **causes,
        **choices,
    )


@admin
async def sent_csv(request: Request) -> Response:
    """``GET /sent.csv``: every entry the same filters select on the Sent page, as CSV, streamed
    (a bad filter is a one-line 400, as on the page)."""
    filters = _sent_filter(_filter_values(request, SENT_FILTERS))
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    return StreamingResponse(
        export_lines(tracker_of(request).engine, filters),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="sent-postbacks-{stamp}.csv"'},
    )


def _choices(request: Request) -> dict[str, Any]:
    tracker = tracker_of(request)
    return {
        "cause_choices": sorted(((cause.value, cause.label) for cause in Cause), key=lambda pair: pair[1]),
        "source_ids": [s.source_id for s in tracker.sources()],
        "campaign_aliases": [c["alias"] for c in tracker.campaigns()],
        # Source hosts whose postbacks wait for a probe (the plugin's circuit breaker).
        "down_hosts": [status.describe() for status in host_statuses(tracker.s2s.engine).values() if status.is_open],
    }


@admin
async def sent_entry(request: Request) -> Response:
    """``GET /sent/{entry_id}``: one attempt in full, beside the other attempts of its delivery."""
    tracker = tracker_of(request)
    entry = await call(tracker.sent_entry, request.path_params["entry_id"])
    latest = entry["attempts"][-1]
    cause = None
    if entry.get("cause"):
        cause = cause_view(entry["cause"], 1, RuleId.parse(entry["rule_id"]), entry.get("campaign_id"))
    return page(
        request,
        "attempt.html",
        title=f"Attempt #{entry['id']}",
        section="sent",
        entry=entry,
        cause=cause,
        resendable=latest["outcome"] in RESENDABLE,
    )


@admin
async def resend(request: Request) -> Response:
    """``POST /deliveries/{delivery_id}/resend``: make a delivery due again now, then go back."""
    delivery_id = request.path_params["delivery_id"]
    form = await form_values(request)
    try:
        await call(tracker_of(request).resend, delivery_id)
        flash(request, f"Delivery #{delivery_id} is due again: it is sent within seconds and logged as a new attempt.")
    except HostError as exc:
        flash(request, str(exc), "bad")
    return see_other(safe_next(form.get("next") or "/sent"))


@admin
async def received(request: Request) -> Response:
    """``GET /received``: the Received postbacks log, newest first, and the refused probes."""
    values = _filter_values(request, ("subid", "outcome", "since", "until"))
    tracker = tracker_of(request)
    try:
        filters = ReceivedFilter(
            subid=values["subid"] or None,
            outcome=values["outcome"] or None,
            since=parse_time(values["since"], "since"),
            until=parse_time(values["until"], "until"),
        )
        result = await call(
            tracker.received_page,
            filters,
            before=int_param(request, "before"),
            after=int_param(request, "after"),
            limit=PER_PAGE,
        )
        error = None
    except HostError as exc:
        result, error = None, str(exc)
    refused = await call(tracker.refusals.summary)
    waiting = await call(tracker.handoffs.waiting)
    return page(
        request,
        "received.html",
        status_code=400 if error else 200,
        title="Received postbacks",
        section="received",
        filters=values,
        result=result,
        error=error,
        outcomes=RECEIVED_OUTCOMES,
        refused=refused,
        waiting=waiting,
    )
