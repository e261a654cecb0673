"""Small time-series charts drawn on the server as inline SVG: no script, no external file, so the
pages keep a content security policy that allows only the app itself (colours come from the
stylesheet through class names, never from inline styles).

Delivered postbacks stand above the axis, failed ones hang below it, one bar pair per time bucket.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

from markupsafe import Markup, escape


def _bars(
    series: Sequence[tuple[int, int]],
    width: float,
    top: float,
    bottom: float,
    gap: float,
    labels: Optional[Sequence[str]] = None,
) -> list[str]:
    """Bars of the two series; heights scaled to the largest value of either. With ``labels`` (one
    per bucket), each bucket with attempts carries a tooltip naming its time and counts."""
    peak = max([max(d, f) for d, f in series] or [0]) or 1
    step = width / max(len(series), 1)
    bar = max(step - gap, 0.5)
    axis = top + (bottom - top) * 0.62  # delivered get more room: most postbacks are delivered
    up, down = axis - top, bottom - axis
    parts = [f'<line class="axis" x1="0" y1="{axis:.1f}" x2="{width:.1f}" y2="{axis:.1f}"/>']
    for i, (delivered, failed) in enumerate(series):
        if not delivered and not failed:
            continue
        x = i * step + gap / 2
        bucket = []
        if labels is not None:
            bucket.append(f"<title>{escape(labels[i])}: {delivered} delivered, {failed} failed</title>")
        if delivered:
            h = max(up * delivered / peak, 1.0)
            bucket.append(
                f'<rect class="delivered" x="{x:.2f}" y="{axis - h:.2f}" width="{bar:.2f}" height="{h:.2f}"/>'
            )
        if failed:
            h = max(down * failed / peak, 1.0)
            bucket.append(f'<rect class="failed" x="{x:.2f}" y="{axis:.2f}" width="{bar:.2f}" height="{h:.2f}"/>')
        parts.append(f"<g>{''.join(bucket)}</g>" if labels is not None else "".join(bucket))
    return parts


def summary(series: Sequence[tuple[int, int]], unit: str) -> str:
    """One sentence saying what the chart shows, for screen readers and as its tooltip."""
    delivered = sum(d for d, _ in series)
    failed = sum(f for _, f in series)
    busiest = max([d + f for d, f in series] or [0])
    return (
        f"{delivered} delivered and {failed} failed over {len(series)} {unit}s; "
        f"at most {busiest} attempts in one {unit}"
    )


def timeline(series: Sequence[tuple[int, int]], unit: str, labels: Optional[Sequence[str]] = None) -> Markup:
    """The dashboard's main chart: delivered and failed per ``unit`` (``minute``, ``hour``). Its
    labels (the window's start and end, the scale) are the page's text, so they stay readable when
    the chart shrinks to a phone's width; ``labels`` (each bucket's time) become the bars' tooltips."""
    width, height = 720.0, 120.0
    label = summary(series, unit)
    parts = [
        f'<svg class="chart timeline" viewBox="0 0 {width:.0f} {height:.0f}" role="img" '
        f'aria-label="{escape(label)}" preserveAspectRatio="none">',
        f"<title>{escape(label)}</title>",
        *_bars(series, width, 2, height - 2, 1.0 if len(series) > 90 else 2.0, labels),
        "</svg>",
    ]
    return Markup("".join(parts))


def sparkline(series: Sequence[tuple[int, int]], unit: str) -> Markup:
    """A rule's small chart, for a table cell: the same bars, no labels."""
    width, height = 120.0, 30.0
    label = summary(series, unit)
    parts = [
        f'<svg class="chart spark" viewBox="0 0 {width:.0f} {height:.0f}" role="img" '
        f'aria-label="{escape(label)}" preserveAspectRatio="none">',
        f"<title>{escape(label)}</title>",
        *_bars(series, width, 1, height - 1, 0.0 if len(series) > 60 else 0.4),
        "</svg>",
    ]
    return Markup("".join(parts))
