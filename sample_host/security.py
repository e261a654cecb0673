"""Who may see the tracker's pages: the admin session, CSRF tokens, sign-in throttling, and the
security headers every answer carries.

The session lives in a signed cookie (Starlette's ``SessionMiddleware``: ``HttpOnly``,
``SameSite=Lax``, ``Secure`` when served over HTTPS) and holds only four things: that the admin
signed in, the token of the server-side session (``sessions``: it ends a fixed time after sign-in
whatever is written to the cookie since, and sign-out ends it for every copy of the cookie), a
fingerprint of the password they signed in with (changing the password signs every session out),
and the CSRF token every form must send back.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any, Optional
from urllib.parse import quote

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .throttles import RecentCounts, WorkSlots, client_key

#: Name of the form field (and session key) carrying the CSRF token.
CSRF_FIELD = "csrf_token"

#: Admin sessions end this long after sign-in, whatever happens (checked on the server).
SESSION_MAX_AGE = 12 * 60 * 60

SESSION_COOKIE = "sample_host_session"

PageHandler = Callable[[Request], Awaitable[Response]]


def password_fingerprint(password_hash: str) -> str:
    """A short digest of the stored password hash: sessions carry it, so a new password ends them."""
    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]


def csrf_token(request: Request) -> str:
    """This session's CSRF token, created on first use (the sign-in form needs one too)."""
    token = request.session.get(CSRF_FIELD)
    if not token:
        token = secrets.token_urlsafe(24)
        request.session[CSRF_FIELD] = token
    return str(token)


def csrf_ok(request: Request, submitted: Optional[str]) -> bool:
    """Whether the submitted token is this session's (constant-time comparison)."""
    expected = request.session.get(CSRF_FIELD)
    return bool(expected and submitted) and hmac.compare_digest(str(expected), str(submitted))


def sign_in(request: Request, fingerprint: str, session_token: str) -> None:
    """Start an admin session: a fresh session (and CSRF token), never the one from before.

    :param session_token: the server-side session's token (``sessions.start``).
    """
    request.session.clear()
    request.session.update(
        {"admin": True, "sid": session_token, "pw": fingerprint, CSRF_FIELD: secrets.token_urlsafe(24)}
    )


def session_token(request: Request) -> Optional[str]:
    """The server-side session token the cookie carries, if any."""
    token = request.session.get("sid")
    return token if isinstance(token, str) else None


def sign_out(request: Request) -> None:
    """Clear the cookie's session (the caller ends the server-side one with ``sessions.end``)."""
    request.session.clear()


def signed_in(request: Request, fingerprint: Optional[str], live: bool) -> bool:
    """Whether the request carries an admin session made with the current password.

    :param live: whether the server still holds the cookie's session (``sessions.is_live``).
    """
    session = request.session
    return (
        live
        and bool(session.get("admin"))
        and fingerprint is not None
        and hmac.compare_digest(str(session.get("pw", "")), fingerprint)
    )


def login_redirect(request: Request) -> RedirectResponse:
    """Send a signed-out visitor to the sign-in page, remembering where they wanted to go."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    response = RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
    response.headers["Cache-Control"] = "no-store"
    return response


def safe_next(target: Optional[str]) -> str:
    """Where to go after sign-in: a local path only, so the form cannot send anyone elsewhere."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/dashboard"


def require_admin(is_admin: Callable[[Request], Awaitable[bool]]) -> Callable[[PageHandler], PageHandler]:
    """Decorator for page handlers: signed-out visitors go to sign-in; every POST must carry the
    session's CSRF token (checked before the handler reads anything else).

    :param is_admin: whether the request is signed in (``signed_in`` with what the server holds),
        asked per request.
    """

    def decorate(handler: PageHandler) -> PageHandler:
        @functools.wraps(handler)
        async def wrapper(request: Request) -> Response:
            if not await is_admin(request):
                if request.method == "GET":
                    return login_redirect(request)
                return Response("sign in first\n", status_code=403, media_type="text/plain")
            if request.method == "POST":
                form = await request.form()
                submitted = form.get(CSRF_FIELD)
                if not csrf_ok(request, submitted if isinstance(submitted, str) else None):
                    return Response(
                        "the form expired or did not come from this tracker: reload the page and try again\n",
                        status_code=403,
                        media_type="text/plain",
                    )
            return await handler(request)

        return wrapper

    return decorate


class SignInThrottle:
    """At most ``limit`` sign-in attempts per client in ``window`` seconds, and at most
    ``concurrent`` password checks at once (in memory, per process).

    An attempt is counted before the password is hashed, so guesses sent in parallel are counted
    too; an IPv6 client is counted by its /64. A right password forgets the client's attempts.
    Guessing the admin password becomes hopeless, and scrypt work stays bounded: attempts beyond
    ``concurrent`` are answered at once instead of queueing (``hashing.slot()``).
    """

    def __init__(
        self,
        limit: int = 10,
        window: float = 300.0,
        *,
        concurrent: int = 2,
        max_clients: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.attempts = RecentCounts(limit, window, max_keys=max_clients, clock=clock)
        self.hashing = WorkSlots(concurrent)

    def attempt(self, address: str) -> bool:
        """Count a sign-in attempt from ``address``; False when its client has had ``limit``
        attempts in the window (then it must wait, and nothing is counted)."""
        return self.attempts.hit(client_key(address))

    def blocked(self, address: str) -> bool:
        """Whether ``address``'s client must wait before trying again."""
        return self.attempts.full(client_key(address))

    def succeeded(self, address: str) -> None:
        """Forget the attempts of a client that signed in."""
        self.attempts.forget(client_key(address))


#: Headers on every answer. No page uses scripts, so the policy forbids them outright.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}


class SecurityHeadersMiddleware:
    """Adds ``SECURITY_HEADERS`` to every response, and ``Cache-Control: no-store`` to every
    response that is not a static file (pages show conversions and postback URLs)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = scope.get("path", "").startswith("/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
                if not static:
                    headers.setdefault("Cache-Control", "no-store")
            await send(message)

        await self.app(scope, receive, send_with_headers)


def client_address(request: Any) -> str:
    """The peer address of a request, ``unknown`` when the server gave none."""
    client = getattr(request, "client", None)
    return client.host if client and client.host else "unknown"
