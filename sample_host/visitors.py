"""What a click says about its visitor: Keitaro's click attributes, from the request itself.

``os``, ``os_version``, ``browser``, ``browser_version``, ``device_type``, ``device_model`` come
from the User-Agent (parsed by ua-parser, the uap-core rules most trackers use); ``language`` from
Accept-Language, ``referrer`` from Referer; ``country``, ``region``, ``city`` and ``isp`` from the
visitor's address when a MaxMind-format database is configured (GeoIP2/GeoLite2 City, or an
Enterprise or ISP database for ``isp``). Each is stored as a click parameter under Keitaro's
name, so every postback can use it as a macro (``{os}``, ``{city}``...).
"""

from __future__ import annotations

import functools
import ipaddress
import logging
from collections.abc import Mapping
from typing import Any, Optional

from ua_parser import parse

log = logging.getLogger("sample_host.visitors")

# Operating systems of phones and tablets, as uap-core names them.
_MOBILE_OS = {"Android", "iOS", "Windows Phone", "BlackBerry OS", "KaiOS", "Firefox OS", "Tizen", "HarmonyOS"}
_TABLETS = ("iPad", "Tablet", "Kindle", "Tab ")


def user_agent_attributes(user_agent: Optional[str]) -> dict[str, str]:
    """``os``, ``os_version``, ``browser``, ``browser_version``, ``device_type`` (desktop, mobile,
    tablet or bot) and ``device_model`` of a User-Agent; empty for none."""
    if not user_agent:
        return {}
    return dict(_parsed(user_agent[:1000]))


@functools.lru_cache(maxsize=4096)
def _parsed(user_agent: str) -> tuple[tuple[str, str], ...]:
    # Most clicks come from a few hundred browsers: parse each User-Agent once.
    result = parse(user_agent)
    agent, system, device = result.user_agent, result.os, result.device
    found: dict[str, str] = {}
    if system is not None and system.family != "Other":
        found["os"] = system.family
        found["os_version"] = ".".join(p for p in (system.major, system.minor, system.patch) if p)
    if agent is not None and agent.family != "Other":
        found["browser"] = agent.family
        found["browser_version"] = ".".join(p for p in (agent.major, agent.minor) if p)
    family = device.family if device is not None else "Other"
    if device is not None and device.model and family != "Spider":
        found["device_model"] = device.model
    if family == "Spider":
        found["device_type"] = "bot"
    elif any(word in user_agent for word in _TABLETS) or (found.get("os") == "Android" and "Mobile" not in user_agent):
        found["device_type"] = "tablet"
    elif found.get("os") in _MOBILE_OS or "Mobile" in user_agent:
        found["device_type"] = "mobile"
    elif found:
        found["device_type"] = "desktop"
    return tuple((key, value) for key, value in found.items() if value)


def language(accept_language: Optional[str]) -> Optional[str]:
    """The visitor's preferred language from Accept-Language, as a lower-case code (``uk``, ``pt``)."""
    best, best_q = None, -1.0
    for part in (accept_language or "").split(",")[:20]:
        tag, _, params = part.strip().partition(";")
        code = tag.strip().split("-")[0].lower()
        if not code.isalpha() or len(code) > 8:
            continue
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                continue
        if q > best_q:
            best, best_q = code, q
    return best


class GeoIP:
    """Country, region, city and ISP of an address from a MaxMind-format database file."""

    def __init__(self, path: str) -> None:
        import maxminddb  # only when a database is configured

        self.path = path
        self._reader = maxminddb.open_database(path)

    def lookup(self, address: Optional[str]) -> dict[str, str]:
        """What the database knows of ``address`` (nothing for a missing or unparsable one)."""
        try:
            ip = ipaddress.ip_address((address or "").split("%", 1)[0])
        except ValueError:
            return {}
        try:
            record = self._reader.get(ip)
        except ValueError:  # an IPv6 address in an IPv4-only database
            return {}
        if not isinstance(record, Mapping):
            return {}
        found = {
            "country": _get(record, "country", "iso_code"),
            "region": _name(_first(record.get("subdivisions"))),
            "city": _name(record.get("city")),
            "isp": _get(record, "traits", "isp") or record.get("isp") or record.get("autonomous_system_organization"),
        }
        return {key: str(value) for key, value in found.items() if value}

    def close(self) -> None:
        """Close the database file."""
        self._reader.close()


def _get(record: Mapping[str, Any], *path: str) -> Any:
    for key in path:
        if not isinstance(record, Mapping):
            return None
        record = record.get(key)  # type: ignore[assignment]
    return record


def _first(value: Any) -> Any:
    return value[0] if isinstance(value, list) and value else None


def _name(value: Any) -> Optional[str]:
    names = value.get("names") if isinstance(value, Mapping) else None
    return names.get("en") if isinstance(names, Mapping) else None


def click_attributes(
    *,
    user_agent: Optional[str],
    accept_language: Optional[str],
    referrer: Optional[str],
    ip: Optional[str],
    geoip: Optional[GeoIP] = None,
) -> dict[str, str]:
    """Every attribute the request tells of its visitor, by Keitaro's names."""
    found = user_agent_attributes(user_agent)
    spoken = language(accept_language)
    if spoken:
        found["language"] = spoken
    if referrer:
        found["referrer"] = referrer[:500]
    if geoip is not None:
        try:
            found.update(geoip.lookup(ip))
        except Exception:  # a damaged database must not cost the visitor their click
            log.exception("GeoIP lookup failed for a click")
    return found
