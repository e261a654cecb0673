"""The sample host's web app: campaign links, the inbound postback endpoint, the admin pages, the
JSON API and ``/metrics``."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any, Optional, Union

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from . import api, credentials, pages
from .bodies import BodyLimitMiddleware, read_body, replayed
from .errors import HostError
from .metrics import metrics_endpoint
from .params import parse_json
from .security import SESSION_COOKIE, SESSION_MAX_AGE, SecurityHeadersMiddleware, SignInThrottle
from .tracker import Tracker

log = logging.getLogger(__name__)

#: Inbound postback bodies larger than this are refused: networks send a few parameters.
MAX_POSTBACK_BODY = 64 * 1024

#: Any request body larger than this is refused (admin forms, sign-in): pages send a few fields.
MAX_REQUEST_BODY = 1024 * 1024

#: Seconds between hand-overs of conversions the postback plugin did not take (see ``handoff``).
HANDOFF_INTERVAL = 15.0

STATIC = Path(__file__).resolve().parent / "static"


def _text(status: int, message: str) -> PlainTextResponse:
    # One line: networks log these bodies, operators read them in the Received postbacks log.
    return PlainTextResponse(" ".join(message.split()) + "\n", status_code=status)


def _client_ip(request: Request) -> Optional[str]:
    return request.client.host if request.client else None


async def click_endpoint(request: Request) -> Response:
    """``GET /c/{campaign_alias}``: record a click, then redirect to the offer with its subid.

    ``HEAD`` records nothing: 200 when the campaign exists, 404 when not.
    """
    tracker: Tracker = request.app.state.tracker
    alias = request.path_params["campaign_alias"]
    params = dict(request.query_params)
    if request.method == "HEAD":
        # Link checkers and previews ask with HEAD: say whether the link works, record no click
        # (a click no visitor made would skew the campaign and could fire a conversion's postback).
        try:
            await run_in_threadpool(tracker.campaign, alias)
        except HostError as exc:
            return Response(status_code=exc.http_status)
        return Response(status_code=200)
    try:
        click, offer_url = await run_in_threadpool(
            tracker.record_click,
            alias,
            params,
            ip=_client_ip(request),
            user_agent=request.headers.get("user-agent"),
            accept_language=request.headers.get("accept-language"),
            referrer=request.headers.get("referer"),
        )
    except HostError as exc:
        return _text(exc.http_status, str(exc))
    except Exception:
        log.exception("click on campaign %r failed", alias)
        return _text(503, "the click could not be recorded; try again")
    return RedirectResponse(offer_url, status_code=302, headers={"X-Subid": click.subid})


async def _postback_params(request: Request) -> Mapping[str, str]:
    """Query parameters, overlaid with a POST's form or JSON body (at most ``MAX_POSTBACK_BODY``
    bytes, counted while it streams in)."""
    params: dict[str, str] = dict(request.query_params)
    if request.method != "POST":
        return params
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = await read_body(request, MAX_POSTBACK_BODY)
    if not body.strip():
        return params
    if content_type == "application/json" or (not content_type and body.lstrip()[:1] == b"{"):
        data = parse_json(body)
        if not isinstance(data, dict):
            raise HostError("JSON body must be an object of parameters")
        for key, value in data.items():
            if isinstance(value, (dict, list)):
                raise HostError(f"JSON parameter {key!r} must be a string or a number")
            params[str(key)] = "" if value is None else str(value)
        return params
    try:
        form = await replayed(request, body).form()
    except Exception:
        raise HostError("body is not a valid form: send application/x-www-form-urlencoded or JSON") from None
    params.update({k: v for k, v in form.items() if isinstance(v, str)})
    return params


async def postback_endpoint(request: Request) -> Response:
    """``GET|POST /{postback_key}/postback``: a conversion from an affiliate network.

    The address and the key are checked before the body is read. Never answers 500: bad input
    gets a 4xx with its reason, and a failure to record the conversion a 503, so the network sends
    the postback again.
    """
    tracker: Tracker = request.app.state.tracker
    key = request.path_params["postback_key"]
    try:
        refused = await run_in_threadpool(
            functools.partial(
                tracker.refuse_postback,
                key,
                ip=_client_ip(request),
                method=request.method,
                params=dict(request.query_params),
            )
        )
        if refused is not None:
            return _text(refused.http_status, refused.text)
        try:
            params = await _postback_params(request)
        except HostError as exc:
            receipt = await run_in_threadpool(
                tracker.reject_postback,
                exc,
                dict(request.query_params),
                method=request.method,
                ip=_client_ip(request),
            )
            return _text(receipt.http_status, receipt.text)
        receipt = await run_in_threadpool(
            tracker.receive_postback, key, params, method=request.method, ip=_client_ip(request)
        )
        return _text(receipt.http_status, receipt.text)
    except Exception:
        log.exception("inbound postback failed")
        return _text(503, "the postback could not be processed; send it again later")


def create_app(
    tracker_or_db_url: Union[Tracker, str],
    *,
    run_dispatcher: bool = False,
    secure_cookies: bool = False,
    handoff_interval: float = HANDOFF_INTERVAL,
    session_lifetime: float = SESSION_MAX_AGE,
    signin_throttle: Optional[SignInThrottle] = None,
    **tracker_options: Any,
) -> Starlette:
    """The ASGI app for a tracker (or for a database URL, building the tracker and owning it).

    :param run_dispatcher: start the plugin's background delivery dispatcher with the app and stop
        it on shutdown (``sample-host serve``); tests leave it off and call ``drain()``.
    :param secure_cookies: mark the session cookie ``Secure`` (set it when served over HTTPS).
    :param handoff_interval: seconds between hand-overs of conversions the plugin has not taken
        yet (also done once at start); see ``handoff``.
    :param session_lifetime: seconds an admin session lasts from sign-in, whatever it does.
    :param signin_throttle: how many sign-in attempts and password checks are allowed (the
        default: 10 per client in 5 minutes, 2 checks at once).
    :param tracker_options: passed to ``Tracker`` when a URL is given.
    """
    owns_tracker = not isinstance(tracker_or_db_url, Tracker)
    tracker = Tracker(tracker_or_db_url, **tracker_options) if owns_tracker else tracker_or_db_url
    tracker.credentials()  # the API token and postback key must exist before the first request

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if run_dispatcher:
            tracker.s2s.start()
        # The first hand-over finishes before serving: a restart recovers waiting conversions first.
        await _hand_over_once(tracker)
        recovery = asyncio.create_task(_hand_over_periodically(tracker, handoff_interval))
        try:
            yield
        finally:
            recovery.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await recovery
            if owns_tracker:
                await run_in_threadpool(tracker.close)
            elif run_dispatcher:
                await run_in_threadpool(tracker.s2s.close)

    routes = [
        Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
        Mount("/api", routes=api.routes()),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
        Route("/c/{campaign_alias}", click_endpoint, methods=["GET"]),
        *pages.routes(),
        Route("/{postback_key}/postback", postback_endpoint, methods=["GET", "POST"]),
    ]
    middleware = [
        Middleware(SecurityHeadersMiddleware),
        Middleware(BodyLimitMiddleware, limit=MAX_REQUEST_BODY),
        Middleware(
            SessionMiddleware,
            secret_key=credentials.session_secret(tracker.engine),
            session_cookie=SESSION_COOKIE,
            max_age=int(session_lifetime) or 1,
            same_site="lax",
            https_only=secure_cookies,
        ),
    ]
    app = Starlette(
        routes=routes, middleware=middleware, lifespan=lifespan, exception_handlers={404: _not_found, 405: _not_allowed}
    )
    app.state.tracker = tracker
    app.state.signin_throttle = signin_throttle or SignInThrottle()
    app.state.session_lifetime = session_lifetime
    return app


async def _hand_over_once(tracker: Tracker, *, due_only: bool = False) -> None:
    """Hand the plugin the conversions it has not taken yet; a failure waits for the next round."""
    try:
        await run_in_threadpool(functools.partial(tracker.hand_over_waiting, due_only=due_only))
    except Exception:
        log.exception("handing waiting conversions to the postback plugin failed")


async def _hand_over_periodically(tracker: Tracker, interval: float) -> None:
    """Hand the plugin the conversions it has not taken yet, every ``interval`` seconds."""
    while True:
        await asyncio.sleep(interval)
        await _hand_over_once(tracker, due_only=True)


async def _not_found(request: Request, exc: Exception) -> Response:
    return _text(404, f"nothing at {request.url.path}")


async def _not_allowed(request: Request, exc: Exception) -> Response:
    return _text(405, f"{request.method} is not allowed on {request.url.path}")
