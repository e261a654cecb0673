"""Delivery settings: ``install`` keyword arguments, worker options and ``S2S_*`` environment variables."""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any, Optional

from s2s_plugin.errors import ConfigError

#: An HTTP header name (RFC 9110 token characters).
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")

#: Seconds before each attempt: the first at once, then 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
DEFAULT_RETRY_SCHEDULE: tuple[float, ...] = (0, 5, 300, 1800, 7200, 18000, 36000, 36000)


@dataclasses.dataclass(frozen=True)
class DeliverySettings:
    """How postbacks are delivered. Field names are the public ``install`` keyword arguments."""

    retry_schedule: Sequence[float] = DEFAULT_RETRY_SCHEDULE
    connect_timeout: float = 5.0
    timeout: float = 15.0
    max_concurrency: int = 64
    #: The most attempts in flight to one host: the cap of its adaptive limit, which starts at
    #: ``min(4, cap)`` and grows while more attempts raise the host's throughput without raising
    #: its answer times (see ``hostlimits``).
    per_host_concurrency: int = 64
    allow_private_targets: bool = False
    retry_after_cap: float = 3600.0
    jitter: float = 0.1
    max_response_bytes: int = 16 * 1024
    poll_interval: float = 1.0
    user_agent: str = "s2s-postback/0.1 (+server-to-server postback)"
    #: A delivery not delivered this long after it was queued (or resent) is failed: 3 days.
    max_age: float = 3 * 86400.0
    #: How long a claim lasts unless renewed (attempts in flight are renewed); None: 4 x ``timeout``, >= 60 s.
    lease_seconds: Optional[float] = None
    #: Deliveries claimed per database round trip.
    claim_batch: int = 64
    #: A header sent with every postback carrying its delivery's id, the same on every retry and
    #: resend (e.g. ``Idempotency-Key``), for sources that de-duplicate; None sends none.
    idempotency_header: Optional[str] = None
    #: Consecutive failed attempts (no connection, no answer in time, 5xx, 429) that open a host's
    #: circuit: its deliveries then wait, spending no attempts, until a probe succeeds.
    circuit_failures: int = 5
    #: Seconds from opening to the first probe; each failed probe doubles it, up to the maximum.
    circuit_cooldown: float = 5.0
    circuit_max_cooldown: float = 15.0

    def __post_init__(self) -> None:
        schedule = tuple(float(s) for s in self.retry_schedule)
        if not schedule or any(s < 0 for s in schedule):
            raise ConfigError("retry_schedule must list one or more delays in seconds, none negative")
        object.__setattr__(self, "retry_schedule", schedule)
        for name in ("connect_timeout", "timeout"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be a positive number of seconds")
        for name in ("max_concurrency", "per_host_concurrency", "claim_batch", "circuit_failures"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be at least 1")
        for name in ("max_age", "poll_interval", "retry_after_cap", "circuit_cooldown", "circuit_max_cooldown"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be a positive number of seconds")
        if self.idempotency_header is not None and not _HEADER_NAME.fullmatch(self.idempotency_header):
            raise ConfigError(f"idempotency_header {self.idempotency_header!r} is not an HTTP header name")
        if not 0 <= self.jitter <= 1:
            raise ConfigError("jitter must be a fraction between 0 and 1")
        if self.lease_seconds is None:
            # Long enough for a slow attempt, short enough to recover a dead worker's claims soon.
            object.__setattr__(self, "lease_seconds", max(60.0, self.timeout * 4))
        elif self.lease_seconds < 1:
            raise ConfigError("lease_seconds must be at least 1 (claims in flight are renewed as they run)")

    @property
    def lease(self) -> float:
        """``lease_seconds`` as ``__post_init__`` decided it (never None once the settings exist)."""
        return float(self.lease_seconds or max(60.0, self.timeout * 4))

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> DeliverySettings:
        """Settings from keyword arguments, refusing unknown names with the known ones listed."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(kwargs) - known)
        if unknown:
            raise ConfigError(f"unknown delivery setting {unknown[0]!r}; known: {', '.join(sorted(known))}")
        return cls(**{k: v for k, v in kwargs.items() if v is not None})


def _truthy(text: str) -> bool:
    return text.strip().lower() in ("1", "true", "yes", "on")


def settings_from_env(environ: Optional[Mapping[str, str]] = None) -> dict[str, Any]:
    """``install`` keyword arguments read from ``S2S_*`` variables (``S2S_RETRY_SCHEDULE=0,5,300``)."""
    env = os.environ if environ is None else environ
    out: dict[str, Any] = {}
    for field in dataclasses.fields(DeliverySettings):
        raw = env.get(f"S2S_{field.name.upper()}")
        if raw is None or raw == "":
            continue
        try:
            if field.name == "retry_schedule":
                out[field.name] = [float(x) for x in raw.split(",") if x.strip()]
            elif field.name == "allow_private_targets":
                out[field.name] = _truthy(raw)
            elif field.name in (
                "max_concurrency",
                "per_host_concurrency",
                "max_response_bytes",
                "claim_batch",
                "circuit_failures",
            ):
                out[field.name] = int(raw)
            elif field.name in ("user_agent", "idempotency_header"):
                out[field.name] = raw
            else:
                out[field.name] = float(raw)
        except ValueError:
            raise ConfigError(f"S2S_{field.name.upper()}={raw!r} is not valid") from None
    return out


def database_url_from_env(environ: Optional[Mapping[str, str]] = None, default: str = "sqlite:///s2s.db") -> str:
    """``S2S_DATABASE_URL``, or ``default``."""
    env = os.environ if environ is None else environ
    return env.get("S2S_DATABASE_URL") or default
