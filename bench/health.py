"""``python -m bench.health [--deliveries N] [--postgres]``: how long the delivery health dashboard's
figures take to read over a large attempt log, one JSON line per window on stdout.

Writes N deliveries and their attempts (about 1.25 per delivery, a third of them retried or failed)
spread evenly over eight days, in the order a tracker writes them, then reads
``s2s_plugin.ops.health.delivery_health`` for the last hour, day and week (best of three), on
SQLite, or on PostgreSQL (``S2S_BENCH_POSTGRES_URL``, or a private server like the tests') after
``ANALYZE``. A figure, never a test: nothing here fails.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import sys
import tempfile
import time
from collections.abc import Iterator

import pluggy
from sqlalchemy import insert, text

import hookspecs
import s2s_plugin
from s2s_plugin.ops.health import delivery_health
from s2s_plugin.storage import tables as t

SPAN = 8 * 86400
WINDOWS = [("1h", 3600, 60), ("24h", 86400, 3600), ("7d", 7 * 86400, 3600)]


@contextlib.contextmanager
def _database(postgres: bool) -> Iterator[str]:
    if not postgres:
        with tempfile.TemporaryDirectory(prefix="bench-health-") as workdir:
            yield f"sqlite:///{workdir}/health.db"
        return
    if os.environ.get("S2S_BENCH_POSTGRES_URL"):
        yield os.environ["S2S_BENCH_POSTGRES_URL"]
        return
    from tests.support import PostgresServer

    server = PostgresServer().start()
    try:
        yield server.create_database()
    finally:
        server.stop()


def _fill(engine: object, deliveries: int, now: float) -> int:
    rng = random.Random(1)
    rules = [f"source:s{i}" for i in range(10)] + [f"postback:{i}" for i in range(20)]
    rows, attempts = [], []
    for number in range(1, deliveries + 1):
        created = now - SPAN + SPAN * number / deliveries
        rows.append(
            {
                "id": number,
                "conversion_id": number,
                "subid": f"s{number}",
                "status": "sale",
                "rule_id": rng.choice(rules),
                "method": "GET",
                "url": "https://source.example/pb",
                "state": rng.choice(["delivered"] * 8 + ["failed", "due"]),
                "host": f"h{number % 7}.example:443",
                "next_attempt_at": created + 5,
                "created_at": created,
                "updated_at": created,
            }
        )
        for attempt in range(rng.choice([1, 1, 1, 2])):
            outcome = rng.choice(["delivered"] * 6 + ["retrying", "failed"])
            attempts.append(
                {
                    "delivery_id": number,
                    "attempt": attempt + 1,
                    "outcome": outcome,
                    "http_status": 200 if outcome == "delivered" else 503,
                    "cause": "accepted" if outcome == "delivered" else "http_server_error",
                    "duration_ms": rng.uniform(1, 2000),
                    "started_at": created + attempt,
                    "reported": True,
                    "response_truncated": False,
                }
            )
    with engine.begin() as conn:  # type: ignore[attr-defined]
        for start in range(0, len(rows), 20_000):
            conn.execute(insert(t.deliveries), rows[start : start + 20_000])
        for start in range(0, len(attempts), 20_000):
            conn.execute(insert(t.attempts), attempts[start : start + 20_000])
    return len(attempts)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=100_000)
    parser.add_argument("--postgres", action="store_true")
    args = parser.parse_args(argv)
    with _database(args.postgres) as url:
        pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        pm.add_hookspecs(hookspecs)
        service = s2s_plugin.install(pm, database_url=url)
        try:
            now = time.time()
            logged = _fill(service.engine, args.deliveries, now)
            if args.postgres:
                with service.engine.connect() as conn:
                    conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))
            for name, window, bucket in WINDOWS:
                best = float("inf")
                for _ in range(3):
                    started = time.perf_counter()
                    health = delivery_health(service.engine, window, bucket, now=now)
                    best = min(best, time.perf_counter() - started)
                line = {
                    "scenario": f"dashboard_{name}",
                    "database": "postgresql" if args.postgres else "sqlite",
                    "attempts_logged": logged,
                    "attempts_in_window": sum(health.counts.values()),
                    "read_ms": round(best * 1000, 1),
                }
                print(json.dumps(line), flush=True)
        finally:
            service.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
