"""A postback URL as it goes on the wire: scheme, host, port and request target.

httpx's URL parser normalises (percent-encodes what must be, lowercases the host, IDNA, removes
dot segments) by walking the URL character by character: about 25 µs, a tenth of a whole attempt
against a fast source. Rendered postback URLs are nearly always plain ASCII that needs none of it,
so those are split directly; anything else goes through httpx, and both give the same result
(tests/delivery/test_wire.py checks that on generated URLs).
"""

from __future__ import annotations

import re

import httpcore
import httpx

from s2s_plugin.resolution.hosts import DEFAULT_PORTS

# Only characters httpx leaves as they are: unreserved, sub-delims, ":" and "@" (and "/" in the
# path, "/" and "?" in the query); "%" only as the start of a valid escape. No fragment, no
# userinfo, no IPv6 literal, no dot segments (those are left to httpx).
_PLAIN = re.compile(
    r"(?P<scheme>https?)://(?P<host>[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)(?::(?P<port>[0-9]{1,5}))?"
    r"(?P<path>(?:/(?:[A-Za-z0-9\-_~!$&'()*+,;=:@]|%[0-9A-Fa-f]{2}|\.(?=[^/?]*[^./?]))*)*)"
    r"(?P<query>\?(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/?]|%[0-9A-Fa-f]{2})*)?",
    re.ASCII,
)


def wire_url(url: str) -> httpcore.URL:
    """``url`` as httpcore sends it, normalised exactly as httpx would.

    :raises httpx.InvalidURL: when the URL cannot be sent at all.
    """
    plain = _PLAIN.fullmatch(url)
    if plain is not None and (plain["port"] is None or int(plain["port"]) <= 65535):
        scheme = plain["scheme"]
        port = int(plain["port"]) if plain["port"] is not None else None
        return httpcore.URL(
            scheme=scheme.encode("ascii"),
            host=plain["host"].lower().encode("ascii"),
            port=None if port == DEFAULT_PORTS[scheme] else port,
            target=(plain["path"] or "/").encode("ascii") + (plain["query"] or "").encode("ascii"),
        )
    parsed = httpx.URL(url)
    return httpcore.URL(scheme=parsed.raw_scheme, host=parsed.raw_host, port=parsed.port, target=parsed.raw_path)
