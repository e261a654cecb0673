"""``s2s-postback worker`` as a real process: clean shutdown on SIGTERM, LISTEN/NOTIFY wake-ups,
and a SIGKILL in the middle of thousands of deliveries on SQLite."""

from __future__ import annotations

import time

from s2s_plugin.storage.db import make_engine
from sample_host.standin import Reply, StandInSource

from .workers import Worker, queue_postbacks, received, states, wait_until


def test_sigterm_finishes_attempts_in_flight_and_releases_the_rest(tmp_path):
    url = f"sqlite:///{tmp_path}/q.db"
    with StandInSource(default=Reply(200, "OK", delay=1.0)) as source:
        queue_postbacks(url, source.url, 20)
        worker = Worker(url, "--max-concurrency", "4", "--per-host-concurrency", "4").start()
        try:
            source.wait_for(4, timeout=20)
            assert worker.terminate() == 0, worker.stderr()
        finally:
            worker.stop()
        engine = make_engine(url)
        left = states(engine)
        engine.dispose()
        # The four attempts in flight finished and were recorded; nothing stays claimed.
        assert "leased" not in left
        assert left.get("delivered", 0) == len(source.requests) >= 4
        assert left["due"] == 20 - left["delivered"]


def test_postgres_worker_wakes_on_notify_not_on_the_poll(fresh_pg_url):
    with StandInSource() as source:
        queue_postbacks(fresh_pg_url, source.url, 0)
        worker = Worker(fresh_pg_url, "--poll-interval", "30").start()
        try:
            time.sleep(2)  # started, made its first (empty) claim and is listening
            started = time.monotonic()
            queue_postbacks(fresh_pg_url, source.url, 1)
            source.wait_for(1, timeout=10)
            # The poll comes every 30 s: the postback arriving this fast was a NOTIFY wake-up.
            assert time.monotonic() - started < 5
        finally:
            assert worker.terminate() == 0
            worker.stop()


def test_sigkill_mid_run_loses_nothing_and_duplicates_only_what_was_in_flight(tmp_path):
    url = f"sqlite:///{tmp_path}/q.db"
    total = 2000
    options = (
        "--lease-seconds",
        "2",
        "--poll-interval",
        "0.2",
        "--max-concurrency",
        "16",
        "--per-host-concurrency",
        "16",
    )
    with StandInSource(default=Reply(200, "OK", delay=0.002)) as source:
        queue_postbacks(url, source.url, total)
        engine = make_engine(url)
        first = Worker(url, *options).start()
        try:
            wait_until(lambda: source.count >= total // 3, 60, "a third of the postbacks")
            first.kill()
            in_flight = states(engine).get("leased", 0)
            assert 0 < source.count < total
            second = Worker(url, *options).start()
            try:
                wait_until(lambda: states(engine).get("delivered", 0) == total, 120, "every delivery done")
                assert second.terminate() == 0
            finally:
                second.stop()
        finally:
            first.stop()
        counts = received(source)
        assert set(counts) == {f"C{n}" for n in range(total)}  # every accepted postback reached the source
        duplicates = sum(n - 1 for n in counts.values())
        assert duplicates <= in_flight, (duplicates, in_flight)
        assert states(engine) == {"delivered": total}
        engine.dispose()
