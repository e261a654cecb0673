"""The delivery health dashboard's figures, ready for the page: the window an operator chose, each
postback rule's row (who it is, what happened, why, how fast, its host's state, its queue) and the
charts. The figures come from the plugin (``s2s_plugin.ops.health``), aggregated in the database.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any, Optional

from markupsafe import Markup

from s2s_plugin.delivery.hostlimits import HostStatus
from s2s_plugin.ops.health import DeliveryHealth, RuleHealth, delivery_health
from s2s_plugin.resolution.ruleid import RuleId

from .charts import sparkline, timeline
from .errors import HostError


@dataclasses.dataclass(frozen=True)
class Window:
    """A time window the dashboard offers: its query value, how it reads, its length and the width
    of a chart bucket."""

    key: str
    label: str
    seconds: int
    bucket_seconds: int
    unit: str


#: The windows offered, by their ``?window=`` value; the first is the default.
WINDOWS: Mapping[str, Window] = {
    w.key: w
    for w in (
        Window("24h", "last 24 hours", 86400, 3600, "hour"),
        Window("1h", "last hour", 3600, 60, "minute"),
        Window("7d", "last 7 days", 7 * 86400, 3600, "hour"),
    )
}
DEFAULT_WINDOW = "24h"

#: What an attempt's cause means for an operator, and where it is fixed (until the plugin stores
#: cause codes with their own labels, the dashboard reads the coarse causes ``cause_of`` derives).
CAUSES: Mapping[str, str] = {
    "skipped": "not sent: its reason says why (often a click without the source's click id)",
    "no_answer": "no answer: a timeout or a refused connection",
    "http_404": "HTTP 404: the postback URL is wrong",
    "http_410": "HTTP 410: the source retired this postback URL",
    "http_429": "HTTP 429: the source asks to slow down",
    "other": "other",
}


def choose_window(value: Optional[str]) -> Window:
    """The window named by ``?window=`` (the default when absent).

    :raises HostError: for any other value.
    """
    if value is None or value == "":
        return WINDOWS[DEFAULT_WINDOW]
    if value not in WINDOWS:
        raise HostError(f"window must be one of {', '.join(WINDOWS)}, not {value[:20]!r}")
    return WINDOWS[value]


def cause_label(code: str) -> str:
    """The sentence shown for a cause code."""
    if code in CAUSES:
        return CAUSES[code]
    if code.startswith("http_5"):
        return f"HTTP {code[5:]}: the source's server failed"
    if code.startswith("http_"):
        return f"HTTP {code[5:]}: the source refused it"
    return code


def _time(epoch: Optional[float]) -> str:
    if epoch is None:
        return "-"
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _age(seconds: float) -> str:
    """``45 s``, ``12 min``, ``3 h 5 min``, ``2 d 4 h``."""
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 120:
        return f"{minutes} min"
    hours = minutes // 60
    if hours < 48:
        return f"{hours} h {minutes % 60} min"
    return f"{hours // 24} d {hours % 24} h"


@dataclasses.dataclass(frozen=True)
class HostView:
    """A target host as the page shows it."""

    host: str
    open: bool
    text: str
    limit: Optional[int]


def host_view(host: str, status: Optional[HostStatus]) -> HostView:
    """How a host is doing: sending (with its concurrency limit), or not answering since when and
    when the next probe goes."""
    if status is None:
        return HostView(host, False, "sending", None)
    if status.is_open:
        text = f"not answering since {_time(status.opened_at)}; next probe at {_time(status.next_probe_at)}"
        if status.state == "probing":
            text = f"not answering since {_time(status.opened_at)}; a probe is on its way"
        return HostView(host, True, text, status.concurrency_limit)
    return HostView(host, False, "sending", status.concurrency_limit)


@dataclasses.dataclass(frozen=True)
class RuleRow:
    """One postback rule's row."""

    rule_id: str
    kind: str
    title: str
    href: str
    log_href: str
    counts: Mapping[str, int]
    causes: Sequence[tuple[str, str, int]]
    p50: str
    p95: str
    hosts: Sequence[HostView]
    queued: int
    oldest_due: str
    chart: Markup


def _ms(value: Optional[float]) -> str:
    if value is None:
        return "-"
    return f"{value / 1000:.2f} s" if value >= 1000 else f"{value:.0f} ms"


def _rule_row(rule: RuleHealth, health: DeliveryHealth, window: Window) -> RuleRow:
    parsed = RuleId.parse(rule.rule_id)
    since = dt.datetime.fromtimestamp(health.since, dt.UTC).strftime("%Y-%m-%dT%H:%M")
    if parsed.kind == "source":
        title, href = f"Source {parsed.key}", f"/sources/{parsed.key}"
        log_href = f"/sent?source={parsed.key}&since={since}"
    elif parsed.kind == "postback" and rule.campaign_id:
        title = f"Campaign {rule.campaign_id} · postback {parsed.key}"
        href = f"/campaigns/{rule.campaign_id}/postbacks"
        log_href = f"/sent?campaign={rule.campaign_id}&since={since}"
    else:
        title, href, log_href = rule.rule_id, "", f"/sent?since={since}"
    return RuleRow(
        rule_id=rule.rule_id,
        kind=parsed.kind,
        title=title,
        href=href,
        log_href=log_href,
        counts=rule.counts,
        causes=[(c.cause, cause_label(c.cause), c.count) for c in rule.causes],
        p50=_ms(rule.p50_ms),
        p95=_ms(rule.p95_ms),
        hosts=[host_view(h, health.hosts.get(h)) for h in rule.hosts],
        queued=rule.queued,
        oldest_due=_age(health.until - rule.oldest_due_at) if rule.oldest_due_at is not None else "",
        chart=sparkline(rule.series, window.unit),
    )


def dashboard_context(engine: Any, window: Window, now: Optional[float] = None) -> dict[str, Any]:
    """Everything the dashboard template shows, read in one pass over the plugin's tables."""
    health = delivery_health(engine, window.seconds, window.bucket_seconds, now=now)
    fmt = "%H:%M" if window.seconds <= 3600 else "%b %d %H:%M"
    oldest = health.oldest_due
    return {
        "window": window,
        "windows": list(WINDOWS.values()),
        "health": health,
        "read_at": _time(health.until),
        "counts": health.counts,
        "p50": _ms(health.p50_ms),
        "p95": _ms(health.p95_ms),
        "chart": timeline(health.series, window.unit),
        "chart_start": dt.datetime.fromtimestamp(health.since, dt.UTC).strftime(fmt),
        "chart_end": dt.datetime.fromtimestamp(health.until, dt.UTC).strftime(fmt),
        "chart_peak": max([max(d, f) for d, f in health.series] or [0]),
        "rules": [_rule_row(rule, health, window) for rule in health.rules],
        "hosts": [host_view(h, s) for h, s in health.hosts.items()],
        "oldest_due": oldest,
        "oldest_due_age": _age(health.until - oldest.due_at) if oldest else "",
        "top_causes": [(c.cause, cause_label(c.cause), c.count) for c in health.causes],
    }


__all__ = ["WINDOWS", "Window", "cause_label", "choose_window", "dashboard_context", "host_view"]
