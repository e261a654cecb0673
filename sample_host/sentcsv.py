"""The Sent postbacks log as CSV: every entry matching a filter, newest first, written as it is read.

An export of a busy log can hold millions of rows, so it is never built in memory: entries are read
in id-ordered batches of ``BATCH`` (each batch its own short read, so the export holds no
transaction open while the client downloads) and each batch is turned into CSV text before the
next is read.

The log holds what the plugin reported, with marked secrets already masked; cells that a
spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@`` first) are written with a leading
apostrophe, since a source's answer body is text anyone on the internet can choose.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterator
from typing import Any, Optional

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from . import db
from .logs import SentFilter

#: The export's columns, in order (the Sent postbacks log's fields; one the table lacks is left out).
COLUMNS = (
    "id",
    "logged_at",
    "subid",
    "tid",
    "status",
    "source_id",
    "campaign_id",
    "rule_id",
    "delivery_id",
    "attempt",
    "outcome",
    "cause",
    "http_status",
    "method",
    "url",
    "body",
    "response_body",
    "error",
    "reason",
    "duration_ms",
    "started_at",
    "next_attempt_at",
)

#: Rows read per batch: fewer, larger reads export faster, and a batch holds at most this many
#: response bodies (each stored at most 16 KiB).
BATCH = 1000

# What a spreadsheet takes as the start of a formula.
_FORMULA_START = frozenset("=+-@\t\r")


def cell(value: Any) -> str:
    """One CSV cell: times in ISO 8601 UTC, None empty, text that a spreadsheet would run as a
    formula defused with a leading apostrophe."""
    if value is None:
        return ""
    if isinstance(value, str):  # most cells: a test per cell, every cell of every row
        return "'" + value if value[:1] in _FORMULA_START else value
    if isinstance(value, dt.datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return moment.astimezone(dt.UTC).isoformat()
    return str(value)


def _line(values: list[str]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow(values)
    return out.getvalue()


def export_lines(engine: Engine, filters: SentFilter, *, batch: int = BATCH) -> Iterator[str]:
    """The header line, then CSV text for every entry matching ``filters``, newest first, one
    batch of entries per piece."""
    table = db.sent_postbacks
    columns = [table.c[name] for name in COLUMNS if name in table.c]
    names = [column.name for column in columns]
    yield _line(names)
    before: Optional[int] = None
    while True:
        query = sa.select(*columns).where(*filters.where()).order_by(table.c.id.desc()).limit(batch)
        if before is not None:
            query = query.where(table.c.id < before)
        with engine.connect() as conn:
            rows = conn.execute(query).all()
        if not rows:
            return
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        for row in rows:
            writer.writerow([cell(value) for value in row])
        yield out.getvalue()
        if len(rows) < batch:
            return
        before = rows[-1].id
