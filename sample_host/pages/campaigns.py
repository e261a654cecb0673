"""Campaign pages: the list, a campaign's settings and link, and its S2S postbacks tab (add, edit,
delete, test)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

import hookspecs
from s2s_plugin.resolution.money import PAYOUT_MODES

from ..errors import Conflict, HostError, NotFound
from ..rulesettings import current_settings
from .common import admin, base_url, call, flash_warnings, form_list, form_values, posted_settings, tracker_of
from .render import flash, page, see_other

STATUSES = hookspecs.CANONICAL_STATUSES


def _campaign_rows(request: Request) -> list[dict[str, Any]]:
    tracker = tracker_of(request)
    postbacks: dict[str, int] = {}
    for rule in tracker.postbacks():
        postbacks[rule.campaign_id or ""] = postbacks.get(rule.campaign_id or "", 0) + 1
    return [
        {**c, "link": tracker.campaign_link(c["alias"], base_url(request)), "postbacks": postbacks.get(c["alias"], 0)}
        for c in tracker.campaigns()
    ]


def _campaign_page(request: Request, *, form: dict[str, str], error: str | None, status: int = 200) -> Response:
    tracker = tracker_of(request)
    return page(
        request,
        "campaigns.html",
        status_code=status,
        title="Campaigns",
        section="campaigns",
        campaigns=_campaign_rows(request),
        sources=[s.source_id for s in tracker.sources()],
        form=form,
        error=error,
    )


@admin
async def campaigns(request: Request) -> Response:
    """``GET /campaigns``: every campaign with the link its source needs, and the add form."""
    return await call(_campaign_page, request, form={}, error=None)


@admin
async def add_campaign(request: Request) -> Response:
    """``POST /campaigns``: create a campaign, then open its S2S postbacks tab."""
    form = await form_values(request)
    tracker = tracker_of(request)
    alias = form.get("alias", "").strip()
    try:
        if any(c["alias"] == alias for c in await call(tracker.campaigns)):
            raise Conflict(f"campaign {alias!r} exists already: open it to change it")
        await call(
            tracker.add_campaign,
            alias,
            source_id=form.get("source_id") or None,
            offer_url=form.get("offer_url", ""),
            name=form.get("name", "").strip() or None,
        )
    except HostError as exc:
        return await call(_campaign_page, request, form=form, error=str(exc), status=exc.http_status)
    flash(request, f"Campaign {alias} created. Give its traffic source the campaign link shown below.")
    return see_other(f"/campaigns/{alias}")


def _campaign_context(request: Request, alias: str) -> dict[str, Any]:
    tracker = tracker_of(request)
    campaign = tracker.campaign(alias)
    postbacks = tracker.postbacks(alias)
    return {
        "campaign": campaign,
        "link": tracker.campaign_link(alias, base_url(request)),
        "sources": [s.source_id for s in tracker.sources()],
        "postbacks": postbacks,
        "warnings": {rule.id: [str(w) for w in tracker.s2s.lint(rule)] for rule in postbacks},
        "title": f"Campaign {alias}",
        "section": "campaigns",
    }


@admin
async def campaign(request: Request) -> Response:
    """``GET /campaigns/{alias}``: the campaign's settings and its link."""
    alias = request.path_params["alias"]
    context = await call(_campaign_context, request, alias)
    return page(request, "campaign.html", tab="settings", form=context["campaign"], error=None, **context)


@admin
async def update_campaign(request: Request) -> Response:
    """``POST /campaigns/{alias}``: change the campaign's name, source or offer URL."""
    alias = request.path_params["alias"]
    form = await form_values(request)
    tracker = tracker_of(request)
    try:
        await call(tracker.campaign, alias)
        await call(
            tracker.add_campaign,
            alias,
            source_id=form.get("source_id") or None,
            offer_url=form.get("offer_url", ""),
            name=form.get("name", "").strip() or None,
        )
    except NotFound as exc:
        return page(request, "error.html", status_code=404, title="Not found", message=str(exc))
    except HostError as exc:
        context = await call(_campaign_context, request, alias)
        return page(
            request,
            "campaign.html",
            status_code=exc.http_status,
            tab="settings",
            form={**context["campaign"], **form},
            error=str(exc),
            **context,
        )
    flash(request, f"Campaign {alias} saved.")
    return see_other(f"/campaigns/{alias}")


