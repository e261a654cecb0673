"""The host key of a postback URL: what per-host limits and fair claiming count by."""

from __future__ import annotations

import functools
import re
from urllib.parse import urlsplit

# Scheme and authority: all urlsplit needs to find the host and port (the rest of the URL varies
# with every postback, the authority nearly never: the key is remembered per authority).
#: The port a URL of each scheme uses when it writes none.
DEFAULT_PORTS = {"http": 80, "https": 443}

_AUTHORITY = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/?#\s]*")


def host_key(url: str) -> str:
    """``host:port`` of ``url`` (the scheme's default port when none is written); ``""`` if unparsable."""
    authority = _AUTHORITY.match(url)
    return _key(authority.group() if authority else url)


@functools.lru_cache(maxsize=1024)
def _key(url: str) -> str:
    try:
        parts = urlsplit(url)
        port = parts.port or DEFAULT_PORTS.get(parts.scheme.lower(), 0)
    except ValueError:
        return ""
    host = (parts.hostname or "").lower()
    return f"{host}:{port}" if host else ""
