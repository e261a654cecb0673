"""Settings of the inbound postback endpoint: the answer text networks get, and the optional list
of addresses allowed to send postbacks. Kept in the ``settings`` table, edited on the Settings page
or with ``sample-host settings``."""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Iterable
from typing import Optional, Union

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from . import db
from .errors import HostError

Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]

DEFAULT_RESPONSE_TEXT = "OK"
MAX_RESPONSE_TEXT = 200

_RESPONSE_KEY = "postback_response_text"
_ALLOWED_KEY = "postback_allowed_ips"


@dataclasses.dataclass(frozen=True)
class InboundSettings:
    """How the tracker answers inbound postbacks and whom it takes them from.

    :param response_text: the body of a successful answer (a request's own ``return=`` wins).
    :param allowed: networks allowed to send postbacks; empty means any address (the key still
        has to be right).
    """

    response_text: str = DEFAULT_RESPONSE_TEXT
    allowed: tuple[Network, ...] = ()

    def allows(self, address: Optional[str]) -> bool:
        """Whether a postback from ``address`` may be read at all."""
        if not self.allowed:
            return True
        try:
            ip = ipaddress.ip_address(address or "")
        except ValueError:
            return False
        return any(ip in network for network in self.allowed)

    @property
    def allowed_text(self) -> list[str]:
        """The allow-list as text, one network per item (single addresses without ``/32``)."""
        return [str(n.network_address) if n.num_addresses == 1 else str(n) for n in self.allowed]


def parse_networks(values: Iterable[str]) -> tuple[Network, ...]:
    """Addresses and CIDR networks (``203.0.113.7``, ``198.51.100.0/24``, IPv6 alike), separated
    by commas, spaces or new lines.

    :raises HostError: naming the first entry that is not an address or network.
    """
    networks: list[Network] = []
    for value in values:
        for part in str(value).replace(",", " ").split():
            try:
                networks.append(ipaddress.ip_network(part, strict=False))
            except ValueError:
                raise HostError(f"{part!r} is not an IP address or network such as 203.0.113.0/24") from None
    return tuple(dict.fromkeys(networks))


def clean_response_text(text: Optional[str]) -> str:
    """One printable line of at most ``MAX_RESPONSE_TEXT`` characters (the default when empty)."""
    line = " ".join("".join(ch if ch.isprintable() else " " for ch in (text or "")).split())
    return line[:MAX_RESPONSE_TEXT] or DEFAULT_RESPONSE_TEXT


def load(engine: Engine) -> InboundSettings:
    """The stored settings (defaults for what was never set)."""
    with engine.connect() as conn:
        rows = dict(
            conn.execute(
                sa.select(db.settings.c.key, db.settings.c.value).where(
                    db.settings.c.key.in_([_RESPONSE_KEY, _ALLOWED_KEY])
                )
            ).all()
        )
    return InboundSettings(
        response_text=clean_response_text(rows.get(_RESPONSE_KEY)),
        allowed=parse_networks([rows.get(_ALLOWED_KEY, "")]),
    )


def save(engine: Engine, settings: InboundSettings) -> None:
    """Store the settings (replacing what was there)."""
    values = {_RESPONSE_KEY: settings.response_text, _ALLOWED_KEY: " ".join(settings.allowed_text)}
    with engine.begin() as conn:
        conn.execute(sa.delete(db.settings).where(db.settings.c.key.in_(list(values))))
        conn.execute(sa.insert(db.settings), [{"key": k, "value": v} for k, v in values.items()])
