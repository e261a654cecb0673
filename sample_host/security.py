"""Who may see the tracker's pages: the admin session, CSRF tokens, sign-in throttling, and the
security headers every answer carries.

The session lives in a signed cookie (Starlette's ``SessionMiddleware``: ``HttpOnly``,
``SameSite=Lax``, ``Secure`` when served over HTTPS) and holds only three things: that the admin
signed in, a fingerprint of the password they signed in with (changing the password signs every
session out), and the CSRF token every form must send back.
"""

from __future__ import annotations

import collections
import functools
import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, Optional
from urllib.parse import quote

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: Name of the form field (and session key) carrying the CSRF token.
CSRF_FIELD = "csrf_token"

#: Signed sessions end this long after sign-in, whatever happens.
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


def sign_in(request: Request, fingerprint: str) -> None:
    """Start an admin session: a fresh session (and CSRF token), never the one from before."""
    request.session.clear()
    request.session.update({"admin": True, "pw": fingerprint, CSRF_FIELD: secrets.token_urlsafe(24)})


def sign_out(request: Request) -> None:
    """End the session (the cookie is cleared)."""
    request.session.clear()


def signed_in(request: Request, fingerprint: Optional[str]) -> bool:
    """Whether the request carries an admin session made with the current password."""
    session = request.session
    return bool(session.get("admin")) and fingerprint is not None and hmac.compare_digest(
        str(session.get("pw", "")), fingerprint
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
    return "/campaigns"


def require_admin(fingerprint_of: Callable[[Request], Awaitable[Optional[str]]]) -> Callable[[PageHandler], PageHandler]:
    """Decorator for page handlers: signed-out visitors go to sign-in; every POST must carry the
    session's CSRF token (checked before the handler reads anything else).

    :param fingerprint_of: the current password fingerprint, read per request.
    """

    def decorate(handler: PageHandler) -> PageHandler:
        @functools.wraps(handler)
        async def wrapper(request: Request) -> Response:
            if not signed_in(request, await fingerprint_of(request)):
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
    """At most ``limit`` failed sign-ins per address in ``window`` seconds (in memory, per process).

    Guessing the admin password from one address becomes hopeless; scrypt makes each guess slow too.
    """

    def __init__(self, limit: int = 10, window: float = 300.0) -> None:
        self.limit = limit
        self.window = window
        self._failures: dict[str, collections.deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, address: str, now: float) -> collections.deque[float]:
        failures = self._failures.setdefault(address, collections.deque())
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        return failures

    def blocked(self, address: str) -> bool:
        """Whether this address must wait before trying again."""
        with self._lock:
            return len(self._recent(address, time.monotonic())) >= self.limit

    def failed(self, address: str) -> None:
        """Count a failed sign-in from this address."""
        with self._lock:
            now = time.monotonic()
            self._recent(address, now).append(now)
            if len(self._failures) > 10_000:  # forget quiet addresses rather than grow without bound
                for key in [k for k, v in self._failures.items() if not v]:
                    del self._failures[key]

    def succeeded(self, address: str) -> None:
        """Forget the failures of an address that signed in."""
        with self._lock:
            self._failures.pop(address, None)


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
