"""Traffic source pages: sources made from the template library, and the exact campaign link each
source must be given (its click-id macro in the right parameter)."""

from __future__ import annotations

from typing import Any, Optional

from starlette.requests import Request
from starlette.responses import Response

from hookspecs import PostbackRule
from s2s_plugin.resolution.links import LinkSettings, link_settings
from s2s_plugin.resolution.money import PAYOUT_MODES
from s2s_plugin.resolution.templates import placeholders_left

from ..errors import Conflict, HostError, NotFound
from ..rulesettings import current_settings
from .campaigns import STATUSES
from .common import admin, base_url, call, flash_warnings, form_list, form_values, posted_settings, tracker_of
from .render import flash, page, see_other


def _links(request: Request, source_id: str) -> list[dict[str, str]]:
    """The campaigns bought from this source, each with the link to give the source."""
    tracker = tracker_of(request)
    return [
        {"alias": c["alias"], "name": c["name"], "link": tracker.campaign_link(c["alias"], base_url(request))}
        for c in tracker.campaigns()
        if c["source_id"] == source_id
    ]


def _link_suffix(request: Request, source_id: str) -> str:
    """What every campaign link for this source must end with (``?external_id={macro}``)."""
    link = tracker_of(request).s2s.campaign_link(source_id, base_url=base_url(request), campaign_alias="ALIAS")
    return "?" + link.split("?", 1)[1] if "?" in link else ""


def _new_form(request: Request, template_name: Optional[str]) -> dict[str, Any]:
    templates = tracker_of(request).templates()
    chosen = templates.get(template_name or "")
    blank = {
        "body": None,
        "content_type": "",
        "placeholders": {},
        "payout_mode": "real",
        "payout_value": None,
        "min_payout": None,
    }
    if chosen is None:
        return {
            **blank,
            "id": "",
            "template": "",
            "postback_url": "",
            "method": "GET",
            "statuses": ["sale"],
            "secrets": [],
            "follow_redirects": False,
            "click_id_param": "external_id",
            "source_macro": "",
            "parameters": {},
        }
    return {
        **blank,
        "id": chosen.name,
        "template": chosen.name,
        "postback_url": chosen.postback_url,
        "method": chosen.method,
        "statuses": list(chosen.statuses),
        "secrets": list(chosen.secrets or ()),
        "follow_redirects": chosen.follow_redirects,
        "click_id_param": chosen.click_id_param,
        "source_macro": chosen.source_macro or "",
        "parameters": dict(chosen.parameters),
    }


async def _parameter_rows(request: Request) -> dict[str, str]:
    """The parameter table from the form's rows (``param_name`` and ``param_macro`` side by side);
    a row left empty is dropped, a half-filled one is kept for the check to name."""
    form = await request.form()
    names = [v if isinstance(v, str) else "" for v in form.getlist("param_name")]
    macros = [v if isinstance(v, str) else "" for v in form.getlist("param_macro")]
    rows: dict[str, str] = {}
    for name, macro in zip(names, macros):
        if name.strip() or macro.strip():
            if name.strip() in rows:
                raise HostError(f"tracker parameter {name.strip()} is in the table twice")
            rows[name.strip()] = macro.strip()
    return rows


def _sources_page(request: Request, *, form: dict[str, Any], error: Optional[str], status: int = 200) -> Response:
    tracker = tracker_of(request)
    templates = tracker.templates()
    chosen = templates.get(form.get("template") or "")
    rows = [
        {
            "rule": rule,
            "template": templates.get(rule.template or ""),
            "campaigns": len(_links(request, rule.source_id or "")),
        }
        for rule in tracker.sources()
    ]
    library = sorted(templates.values(), key=lambda t: (t.title or t.name).lower())
    return page(
        request,
        "sources.html",
        status_code=status,
        title="Sources",
        section="sources",
        sources=rows,
        library=library,
        chosen=chosen,
        form=form,
        error=error,
        statuses=STATUSES,
        payout_modes=PAYOUT_MODES,
    )


@admin
async def sources(request: Request) -> Response:
    """``GET /sources[?template=NAME]``: the sources, and the form to add one from a template."""
    form = await call(_new_form, request, request.query_params.get("template"))
    return await call(_sources_page, request, form=form, error=None)


