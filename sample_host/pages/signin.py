"""Signing in and out: one admin, the password ``sample-host init`` printed."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from .. import credentials
from ..errors import HostError
from ..security import client_address, csrf_ok, password_fingerprint, safe_next, sign_in, sign_out
from .common import admin, call, form_values, tracker_of
from .render import page, see_other


async def signin_form(request: Request) -> Response:
    """``GET /login``: the sign-in form."""
    return page(request, "signin.html", title="Sign in", next=safe_next(request.query_params.get("next")), error=None)


async def signin(request: Request) -> Response:
    """``POST /login``: check the password (throttled per address), then start a fresh session."""
    try:
        form = await form_values(request)
    except HostError as exc:
        return page(request, "signin.html", title="Sign in", next="/campaigns", error=str(exc), status_code=400)
    target = safe_next(form.get("next"))
    address = client_address(request)
    throttle = request.app.state.signin_throttle

    def refuse(message: str, status: int) -> Response:
        return page(request, "signin.html", title="Sign in", next=target, error=message, status_code=status)

    if not csrf_ok(request, form.get("csrf_token")):
        return refuse("The form expired: sign in again.", 403)
    if throttle.blocked(address):
        return refuse("Too many failed sign-ins from your address: wait a few minutes.", 429)
    engine = tracker_of(request).engine
    if not await call(credentials.check_admin_password, engine, form.get("password", "")):
        throttle.failed(address)
        return refuse("Wrong password. It was printed once by `sample-host init`; "
                      "`sample-host reset-password` sets a new one.", 401)
    throttle.succeeded(address)
    stored = await call(credentials.admin_password_hash, engine)
    sign_in(request, password_fingerprint(stored or ""))
    return see_other(target)


@admin
async def signout(request: Request) -> Response:
    """``POST /logout``: end the session."""
    sign_out(request)
    return see_other("/login")


@admin
async def home(request: Request) -> Response:
    """``GET /``: the campaigns (sign-in first, like every page)."""
    return see_other("/campaigns")
