"""The plugin's own tables, all prefixed ``s2s_`` so they sit beside a host's tables in one database.

Times are epoch seconds (floats): compact, index-friendly and the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    select,
)
from sqlalchemy.sql.elements import ColumnElement

metadata = MetaData()


def _rule_columns() -> list[Column[Any]]:
    """Columns every postback rule has, whether a source's or a campaign's (new objects per table)."""
    return [
        Column("url", Text, nullable=False),
        Column("method", String(10), nullable=False, default="GET"),
        Column("statuses", String(200), nullable=False),
        Column("payout_mode", String(20), nullable=False, default="real"),
        Column("payout_value", String(40)),
        Column("min_payout", String(40)),
        Column("body", Text),
        Column("headers", Text),
        Column("follow_redirects", Boolean, nullable=False, default=False),
        Column("enabled", Boolean, nullable=False, default=True),
        Column("gone", Boolean, nullable=False, default=False),  # the target answered 410 Gone
        Column("secrets", Text),  # comma list of query/body/header names whose values the log redacts
        Column("created_at", Float, nullable=False),
        Column("updated_at", Float, nullable=False),
    ]


# Postback of a traffic source: fires for every campaign whose clicks come from the source.
sources = Table(
    "s2s_sources",
    metadata,
    Column("source_id", String(100), primary_key=True),
    Column("template", String(100)),
    *_rule_columns(),
    # The source's campaign link (Keitaro's source "Parameters" table): NULL = its template's.
    Column("click_id_param", String(100)),
    Column("source_macro", String(200)),
    Column("parameters", Text),  # JSON object: tracker parameter -> the source's macro, in link order
)

# One row (id 1) whose version every change to s2s_sources or s2s_postbacks bumps (triggers made by
# migration 0003): on_conversion keeps the rules in memory while it stays the same.
config_version = Table(
    "s2s_config_version",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("version", Integer, nullable=False),
)

# A campaign's own S2S postbacks (Keitaro's "S2S postbacks" tab).
postbacks = Table(
    "s2s_postbacks",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("campaign_id", String(200), nullable=False, index=True),
    Column("name", String(200)),
    *_rule_columns(),
)

# What on_click remembered, so a conversion resolves by subid alone.
clicks = Table(
    "s2s_clicks",
    metadata,
    Column("subid", String(200), primary_key=True),
    Column("campaign_id", String(200), nullable=False),
    Column("campaign_name", String(200)),
    Column("source_id", String(100)),
    Column("params", Text, nullable=False),
    Column("ip", String(64)),
    Column("user_agent", Text),
    Column("country", String(8)),
    Column("created_at", Float, nullable=False),
)

conversions = Table(
    "s2s_conversions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("subid", String(200), nullable=False, index=True),
    Column("tid", String(200), nullable=False, default=""),  # "" when the network sent none
    Column("status", String(20), nullable=False),
    Column("original_status", String(100)),
    Column("payout", String(40)),
    Column("currency", String(10)),
    Column("params", Text),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

# Every on_conversion call and what was decided: the "which statuses arrived" part of explain.
events = Table(
    "s2s_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("subid", String(200), nullable=False, index=True),
    Column("conversion_id", Integer),
    Column("tid", String(200)),
    Column("status", String(20), nullable=False),
    Column("original_status", String(100)),
    Column("payout", String(40)),
    Column("decision", String(20), nullable=False),
    Column("reason", Text, nullable=False),
    Column("cause", String(40)),  # a Cause code when something went wrong (a plugin failed), else NULL
    Column("created_at", Float, nullable=False),
)

# The durable outbox: one row per (conversion, status, rule), whatever happens to it.
deliveries = Table(
    "s2s_deliveries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("conversion_id", Integer, nullable=False),
    # Not indexed (one B-tree less to write per postback): ``of_subid`` finds a click's deliveries
    # through s2s_conversions, whose subid is.
    Column("subid", String(200), nullable=False),
    Column("tid", String(200)),
    Column("status", String(20), nullable=False),
    Column("rule_id", String(200), nullable=False),
    Column("rule_url", Text),
    Column("template", String(100)),
    Column("source_id", String(100)),
    Column("campaign_id", String(200)),
    Column("payout", String(40)),
    Column("currency", String(10)),
    Column("method", String(10), nullable=False),
    Column("url", Text, nullable=False),
    Column("body", Text),
    Column("headers", Text),
    Column("follow_redirects", Boolean, nullable=False, default=False),
    # due → leased → delivered | failed, or due again for a retry; skipped never leaves.
    Column("state", String(20), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("retry_base", Integer, nullable=False, default=0),  # attempts made before the last resend
    Column("next_attempt_at", Float),
    Column("lease_token", Integer, nullable=False, default=0),
    Column("lease_until", Float),
    Column("reason", Text),
    # Why it is in its state, as a code (``resolution.causes.Cause``): ``reason`` says it in words.
    Column("cause", String(40)),
    Column("resolve_note", Text),  # what resolution noticed (unknown macros), repeated on every attempt
    Column("http_status", Integer),
    # host:port of the target: per-host limits and fair claiming (a dead source cannot hog a claim).
    Column("host", String(300)),
    # 0 = first attempt (or a resend), 1 = retry: first attempts are claimed ahead of a retry backlog.
    Column("lane", Integer, nullable=False, default=0),
    # The delivery's age counts from here (queued, or the last resend): max_age fails it after that.
    Column("age_from", Float),
    Column("secrets", Text),  # copied from the rule: names whose values the log redacts
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    UniqueConstraint("conversion_id", "status", "rule_id", name="uq_s2s_delivery_once"),
    Index("ix_s2s_deliveries_claim", "state", "lane", "next_attempt_at"),
    Index("ix_s2s_deliveries_created", "created_at"),
)

attempts = Table(
    "s2s_attempts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("delivery_id", Integer, nullable=False, index=True),
    Column("attempt", Integer, nullable=False),
    Column("outcome", String(20), nullable=False),
    Column("method", String(10)),
    Column("url", Text),
    Column("body", Text),
    Column("http_status", Integer),
    Column("response_body", Text),
    Column("response_truncated", Boolean, nullable=False, default=False),
    Column("error", Text),
    Column("reason", Text),
    Column("cause", String(40)),  # the reason's code (``resolution.causes.Cause``)
    Column("duration_ms", Float),
    Column("started_at", Float, nullable=False),
    Column("next_attempt_at", Float),
    # Reported to on_postback_sent: a crash between recording and reporting reports it later.
    Column("reported", Boolean, nullable=False, default=False),
    Index("ix_s2s_attempts_unreported", "reported"),
    Index("ix_s2s_attempts_started", "started_at"),  # pruning by age
)


# Per target host (``host:port``, as ``s2s_deliveries.host``): the circuit breaker's state, shared by
# every process on the database (claims leave open hosts' deliveries alone; ``explain`` and the
# metrics read it), and the adaptive concurrency limit the last dispatcher to write it was using.
hosts = Table(
    "s2s_hosts",
    metadata,
    Column("host", String(300), primary_key=True),
    # closed (sending) | open (not answering: its deliveries wait) | probing (one probe in flight)
    Column("state", String(20), nullable=False, default="closed"),
    Column("failures", Integer, nullable=False, default=0),  # consecutive failed attempts
    Column("opened_at", Float),
    Column("next_probe_at", Float),
    Column("concurrency_limit", Integer),
    Column("updated_at", Float, nullable=False),
)


def of_subid(subid: str) -> ColumnElement[bool]:
    """The condition on ``s2s_deliveries`` for the deliveries of click ``subid``, through its
    conversions: indexed on both tables (``s2s_conversions.subid``, ``uq_s2s_delivery_once``)."""
    return deliveries.c.conversion_id.in_(select(conversions.c.id).where(conversions.c.subid == subid))
