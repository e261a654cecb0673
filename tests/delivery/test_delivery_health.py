"""``ops.health.delivery_health``: a window's figures per postback rule, aggregated in the database.

A few thousand attempts of known shape are written straight into the plugin's tables, and every
figure is checked exactly against the same figures computed here in Python, on SQLite and on
PostgreSQL; the statements must reach the attempt log through its ``started_at`` index.
"""

from __future__ import annotations

import math
import random
from collections import Counter, defaultdict
from typing import Any

import pytest
from sqlalchemy import insert, text

from s2s_plugin.ops import health
from s2s_plugin.resolution.causes import Cause
from s2s_plugin.storage import tables as t

NOW = 1_700_000_000.0
WINDOW = 3600.0
BUCKET = 60.0
SINCE = NOW - WINDOW

#: rule id -> (source, campaign, host)
RULES = {
    "source:exo": ("exo", "summer", "exo.example:443"),
    "source:prop": ("prop", "winter", "prop.example:443"),
    "postback:1": ("exo", "summer", "partner.example:443"),
    "postback:2": ("prop", "winter", "slow.example:80"),
}


def _expected_cause(attempt: dict[str, Any]) -> str:
    """The cause the dashboard counts an attempt under: its stored code."""
    return attempt["cause"] or health.UNKNOWN_CAUSE


