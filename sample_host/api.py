"""The JSON API under ``/api/``: sources, campaigns, postbacks, both logs, resend and explain.

Every endpoint needs ``Authorization: Bearer <api_token>`` (the token ``sample-host init`` prints).
Errors are ``{"error": "<one line>"}`` with a 4xx status.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Optional

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .bodies import read_body
from .errors import HostError
from .logs import parse_time
from .params import check_text, parse_json, whole_number
from .tracker import Tracker, jsonable, rule_to_dict

log = logging.getLogger(__name__)

Handler = Callable[[Request], Awaitable[Response]]


def error_response(status: int, message: str, headers: Optional[dict[str, str]] = None) -> JSONResponse:
    """A JSON error body with a one-line message."""
    return JSONResponse({"error": " ".join(message.split())}, status_code=status, headers=headers)


def is_authorized(request: Request, tracker: Tracker) -> bool:
    """Whether the request carries ``Authorization: Bearer <api_token>`` (constant-time check)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return False
    expected = tracker.credentials().api_token
    return hmac.compare_digest(token.strip().encode(), expected.encode())


def endpoint(handler: Callable[[Request, Tracker], Awaitable[Any]]) -> Handler:
    """Wrap an API handler: check the bearer token, turn ``HostError`` into its 4xx JSON answer,
    and turn a returned dict or list into JSON (a ``Response`` passes through)."""

    @functools.wraps(handler)
    async def wrapper(request: Request) -> Response:
        tracker: Tracker = request.app.state.tracker
        if not await run_in_threadpool(is_authorized, request, tracker):
            return error_response(
                401,
                "missing or wrong API token: send 'Authorization: Bearer <api_token>' from `sample-host init`",
                headers={"WWW-Authenticate": "Bearer"},
            )
        try:
            check_text(request.path_params.items(), "path parameter")
            check_text(request.query_params.multi_items(), "query parameter")
            result = await handler(request, tracker)
        except HostError as exc:
            return error_response(exc.http_status, str(exc))
        except Exception:
            log.exception("API %s %s failed", request.method, request.url.path)
            return error_response(503, "the tracker could not complete the request; try again")
        if isinstance(result, Response):
            return result
        return JSONResponse(result)

    return wrapper


#: API request bodies are a few settings; anything larger is a mistake or an attack.
MAX_API_BODY = 256 * 1024


async def _json_body(request: Request) -> dict[str, Any]:
    body = await read_body(request, MAX_API_BODY)
    data = parse_json(body or b"{}", "request body")
    if not isinstance(data, dict):
        raise HostError("request body must be a JSON object")
    return data


def _str_list(data: dict[str, Any], name: str) -> Optional[list[str]]:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, str):
        value = [v for v in value.replace(",", " ").split() if v]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise HostError(f"{name!r} must be a list of strings")
    return value


def _opt_str(data: dict[str, Any], name: str) -> Optional[str]:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise HostError(f"{name!r} must be a string")
    return value


def _amount(data: dict[str, Any], name: str) -> Optional[str]:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise HostError(f"{name!r} must be a number or a string")
    return str(value)


def _opt_bool(data: dict[str, Any], name: str) -> Optional[bool]:
    value = data.get(name)
    if value is None or isinstance(value, bool):
        return value
    raise HostError(f"{name!r} must be true or false")


def _str_map(data: dict[str, Any], name: str) -> Optional[dict[str, str]]:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise HostError(f'{name!r} must be an object of strings, e.g. {{"sub_id_1": "{{zoneid}}"}}')
    return value


def _postback_settings(data: dict[str, Any]) -> dict[str, Any]:
    """The settings every postback has, from a request body (None for those it lacks)."""
    return {
        "method": _opt_str(data, "method"),
        "statuses": _str_list(data, "statuses"),
        "payout_mode": _opt_str(data, "payout_mode"),
        "payout_value": _amount(data, "payout_value"),
        "min_payout": _amount(data, "min_payout"),
        "body": _opt_str(data, "body"),
        "content_type": _opt_str(data, "content_type"),
        "secrets": _str_list(data, "secrets"),
        "follow_redirects": _opt_bool(data, "follow_redirects"),
    }


def _source_settings(data: dict[str, Any]) -> dict[str, Any]:
    """A source's settings from a request body: every postback's, its placeholders and campaign link."""
    return {
        **_postback_settings(data),
        "placeholders": _str_map(data, "placeholders"),
        "click_id_param": _opt_str(data, "click_id_param"),
        "source_macro": _opt_str(data, "source_macro"),
        "parameters": _str_map(data, "parameters"),
    }


def _given(settings: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in settings.items() if value is not None}


def _source_view(tracker: Tracker, rule: Any, base_url: str) -> dict[str, Any]:
    """A source's postback rule with the campaign link its campaigns need (``CAMPAIGN`` for the alias)."""
    link = tracker.s2s.campaign_link(rule.source_id, base_url=base_url.rstrip("/"), campaign_alias="CAMPAIGN")
    return {**rule_to_dict(rule), "campaign_link": link}


