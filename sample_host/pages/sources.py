"""Traffic source pages: sources made from the template library, and the exact campaign link each
source must be given (its click-id macro in the right parameter)."""

from __future__ import annotations

from typing import Any, Optional

from starlette.requests import Request
from starlette.responses import Response

from s2s_plugin.money import PAYOUT_MODES

from ..errors import Conflict, HostError, NotFound
from .campaigns import STATUSES
from .common import admin, call, flash_warnings, form_list, form_values, secret_names, tracker_of
from .render import flash, page, see_other


def _base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _links(request: Request, source_id: str) -> list[dict[str, str]]:
    """The campaigns bought from this source, each with the link to give the source."""
    tracker = tracker_of(request)
    return [
        {"alias": c["alias"], "name": c["name"], "link": tracker.campaign_link(c["alias"], _base_url(request))}
        for c in tracker.campaigns()
        if c["source_id"] == source_id
    ]


def _link_suffix(request: Request, source_id: str) -> str:
    """What every campaign link for this source must end with (``?external_id={macro}``)."""
    link = tracker_of(request).s2s.campaign_link(source_id, base_url=_base_url(request), campaign_alias="ALIAS")
    return "?" + link.split("?", 1)[1] if "?" in link else ""


def _new_form(request: Request, template_name: Optional[str]) -> dict[str, Any]:
    templates = tracker_of(request).templates()
    chosen = templates.get(template_name or "")
    if chosen is None:
        return {"id": "", "template": "", "postback_url": "", "method": "GET", "statuses": ["sale"],
                "payout_mode": "real", "payout_value": None, "min_payout": None, "secrets": []}
    return {"id": chosen.name, "template": chosen.name, "postback_url": chosen.postback_url,
            "method": chosen.method, "statuses": list(chosen.statuses), "payout_mode": "real",
            "payout_value": None, "min_payout": None, "secrets": list(chosen.secrets or ())}


def _sources_page(request: Request, *, form: dict[str, Any], error: Optional[str], status: int = 200) -> Response:
    tracker = tracker_of(request)
    templates = tracker.templates()
    chosen = templates.get(form.get("template") or "")
    rows = [{"rule": rule, "template": templates.get(rule.template or ""), "campaigns": len(_links(request, rule.source_id or ""))}
            for rule in tracker.sources()]
    library = sorted(templates.values(), key=lambda t: (t.title or t.name).lower())
    return page(request, "sources.html", status_code=status, title="Sources", section="sources", sources=rows,
                library=library, chosen=chosen, form=form, error=error, statuses=STATUSES, payout_modes=PAYOUT_MODES)


@admin
async def sources(request: Request) -> Response:
    """``GET /sources[?template=NAME]``: the sources, and the form to add one from a template."""
    form = await call(_new_form, request, request.query_params.get("template"))
    return await call(_sources_page, request, form=form, error=None)


def _source_values(values: dict[str, str], statuses: list[str]) -> dict[str, Any]:
    return {
        "postback_url": values.get("postback_url", "").strip() or None,
        "method": values.get("method") or None,
        "statuses": statuses,
        "payout_mode": values.get("payout_mode") or "real",
        "payout_value": values.get("payout_value", "").strip() or None,
        "min_payout": values.get("min_payout", "").strip() or None,
        "secrets": secret_names(values.get("secrets")),
    }


@admin
async def add_source(request: Request) -> Response:
    """``POST /sources``: create a source from a template (its URL edited or kept)."""
    values = await form_values(request)
    statuses = await form_list(request, "statuses")
    tracker = tracker_of(request)
    source_id = values.get("id", "").strip()
    form = {**values, "id": source_id, **_source_values(values, statuses)}
    try:
        if not statuses:
            raise HostError("choose at least one status for the source's postback")
        if await call(tracker.s2s.source, source_id) is not None:
            raise Conflict(f"source {source_id!r} exists already: open it to change its postback")
        rule = await call(tracker.add_source, source_id, template=values.get("template") or None,
                          **_source_values(values, statuses))
    except HostError as exc:
        return await call(_sources_page, request, form=form, error=str(exc), status=exc.http_status)
    flash(request, f"Source {source_id} added. Campaigns bought from it need the link shown here.")
    flash_warnings(request, rule)
    return see_other(f"/sources/{source_id}")


def _source_page(request: Request, source_id: str, *, form: Optional[dict[str, Any]], error: Optional[str],
                 status: int = 200) -> Response:
    tracker = tracker_of(request)
    rule = tracker.source(source_id)
    template = tracker.templates().get(rule.template or "")
    values = form or {"postback_url": rule.url, "method": rule.method, "statuses": list(rule.statuses),
                      "payout_mode": rule.payout_mode, "payout_value": rule.payout_value, "min_payout": rule.min_payout,
                      "secrets": list(rule.secrets)}
    return page(request, "source.html", status_code=status, title=f"Source {source_id}", section="sources",
                rule=rule, template=template, links=_links(request, source_id),
                warnings=[str(w) for w in tracker.s2s.lint(rule)],
                link_suffix=_link_suffix(request, source_id), form=values, error=error, statuses=STATUSES,
                payout_modes=PAYOUT_MODES)


@admin
async def source(request: Request) -> Response:
    """``GET /sources/{source_id}``: the source's postback and its campaign links."""
    return await call(_source_page, request, request.path_params["source_id"], form=None, error=None)


@admin
async def save_source(request: Request) -> Response:
    """``POST /sources/{source_id}``: change the source's postback."""
    source_id = request.path_params["source_id"]
    values = await form_values(request)
    statuses = await form_list(request, "statuses")
    tracker = tracker_of(request)
    try:
        rule = await call(tracker.source, source_id)
        if not statuses:
            raise HostError("choose at least one status for the source's postback")
        changes = _source_values(values, statuses)
        if not changes["postback_url"]:
            raise HostError("the postback URL is required")
        rule = await call(tracker.add_source, source_id, template=rule.template, **changes)
    except NotFound as exc:
        return page(request, "error.html", status_code=404, title="Not found", message=str(exc))
    except HostError as exc:
        return await call(_source_page, request, source_id, form=_source_values(values, statuses),
                          error=str(exc), status=exc.http_status)
    flash(request, f"Source {source_id} saved.")
    flash_warnings(request, rule)
    return see_other(f"/sources/{source_id}")


@admin
async def delete_source(request: Request) -> Response:
    """``POST /sources/{source_id}/delete``: remove a source no campaign uses."""
    source_id = request.path_params["source_id"]
    try:
        await call(tracker_of(request).remove_source, source_id)
    except NotFound as exc:
        return page(request, "error.html", status_code=404, title="Not found", message=str(exc))
    except HostError as exc:
        flash(request, str(exc), "bad")
        return see_other(f"/sources/{source_id}")
    flash(request, f"Source {source_id} deleted.")
    return see_other("/sources")
