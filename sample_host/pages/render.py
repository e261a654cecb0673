"""Rendering pages: the Jinja2 environment, its filters, and the context every page shares
(the signed-in state, the CSRF token for its forms, one-time flash messages)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional
from urllib.parse import urlencode

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse

from s2s_plugin.resolution.redact import redact_url

from ..security import CSRF_FIELD, csrf_token
from ..tables import cell

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"

#: Outcomes and their badge style in the logs.
OUTCOME_STYLES = {
    "delivered": "good",
    "accepted": "good",
    "retrying": "warn",
    "ignored": "muted",
    "failed": "bad",
    "rejected": "bad",
    "error": "bad",
    "skipped": "muted",
}


def when(value: Any) -> str:
    """A time as ``2024-05-01 12:00:05`` UTC, ``-`` for none."""
    return cell(value) if value not in (None, "") else "-"


def shorten(value: Any, size: int = 80) -> str:
    """Text cut to ``size`` characters with an ellipsis."""
    text = "" if value is None else " ".join(str(value).split())
    return text if len(text) <= size else text[: size - 1] + "…"


def mask(secret: Optional[str]) -> str:
    """A secret shown by its first four characters only."""
    return f"{secret[:4]}…{'•' * 8}" if secret else "-"


def query(base: str, **params: Any) -> str:
    """``base`` with the non-empty ``params`` as its query string."""
    kept = {k: v for k, v in params.items() if v not in (None, "")}
    return f"{base}?{urlencode(kept)}" if kept else base


def rule_url(rule: Any) -> str:
    """A postback rule's URL with the values of its marked secrets (account keys, tokens) hidden,
    for lists and headings; only the rule's own edit form shows them."""
    return redact_url(rule.url, getattr(rule, "secrets", None) or ())


environment = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    autoescape=True,
    undefined=jinja2.StrictUndefined,  # a misspelt name in a template fails its page test, not silently
    trim_blocks=True,
    lstrip_blocks=True,
)
environment.filters.update(when=when, shorten=shorten, mask=mask, rule_url=rule_url)
environment.globals.update(query=query, OUTCOME_STYLES=OUTCOME_STYLES, CSRF_FIELD=CSRF_FIELD)


def flash(request: Request, text: str, kind: str = "good") -> None:
    """A message shown once, on the next page rendered for this session."""
    request.session["flash"] = [*request.session.get("flash", []), {"text": " ".join(text.split()), "kind": kind}]


def page(request: Request, name: str, *, status_code: int = 200, **context: Any) -> HTMLResponse:
    """Render template ``name`` with the shared context."""
    flashes = request.session.pop("flash", []) if "flash" in request.session else []
    shared = {
        "request": request,
        "signed_in": bool(request.session.get("admin")),
        "csrf_token": csrf_token(request),
        "flashes": flashes,
        "section": context.pop("section", ""),
        "here": request.url.path + (f"?{request.url.query}" if request.url.query else ""),
    }
    html = environment.get_template(name).render({**shared, **context})
    return HTMLResponse(html, status_code=status_code)


def see_other(url: str) -> RedirectResponse:
    """The answer to a successful form: go to ``url`` with a GET (no re-post on reload)."""
    return RedirectResponse(url, status_code=303)