def _time_param(request: Request, name: str) -> Optional[dt.datetime]:
    return parse_time(request.query_params.get(name), name)


def _limit_param(request: Request, default: int = 100) -> int:
    limit = whole_number(request.query_params.get("limit"), "limit", low=1, high=10_000)
    return default if limit is None else limit


@endpoint
async def list_sources(request: Request, tracker: Tracker) -> Any:
    """``GET /api/sources``: traffic sources with their postback rules."""
    rules = await run_in_threadpool(tracker.sources)
    return {"items": [rule_to_dict(r) for r in rules]}


@endpoint
async def add_source(request: Request, tracker: Tracker) -> Any:
    """``POST /api/sources`` ``{"id", "template", "postback_url", "statuses", "method", "payout_mode",
    "payout_value", "min_payout", "body", "content_type", "secrets", "follow_redirects",
    "placeholders", "click_id_param", "source_macro", "parameters"}``."""
    data = await _json_body(request)
    source_id = _opt_str(data, "id")
    if not source_id:
        raise HostError("'id' is required")
    settings = _given(_source_settings(data))
    base_url = str(request.base_url)

    def add() -> dict[str, Any]:
        rule = tracker.add_source(
            source_id, template=_opt_str(data, "template"), postback_url=_opt_str(data, "postback_url"), **settings
        )
        return _source_view(tracker, rule, base_url)

    return JSONResponse(await run_in_threadpool(add), status_code=201)


@endpoint
async def get_source(request: Request, tracker: Tracker) -> Any:
    """``GET /api/sources/{id}``: one source's postback rule and its campaign link."""
    base_url = str(request.base_url)
    return await run_in_threadpool(
        lambda: _source_view(tracker, tracker.source(request.path_params["source_id"]), base_url)
    )


@endpoint
async def edit_source(request: Request, tracker: Tracker) -> Any:
    """``PATCH /api/sources/{id}``: change the settings given (those of ``POST /api/sources``
    but ``id`` and ``template``); the others stay."""
    data = await _json_body(request)
    settings = _source_settings(data)
    base_url = str(request.base_url)

    def edit() -> dict[str, Any]:
        rule = tracker.edit_source(
            request.path_params["source_id"], postback_url=_opt_str(data, "postback_url"), **settings
        )
        return _source_view(tracker, rule, base_url)

    return await run_in_threadpool(edit)


@endpoint
async def list_templates(request: Request, tracker: Tracker) -> Any:
    """``GET /api/templates``: the source template library."""
    templates = await run_in_threadpool(tracker.templates)
    return {"items": [dataclasses.asdict(t) for _, t in sorted(templates.items())]}


def _campaign_view(tracker: Tracker, campaign: dict[str, Any], base_url: str) -> dict[str, Any]:
    return {**campaign, "link": tracker.campaign_link(campaign["alias"], base_url)}


@endpoint
async def list_campaigns(request: Request, tracker: Tracker) -> Any:
    """``GET /api/campaigns``: campaigns with the link to give their traffic source."""
    base_url = str(request.base_url)

    def load() -> list[dict[str, Any]]:
        return [_campaign_view(tracker, c, base_url) for c in tracker.campaigns()]

    return {"items": await run_in_threadpool(load)}


@endpoint
async def add_campaign(request: Request, tracker: Tracker) -> Any:
    """``POST /api/campaigns`` ``{"alias", "source_id", "offer_url", "name"}``."""
    data = await _json_body(request)
    alias = _opt_str(data, "alias")
    offer_url = _opt_str(data, "offer_url")
    if not alias or not offer_url:
        raise HostError("'alias' and 'offer_url' are required")
    base_url = str(request.base_url)

    def add() -> dict[str, Any]:
        campaign = tracker.add_campaign(
            alias,
            source_id=_opt_str(data, "source_id") or _opt_str(data, "source"),
            offer_url=offer_url,
            name=_opt_str(data, "name"),
        )
        return _campaign_view(tracker, campaign, base_url)

    return JSONResponse(await run_in_threadpool(add), status_code=201)


@endpoint
async def list_postbacks(request: Request, tracker: Tracker) -> Any:
    """``GET /api/campaigns/{alias}/postbacks``: the campaign's S2S postbacks."""
    rules = await run_in_threadpool(tracker.postbacks, request.path_params["alias"])
    return {"items": [rule_to_dict(r) for r in rules]}


@endpoint
async def add_postback(request: Request, tracker: Tracker) -> Any:
    """``POST /api/campaigns/{alias}/postbacks`` ``{"url", "method", "statuses", "payout_mode",
    "payout_value", "min_payout", "body", "content_type", "secrets", "follow_redirects"}``."""
    data = await _json_body(request)
    url = _opt_str(data, "url")
    if not url:
        raise HostError("'url' is required")
    rule = await run_in_threadpool(
        functools.partial(
            tracker.add_postback, request.path_params["alias"], url=url, **_given(_postback_settings(data))
        )
    )
    return JSONResponse(rule_to_dict(rule), status_code=201)


