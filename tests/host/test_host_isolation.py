"""The sample host shows source hosts that are not answering (the plugin's circuit breaker) on the
Sent postbacks page and in ``/metrics``, with each host's adaptive concurrency limit."""

from __future__ import annotations

import time

from s2s_plugin.storage import tables as t

from .conftest import Admin, Host


def test_open_and_closed_hosts_show_on_the_sent_page_and_in_metrics(host: Host, admin: Admin) -> None:
    now = time.time()
    # As a dispatcher (here or in a worker process) writes them to the shared table.
    with host.tracker.s2s.engine.begin() as conn:
        conn.execute(
            t.hosts.insert(),
            [
                {
                    "host": "down.example.com:443",
                    "state": "open",
                    "failures": 5,
                    "opened_at": now - 60,
                    "next_probe_at": now + 10,
                    "concurrency_limit": 2,
                    "updated_at": now,
                },
                {
                    "host": "fine.example.com:443",
                    "state": "closed",
                    "failures": 0,
                    "opened_at": None,
                    "next_probe_at": None,
                    "concurrency_limit": 24,
                    "updated_at": now,
                },
            ],
        )
    page = admin.get("/sent").text
    assert "source host down.example.com is not answering since" in page and "next probe at" in page
    assert "fine.example.com" not in page
    samples = dict(
        line.rsplit(" ", 1) for line in host.api.get("/metrics").text.splitlines() if not line.startswith("#")
    )
    assert samples['s2s_host_circuit_open{host="down.example.com:443"}'] == "1"
    assert samples['s2s_host_circuit_open{host="fine.example.com:443"}'] == "0"
    assert samples['s2s_host_concurrency_limit{host="fine.example.com:443"}'] == "24"
