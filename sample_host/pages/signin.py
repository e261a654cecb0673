"""Signing in and out: one admin, the password ``sample-host init`` printed."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from .. import credentials, sessions
from ..errors import HostError
from ..security import client_address, csrf_ok, password_fingerprint, safe_next, session_token, sign_in, sign_out
from .common import admin, call, form_values, tracker_of
from .render import page, see_other


async def signin_form(request: Request) -> Response:
    """``GET /login``: the sign-in form."""
    return page(request, "signin.html", title="Sign in", next=safe_next(request.query_params.get("next")), error=None)


async def signin(request: Request) -> Response:
    """``POST /login``: count the attempt (per client), check the password (a bounded number at
    once), then start a fresh session that ends a fixed time from now."""
    try:
        form = await form_values(request)
    except HostError as exc:
        return page(
            request, "signin.html", title="Sign in", next="/dashboard", error=str(exc), status_code=exc.http_status
        )
    target = safe_next(form.get("next"))
    address = client_address(request)
    throttle = request.app.state.signin_throttle

    def refuse(message: str, status: int) -> Response:
        return page(request, "signin.html", title="Sign in", next=target, error=message, status_code=status)

    if not csrf_ok(request, form.get("csrf_token")):
        return refuse("The form expired: sign in again.", 403)
    # Counted before the hash is computed, so guesses sent in parallel are all counted.
    if not throttle.attempt(address):
        return refuse("Too many sign-ins from your address: wait a few minutes.", 429)
    engine = tracker_of(request).engine
    with throttle.hashing.slot() as got:
        if not got:
            busy = refuse("The tracker is checking other sign-ins: try again in a moment.", 503)
            busy.headers["Retry-After"] = "1"
            return busy
        right = await call(credentials.check_admin_password, engine, form.get("password", ""))
    if not right:
        return refuse(
            "Wrong password. It was printed once by `sample-host init`; `sample-host reset-password` sets a new one.",
            401,
        )
    throttle.succeeded(address)
    stored = await call(credentials.admin_password_hash, engine)
    token = await call(sessions.start, engine, request.app.state.session_lifetime)
    sign_in(request, password_fingerprint(stored or ""), token)
    return see_other(target)


@admin
async def signout(request: Request) -> Response:
    """``POST /logout``: end the session on the server (every copy of the cookie stops working)."""
    await call(sessions.end, tracker_of(request).engine, session_token(request))
    sign_out(request)
    return see_other("/login")


@admin
async def home(request: Request) -> Response:
    """``GET /``: the delivery health dashboard (sign-in first, like every page)."""
    return see_other("/dashboard")