@endpoint
async def get_postback(request: Request, tracker: Tracker) -> Any:
    """``GET /api/postbacks/{id}``: one campaign S2S postback."""
    return rule_to_dict(await run_in_threadpool(tracker.postback, request.path_params["postback_id"]))


@endpoint
async def edit_postback(request: Request, tracker: Tracker) -> Any:
    """``PATCH /api/postbacks/{id}``: change the settings given (those of adding one); the others stay."""
    data = await _json_body(request)
    rule = await run_in_threadpool(
        functools.partial(
            tracker.edit_postback,
            request.path_params["postback_id"],
            url=_opt_str(data, "url"),
            **_postback_settings(data),
        )
    )
    return rule_to_dict(rule)


@endpoint
async def delete_postback(request: Request, tracker: Tracker) -> Any:
    """``DELETE /api/postbacks/{id}``: remove a campaign's S2S postback."""
    await run_in_threadpool(tracker.remove_postback, request.path_params["postback_id"])
    return Response(status_code=204)


@endpoint
async def sent_postbacks(request: Request, tracker: Tracker) -> Any:
    """``GET /api/sent-postbacks?subid=&outcome=&source=&campaign=&cause=&since=&until=&limit=``: the
    Sent postbacks log, each item with every ``PostbackAttempt`` field (``cause``: a cause code)."""
    filters = _log_filters(request, ("subid", "outcome", "source", "campaign", "cause"))
    return {"items": await run_in_threadpool(functools.partial(tracker.sent_postbacks, **filters))}


@endpoint
async def received_postbacks(request: Request, tracker: Tracker) -> Any:
    """``GET /api/received-postbacks?subid=&outcome=&since=&until=&limit=``: every inbound
    postback, newest first."""
    filters = _log_filters(request, ("subid", "outcome"))
    return {"items": await run_in_threadpool(functools.partial(tracker.received_postbacks, **filters))}


def _log_filters(request: Request, names: tuple[str, ...]) -> dict[str, Any]:
    """A log endpoint's filters: the named text parameters, the time range and the limit."""
    filters: dict[str, Any] = {name: request.query_params.get(name) or None for name in names}
    return {
        **filters,
        "since": _time_param(request, "since"),
        "until": _time_param(request, "until"),
        "limit": _limit_param(request),
    }


@endpoint
async def resend(request: Request, tracker: Tracker) -> Any:
    """``POST /api/deliveries/{id}/resend``: make a delivery due again now."""
    delivery_id = request.path_params["delivery_id"]
    await run_in_threadpool(tracker.resend, delivery_id)
    return JSONResponse({"delivery_id": delivery_id, "resend": "due now"}, status_code=202)


@endpoint
async def explain(request: Request, tracker: Tracker) -> Any:
    """``GET /api/explain/{subid}``: why each postback of a click was sent, skipped or failed."""

    def run() -> dict[str, Any]:
        subid = request.path_params["subid"]
        explanation = tracker.explain(subid)
        waiting = tracker.waiting_notes(subid)
        return {**explanation.to_dict(), "waiting": waiting, "text": "\n".join([*waiting, str(explanation)])}

    return await run_in_threadpool(run)


@endpoint
async def handoffs(request: Request, tracker: Tracker) -> Any:
    """``GET /api/handoffs``: conversions the postback plugin has not taken yet, stuck ones first,
    each with its tries, last error and next try."""
    rows = await run_in_threadpool(tracker.handoffs.waiting_list)
    return {"items": [jsonable(row) for row in rows], "stuck": sum(1 for row in rows if row["stuck"])}


@endpoint
async def not_found(request: Request, tracker: Tracker) -> Any:
    """Any other path under ``/api/``."""
    return error_response(404, f"no API endpoint {request.method} {request.url.path}")


def routes() -> list[Route]:
    """The API routes, to mount under ``/api``."""
    return [
        Route("/sources", list_sources, methods=["GET"]),
        Route("/sources", add_source, methods=["POST"]),
        Route("/sources/{source_id}", get_source, methods=["GET"]),
        Route("/sources/{source_id}", edit_source, methods=["PATCH"]),
        Route("/templates", list_templates, methods=["GET"]),
        Route("/campaigns", list_campaigns, methods=["GET"]),
        Route("/campaigns", add_campaign, methods=["POST"]),
        Route("/campaigns/{alias}/postbacks", list_postbacks, methods=["GET"]),
        Route("/campaigns/{alias}/postbacks", add_postback, methods=["POST"]),
        Route("/postbacks/{postback_id}", get_postback, methods=["GET"]),
        Route("/postbacks/{postback_id}", edit_postback, methods=["PATCH"]),
        Route("/postbacks/{postback_id}", delete_postback, methods=["DELETE"]),
        Route("/sent-postbacks", sent_postbacks, methods=["GET"]),
        Route("/received-postbacks", received_postbacks, methods=["GET"]),
        Route("/deliveries/{delivery_id:int}/resend", resend, methods=["POST"]),
        Route("/explain/{subid}", explain, methods=["GET"]),
        Route("/handoffs", handoffs, methods=["GET"]),
        Route("/{path:path}", not_found, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
    ]
