"""Target checks: only http(s), and only globally routable addresses unless private ones are allowed."""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import re
import socket
import time
from typing import Optional
from urllib.parse import urlsplit

from s2s_plugin.resolution.causes import Cause
from s2s_plugin.resolution.hosts import DEFAULT_PORTS

# Cloud metadata endpoints, refused whatever ipaddress makes of them (in some Python versions
# 100.100.100.200 and fd00:ec2::254 fall in no range it calls private).
_METADATA = frozenset(
    {
        ipaddress.ip_address("169.254.169.254"),
        ipaddress.ip_address("fd00:ec2::254"),
        ipaddress.ip_address("100.100.100.200"),
    }
)

# NAT64's well-known prefix (RFC 6052): an IPv6-only host's DNS64 answers 64:ff9b::a.b.c.d for
# an IPv4-only source, and the gateway delivers to a.b.c.d, so that address decides.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
# Not global, whatever a Python version's ipaddress says (its lists changed in 3.11.10/3.12.4
# and 3.13): local-use NAT64 (RFC 8215), site-local (deprecated, still routed inside some
# networks), IETF protocol assignments, carrier-grade NAT, the IPv6 documentation range of 2024.
_NEVER_GLOBAL = (
    ipaddress.ip_network("64:ff9b:1::/48"),
    ipaddress.ip_network("fec0::/10"),
    ipaddress.ip_network("3fff::/20"),
    ipaddress.ip_network("192.0.0.0/24"),
    ipaddress.ip_network("100.64.0.0/10"),
)


# Characters no host name (nor IP literal) holds; "{" and "}" mostly come from a raw macro.
_NOT_IN_A_NAME = re.compile(r"[\s{}<>\[\]\"'`\\^|%/?#@]")


@dataclasses.dataclass(frozen=True)
class TargetCheck:
    """The verdict on a URL: ``ok``, else ``cause``, ``reason`` and whether trying later may help
    (DNS failures)."""

    ok: bool
    reason: Optional[str] = None
    retryable: bool = False
    addresses: tuple[str, ...] = ()
    cause: Optional[Cause] = None


@functools.lru_cache(maxsize=4096)
def is_forbidden_address(address: str) -> bool:
    """Whether an IP address is anything but globally routable: private, loopback, link-local,
    site-local, shared (CGNAT), reserved, multicast, unspecified or a metadata endpoint; or an
    IPv6 address that carries such an IPv4 address (IPv4-mapped or -compatible, 6to4, Teredo,
    NAT64). Unparsable addresses are forbidden too.

    Remembered per address: a source's few addresses come up with every postback.
    """
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return True
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:  # ::ffff:a.b.c.d is a.b.c.d
            return is_forbidden_address(str(ip.ipv4_mapped))
        if ip in _NAT64:
            return is_forbidden_address(str(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)))
        if any(is_forbidden_address(str(v4)) for v4 in _embedded_v4(ip)):
            return True
        # IPv4-compatible addresses (::a.b.c.d, deprecated) fall in ::/8, reserved: refused below.
    return (
        ip in _METADATA
        or not ip.is_global
        or ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_reserved
        or ip.is_multicast
        or ip.is_unspecified
        or (isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local)
        or any(ip.version == net.version and ip in net for net in _NEVER_GLOBAL)
    )


def _embedded_v4(ip: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address, ...]:
    """The IPv4 addresses an IPv6 address carries (where its packets really go)."""
    if ip.sixtofour is not None:
        return (ip.sixtofour,)
    if ip.teredo is not None:
        return ip.teredo  # (server, client)
    return ()


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
    return tuple(dict.fromkeys(str(info[4][0]) for info in socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)))


def check_target(url: str, *, allow_private: bool, resolver: Optional[Resolver] = None) -> TargetCheck:
    """Check a postback URL before sending it (resolving its host name once, or through ``resolver``)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError as exc:  # "http://[::1/pb", a raw macro in the host part
        return TargetCheck(False, f"the URL cannot be parsed ({exc}): fix the postback URL", cause=Cause.BAD_URL)
    if parts.scheme.lower() not in ("http", "https"):
        return TargetCheck(
            False, f"URL scheme {parts.scheme or 'none'!r} is refused: only http and https", cause=Cause.BAD_URL
        )
    if not host:
        return TargetCheck(False, "the URL has no host name", cause=Cause.BAD_URL)
    if _NOT_IN_A_NAME.search(host):
        # Not a name any DNS answers: trying again later cannot help.
        return TargetCheck(
            False,
            f"the URL's host {host!r} is not a host name (a macro left unfilled?): fix the postback URL",
            cause=Cause.BAD_URL,
        )
    try:
        port = parts.port or DEFAULT_PORTS[parts.scheme.lower()]
    except ValueError:
        return TargetCheck(False, "the URL's port is not a number between 0 and 65535", cause=Cause.BAD_URL)
    try:
        addresses = resolver.addresses(host, port) if resolver is not None else _lookup(host, port)
    except (socket.gaierror, UnicodeError) as exc:
        return TargetCheck(False, f"host {host} could not be resolved ({exc})", retryable=True, cause=Cause.DNS_FAILED)
    if not allow_private:
        for address in addresses:
            if is_forbidden_address(address):
                return TargetCheck(
                    False,
                    f"host {host} resolves to {address}, a private or internal address: refused "
                    "(set allow_private_targets to allow it)",
                    addresses=addresses,
                    cause=Cause.PRIVATE_ADDRESS,
                )
    return TargetCheck(True, addresses=addresses)
