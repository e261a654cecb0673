"""``GET /metrics``: the tracker in Prometheus' text format, behind the API token.

What an operator alerts on: postbacks by outcome and source, and by outcome and cause code (from the
Sent postbacks log), the plugin's deliveries by state and cause, inbound postbacks by outcome, the plugin's queue depth and how late its oldest due delivery is, the attempt
latency histogram, conversions the plugin has not taken yet, and refused inbound requests.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Optional

import sqlalchemy as sa
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from . import db
from .api import error_response, is_authorized
from .handoff import STUCK_AFTER
from .tracker import Tracker

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: Upper bounds (seconds) of the attempt latency histogram's buckets.
LATENCY_BUCKETS: tuple[float, ...] = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclasses.dataclass(frozen=True)
class Histogram:
    """Cumulative bucket counts (same order as ``LATENCY_BUCKETS``), total count and sum."""

    buckets: Sequence[int]
    count: int
    total: float


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """Everything ``/metrics`` reports, read at one moment."""

    sent: Mapping[tuple[str, str], int]  # (outcome, source) -> entries
    received: Mapping[str, int]  # outcome -> inbound postbacks
    deliveries: Mapping[str, int]  # plugin outbox state -> deliveries
    queue_depth: int
    due_now: int
    oldest_due_age: float
    latency: Histogram
    waiting_handoffs: int
    refused: Mapping[str, int]  # kind -> requests counted
    throttled: int
    stuck_handoffs: int = 0
    # target host -> (circuit state, adaptive concurrency limit or None), from the plugin's s2s_hosts
    hosts: Mapping[str, tuple[str, Optional[int]]] = dataclasses.field(default_factory=dict)
    # (outcome, cause code) -> Sent log entries; cause "" for entries logged without a code
    sent_by_cause: Mapping[tuple[str, str], int] = dataclasses.field(default_factory=dict)
    # (plugin outbox state, cause code) -> deliveries
    deliveries_by_cause: Mapping[tuple[str, str], int] = dataclasses.field(default_factory=dict)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(pairs: Iterable[tuple[str, str]]) -> str:
    inner = ",".join(f'{name}="{_escape(value)}"' for name, value in pairs)
    return "{" + inner + "}" if inner else ""


def _number(value: float) -> str:
    return repr(float(value)) if isinstance(value, float) and not float(value).is_integer() else str(int(value))


def render(snapshot: Snapshot) -> str:
    """The snapshot in the Prometheus text exposition format (pure)."""
    lines: list[str] = []

    def family(
        name: str, kind: str, help_text: str, samples: Iterable[tuple[str, Sequence[tuple[str, str]], float]]
    ) -> None:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        for suffix, labels, value in samples:
            lines.append(f"{name}{suffix}{_labels(labels)} {_number(value)}")

    family(
        "sample_host_sent_postbacks_total",
        "counter",
        "Entries of the Sent postbacks log (attempts and skips) by outcome and traffic source.",
        [("", (("outcome", o), ("source", s)), n) for (o, s), n in sorted(snapshot.sent.items())],
    )
    family(
        "sample_host_sent_postbacks_by_cause_total",
        "counter",
        "Entries of the Sent postbacks log by outcome and cause code (why: timeout, http_refused, status_not_enabled...).",
        [("", (("outcome", o), ("cause", c)), n) for (o, c), n in sorted(snapshot.sent_by_cause.items())],
    )
    family(
        "sample_host_received_postbacks_total",
        "counter",
        "Inbound conversion postbacks in the Received postbacks log by outcome.",
        [("", (("outcome", o),), n) for o, n in sorted(snapshot.received.items())],
    )
    family(
        "sample_host_refused_postbacks_total",
        "counter",
        "Inbound postbacks refused before they were read (wrong key, address not allowed), by kind.",
        [("", (("kind", k),), n) for k, n in sorted(snapshot.refused.items())],
    )
    family(
        "sample_host_throttled_postbacks_total",
        "counter",
        "Refused inbound postbacks answered 429 without being stored, since the process started.",
        [("", (), snapshot.throttled)],
    )
    family(
        "s2s_deliveries",
        "gauge",
        "Deliveries in the postback outbox by state.",
        [("", (("state", s),), n) for s, n in sorted(snapshot.deliveries.items())],
    )
    family(
        "s2s_deliveries_by_cause",
        "gauge",
        "Deliveries in the postback outbox by state and cause code (why failed, skipped, retried or waiting).",
        [("", (("state", s), ("cause", c)), n) for (s, c), n in sorted(snapshot.deliveries_by_cause.items())],
    )
    family(
        "s2s_queue_depth",
        "gauge",
        "Deliveries still to send (due now or later, or being sent).",
        [("", (), snapshot.queue_depth)],
    )
    family("s2s_due_now", "gauge", "Deliveries whose next attempt time has come.", [("", (), snapshot.due_now)])
    family(
        "s2s_oldest_due_delivery_age_seconds",
        "gauge",
        "How long the most overdue delivery has waited past its due time (0 when none).",
        [("", (), round(snapshot.oldest_due_age, 3))],
    )
    histogram = snapshot.latency
    samples = [
        ("_bucket", (("le", _number(bound)),), count) for bound, count in zip(LATENCY_BUCKETS, histogram.buckets)
    ]
    samples += [
        ("_bucket", (("le", "+Inf"),), histogram.count),
        ("_sum", (), round(histogram.total, 6)),
        ("_count", (), histogram.count),
    ]
    family(
        "sample_host_postback_attempt_duration_seconds",
        "histogram",
        "Duration of postback delivery attempts (request to answer).",
        samples,
    )
    family(
        "sample_host_conversions_waiting_for_plugin",
        "gauge",
        "Recorded conversions the postback plugin has not taken yet (handed over again automatically).",
        [("", (), snapshot.waiting_handoffs)],
    )
    family(
        "sample_host_stuck_handoffs",
        "gauge",
        f"Waiting conversions whose hand-over to the postback plugin failed {STUCK_AFTER} times or more (see /handoffs).",
        [("", (), snapshot.stuck_handoffs)],
    )
    family(
        "s2s_host_circuit_open",
        "gauge",
        "1 while a target host is not answering: its postbacks wait for a probe (circuit open or probing).",
        [("", (("host", h),), int(state != "closed")) for h, (state, _limit) in sorted(snapshot.hosts.items())],
    )
    family(
        "s2s_host_concurrency_limit",
        "gauge",
        "Attempts a target host may have in flight now (adaptive, capped by per_host_concurrency).",
        [("", (("host", h),), limit) for h, (_state, limit) in sorted(snapshot.hosts.items()) if limit is not None],
    )
    return "\n".join(lines) + "\n"


def collect(tracker: Tracker) -> Snapshot:
    """Read the snapshot: the host's logs, and the plugin's outbox through ``PostbackService.stats()``."""
    sent_t, received_t = db.sent_postbacks, db.received_postbacks
    with tracker.engine.connect() as conn:
        sent = {
            (outcome, source or ""): count
            for outcome, source, count in conn.execute(
                sa.select(sent_t.c.outcome, sent_t.c.source_id, sa.func.count()).group_by(
                    sent_t.c.outcome, sent_t.c.source_id
                )
            )
        }
        sent_by_cause = {
            (outcome, cause or ""): count
            for outcome, cause, count in conn.execute(
                sa.select(sent_t.c.outcome, sent_t.c.cause, sa.func.count()).group_by(sent_t.c.outcome, sent_t.c.cause)
            )
        }
        received = dict(
            conn.execute(sa.select(received_t.c.outcome, sa.func.count()).group_by(received_t.c.outcome)).all()
        )
        seconds = sent_t.c.duration_ms / 1000.0
        tried = sent_t.c.attempt > 0
        bucket_columns = [sa.func.sum(sa.case((seconds <= bound, 1), else_=0)) for bound in LATENCY_BUCKETS]
        row = conn.execute(
            sa.select(sa.func.count(), sa.func.sum(seconds), *bucket_columns).where(
                tried, sent_t.c.duration_ms.is_not(None)
            )
        ).one()
    stats = tracker.s2s.stats()
    return Snapshot(
        sent=sent,
        received=received,
        deliveries=dict(stats.by_state),
        queue_depth=stats.queue_depth,
        due_now=stats.due_now,
        oldest_due_age=stats.oldest_due_age,
        latency=Histogram(buckets=[int(n or 0) for n in row[2:]], count=int(row[0] or 0), total=float(row[1] or 0.0)),
        waiting_handoffs=tracker.handoffs.waiting(),
        stuck_handoffs=tracker.handoffs.stuck(),
        refused=tracker.refusals.totals(),
        throttled=tracker.refusals.throttled,
        hosts={h: (status.state, status.concurrency_limit) for h, status in stats.hosts.items()},
        sent_by_cause=sent_by_cause,
        deliveries_by_cause={
            (state, cause): count for state, causes in stats.by_cause.items() for cause, count in causes.items()
        },
    )


async def metrics_endpoint(request: Request) -> Response:
    """``GET /metrics`` (``Authorization: Bearer <api_token>``)."""
    tracker: Tracker = request.app.state.tracker
    if not await run_in_threadpool(is_authorized, request, tracker):
        return error_response(
            401,
            "missing or wrong API token: send 'Authorization: Bearer <api_token>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    try:
        snapshot = await run_in_threadpool(collect, tracker)
    except Exception:
        log.exception("metrics could not be read")
        return error_response(503, "the metrics could not be read; try again")
    return Response(render(snapshot), media_type=CONTENT_TYPE)
