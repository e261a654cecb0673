"""Target checks: only http(s), and no private, loopback, link-local or metadata addresses unless allowed."""

from __future__ import annotations

import dataclasses
import ipaddress
import socket
import time
from typing import Optional
from urllib.parse import urlsplit

from .hosts import DEFAULT_PORTS

# Cloud metadata endpoints that are not inside the ranges ipaddress already calls private.
_METADATA = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254"), ipaddress.ip_address("100.100.100.200")}


@dataclasses.dataclass(frozen=True)
class TargetCheck:
    """The verdict on a URL: ``ok``, else ``reason`` and whether trying later may help (DNS failures)."""

    ok: bool
    reason: Optional[str] = None
    retryable: bool = False
    addresses: tuple[str, ...] = ()


def is_forbidden_address(address: str) -> bool:
    """Whether an IP address is private, loopback, link-local, reserved, multicast or a metadata endpoint."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return (
        ip in _METADATA
        or ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_reserved
        or ip.is_multicast
        or ip.is_unspecified
        or (isinstance(ip, ipaddress.IPv4Address) and ip in ipaddress.ip_network("100.64.0.0/10"))
    )


class Resolver:
    """Host name lookups remembered for ``ttl`` seconds (successful ones only).

    A source's postbacks all go to one or two host names: looking each up again for every postback
    adds a DNS round trip to every attempt. Whatever the cache answers is checked like a fresh
    answer, and the connection is pinned to it, so caching never lets an unchecked address through.
    """

    def __init__(self, ttl: float = 30.0, size: int = 1024) -> None:
        self.ttl = ttl
        self.size = size
        self._known: dict[tuple[str, int], tuple[float, tuple[str, ...]]] = {}

    def addresses(self, host: str, port: int) -> tuple[str, ...]:
        """The addresses of ``host``, in the resolver's order.

        :raises socket.gaierror: when the name does not resolve.
        """
        now = time.monotonic()
        known = self._known.get((host, port))
        if known is not None and known[0] > now:
            return known[1]
        addresses = _lookup(host, port)
        if len(self._known) >= self.size:
            self._known.clear()  # many names at once is rare: start over rather than track ages
        self._known[(host, port)] = (now + self.ttl, addresses)
        return addresses


def _lookup(host: str, port: int) -> tuple[str, ...]:
    return tuple(dict.fromkeys(info[4][0] for info in socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)))


def check_target(url: str, *, allow_private: bool, resolver: Optional[Resolver] = None) -> TargetCheck:
    """Check a postback URL before sending it (resolving its host name once, or through ``resolver``)."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https"):
        return TargetCheck(False, f"URL scheme {parts.scheme or 'none'!r} is refused: only http and https")
    host = parts.hostname
    if not host:
        return TargetCheck(False, "the URL has no host name")
    try:
        port = parts.port or DEFAULT_PORTS[parts.scheme.lower()]
    except ValueError:
        return TargetCheck(False, "the URL's port is not a number between 0 and 65535")
    try:
        addresses = resolver.addresses(host, port) if resolver is not None else _lookup(host, port)
    except (socket.gaierror, UnicodeError) as exc:
        return TargetCheck(False, f"host {host} could not be resolved ({exc})", retryable=True)
    if not allow_private:
        for address in addresses:
            if is_forbidden_address(address):
                return TargetCheck(
                    False,
                    f"host {host} resolves to {address}, a private or internal address: refused "
                    "(set allow_private_targets to allow it)",
                    addresses=addresses,
                )
    return TargetCheck(True, addresses=addresses)
