"""``s2s-postback worker``: a standalone delivery dispatcher process."""

from __future__ import annotations

import logging
import signal
import threading
from typing import Optional

import click

from .base import database_option, main, user_errors
from .service import open_service


def _schedule(text: Optional[str]) -> Optional[list[float]]:
    if not text:
        return None
    try:
        return [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a comma list of seconds, e.g. 0,5,300") from None


@main.command()
@database_option
@click.option("--retry-schedule", help="Seconds before each attempt, e.g. 0,5,300 (S2S_RETRY_SCHEDULE).")
@click.option("--connect-timeout", type=float, help="Seconds to connect (S2S_CONNECT_TIMEOUT, default 5).")
@click.option("--timeout", type=float, help="Seconds for a whole attempt (S2S_TIMEOUT, default 15).")
@click.option("--max-concurrency", type=int, help="Attempts in flight (S2S_MAX_CONCURRENCY, default 32).")
@click.option("--per-host-concurrency", type=int, help="Attempts in flight per source host (default 8).")
@click.option("--allow-private-targets", is_flag=True, default=None, help="Allow loopback and private addresses.")
@click.option("--lease-seconds", type=float, help="How long a claim lasts unless renewed (S2S_LEASE_SECONDS).")
@click.option("--max-age", type=float, help="Seconds after which an undelivered postback fails (S2S_MAX_AGE, 3 days).")
@click.option("--poll-interval", type=float, help="Seconds between looks for due work (S2S_POLL_INTERVAL, 1).")
@click.option("--idempotency-header", help="Send each postback's delivery id in this header, e.g. Idempotency-Key.")
@click.option("-v", "--verbose", is_flag=True, help="Log every attempt.")
@user_errors
def worker(database_url: str, retry_schedule: Optional[str], verbose: bool, **settings: object) -> None:
    """Deliver queued postbacks until stopped (SIGTERM or Ctrl-C finish or release what is in flight)."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    service = open_service(database_url, retry_schedule=_schedule(retry_schedule), **settings)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    service.start()
    click.echo(f"s2s-postback worker delivering from {_safe(database_url)}; stop with Ctrl-C or SIGTERM", err=True)
    try:
        while not stop.wait(1.0):
            pass
    finally:
        service.close()


def _safe(database_url: str) -> str:
    """The URL without its password."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(database_url).render_as_string(hide_password=True)
    except Exception:
        return "the configured database"