def _postback_form(values: dict[str, str], statuses: list[str]) -> dict[str, Any]:
    return {
        "url": values.get("url", "").strip(),
        "method": values.get("method", "GET"),
        "payout_mode": values.get("payout_mode", "real"),
        **posted_settings(values, statuses),
    }


def _postbacks_page(
    request: Request, alias: str, *, form: dict[str, Any], error: str | None, status: int = 200
) -> Response:
    context = _campaign_context(request, alias)
    return page(
        request,
        "campaign.html",
        status_code=status,
        tab="postbacks",
        form=form,
        error=error,
        statuses=STATUSES,
        payout_modes=PAYOUT_MODES,
        **context,
    )


NEW_POSTBACK = {
    "url": "",
    "method": "GET",
    "statuses": ["lead", "sale"],
    "payout_mode": "real",
    "payout_value": None,
    "min_payout": None,
    "secrets": [],
    "body": "",
    "content_type": "",
    "follow_redirects": False,
}


@admin
async def campaign_postbacks(request: Request) -> Response:
    """``GET /campaigns/{alias}/postbacks``: the S2S postbacks tab."""
    return await call(_postbacks_page, request, request.path_params["alias"], form=NEW_POSTBACK, error=None)


@admin
async def add_postback(request: Request) -> Response:
    """``POST /campaigns/{alias}/postbacks``: add an S2S postback to the campaign."""
    alias = request.path_params["alias"]
    values = _postback_form(await form_values(request), await form_list(request, "statuses"))
    tracker = tracker_of(request)
    try:
        if not values["statuses"]:
            raise HostError("choose at least one status for the postback to fire on")
        rule = await call(tracker.add_postback, alias, **values)
    except NotFound as exc:
        return page(request, "error.html", status_code=404, title="Not found", message=str(exc))
    except HostError as exc:
        return await call(_postbacks_page, request, alias, form=values, error=str(exc), status=exc.http_status)
    flash(request, f"Postback {rule.id} added: it fires for {', '.join(rule.statuses)}.")
    flash_warnings(request, rule)
    return see_other(f"/campaigns/{alias}/postbacks")


def _edit_page(
    request: Request, number: int, *, form: dict[str, Any] | None, error: str | None, status: int = 200
) -> Response:
    rule = tracker_of(request).postback(str(number))
    values = form or current_settings(rule)
    return page(
        request,
        "postback_edit.html",
        status_code=status,
        title=f"Postback {rule.id}",
        section="campaigns",
        rule=rule,
        form=values,
        error=error,
        statuses=STATUSES,
        payout_modes=PAYOUT_MODES,
    )


@admin
async def edit_postback(request: Request) -> Response:
    """``GET /postbacks/{number}/edit``: a campaign postback's settings."""
    return await call(_edit_page, request, request.path_params["number"], form=None, error=None)


@admin
async def save_postback(request: Request) -> Response:
    """``POST /postbacks/{number}/edit``: save a campaign postback."""
    number = request.path_params["number"]
    values = _postback_form(await form_values(request), await form_list(request, "statuses"))
    tracker = tracker_of(request)
    try:
        rule = await call(tracker.update_postback, str(number), **values)
    except NotFound as exc:
        return page(request, "error.html", status_code=404, title="Not found", message=str(exc))
    except HostError as exc:
        return await call(_edit_page, request, number, form=values, error=str(exc), status=exc.http_status)
    flash(request, f"Postback {rule.id} saved.")
    flash_warnings(request, rule)
    return see_other(f"/campaigns/{rule.campaign_id}/postbacks")


@admin
async def delete_postback(request: Request) -> Response:
    """``POST /postbacks/{number}/delete``: remove a campaign postback."""
    tracker = tracker_of(request)
    rule = await call(tracker.postback, str(request.path_params["number"]))
    await call(tracker.remove_postback, rule.id)
    flash(request, f"Postback {rule.id} deleted.")
    return see_other(f"/campaigns/{rule.campaign_id}/postbacks")
