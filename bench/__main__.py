"""``python -m bench [--quick] [--only NAME ...]``: one JSON line per scenario on stdout.

Scenarios (all in one run, every sink in a process of its own, baselines measured in the same run):

- ``enqueue``: cost of ``on_conversion`` on SQLite (p50/p99 µs), the click stored beforehand: five
  rounds (the median of their p50s is the figure), then once more beside 5,000 other campaigns.
- ``bare_httpx_instant`` / ``bare_httpx_50ms``: the best of several bare httpx set-ups (one
  ``AsyncClient`` at several concurrencies, several ``AsyncClient``s, sync ``Client``s in threads).
- ``delivery_instant`` / ``delivery_50ms``: the dispatcher draining a backlog, delivered/s and its
  ratio to the best bare set-up against the same sink: the dispatcher's best concurrency is found
  as the bare set-ups' is, then three rounds alternate the two bests and their medians are compared.
- ``pickup``: ``on_conversion`` to the request reaching the sink at 100 conversions/s, with the
  embedded dispatcher (``start()``), p50/p99 ms.
- ``backlog_rss``: peak RSS of an ``s2s-postback worker`` process draining a 100,000-delivery backlog.
- ``postgres_workers``: delivered/s of 1 and 2 worker processes sharing one PostgreSQL queue
  (``S2S_BENCH_POSTGRES_URL``, or a private server like the tests'), against the 50 ms sink.

Targets (DESIGN §8, issue 4) are printed beside each figure; nothing here fails on a miss.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any, Optional

import httpx
import pluggy

import hookspecs
import s2s_plugin
from hookspecs import Click, Conversion

ROOT = Path(__file__).resolve().parents[1]


def emit(scenario: str, **figures: Any) -> None:
    print(json.dumps({"scenario": scenario, **figures}), flush=True)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def env() -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith("S2S_")}
    out["PYTHONPATH"] = str(ROOT) + (os.pathsep + out["PYTHONPATH"] if out.get("PYTHONPATH") else "")
    return out


@contextlib.contextmanager
def sink(delay: float, *options: str) -> Iterator[str]:
    """A ``bench.sink`` process answering after ``delay`` seconds (``--hang``: never; ``--hosts N``:
    on N loopback addresses); yields its (first) base URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.sink", "--delay", str(delay), *options],
        cwd=ROOT,
        env=env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        yield proc.stdout.readline().strip()
    finally:
        proc.terminate()
        proc.wait(10)


def plugin(database_url: str, **settings: Any) -> tuple[pluggy.PluginManager, s2s_plugin.PostbackService]:
    """The plugin installed on a bare plugin manager (no entry points: only what is measured)."""
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    settings.setdefault("allow_private_targets", True)
    return pm, s2s_plugin.install(pm, database_url=database_url, **settings)


# --- bare httpx baselines ------------------------------------------------------------------


def _async_run(url: str, total: int, clients: int, per_client: int) -> float:
    async def main() -> float:
        pool = [httpx.AsyncClient(limits=httpx.Limits(max_connections=per_client)) for _ in range(clients)]
        left = total
        lock = asyncio.Lock()

        async def worker(client: httpx.AsyncClient) -> None:
            nonlocal left
            while True:
                async with lock:
                    if left <= 0:
                        return
                    left -= 1
                await client.get(f"{url}/bare?c={left}")

        started = time.perf_counter()
        await asyncio.gather(*(worker(c) for c in pool for _ in range(per_client)))
        elapsed = time.perf_counter() - started
        for c in pool:
            await c.aclose()
        return total / elapsed

    return asyncio.run(main())


def _threads_run(url: str, total: int, threads: int) -> float:
    left = [total]
    lock = threading.Lock()

    def worker() -> None:
        with httpx.Client() as client:
            while True:
                with lock:
                    if left[0] <= 0:
                        return
                    left[0] -= 1
                    n = left[0]
                client.get(f"{url}/bare?c={n}")

    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        for _ in range(threads):
            pool.submit(worker)
    return total / (time.perf_counter() - started)


