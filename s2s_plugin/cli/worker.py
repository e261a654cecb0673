"""``s2s-postback worker``: a standalone delivery dispatcher process."""

from __future__ import annotations

import dataclasses
import logging
import signal
import threading
import typing
from collections.abc import Callable
from typing import Any, Optional

import click

from s2s_plugin.cli.base import database_option, main, user_errors
from s2s_plugin.cli.service import open_service
from s2s_plugin.settings import DeliverySettings


def _schedule(text: Optional[str]) -> Optional[list[float]]:
    if not text:
        return None
    try:
        return [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a comma list of seconds, e.g. 0,5,300") from None


#: Help for the worker's options; every delivery setting is an option (see ``_setting_options``).
_HELP = {
    "retry_schedule": "Seconds before each attempt, e.g. 0,5,300.",
    "connect_timeout": "Seconds to connect (default 5).",
    "timeout": "Seconds for a whole attempt (default 15).",
    "max_concurrency": "Attempts in flight (default 64).",
    "per_host_concurrency": "Attempts in flight per source host, at most: the cap of its adaptive limit (default 64).",
    "allow_private_targets": "Allow loopback and private addresses.",
    "retry_after_cap": "Longest Retry-After honoured, in seconds (default 3600).",
    "jitter": "Fraction of a retry's delay added at random (default 0.1).",
    "max_response_bytes": "Bytes of an answer kept in the log (default 16384).",
    "poll_interval": "Seconds between looks for due work (default 1).",
    "user_agent": "User-Agent of every postback.",
    "max_age": "Seconds after which an undelivered postback fails (default 3 days).",
    "lease_seconds": "How long a claim lasts unless renewed.",
    "claim_batch": "Deliveries claimed per database round trip (default 64).",
    "idempotency_header": "Send each postback's delivery id in this header, e.g. Idempotency-Key.",
    "circuit_failures": "Failed attempts in a row that make a host's postbacks wait for a probe (default 5).",
    "circuit_cooldown": "Seconds from a host's circuit opening to its first probe (default 5).",
    "circuit_max_cooldown": "Most seconds between probes of a host that stays down (default 15).",
}


def _setting_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """One option per delivery setting, named after it (``--retry-after-cap``), typed as the setting,
    with its ``S2S_*`` variable in the help: a new setting is a worker option without more code."""
    hints = typing.get_type_hints(DeliverySettings)
    for field in reversed(dataclasses.fields(DeliverySettings)):
        env = f"S2S_{field.name.upper()}"
        help_text = f"{_HELP.get(field.name, field.name.replace('_', ' ').capitalize() + '.')} ({env})"
        flag = "--" + field.name.replace("_", "-")
        kind = hints[field.name]
        if field.name == "retry_schedule":
            command = click.option(flag, help=help_text)(command)
        elif kind is bool:
            command = click.option(flag, is_flag=True, default=None, help=help_text)(command)
        else:
            base = next((t for t in (int, float, str) if t is kind or t in typing.get_args(kind)), str)
            command = click.option(flag, type=base, help=help_text)(command)
    return command


@main.command()
@database_option
@_setting_options
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