def _source_values(values: dict[str, str], statuses: list[str], parameters: dict[str, str]) -> dict[str, Any]:
    return {
        "postback_url": values.get("postback_url", "").strip() or None,
        "method": values.get("method") or None,
        "payout_mode": values.get("payout_mode") or "real",
        **posted_settings(values, statuses),
        "placeholders": {
            key[len("placeholder_") :]: value.strip()
            for key, value in values.items()
            if key.startswith("placeholder_") and value.strip()
        },
        "click_id_param": values.get("click_id_param", "").strip() or None,
        "source_macro": values.get("source_macro", "").strip() or None,
        "parameters": parameters,
    }


@admin
async def add_source(request: Request) -> Response:
    """``POST /sources``: create a source from a template (its URL edited or kept)."""
    values = await form_values(request)
    statuses = await form_list(request, "statuses")
    tracker = tracker_of(request)
    source_id = values.get("id", "").strip()
    form: dict[str, Any] = {**values, "id": source_id, **_source_values(values, statuses, {})}
    try:
        form["parameters"] = await _parameter_rows(request)
        if not statuses:
            raise HostError("choose at least one status for the source's postback")
        if await call(tracker.s2s.source, source_id) is not None:
            raise Conflict(f"source {source_id!r} exists already: open it to change its postback")
        rule = await call(
            tracker.add_source,
            source_id,
            template=values.get("template") or None,
            **_source_values(values, statuses, form["parameters"]),
        )
    except HostError as exc:
        return await call(_sources_page, request, form=form, error=str(exc), status=exc.http_status)
    flash(request, f"Source {source_id} added. Campaigns bought from it need the link shown here.")
    flash_warnings(request, rule)
    return see_other(f"/sources/{source_id}")


def _source_page(
    request: Request, source_id: str, *, form: Optional[dict[str, Any]], error: Optional[str], status: int = 200
) -> Response:
    tracker = tracker_of(request)
    rule = tracker.source(source_id)
    template = tracker.templates().get(rule.template or "")
    link = link_settings(template, rule)
    values = form or _stored_form(rule, link)
    left = placeholders_left(rule.url, template.placeholders) if template else []
    return page(
        request,
        "source.html",
        status_code=status,
        title=f"Source {source_id}",
        section="sources",
        rule=rule,
        template=template,
        links=_links(request, source_id),
        warnings=[str(w) for w in tracker.s2s.lint(rule)],
        placeholders=left,
        link_suffix=_link_suffix(request, source_id),
        form=values,
        error=error,
        statuses=STATUSES,
        payout_modes=PAYOUT_MODES,
    )


def _stored_form(rule: PostbackRule, link: LinkSettings) -> dict[str, Any]:
    """The form of a stored source: its postback's settings and the campaign link settings it uses
    now (its own, or its template's)."""
    settings = current_settings(rule)
    settings["postback_url"] = settings.pop("url")
    return {
        **settings,
        "placeholders": {},
        "click_id_param": link.click_id_param,
        "source_macro": link.source_macro or "",
        "parameters": dict(link.parameters),
    }


@admin
async def source(request: Request) -> Response:
    """``GET /sources/{source_id}``: the source's postback and its campaign links."""
    return await call(_source_page, request, request.path_params["source_id"], form=None, error=None)


@admin
async def save_source(request: Request) -> Response:
    """``POST /sources/{source_id}``: change the source's postback and campaign link."""
    source_id = request.path_params["source_id"]
    values = await form_values(request)
    statuses = await form_list(request, "statuses")
    tracker = tracker_of(request)
    changes = _source_values(values, statuses, {})
    try:
        rule = await call(tracker.source, source_id)
        changes["parameters"] = await _parameter_rows(request)
        if not statuses:
            raise HostError("choose at least one status for the source's postback")
        if not changes["postback_url"]:
            raise HostError("the postback URL is required")
        # Headers set outside the pages (a token from Python) stay; the content type is the form's.
        rule = await call(tracker.add_source, source_id, template=rule.template, headers=dict(rule.headers), **changes)
    except NotFound as exc:
        return page(request, "error.html", status_code=404, title="Not found", message=str(exc))
    except HostError as exc:
        return await call(_source_page, request, source_id, form=changes, error=str(exc), status=exc.http_status)
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
