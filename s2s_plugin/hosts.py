"""The host key of a postback URL: what per-host limits and fair claiming count by."""

from __future__ import annotations

from urllib.parse import urlsplit


def host_key(url: str) -> str:
    """``host:port`` of ``url`` (the scheme's default port when none is written); ``""`` if unparsable."""
    try:
        parts = urlsplit(url)
        port = parts.port or {"https": 443, "http": 80}.get(parts.scheme.lower(), 0)
    except ValueError:
        return ""
    host = (parts.hostname or "").lower()
    return f"{host}:{port}" if host else ""
