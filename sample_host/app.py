"""The sample host's web app: campaign links, the inbound postback endpoint and the JSON API."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any, Optional, Union

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route

from . import api
from .errors import HostError
from .tracker import Tracker

log = logging.getLogger(__name__)

#: Inbound postback bodies larger than this are refused: networks send a few parameters.
MAX_POSTBACK_BODY = 64 * 1024


def _text(status: int, message: str) -> PlainTextResponse:
    # One line: networks log these bodies, operators read them in the Received postbacks log.
    return PlainTextResponse(" ".join(message.split()) + "\n", status_code=status)


def _client_ip(request: Request) -> Optional[str]:
    return request.client.host if request.client else None


async def click_endpoint(request: Request) -> Response:
    """``GET /c/{campaign_alias}``: record a click, then redirect to the offer with its subid."""
    tracker: Tracker = request.app.state.tracker
    alias = request.path_params["campaign_alias"]
    params = dict(request.query_params)
    try:
        click, offer_url = await run_in_threadpool(
            tracker.record_click,
            alias,
            params,
            ip=_client_ip(request),
            user_agent=request.headers.get("user-agent"),
        )
    except HostError as exc:
        return _text(exc.http_status, str(exc))
    except Exception:  # noqa: BLE001
        log.exception("click on campaign %r failed", alias)
        return _text(503, "the click could not be recorded; try again")
    return RedirectResponse(offer_url, status_code=302, headers={"X-Subid": click.subid})


async def _postback_params(request: Request) -> Mapping[str, str]:
    """Query parameters, overlaid with a POST's form or JSON body."""
    params: dict[str, str] = dict(request.query_params)
    if request.method != "POST":
        return params
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > MAX_POSTBACK_BODY:
        raise HostError(f"body is larger than {MAX_POSTBACK_BODY} bytes")
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = await request.body()
    if len(body) > MAX_POSTBACK_BODY:
        raise HostError(f"body is larger than {MAX_POSTBACK_BODY} bytes")
    if not body.strip():
        return params
    if content_type == "application/json" or (not content_type and body.lstrip()[:1] == b"{"):
        try:
            data = json.loads(body)
        except ValueError:
            raise HostError("body is not valid JSON") from None
        if not isinstance(data, dict):
            raise HostError("JSON body must be an object of parameters")
        for key, value in data.items():
            if isinstance(value, (dict, list)):
                raise HostError(f"JSON parameter {key!r} must be a string or a number")
            params[str(key)] = "" if value is None else str(value)
        return params
    try:
        form = await request.form()
    except Exception:  # noqa: BLE001  (malformed multipart is the sender's mistake, not ours)
        raise HostError("body is not a valid form: send application/x-www-form-urlencoded or JSON") from None
    params.update({k: v for k, v in form.items() if isinstance(v, str)})
    return params


async def postback_endpoint(request: Request) -> Response:
    """``GET|POST /{postback_key}/postback``: a conversion from an affiliate network.

    Never answers 500: bad input gets a 4xx with its reason, and an unexpected failure gets a 503
    so the network sends the postback again.
    """
    tracker: Tracker = request.app.state.tracker
    key = request.path_params["postback_key"]
    try:
        try:
            params = await _postback_params(request)
        except HostError as exc:
            receipt = await run_in_threadpool(
                tracker.reject_postback, exc, dict(request.query_params),
                method=request.method, ip=_client_ip(request),
            )
            return _text(receipt.http_status, receipt.text)
        receipt = await run_in_threadpool(
            tracker.receive_postback, key, params, method=request.method, ip=_client_ip(request)
        )
        return _text(receipt.http_status, receipt.text)
    except Exception:  # noqa: BLE001
        log.exception("inbound postback failed")
        return _text(503, "the postback could not be processed; send it again later")


async def index(request: Request) -> Response:
    """A plain pointer for people opening the tracker in a browser; nothing private here."""
    return _text(200, "s2s-postback sample host: campaign links are /c/{alias}; JSON API under /api/")


def create_app(
    tracker_or_db_url: Union[Tracker, str],
    *,
    run_dispatcher: bool = False,
    **tracker_options: Any,
) -> Starlette:
    """The ASGI app for a tracker (or for a database URL, building the tracker and owning it).

    :param run_dispatcher: start the plugin's background delivery dispatcher with the app and stop
        it on shutdown (``sample-host serve``); tests leave it off and call ``drain()``.
    :param tracker_options: passed to ``Tracker`` when a URL is given.
    """
    owns_tracker = not isinstance(tracker_or_db_url, Tracker)
    tracker = Tracker(tracker_or_db_url, **tracker_options) if owns_tracker else tracker_or_db_url
    tracker.credentials()  # the API token and postback key must exist before the first request

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if run_dispatcher:
            tracker.s2s.start()
        try:
            yield
        finally:
            if owns_tracker:
                await run_in_threadpool(tracker.close)
            elif run_dispatcher:
                await run_in_threadpool(tracker.s2s.close)

    routes = [
        Route("/", index, methods=["GET"]),
        Mount("/api", routes=api.routes()),
        Route("/c/{campaign_alias}", click_endpoint, methods=["GET"]),
        Route("/{postback_key}/postback", postback_endpoint, methods=["GET", "POST"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.tracker = tracker
    return app