def _log(seed: int = 7) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Deliveries and their attempts: ~3,000 attempts over two hours, some exactly on the edges."""
    rng = random.Random(seed)
    deliveries, attempts = [], []
    for number in range(1, 1401):
        rule_id = rng.choice(list(RULES))
        source, campaign, host = RULES[rule_id]
        state = rng.choice(["delivered", "failed", "skipped", "due", "due", "leased"])
        next_at = NOW + rng.choice([-900.0, -30.0, 120.0]) if state == "due" else None
        deliveries.append(
            {
                "id": number,
                "conversion_id": number,
                "subid": f"s{number}",
                "status": "sale",
                "rule_id": rule_id,
                "source_id": source,
                "campaign_id": campaign if rule_id.startswith("postback") else None,
                "method": "GET",
                "url": f"https://{host}/pb?n={number}",
                "state": state,
                "host": host,
                "next_attempt_at": next_at,
                "reason": f"waiting {number}",
                "created_at": NOW - 7200,
                "updated_at": NOW,
            }
        )
        if state == "skipped":
            plan = ["skipped"]
        else:
            plan = ["retrying"] * rng.randint(0, 2) + [rng.choice(["delivered", "failed", "retrying"])]
        for attempt_no, outcome in enumerate(plan, start=0 if state == "skipped" else 1):
            started = rng.choice([SINCE, NOW, SINCE - 0.5, NOW - 0.001]) if rng.random() < 0.02 else None
            if started is None:
                started = NOW - rng.uniform(0, 7200)
            status = None
            error = None
            cause: str | None = Cause.NO_CLICK_ID if outcome == "skipped" else Cause.ACCEPTED
            if outcome in ("retrying", "failed"):
                status = rng.choice([503, 404, 429, None])
                cause = {503: Cause.HTTP_SERVER_ERROR, 404: Cause.HTTP_REFUSED, 429: Cause.HTTP_RATE_LIMITED}.get(
                    status, Cause.TIMEOUT
                )
                if status is None:
                    error = "timed out after 5 s"
                    cause = rng.choice([Cause.TIMEOUT, Cause.CONNECTION_FAILED, None])  # None: a row from before codes
            elif outcome == "delivered":
                status = 200
            attempts.append(
                {
                    "delivery_id": number,
                    "attempt": attempt_no,
                    "outcome": outcome,
                    "http_status": status,
                    "error": error,
                    "cause": None if cause is None else str(cause),
                    "reason": f"{outcome} {status}",
                    "duration_ms": None if outcome == "skipped" else float(rng.randint(5, 3000)),
                    "started_at": started,
                    "reported": True,
                    "response_truncated": False,
                }
            )
    return deliveries, attempts


def _nearest_rank(values: list[float], percent: int) -> float:
    ordered = sorted(values)
    return ordered[math.ceil(percent / 100 * len(ordered)) - 1]


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, make_s2s: Any, tmp_path: Any) -> Any:
    url = f"sqlite:///{tmp_path}/health.db" if request.param == "sqlite" else request.getfixturevalue("fresh_pg_url")
    _, s2s = make_s2s(url)
    return s2s.engine


def test_every_figure_of_a_window_matches_the_log_exactly(engine: Any) -> None:
    deliveries, attempts = _log()
    with engine.begin() as conn:
        conn.execute(insert(t.deliveries), deliveries)
        conn.execute(insert(t.attempts), attempts)
        conn.execute(
            insert(t.hosts),
            [
                {"host": "slow.example:80", "state": "open", "failures": 5, "opened_at": NOW - 300,
                 "next_probe_at": NOW + 30, "concurrency_limit": 1, "updated_at": NOW},
                {"host": "exo.example:443", "state": "closed", "failures": 0, "opened_at": None,
                 "next_probe_at": None, "concurrency_limit": 24, "updated_at": NOW},
            ],
        )  # fmt: skip
    assert len(attempts) > 2500

    got = health.delivery_health(engine, WINDOW, BUCKET, now=NOW)

    rule_of = {d["id"]: d["rule_id"] for d in deliveries}
    inside = [a for a in attempts if SINCE <= a["started_at"] < NOW]
    assert any(a["started_at"] == SINCE for a in inside)  # the edges were drawn: start included...
    assert any(a["started_at"] == NOW for a in attempts)  # ... end excluded
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    causes: dict[str, Counter[str]] = defaultdict(Counter)
    durations: dict[str, list[float]] = defaultdict(list)
    series: dict[str, dict[int, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    for a in inside:
        rule = rule_of[a["delivery_id"]]
        counts[rule][a["outcome"]] += 1
        if a["outcome"] != "delivered":
            causes[rule][_expected_cause(a)] += 1
        if a["attempt"] >= 1:
            durations[rule].append(a["duration_ms"])
        if a["outcome"] in ("delivered", "failed"):
            series[rule][int((a["started_at"] - SINCE) // BUCKET)][a["outcome"] == "failed"] += 1

    pending = [d for d in deliveries if d["state"] in ("due", "leased")]
    due_now = [d for d in pending if d["state"] == "due" and d["next_attempt_at"] <= NOW]

    by_rule = {rule.rule_id: rule for rule in got.rules}
    assert set(by_rule) == set(RULES)
    totals = [by_rule[r].total for r in [rule.rule_id for rule in got.rules]]
    assert totals == sorted(totals, reverse=True)  # busiest first
    for rule_id, (source, campaign, host) in RULES.items():
        rule = by_rule[rule_id]
        assert dict(rule.counts) == {o: counts[rule_id][o] for o in health.OUTCOMES}, rule_id
        top = sorted(causes[rule_id].items(), key=lambda item: (-item[1], item[0]))[: health.TOP_CAUSES]
        assert [(c.cause, c.count) for c in rule.causes] == top, rule_id
        assert rule.p50_ms == _nearest_rank(durations[rule_id], 50), rule_id
        assert rule.p95_ms == _nearest_rank(durations[rule_id], 95), rule_id
        assert list(rule.series) == [tuple(series[rule_id][i]) for i in range(60)], rule_id
        assert rule.source_id == source
        assert rule.campaign_id == (campaign if rule_id.startswith("postback") else None)
        assert list(rule.hosts) == [host]
        mine = [d for d in pending if d["rule_id"] == rule_id]
        assert rule.queued == len(mine)
        assert rule.oldest_due_at == min(
            (d["next_attempt_at"] for d in due_now if d["rule_id"] == rule_id), default=None
        )

    assert dict(got.counts) == {o: sum(c[o] for c in counts.values()) for o in health.OUTCOMES}
    every_cause = sum(causes.values(), Counter())
    top = sorted(every_cause.items(), key=lambda item: (-item[1], item[0]))[: health.TOP_CAUSES]
    assert [(c.cause, c.count) for c in got.causes] == top
    every_duration = [a["duration_ms"] for a in inside if a["attempt"] >= 1]
    assert (got.p50_ms, got.p95_ms) == (_nearest_rank(every_duration, 50), _nearest_rank(every_duration, 95))
    assert got.buckets == 60
    assert list(got.series) == [
        (sum(series[r][i][0] for r in RULES), sum(series[r][i][1] for r in RULES)) for i in range(60)
    ]
    assert (got.queue_depth, got.due_now) == (len(pending), len(due_now))
    oldest = min(due_now, key=lambda d: (d["next_attempt_at"], d["id"]))
    assert got.oldest_due is not None
    assert (got.oldest_due.delivery_id, got.oldest_due.subid, got.oldest_due.due_at) == (
        oldest["id"],
        oldest["subid"],
        oldest["next_attempt_at"],
    )
    assert got.hosts["slow.example:80"].is_open and got.hosts["slow.example:80"].next_probe_at == NOW + 30
    assert got.hosts["exo.example:443"].concurrency_limit == 24


def test_an_empty_log_has_zero_counts_and_no_latency(engine: Any) -> None:
    got = health.delivery_health(engine, 86400, 3600, now=NOW)
    assert got.rules == [] and got.causes == [] and got.counts == {o: 0 for o in health.OUTCOMES}
    assert (got.p50_ms, got.p95_ms, got.queue_depth, got.oldest_due) == (None, None, 0, None)
    assert list(got.series) == [(0, 0)] * 24


def test_the_window_reaches_the_attempt_log_through_its_started_at_index(engine: Any) -> None:
    """Asked of the planner with sequential scans priced out on PostgreSQL: the statements can use
    the index (on a few rows PostgreSQL would rightly scan the table instead)."""
    with engine.connect() as conn:
        for name, statement in health.statements(SINCE, NOW, BUCKET).items():
            compiled = statement.compile(engine, compile_kwargs={"literal_binds": True})
            if engine.dialect.name == "sqlite":
                plan = " ".join(str(row[-1]) for row in conn.execute(text(f"EXPLAIN QUERY PLAN {compiled}")))
            else:
                conn.execute(text("SET LOCAL enable_seqscan = off"))
                plan = " ".join(row[0] for row in conn.execute(text(f"EXPLAIN {compiled}")))
            expected = "ix_s2s_attempts_started" if name in ("outcomes", "causes", "latency") else "ix_s2s_deliveries"
            assert expected in plan, f"{name}: {plan}"