def bare_setups(url: str, total: int) -> dict[str, Callable[[], float]]:
    """Every bare set-up against the sink, by label: each call sends ``total`` requests, returns req/s."""
    setups: dict[str, Callable[[], float]] = {}
    for concurrency in (1, 16, 64):
        setups[f"AsyncClient x{concurrency}"] = lambda c=concurrency: _async_run(url, total, 1, c)
    setups["4 AsyncClients x16"] = lambda: _async_run(url, total, 4, 16)
    for threads in (1, 16, 64):
        setups[f"sync Client in {threads} threads"] = lambda n=threads: _threads_run(url, total, n)
    return setups


def try_each(runs: dict[str, Callable[[], float]], passes: int) -> tuple[dict[str, float], dict[str, list[float]]]:
    """Each run's mean rate over ``passes`` passes, the passes taking turns (so a slow stretch of
    the machine falls on every candidate, not on one), and every pass's rate."""
    seen: dict[str, list[float]] = {label: [] for label in runs}
    for _ in range(passes):
        for label, run in runs.items():
            seen[label].append(round(run(), 1))
    return {label: round(statistics.mean(rates), 1) for label, rates in seen.items()}, seen


def bare_httpx(name: str, url: str, total: int, passes: int) -> tuple[str, Callable[[], float], float]:
    """Runs every bare set-up and emits their rates; returns the best one's label, runner and rate."""
    setups = bare_setups(url, total)
    rates, per_pass = try_each(setups, passes)
    best = max(rates, key=rates.__getitem__)
    emit(
        name,
        requests_per_setup=total,
        passes=passes,
        rates_per_s=rates,
        rates_per_pass=per_pass,
        best=best,
        best_per_s=rates[best],
    )
    return best, setups[best], rates[best]


# --- backlogs ------------------------------------------------------------------------------


def queue_backlog(service: s2s_plugin.PostbackService, url: str, count: int, source: str = "bench") -> None:
    """``count`` due deliveries written straight to the outbox (the enqueue path is measured apart)."""
    queue_postbacks(service, [(url, source)] * count)


def queue_postbacks(service: s2s_plugin.PostbackService, targets: list[tuple[str, str]]) -> None:
    """One due delivery per ``(base_url, source_id)``, in that order, written straight to the outbox."""
    from sqlalchemy import func, select

    from s2s_plugin.resolution.hosts import host_key
    from s2s_plugin.storage import tables as t

    now = time.time()
    with service.engine.connect() as conn:
        first = (conn.execute(select(func.max(t.deliveries.c.conversion_id))).scalar() or 0) + 1
    rows = [
        {
            "conversion_id": first + n,
            "subid": f"b{first + n}",
            "status": "sale",
            "rule_id": f"source:{source}",
            "method": "GET",
            "url": f"{url}/pb?c={first + n}",
            "follow_redirects": False,
            "state": "due",
            "attempts": 0,
            "retry_base": 0,
            "next_attempt_at": now,
            "lease_token": 0,
            "host": host_key(url),
            "lane": 0,
            "age_from": now,
            "created_at": now,
            "updated_at": now,
            "source_id": source,
            "campaign_id": "bench",
        }
        for n, (url, source) in enumerate(targets)
    ]
    count = len(rows)
    with service.engine.begin() as conn:
        for start in range(0, count, 5000):
            conn.execute(t.deliveries.insert(), rows[start : start + 5000])


def delivered_per_second(url: str, count: int, limits: Optional[list[int]] = None, **settings: Any) -> float:
    """Delivered/s draining ``count`` postbacks to ``url``; ``limits`` gets the host's adaptive limit at the end."""
    with tempfile.TemporaryDirectory() as tmp:
        pm, service = plugin(f"sqlite:///{tmp}/bench.db", **settings)
        try:
            queue_backlog(service, url, count)
            started = time.perf_counter()
            service.drain(timeout=600)
            elapsed = time.perf_counter() - started
            assert service.attempts(outcome="delivered", limit=1), "nothing was delivered"
            if limits is not None:
                limits.extend(service.dispatcher._hosts.limits().values())
        finally:
            service.close()
    return count / elapsed


