"""Two ``s2s-postback worker`` processes sharing one queue on a real PostgreSQL server."""

from __future__ import annotations

from s2s_plugin.storage.db import make_engine
from sample_host.standin import Reply, StandInSource

from .workers import Worker, queue_postbacks, received, states, wait_until

OPTIONS = ("--lease-seconds", "2", "--poll-interval", "0.2", "--max-concurrency", "16", "--per-host-concurrency", "16")


def test_two_live_workers_never_send_a_delivery_twice(fresh_pg_url):
    total = 1000
    with StandInSource(default=Reply(200, "OK", delay=0.002)) as source:
        queue_postbacks(fresh_pg_url, source.url, total)
        engine = make_engine(fresh_pg_url)
        workers = [Worker(fresh_pg_url, *OPTIONS).start() for _ in range(2)]
        try:
            wait_until(lambda: states(engine).get("delivered", 0) == total, 120, "every delivery done")
            assert [w.terminate() for w in workers] == [0, 0]
        finally:
            for worker in workers:
                worker.stop()
        counts = received(source)
        assert len(counts) == total and max(counts.values()) == 1  # all sent, none twice
        clients = {r.client[1] for r in source.requests}
        assert len(clients) > 2  # connections from both processes' pools shared the work
        engine.dispose()


def test_one_of_two_workers_killed_mid_run(fresh_pg_url):
    total = 2000
    with StandInSource(default=Reply(200, "OK", delay=0.002)) as source:
        queue_postbacks(fresh_pg_url, source.url, total)
        engine = make_engine(fresh_pg_url)
        victim, survivor = Worker(fresh_pg_url, *OPTIONS).start(), Worker(fresh_pg_url, *OPTIONS).start()
        try:
            wait_until(lambda: source.count >= total // 3, 60, "a third of the postbacks")
            victim.kill()
            in_flight = states(engine).get("leased", 0)  # both workers' claims: an upper bound
            # The survivor takes over the victim's claims once their leases expire.
            wait_until(lambda: states(engine).get("delivered", 0) == total, 120, "every delivery done")
            assert survivor.terminate() == 0
        finally:
            victim.stop()
            survivor.stop()
        counts = received(source)
        assert set(counts) == {f"C{n}" for n in range(total)}
        assert sum(n - 1 for n in counts.values()) <= in_flight
        assert states(engine) == {"delivered": total}
        engine.dispose()
