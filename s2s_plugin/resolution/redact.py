"""Keeping secrets out of everything that is recorded: attempt URLs, bodies, answers, explain.

Two ways to mark a secret:

- by value: ``PostbackRequest.secrets`` lists text a ``prepare_request`` hook put in the request
  (a token in a header, a signature); every occurrence, URL-encoded forms included, is replaced.
- by name: a postback rule's (or its template's) ``secrets`` lists names of query parameters, form
  or JSON body fields and headers whose values are secret, whatever they are::

    s2s.add_source("exo", postback_url="https://s.example/pb?cid={external_id}&api_key=SeCrEt",
                   secrets=["api_key"])
    # logged as https://s.example/pb?cid=abc&api_key=[REDACTED]

The request is sent unchanged; the Sent postbacks log, ``on_postback_sent`` and ``explain`` show
``[REDACTED]`` instead.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Mapping
from typing import Any, Optional
from urllib.parse import parse_qsl, quote, quote_plus, unquote_plus, urlsplit, urlunsplit

REDACTED = "[REDACTED]"
MASK = REDACTED


#: Values of marked fields shorter than this are not searched for in answers and reasons: masking
#: every "1" of a response because a field held "1" would garble the log and protect nothing.
MIN_SECRET_LENGTH = 4


def _forms(secret: str) -> set[str]:
    # A secret may come back percent-encoded (in a URL), JSON-escaped or HTML-escaped (a source
    # echoing the request in its answer or its error page).
    return {
        secret,
        quote(secret, safe=""),
        quote_plus(secret, safe=""),
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        html.escape(secret),
    }


def redact(text: Optional[str], secrets: Iterable[str]) -> Optional[str]:
    """``text`` with every occurrence of every secret (and its URL-encoded forms) replaced."""
    if not text:
        return text
    forms = sorted({form for secret in secrets if secret for form in _forms(secret)}, key=len, reverse=True)
    for form in forms:
        text = text.replace(form, REDACTED)
    return text


def parse_secrets(value: Optional[Iterable[str] | str]) -> tuple[str, ...]:
    """Secret names from a list or a comma list, lower-cased, without blanks or repeats."""
    if not value:
        return ()
    items = value.split(",") if isinstance(value, str) else value
    return tuple(dict.fromkeys(str(item).strip().lower() for item in items if str(item).strip()))


def join_secrets(names: Iterable[str]) -> Optional[str]:
    """The stored (comma list) form of secret names; None for none."""
    parsed = parse_secrets(list(names))
    return ",".join(parsed) or None


def redact_url(url: str, secrets: Iterable[str]) -> str:
    """``url`` with the values of secret query parameters (and a userinfo password) masked."""
    names = set(parse_secrets(list(secrets)))
    if not names and "@" not in url:  # the common case: nothing that could need masking
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    netloc = parts.netloc
    if parts.password:
        netloc = netloc.replace(f":{parts.password}@", f":{MASK}@", 1)
    query = parts.query
    if names and query:
        pieces = []
        for piece in query.split("&"):
            name = piece.split("=", 1)[0]
            pieces.append(f"{name}={MASK}" if _unquote(name).lower() in names else piece)
        query = "&".join(pieces)
    if netloc == parts.netloc and query == parts.query:
        return url
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def redact_body(body: Optional[str], secrets: Iterable[str]) -> Optional[str]:
    """A JSON or form body with the values of secret fields masked (other bodies unchanged)."""
    names = set(parse_secrets(list(secrets)))
    if not body or not names:
        return body
    stripped = body.lstrip()
    if stripped.startswith(("{", "[")):
        try:
            return json.dumps(_mask_json(json.loads(body), names), ensure_ascii=False)
        except ValueError:
            return body
    if "=" in body:
        pairs = parse_qsl(body, keep_blank_values=True)
        if any(name.lower() in names for name, _ in pairs):
            return "&".join(f"{quote(name)}={MASK if name.lower() in names else quote(value)}" for name, value in pairs)
    return body


def secret_values(url: str, body: Optional[str], headers: Mapping[str, str], secrets: Iterable[str]) -> tuple[str, ...]:
    """The values a request carries in its secret query parameters, form or JSON body fields and
    headers (``Authorization`` always), so they can be masked wherever else they turn up: a source
    that echoes the request in its answer, an error message quoting the URL."""
    names = set(parse_secrets(list(secrets)))
    found: list[str] = []
    for key, value in headers.items():
        if key.lower() in names or key.lower() in ("authorization", "proxy-authorization"):
            found.append(value)
            # "Bearer <token>": the token alone may be echoed too.
            found.extend(value.split(None, 1)[1:])
    if names:
        try:
            parts = urlsplit(url)
            found.extend(v for k, v in parse_qsl(parts.query, keep_blank_values=True) if k.lower() in names)
            if parts.password:
                found.append(unquote_plus(parts.password))
        except ValueError:
            pass
        if body:
            found.extend(_body_values(body, names))
    elif "@" in url:
        try:
            password = urlsplit(url).password
        except ValueError:
            password = None
        if password:
            found.append(unquote_plus(password))
    return tuple(dict.fromkeys(v for v in found if len(v) >= MIN_SECRET_LENGTH))


def _body_values(body: str, names: set[str]) -> list[str]:
    stripped = body.lstrip()
    if stripped.startswith(("{", "[")):
        try:
            return list(_json_values(json.loads(body), names))
        except ValueError:
            return []
    return [v for k, v in parse_qsl(body, keep_blank_values=True) if k.lower() in names]


def _json_values(value: Any, names: set[str]) -> Iterable[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            if str(key).lower() in names and isinstance(item, (str, int, float)) and not isinstance(item, bool):
                yield str(item)
            else:
                yield from _json_values(item, names)
    elif isinstance(value, list):
        for item in value:
            yield from _json_values(item, names)


def _mask_json(value: Any, names: set[str]) -> Any:
    if isinstance(value, dict):
        return {k: MASK if str(k).lower() in names else _mask_json(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask_json(v, names) for v in value]
    return value


def _unquote(text: str) -> str:
    return unquote_plus(text)
