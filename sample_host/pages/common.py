"""What every page handler needs: the admin check, the tracker, form values, and running the
tracker's (blocking) database work off the event loop."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Optional, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from .. import credentials
from ..errors import HostError, NotFound
from ..security import PageHandler, password_fingerprint, require_admin
from ..tracker import Tracker
from .render import flash, page

T = TypeVar("T")


def tracker_of(request: Request) -> Tracker:
    """The tracker the app serves."""
    return request.app.state.tracker


async def call(func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a blocking tracker call in the thread pool."""
    return await run_in_threadpool(functools.partial(func, *args, **kwargs))


async def current_fingerprint(request: Request) -> Optional[str]:
    """The fingerprint of the admin password now stored (sessions must carry the same)."""
    stored = await call(credentials.admin_password_hash, tracker_of(request).engine)
    return password_fingerprint(stored) if stored else None


def admin(handler: PageHandler) -> PageHandler:
    """A page only a signed-in admin may see; its POSTs must carry the CSRF token.

    A campaign, source, postback or log entry the request names but the tracker lacks (``NotFound``)
    becomes the 404 page here, once, instead of in every handler.
    """

    @functools.wraps(handler)
    async def missing_as_404(request: Request) -> Any:
        try:
            return await handler(request)
        except NotFound as exc:
            return page(request, "error.html", status_code=404, title="Not found", message=str(exc))

    return require_admin(current_fingerprint)(missing_as_404)


async def form_values(request: Request) -> dict[str, str]:
    """A submitted form's single values (the last one of a repeated name)."""
    form = await request.form()
    return {key: value for key, value in form.items() if isinstance(value, str)}


async def form_list(request: Request, name: str) -> list[str]:
    """Every value of a repeated form field (checkboxes)."""
    form = await request.form()
    return [value for value in form.getlist(name) if isinstance(value, str) and value]


def int_param(request: Request, name: str) -> Optional[int]:
    """A query parameter that must be a whole number, None when absent.

    :raises HostError: for anything else.
    """
    value = request.query_params.get(name)
    if value in (None, ""):
        return None
    if not value.isdigit():
        raise HostError(f"{name}={value!r} must be a whole number")
    return int(value)


def flash_warnings(request: Request, rule: Any) -> None:
    """Show what the template linter noticed in a postback just saved (saved anyway: warnings only)."""
    for warning in getattr(rule, "warnings", ()):
        flash(request, f"Check {rule.id}: {warning}", "warn")


def secret_names(text: Optional[str]) -> list[str]:
    """Secret parameter names from a form field (commas or spaces between them)."""
    return [name for name in (text or "").replace(",", " ").split() if name]
