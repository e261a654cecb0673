"""Plain-text tables for the terminal: aligned columns, one row per line. Pure, no I/O."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Union

Column = tuple[str, Union[str, Callable[[Mapping[str, Any]], Any]]]

#: The Sent postbacks log as ``sample-host logs`` shows it.
SENT_POSTBACK_COLUMNS: Sequence[Column] = (
    ("TIME", "logged_at"),
    ("SUBID", "subid"),
    ("RULE", "rule_id"),
    ("STATUS", "status"),
    ("OUTCOME", "outcome"),
    ("TRY", "attempt"),
    ("HTTP", "http_status"),
    ("METHOD", "method"),
    ("URL", "url"),
    ("REASON", lambda row: row.get("reason") or row.get("error")),
)

RECEIVED_POSTBACK_COLUMNS: Sequence[Column] = (
    ("TIME", "received_at"),
    ("METHOD", "method"),
    ("SUBID", "subid"),
    ("STATUS", "status"),
    ("OUTCOME", "outcome"),
    ("HTTP", "http_status"),
    ("REASON", "reason"),
)


def cell(value: Any) -> str:
    """One value as table text: ``-`` for nothing, times to the second, one line always."""
    if value is None or value == "":
        return "-"
    if isinstance(value, str) and "T" in value and value[:4].isdigit():
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            pass
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value) or "-"
    return " ".join(str(value).split())


def format_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[Column]) -> str:
    """Rows as an aligned table with a header line; the last column is not padded."""
    grid = [[title for title, _ in columns]]
    for row in rows:
        grid.append([cell(key(row) if callable(key) else row.get(key)) for _, key in columns])
    widths = [max(len(line[i]) for line in grid) for i in range(len(columns))]
    lines = []
    for line in grid:
        padded = [text.ljust(width) for text, width in zip(line[:-1], widths)] + [line[-1]]
        lines.append("  ".join(padded).rstrip())
    return "\n".join(lines)
