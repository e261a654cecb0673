"""Reading the tracker's two logs a page at a time: filters and newest-first keyset pagination.

Pages are cut by row id (``before``/``after``), not by offset, so new rows arriving while an
operator reads never shift or repeat entries.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any, Optional

import sqlalchemy as sa
from sqlalchemy.engine import Engine

import hookspecs
from s2s_plugin.resolution.causes import Cause, cause_of

from . import db
from .errors import HostError

#: What became of an inbound postback, as the Received postbacks log says it.
RECEIVED_OUTCOMES = ("accepted", "ignored", "rejected", "error")


@dataclasses.dataclass(frozen=True)
class SentFilter:
    """Filters of the Sent postbacks log; None means any. ``cause`` is one of the plugin's cause
    codes (``no_click_id``, ``http_refused``...)."""

    subid: Optional[str] = None
    source: Optional[str] = None
    campaign: Optional[str] = None
    outcome: Optional[str] = None
    since: Optional[dt.datetime] = None
    until: Optional[dt.datetime] = None
    #: A cause code (the plugin's ``Cause`` values: ``timeout``, ``status_not_enabled``...).
    cause: Optional[str] = None

    def __post_init__(self) -> None:
        if self.outcome and self.outcome not in hookspecs.OUTCOMES:
            raise HostError(f"outcome {self.outcome!r} must be one of {', '.join(hookspecs.OUTCOMES)}")
        if self.cause and cause_of(self.cause) is None:
            raise HostError(
                f"cause {self.cause[:40]!r} is not a cause code: use one of {', '.join(c.value for c in Cause)}"
            )

    def where(self) -> list[Any]:
        """The SQL conditions on ``sent_postbacks``."""
        table = db.sent_postbacks
        conditions: list[Any] = []
        for column, value in (
            ("subid", self.subid),
            ("source_id", self.source),
            ("campaign_id", self.campaign),
            ("outcome", self.outcome),
            ("cause", self.cause),
        ):
            if value:
                conditions.append(table.c[column] == value)
        if self.since:
            conditions.append(table.c.logged_at >= self.since)
        if self.until:
            conditions.append(table.c.logged_at < self.until)
        return conditions


@dataclasses.dataclass(frozen=True)
class CauseCount:
    """How many Sent log entries have one cause; ``rule_id`` and ``campaign_id`` when they all
    share one (then the setting that fixes the cause can be linked), else None."""

    cause: str
    count: int
    rule_id: Optional[str]
    campaign_id: Optional[str]


#: How many of the newest entries a filter selects ``cause_counts`` reads: a page of the log stays
#: as quick on a log of millions (the counts then say of how many entries they are).
CAUSE_WINDOW = 10_000


def cause_counts(engine: Engine, filters: SentFilter, window: int = CAUSE_WINDOW) -> list[CauseCount]:
    """The causes of the newest ``window`` Sent log entries ``filters`` select, most frequent
    first (entries logged without a cause are left out)."""
    table = db.sent_postbacks
    newest = (
        sa.select(table.c.cause, table.c.rule_id, table.c.campaign_id)
        .where(*filters.where(), table.c.cause.is_not(None))
        .order_by(table.c.id.desc())
        .limit(window)
        .subquery()
    )
    query = (
        sa.select(
            newest.c.cause,
            sa.func.count(),
            sa.func.min(newest.c.rule_id),
            sa.func.max(newest.c.rule_id),
            sa.func.min(newest.c.campaign_id),
            sa.func.max(newest.c.campaign_id),
        )
        .group_by(newest.c.cause)
        .order_by(sa.func.count().desc(), newest.c.cause)
    )
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return [
        CauseCount(
            cause, count, low_rule if low_rule == high_rule else None, low_camp if low_camp == high_camp else None
        )
        for cause, count, low_rule, high_rule, low_camp, high_camp in rows
    ]


@dataclasses.dataclass(frozen=True)
class ReceivedFilter:
    """Filters of the Received postbacks log; None means any."""

    subid: Optional[str] = None
    outcome: Optional[str] = None
    since: Optional[dt.datetime] = None
    until: Optional[dt.datetime] = None

    def __post_init__(self) -> None:
        if self.outcome and self.outcome not in RECEIVED_OUTCOMES:
            raise HostError(f"outcome {self.outcome!r} must be one of {', '.join(RECEIVED_OUTCOMES)}")

    def where(self) -> list[Any]:
        """The SQL conditions on ``received_postbacks``."""
        table = db.received_postbacks
        conditions: list[Any] = []
        if self.subid:
            conditions.append(table.c.subid == self.subid)
        if self.outcome:
            conditions.append(table.c.outcome == self.outcome)
        if self.since:
            conditions.append(table.c.received_at >= self.since)
        if self.until:
            conditions.append(table.c.received_at < self.until)
        return conditions


@dataclasses.dataclass(frozen=True)
class LogPage:
    """One page of a log, newest first, with the cursors of the neighbouring pages (None at an end)."""

    rows: list[dict[str, Any]]
    older: Optional[int]
    newer: Optional[int]


def read_page(
    engine: Engine,
    table: sa.Table,
    conditions: list[Any],
    *,
    before: Optional[int] = None,
    after: Optional[int] = None,
    limit: int = 50,
) -> LogPage:
    """Rows of ``table`` matching ``conditions``: the ``limit`` newest, or those just older than
    id ``before``, or just newer than id ``after``."""
    limit = max(1, min(limit, 500))
    query = sa.select(table).where(*conditions)
    if after is not None:
        query = query.where(table.c.id > after).order_by(table.c.id.asc())
    else:
        if before is not None:
            query = query.where(table.c.id < before)
        query = query.order_by(table.c.id.desc())
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(query.limit(limit + 1))]
        more = len(rows) > limit
        rows = rows[:limit]
        if after is not None:
            rows.reverse()
        if not rows:
            return LogPage([], None, None)
        newest, oldest = rows[0]["id"], rows[-1]["id"]
        if after is not None:
            older_exists = _exists(conn, table, conditions, table.c.id < oldest)
            newer_exists = more
        else:
            older_exists = more
            newer_exists = before is not None and _exists(conn, table, conditions, table.c.id > newest)
    return LogPage(rows, oldest if older_exists else None, newest if newer_exists else None)


def _exists(conn: sa.Connection, table: sa.Table, conditions: list[Any], extra: Any) -> bool:
    return conn.execute(sa.select(table.c.id).where(*conditions, extra).limit(1)).first() is not None


def parse_time(value: Optional[str], name: str) -> Optional[dt.datetime]:
    """An ISO 8601 time from a filter (``2024-05-01``, ``2024-05-01T12:00``, ``...Z``), UTC unless
    it names its zone; None when empty.

    :raises HostError: for anything else.
    """
    if not value or not value.strip():
        return None
    try:
        moment = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        moment = moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
        # Stored times are UTC: a time that leaves the calendar once moved there cannot be compared.
        moment.astimezone(dt.UTC)
    except ValueError:
        raise HostError(f"{name}={value!r} is not an ISO 8601 time such as 2024-05-01T12:00:00Z") from None
    except OverflowError:
        raise HostError(f"{name}={value!r} is not a time the tracker can hold (years 1 to 9999 in UTC)") from None
    return moment
