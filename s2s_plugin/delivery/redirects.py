"""Following a redirect, for rules that allow it: where the next request goes and what it carries.

The rules are those of browsers and httpx, made stricter where a postback's secrets are at stake:

- 303 turns any method but HEAD into GET, and 301/302 turn POST into GET; a GET has no body
  (nor the headers that describe one).
- 307 and 308 keep the method and body, within the same origin. Across origins nothing secret
  follows: the body and the secret headers (``Authorization``, ``Cookie``, ``Proxy-Authorization``,
  the rule's marked header names, any header holding a marked secret value) are dropped; a body
  that would have to go along is refused rather than sent away or silently left out.
- https → http is refused: the postback would travel unencrypted. http → https on the same host
  and default ports counts as the same origin (a source that moved to TLS).

Pure functions: the sender checks every hop's target (``safety.check_target``) before sending.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Optional
from urllib.parse import urldefrag, urljoin, urlsplit

from s2s_plugin.resolution.hosts import DEFAULT_PORTS

#: The statuses whose ``Location`` is followed (300, 304, 305 and 306 are answers, not moves).
FOLLOWED = frozenset({301, 302, 303, 307, 308})

#: Headers never sent to another origin, whatever the rule marks.
ALWAYS_SECRET = frozenset({"authorization", "cookie", "proxy-authorization"})

# Headers that describe a body: dropped with it when a redirect turns the request into a GET.
_BODY_HEADERS = frozenset({"content-type", "content-length", "content-encoding", "transfer-encoding"})


@dataclasses.dataclass(frozen=True)
class Hop:
    """The next request of a redirect, or ``refused``: the sentence saying why there is none (its
    cause is ``Cause.REDIRECT_REFUSED``)."""

    url: str
    method: str
    headers: Mapping[str, str]
    body: Optional[bytes]
    refused: Optional[str] = None


def origin(url: str) -> tuple[str, str, int]:
    """``(scheme, host, port)`` of ``url``, lower-cased, the scheme's default port filled in.

    :raises ValueError: when the URL cannot be parsed.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or DEFAULT_PORTS.get(scheme, 0)


def next_hop(
    url: str,
    status: int,
    location: str,
    method: str,
    headers: Mapping[str, str],
    body: Optional[bytes],
    *,
    secret_names: Iterable[str] = (),
    secret_values: Iterable[str] = (),
) -> Hop:
    """The request that follows the ``status`` redirect to ``location`` from a request to ``url``.

    :param secret_names: header names the rule marks secret (any case).
    :param secret_values: marked secret text (``PostbackRequest.secrets``): a header holding one
        is secret too.
    """
    try:
        target, _fragment = urldefrag(urljoin(url, location.strip()))
        before, after = origin(url), origin(target)
    except ValueError as exc:
        return Hop(
            url, method, headers, body, refused=f"the source redirected to {location!r}, which is not a URL ({exc})"
        )
    if before[0] == "https" and after[0] == "http":
        return Hop(
            target,
            method,
            headers,
            body,
            refused=(
                f"the source redirected from https to http (HTTP {status}): refused, the postback would travel "
                "unencrypted; fix the postback URL"
            ),
        )
    if (status == 303 and method != "HEAD") or (status in (301, 302) and method == "POST"):
        method, body = "GET", None
        headers = {name: value for name, value in headers.items() if name.lower() not in _BODY_HEADERS}
    if after == before or after == _upgraded(before):
        return Hop(target, method, headers, body)
    if body:
        return Hop(
            target,
            method,
            headers,
            body,
            refused=(
                f"the source redirected the {method} to another origin ({after[0]}://{after[1]}:{after[2]}) with HTTP {status}, "
                "which would carry the body there: refused, a postback's body is not sent across origins; "
                "point the postback at the new URL"
            ),
        )
    names = ALWAYS_SECRET | {name.lower() for name in secret_names}
    values = [value for value in secret_values if value]
    kept = {
        name: value
        for name, value in headers.items()
        if name.lower() not in names and not any(secret in value for secret in values)
    }
    return Hop(target, method, kept, None)


def _upgraded(origin_: tuple[str, str, int]) -> Optional[tuple[str, str, int]]:
    """The https origin an http origin on the default port upgrades to (same host), else None."""
    scheme, host, port = origin_
    if scheme == "http" and port == DEFAULT_PORTS["http"]:
        return "https", host, DEFAULT_PORTS["https"]
    return None
