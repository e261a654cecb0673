"""The settings page: the postback URL to give affiliate networks, how inbound postbacks are
answered and from which addresses they are taken. Secrets are masked: the API token was shown once
by ``sample-host init`` and is never shown again."""

from __future__ import annotations

from typing import Any, Optional

from starlette.requests import Request
from starlette.responses import Response

from ..errors import HostError
from .common import admin, call, form_values, tracker_of
from .render import flash, mask, page, see_other

POSTBACK_QUERY = "?subid={subid}&status={status}&payout={payout}&currency={currency}&tid={tid}"


def _settings_page(
    request: Request, *, form: Optional[dict[str, Any]], error: Optional[str], status: int = 200
) -> Response:
    tracker = tracker_of(request)
    creds = tracker.credentials()
    current = tracker.inbound_settings()
    base = str(request.base_url).rstrip("/")
    values = form or {"response_text": current.response_text, "allowed_ips": "\n".join(current.allowed_text)}
    return page(
        request,
        "settings.html",
        status_code=status,
        title="Settings",
        section="settings",
        postback_url=f"{base}/{creds.postback_key}/postback{POSTBACK_QUERY}",
        masked_postback_url=f"{base}/{creds.postback_key[:4]}…/postback{POSTBACK_QUERY}",
        api_token=mask(creds.api_token),
        form=values,
        error=error,
        plugins=tracker.plugins,
    )


@admin
async def settings(request: Request) -> Response:
    """``GET /settings``."""
    return await call(_settings_page, request, form=None, error=None)


@admin
async def save_settings(request: Request) -> Response:
    """``POST /settings``: the response text and the allow-list."""
    values = await form_values(request)
    tracker = tracker_of(request)
    try:
        await call(
            tracker.set_inbound_settings,
            response_text=values.get("response_text", ""),
            allowed_ips=[values.get("allowed_ips", "")],
        )
    except HostError as exc:
        return await call(_settings_page, request, form=values, error=str(exc), status=exc.http_status)
    flash(request, "Settings saved.")
    return see_other("/settings")
