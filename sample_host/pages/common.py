"""What every page handler needs: the admin check, the tracker, form values, and running the
tracker's (blocking) database work off the event loop."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Optional, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from .. import credentials, sessions
from ..errors import HostError, NotFound
from ..params import check_text, whole_number
from ..security import PageHandler, password_fingerprint, require_admin, session_token, signed_in
from ..tracker import Tracker
from .render import flash, page

T = TypeVar("T")


def tracker_of(request: Request) -> Tracker:
    """The tracker the app serves."""
    return request.app.state.tracker


def base_url(request: Request) -> str:
    """The address the tracker is reached at (campaign links start with it), without a final ``/``."""
    return str(request.base_url).rstrip("/")


async def call(func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a blocking tracker call in the thread pool."""
    return await run_in_threadpool(functools.partial(func, *args, **kwargs))


async def is_admin(request: Request) -> bool:
    """Whether the request is signed in: its cookie names a session the server still holds (not
    signed out, not expired) made with the admin password now stored. A visitor whose cookie
    claims nothing costs no database read."""
    if not request.session.get("admin"):
        return False
    engine = tracker_of(request).engine
    token = session_token(request)

    def held() -> tuple[Optional[str], bool]:
        stored = credentials.admin_password_hash(engine)
        return (password_fingerprint(stored) if stored else None), sessions.is_live(engine, token)

    fingerprint, live = await call(held)
    return signed_in(request, fingerprint, live)


def admin(handler: PageHandler) -> PageHandler:
    """A page only a signed-in admin may see; its POSTs must carry the CSRF token.

    Odd input becomes a page with its 4xx here, once, instead of in every handler: a campaign,
    source, postback or log entry the request names but the tracker lacks (``NotFound``) the 404
    page, and any other ``HostError`` (a NUL byte in the path or query, a bad number) the error
    page with its status.
    """

    @functools.wraps(handler)
    async def refused_as_4xx(request: Request) -> Any:
        try:
            check_text(request.path_params.items(), "path parameter")
            check_text(request.query_params.multi_items(), "query parameter")
            return await handler(request)
        except NotFound as exc:
            return page(request, "error.html", status_code=404, title="Not found", message=str(exc))
        except HostError as exc:
            return page(request, "error.html", status_code=exc.http_status, title="Not accepted", message=str(exc))

    return require_admin(is_admin)(refused_as_4xx)


async def form_values(request: Request) -> dict[str, str]:
    """A submitted form's single values (the last one of a repeated name)."""
    form = await request.form()
    check_text(form.multi_items(), "form field")
    return {key: value for key, value in form.items() if isinstance(value, str)}


async def form_list(request: Request, name: str) -> list[str]:
    """Every value of a repeated form field (checkboxes)."""
    form = await request.form()
    return [value for value in form.getlist(name) if isinstance(value, str) and value]


def int_param(request: Request, name: str) -> Optional[int]:
    """A query parameter that must be a whole number (a row id), None when absent.

    :raises HostError: for anything else.
    """
    return whole_number(request.query_params.get(name), name)


def flash_warnings(request: Request, rule: Any) -> None:
    """Show what the template linter noticed in a postback just saved (saved anyway: warnings only)."""
    for warning in getattr(rule, "warnings", ()):
        flash(request, f"Check {rule.id}: {warning}", "warn")


def secret_names(text: Optional[str]) -> list[str]:
    """Secret parameter names from a form field (commas or spaces between them)."""
    return [name for name in (text or "").replace(",", " ").split() if name]


def posted_settings(values: dict[str, str], statuses: list[str]) -> dict[str, Any]:
    """The settings every postback form has, a source's and a campaign postback's alike (statuses,
    payout limits, secrets, body, redirects), as the tracker takes them; empty fields are None."""
    return {
        "statuses": statuses,
        "payout_value": values.get("payout_value", "").strip() or None,
        "min_payout": values.get("min_payout", "").strip() or None,
        "secrets": secret_names(values.get("secrets")),
        "body": values.get("body", ""),
        "content_type": values.get("content_type", ""),
        "follow_redirects": bool(values.get("follow_redirects")),
    }
