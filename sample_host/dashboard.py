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

from hookspecs import PostbackRule
from s2s_plugin.delivery.hostlimits import HostStatus
from s2s_plugin.ops.health import OUTCOMES, DeliveryHealth, RuleHealth, delivery_health
from s2s_plugin.resolution.causes import CauseInfo
from s2s_plugin.resolution.causes import cause_of as known_cause
from s2s_plugin.resolution.ruleid import RuleId

from .charts import sparkline, timeline
from .errors import HostError
from .fixes import setting_link


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


def choose_window(value: Optional[str]) -> Window:
    """The window named by ``?window=`` (the default when absent).

    :raises HostError: for any other value.
    """
    if value is None or value == "":
        return WINDOWS[DEFAULT_WINDOW]
    if value not in WINDOWS:
        raise HostError(f"window must be one of {', '.join(WINDOWS)}, not {value[:20]!r}")
    return WINDOWS[value]


@dataclasses.dataclass(frozen=True)
class CauseView:
    """A cause as the page shows it: how many attempts, its label and meaning, and what fixes it
    (``fix``, a sentence) with a link to the page of that setting (``fix_href``) where there is one."""

    code: str
    count: int
    label: str
    meaning: str
    fix: str
    fix_href: str


def _fix_href(info: CauseInfo, rule: Optional[RuleId], campaign_id: Optional[str]) -> str:
    """The page that changes the setting fixing a cause for one rule ("" when none does)."""
    if info.fix is None or rule is None or info.fix.scope not in ("rule", "source"):
        return ""
    link = setting_link(info.fix.setting, rule_id=str(rule), campaign_id=campaign_id)
    return link.href if link else ""


def cause_view(code: str, count: int, rule: Optional[RuleId] = None, campaign_id: Optional[str] = None) -> CauseView:
    """A stored cause code for the page: its label from the plugin's cause table (the code itself
    when this version does not know it) and its fix for ``rule``."""
    cause = known_cause(code)
    if cause is None:
        return CauseView(code, count, code.replace("_", " ").capitalize(), "", "", "")
    info = cause.info
    fix = ""
    if info.fix is not None:
        fix = info.fix.advice if info.fix.scope != "settings" else f"{info.fix.advice} (setting {info.fix.setting})"
    return CauseView(code, count, info.label, info.meaning, fix, _fix_href(info, rule, campaign_id))


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
    causes: Sequence[CauseView]
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
        causes=[cause_view(c.cause, c.count, parsed, rule.campaign_id) for c in rule.causes],
        p50=_ms(rule.p50_ms),
        p95=_ms(rule.p95_ms),
        hosts=[host_view(h, health.hosts.get(h)) for h in rule.hosts],
        queued=rule.queued,
        oldest_due=_age(health.until - rule.oldest_due_at) if rule.oldest_due_at is not None else "",
        chart=sparkline(rule.series, window.unit),
    )


def _bucket_labels(health: DeliveryHealth, fmt: str) -> list[str]:
    """Each chart bucket's start and end, in UTC."""
    start = dt.datetime.fromtimestamp(health.since, dt.UTC)
    step = dt.timedelta(seconds=health.bucket_seconds)
    return [
        f"{(start + i * step).strftime(fmt)}–{(start + (i + 1) * step).strftime('%H:%M')} UTC"
        for i in range(health.buckets)
    ]


def _idle(rule: PostbackRule, health: DeliveryHealth) -> RuleHealth:
    """A configured postback with nothing in the window and nothing queued: shown with zeros, since
    a source that stopped converting is news too."""
    return RuleHealth(
        rule_id=rule.id,
        source_id=rule.source_id,
        campaign_id=rule.campaign_id,
        counts={outcome: 0 for outcome in OUTCOMES},
        causes=[],
        p50_ms=None,
        p95_ms=None,
        hosts=[],
        queued=0,
        oldest_due_at=None,
        series=[(0, 0)] * health.buckets,
    )


def dashboard_context(
    engine: Any, window: Window, now: Optional[float] = None, configured: Sequence[PostbackRule] = ()
) -> dict[str, Any]:
    """Everything the dashboard template shows, read in one pass over the plugin's tables.

    :param configured: the tracker's postbacks (its sources' and campaigns'); those with nothing in
        the window are listed after the others, with zeros.
    """
    health = delivery_health(engine, window.seconds, window.bucket_seconds, now=now)
    seen = {rule.rule_id for rule in health.rules}
    idle = [_idle(rule, health) for rule in configured if rule.id not in seen]
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
        "chart": timeline(health.series, window.unit, _bucket_labels(health, fmt)),
        "chart_start": dt.datetime.fromtimestamp(health.since, dt.UTC).strftime(fmt),
        "chart_end": dt.datetime.fromtimestamp(health.until, dt.UTC).strftime(fmt),
        "chart_peak": max([max(d, f) for d, f in health.series] or [0]),
        "rules": [_rule_row(rule, health, window) for rule in [*health.rules, *idle]],
        "hosts": [host_view(h, s) for h, s in health.hosts.items()],
        "oldest_due": oldest,
        "oldest_due_age": _age(health.until - oldest.due_at) if oldest else "",
        "top_causes": [cause_view(c.cause, c.count) for c in health.causes],
    }


__all__ = ["WINDOWS", "CauseView", "Window", "cause_view", "choose_window", "dashboard_context", "host_view"]