# --- scenarios -----------------------------------------------------------------------------


def _enqueue_costs(count: int, other_campaigns: int = 0) -> list[float]:
    """``on_conversion`` costs (µs) of ``count`` conversions with two postbacks each (the source's
    and the campaign's), on a fresh SQLite file; ``other_campaigns`` more campaigns, each with its
    postback, and one source per 25 of them, make a large configuration."""
    from s2s_plugin.storage import tables as t

    with tempfile.TemporaryDirectory() as tmp:
        pm, service = plugin(f"sqlite:///{tmp}/bench.db")
        try:
            service.add_source(
                "exo", postback_url="https://postback.example.net/pb?cid={external_id}&p={revenue}", statuses=["sale"]
            )
            service.add_postback(
                "summer", url="https://partner.example.net/pb?cid={external_id}&s={status}", statuses=["sale"]
            )
            if other_campaigns:
                now = time.time()
                rule = {
                    "method": "GET",
                    "statuses": "sale",
                    "payout_mode": "real",
                    "follow_redirects": False,
                    "enabled": True,
                    "gone": False,
                    "created_at": now,
                    "updated_at": now,
                }
                with service.engine.begin() as conn:
                    conn.execute(
                        t.sources.insert(),
                        [
                            {**rule, "source_id": f"src{n}", "url": f"https://s{n}.example.net/pb?cid={{external_id}}"}
                            for n in range(other_campaigns // 25)
                        ],
                    )
                    conn.execute(
                        t.postbacks.insert(),
                        [
                            {**rule, "campaign_id": f"c{n}", "url": f"https://p{n}.example.net/pb?cid={{external_id}}"}
                            for n in range(other_campaigns)
                        ],
                    )
            for n in range(count + 50):
                pm.hook.on_click(
                    click=Click(subid=f"s{n}", campaign_id="summer", source_id="exo", params={"external_id": f"X{n}"})
                )
            for n in range(50):  # warm-up: statement caches, the template library
                pm.hook.on_conversion(
                    conversion=Conversion(subid=f"s{count + n}", status="sale", payout=Decimal("2.5"))
                )
            costs = []
            for n in range(count):
                conversion = Conversion(subid=f"s{n}", status="sale", payout=Decimal("2.5"), tid=f"t{n}")
                started = time.perf_counter()
                pm.hook.on_conversion(conversion=conversion)
                costs.append((time.perf_counter() - started) * 1e6)
        finally:
            service.close()
    return costs


def scenario_enqueue(quick: bool) -> None:
    """Rounds on fresh databases, a few seconds apart: the machine's speed drifts between them, so
    each round's p50 is printed and the median of the rounds is the figure."""
    count = 300 if quick else 3000
    rounds = [_enqueue_costs(count) for _ in range(1 if quick else 5)]
    p50s = [round(percentile(costs, 0.5)) for costs in rounds]
    everything = [cost for costs in rounds for cost in costs]
    other_campaigns = 500 if quick else 5000
    large = _enqueue_costs(count, other_campaigns=other_campaigns)
    emit(
        "enqueue",
        database="sqlite",
        conversions=count,
        postbacks_per_conversion=2,
        p50_us=round(statistics.median(p50s)),
        p50_us_per_round=p50s,
        p99_us=round(percentile(everything, 0.99)),
        other_campaigns=other_campaigns,
        p50_us_with_other_campaigns=round(percentile(large, 0.5)),
        target_p50_us=300,
    )


def scenario_delivery(quick: bool, delay: float, name: str) -> None:
    """The dispatcher against the best bare set-up, each at its best concurrency.

    Like the bare set-ups, the dispatcher first runs at several concurrencies (each in two passes
    that take turns, its mean deciding); then rounds alternate the best of each, and the medians are
    compared: a shared machine's speed drifts by tens of percent over seconds, and alternating
    compares the two under the same conditions.
    """
    total = (600 if quick else 4000) if delay == 0 else (600 if quick else 3000)
    rounds = 1 if quick else 3
    passes = 1 if quick else 2
    candidates = (1, 2, 4, 8, 16) if delay == 0 else (32, 64, 128)
    with sink(delay) as url:
        best, run_best, first = bare_httpx(f"bare_httpx_{name}", url, total, passes)

        def dispatcher(concurrency: int) -> float:
            return delivered_per_second(url, total, max_concurrency=concurrency, per_host_concurrency=concurrency)

        tried, tried_per_pass = try_each(
            {str(c): (lambda c=c: dispatcher(c)) for c in (candidates[1:2] if quick else candidates)}, passes
        )
        concurrency = int(max(tried, key=tried.__getitem__))
        bare_rates, rates, default_rates, default_limits = [first], [], [], []
        for _ in range(rounds):
            rates.append(dispatcher(concurrency))
            bare_rates.append(run_best())
            default_rates.append(delivered_per_second(url, total, default_limits))  # the settings' defaults
    rate, bare = statistics.median(rates), statistics.median(bare_rates)
    defaults = statistics.median(default_rates)
    emit(
        f"delivery_{name}",
        deliveries=total,
        delivered_per_s_by_concurrency=tried,
        delivered_per_s_by_concurrency_per_pass=tried_per_pass,
        max_concurrency=concurrency,
        rounds=rounds,
        delivered_per_s=round(rate, 1),
        best_bare=best,
        best_bare_per_s=round(bare, 1),
        ratio=round(rate / bare, 3),
        defaults_per_s=round(defaults, 1),
        defaults_ratio=round(defaults / bare, 3),
        defaults_limit_at_end=default_limits,  # the host's adaptive limit when each defaults round ended
        per_round={
            "delivered_per_s": [round(r, 1) for r in rates],
            "best_bare_per_s": [round(r, 1) for r in bare_rates],
            "defaults_per_s": [round(r, 1) for r in default_rates],
        },
        target_ratio=0.8,
    )


def scenario_pickup(quick: bool) -> None:
    seconds = 3 if quick else 20
    rate = 100
    with sink(0) as url, tempfile.TemporaryDirectory() as tmp:
        pm, service = plugin(f"sqlite:///{tmp}/bench.db")
        try:
            service.add_source("exo", postback_url=url + "/pickup?c={external_id}", statuses=["sale"])
            total = seconds * rate
            for n in range(total):
                pm.hook.on_click(
                    click=Click(subid=f"s{n}", campaign_id="c", source_id="exo", params={"external_id": str(n)})
                )
            service.start()
            httpx.get(url + "/__reset")
            httpx.get(url + "/__record")
            sent: dict[str, float] = {}
            started = time.monotonic()
            for n in range(total):
                pause = started + n / rate - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                sent[str(n)] = time.monotonic()
                pm.hook.on_conversion(conversion=Conversion(subid=f"s{n}", status="sale", payout=Decimal("1")))
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                arrivals = httpx.get(url + "/__arrivals").json()
                if len(arrivals) >= total:
                    break
                time.sleep(0.2)
        finally:
            service.close()
    latencies = [(at - sent[target.rsplit("=", 1)[1]]) * 1000 for at, target in arrivals]
    emit(
        "pickup",
        database="sqlite",
        dispatcher="embedded (start())",
        conversions_per_s=rate,
        conversions=total,
        arrived=len(latencies),
        p50_ms=round(percentile(latencies, 0.5), 2),
        p99_ms=round(percentile(latencies, 0.99), 2),
        target_p50_ms=20,
        target_p99_ms=100,
    )


# --- isolation -------------------------------------------------------------------------------


def _healthy_drain(healthy: str, count: int, hanging: int, hanging_count: int) -> float:
    """Seconds for the default dispatcher to deliver ``count`` postbacks to ``healthy``, queued
    after ``hanging_count`` postbacks to each of ``hanging`` sources that never answer."""
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        urls = [stack.enter_context(sink(0, "--hang")) for _ in range(hanging)]
        pm, service = plugin(f"sqlite:///{tmp}/bench.db")
        try:
            queue_postbacks(service, [(url, f"hang{n}") for n, url in enumerate(urls) for _ in range(hanging_count)])
            queue_backlog(service, healthy, count, source="healthy")
            started = time.perf_counter()
            service.start()
            return _wait_delivered(service, count, 300, [], started, source="healthy", every=0.02)
        finally:
            stack.close()  # the hanging sources go away: their attempts end at once, not after 15 s
            service.close()


def scenario_hanging(quick: bool) -> None:
    """A healthy source's backlog alone, and queued behind five sources that never answer (default
    settings, so a 15 s timeout): rounds alternate the two and the medians are compared."""
    count, hanging_count, rounds = (300, 100, 1) if quick else (600, 200, 3)
    alone, beside = [], []
    with sink(0) as healthy:
        for _ in range(rounds):
            alone.append(_healthy_drain(healthy, count, 0, 0))
            beside.append(_healthy_drain(healthy, count, 5, hanging_count))
    emit(
        "hanging_sources",
        healthy_postbacks=count,
        hanging_sources=5,
        postbacks_per_hanging_source=hanging_count,
        timeout_s=15,
        rounds=rounds,
        alone_s=round(statistics.median(alone), 3),
        beside_hanging_s=round(statistics.median(beside), 3),
        ratio=round(statistics.median(beside) / statistics.median(alone), 2),
        per_round={"alone_s": [round(x, 3) for x in alone], "beside_hanging_s": [round(x, 3) for x in beside]},
        target_ratio=1.5,
    )


def scenario_outage(quick: bool) -> None:
    """A source answering 503 for 10 s, then one for 30 s, while 300 postbacks to it arrive (default
    settings): requests it got while down, then seconds from its recovery until its backlog is
    delivered."""
    for down in (10.0,) if quick else (10.0, 30.0):
        _outage(100 if quick else 300, down)


def _outage(total: int, down: float) -> None:
    with sink(0) as url, tempfile.TemporaryDirectory() as tmp:
        pm, service = plugin(f"sqlite:///{tmp}/bench.db")
        try:
            httpx.get(url + "/__status?code=503")
            service.start()
            started = time.monotonic()
            # The postbacks arrive over the first third of the outage, as conversions do.
            for _ in range(30):
                queue_backlog(service, url, total // 30, source="down")
                service.dispatcher.wake()
                time.sleep(down / 3 / 30)
            time.sleep(max(0.0, started + down - time.monotonic()))
            while_down = httpx.get(url + "/__status?code=200").json()["count"]
            recovered = time.perf_counter()
            drained = _wait_delivered(service, total // 30 * 30, 300, [], recovered, every=0.05)
            after = httpx.get(url + "/__status?code=200").json()["count"] - while_down
        finally:
            service.close()
    emit(
        "outage_503",
        down_s=down,
        postbacks=total // 30 * 30,
        requests_while_down=while_down,
        requests_after=after,
        recovery_to_drained_s=round(drained, 2),
        target_recovery_to_drained_s=30,
    )


def _jain(counts: list[int]) -> float:
    """Jain's fairness index: 1 when every host got as many, 1/n when one got everything."""
    total, squares = sum(counts), sum(c * c for c in counts)
    return total * total / (len(counts) * squares) if squares else 1.0


def scenario_fairness(quick: bool) -> None:
    """100 hosts (127.0.0.2 ... 127.0.0.101, one sink process answering after 50 ms) with equal
    backlogs queued in random order: Jain's index of the postbacks each host has received so far,
    sampled every 0.5 s from when there were two per host in all (before that, 64 slots cannot
    have served 100 hosts) until the first host's backlog is done."""
    import random

    hosts, each = 100, (20 if quick else 60)
    with sink(0.05, "--hosts", str(hosts)) as first, tempfile.TemporaryDirectory() as tmp:
        port = first.rsplit(":", 1)[1]
        urls = [f"http://127.0.0.{n}:{port}" for n in range(2, hosts + 2)]
        targets = [(url, "fair") for url in urls for _ in range(each)]
        random.Random(12).shuffle(targets)
        pm, service = plugin(f"sqlite:///{tmp}/bench.db")
        indices = []
        try:
            queue_postbacks(service, targets)
            started = time.perf_counter()
            service.start()
            while True:
                time.sleep(0.5)
                by_address = httpx.get(first + "/__hosts").json()
                counts = [by_address.get(f"127.0.0.{n}", 0) for n in range(2, hosts + 2)]
                if max(counts) >= each:
                    break
                if sum(counts) >= 2 * hosts:
                    indices.append(round(_jain(counts), 3))
            drained = _wait_delivered(service, hosts * each, 300, [], started)
        finally:
            service.close()
    emit(
        "fairness_100_hosts",
        hosts=hosts,
        postbacks_per_host=each,
        sink_delay_ms=50,
        samples=len(indices),
        jain_min=min(indices) if indices else None,
        jain_median=statistics.median(indices) if indices else None,
        jain_per_sample=indices,
        drain_s=round(drained, 2),
        target_jain=0.9,
    )


def _worker(database_url: str, *options: str) -> subprocess.Popen:
    """An ``s2s-postback worker`` process with no third-party plugins loaded (only the plugin is measured,
    as in the in-process scenarios)."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "s2s_plugin",
            "worker",
            "--database-url",
            database_url,
            "--allow-private-targets",
            "--poll-interval",
            "0.2",
            *options,
        ],
        cwd=ROOT,
        env={**env(), "S2S_DISABLE_PLUGINS": "*"},
        stdin=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _wait_delivered(
    service: s2s_plugin.PostbackService,
    total: int,
    timeout: float,
    procs: list[subprocess.Popen],
    started: Optional[float] = None,
    source: Optional[str] = None,
    every: float = 0.1,
) -> float:
    """Seconds from ``started`` (default: now) until ``total`` deliveries (of ``source``) are delivered."""
    from sqlalchemy import func, select

    from s2s_plugin.storage import tables as t

    started = time.perf_counter() if started is None else started
    deadline = time.monotonic() + timeout
    query = select(func.count()).where(t.deliveries.c.state == "delivered")
    if source is not None:
        query = query.where(t.deliveries.c.source_id == source)
    while time.monotonic() < deadline:
        with service.engine.connect() as conn:
            if conn.execute(query).scalar() >= total:
                return time.perf_counter() - started
        for proc in procs:
            if proc.poll() is not None:
                raise RuntimeError("a worker process died")
        time.sleep(every)
    raise RuntimeError(f"the backlog was not drained within {timeout} s")


def scenario_backlog_rss(quick: bool) -> None:
    total = 10_000 if quick else 100_000
    with sink(0) as url, tempfile.TemporaryDirectory() as tmp:
        database_url = f"sqlite:///{tmp}/bench.db"
        pm, service = plugin(database_url)
        try:
            queue_backlog(service, url, total)
            worker = _worker(database_url, "--max-concurrency", "16", "--per-host-concurrency", "16")
            peak = 0.0
            started = time.perf_counter()
            try:
                from sqlalchemy import func, select

                from s2s_plugin.storage import tables as t

                query = select(func.count()).where(t.deliveries.c.state == "delivered")
                while True:
                    peak = max(peak, _peak_rss_mb(worker.pid))
                    with service.engine.connect() as conn:
                        if conn.execute(query).scalar() >= total:
                            break
                    if worker.poll() is not None:
                        raise RuntimeError("the worker died")
                    time.sleep(0.5)
                elapsed = time.perf_counter() - started
                peak = max(peak, _peak_rss_mb(worker.pid))
            finally:
                worker.terminate()
                worker.wait(30)
        finally:
            service.close()
    emit(
        "backlog_rss",
        database="sqlite",
        backlog=total,
        peak_rss_mb=round(peak, 1),
        drain_s=round(elapsed, 1),
        delivered_per_s=round(total / elapsed, 1),
        target_peak_rss_mb=150,
    )


def _listening_workers(service: s2s_plugin.PostbackService) -> int:
    """How many processes hold a ``LISTEN`` on the queue's channel: workers ready for work."""
    from sqlalchemy import text

    with service.engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'LISTEN %'")).scalar()


def scenario_postgres(quick: bool) -> None:
    total = 1500 if quick else 6000
    server = None
    base = os.environ.get("S2S_BENCH_POSTGRES_URL")
    if not base:
        sys.path.insert(0, str(ROOT))
        from tests.support import PostgresServer

        server = PostgresServer().start()
    try:
        rates = {}
        cpu = {}
        with sink(0.05) as url:
            for workers in (1, 2):
                database_url = server.create_database() if server else base
                pm, service = plugin(database_url)
                try:
                    from s2s_plugin.storage import queue
                    from s2s_plugin.storage import tables as t

                    if not server:  # an external database: start from an empty outbox
                        with service.engine.begin() as conn:
                            conn.execute(t.attempts.delete())
                            conn.execute(t.deliveries.delete())
                    procs = [
                        _worker(database_url, "--max-concurrency", "32", "--per-host-concurrency", "32")
                        for _ in range(workers)
                    ]
                    try:
                        # Time the draining, not the start-up: the workers are idle and listening
                        # before the backlog appears (with the NOTIFY a host's enqueue sends).
                        deadline = time.monotonic() + 60
                        while _listening_workers(service) < workers:
                            if time.monotonic() > deadline:
                                raise RuntimeError("the workers did not start listening within 60 s")
                            time.sleep(0.1)
                        before = sum(_cpu_seconds(p.pid) for p in procs)
                        started = time.perf_counter()
                        queue_backlog(service, url, total)
                        with service.engine.begin() as conn:
                            queue.notify(conn)
                        elapsed = _wait_delivered(service, total, 600, procs, started)
                        cpu[workers] = round((sum(_cpu_seconds(p.pid) for p in procs) - before) / elapsed, 2)
                    finally:
                        for proc in procs:
                            proc.terminate()
                            proc.wait(30)
                    rates[workers] = total / elapsed
                finally:
                    service.close()
    finally:
        if server is not None:
            server.stop()
    emit(
        "postgres_workers",
        sink_delay_ms=50,
        deliveries=total,
        max_concurrency_per_worker=32,
        one_worker_per_s=round(rates[1], 1),
        two_workers_per_s=round(rates[2], 1),
        scaling=round(rates[2] / rates[1], 2),
        workers_cpu_cores={"1": cpu[1], "2": cpu[2]},
        cores=os.cpu_count(),
        target_scaling=1.6,
    )


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


SCENARIOS: dict[str, Callable[[bool], None]] = {
    "enqueue": scenario_enqueue,
    "delivery_instant": lambda quick: scenario_delivery(quick, 0.0, "instant"),
    "delivery_50ms": lambda quick: scenario_delivery(quick, 0.05, "50ms"),
    "pickup": scenario_pickup,
    "hanging_sources": scenario_hanging,
    "outage_503": scenario_outage,
    "fairness_100_hosts": scenario_fairness,
    "backlog_rss": scenario_backlog_rss,
    "postgres_workers": scenario_postgres,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description="Benchmarks of the postback plugin.")
    parser.add_argument("--quick", action="store_true", help="small runs (a smoke test, not figures to quote)")
    parser.add_argument("--only", nargs="*", choices=sorted(SCENARIOS), help="run only these scenarios")
    args = parser.parse_args(argv)
    import logging

    logging.basicConfig(level=logging.ERROR)
    for name in args.only or SCENARIOS:
        SCENARIOS[name](args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
