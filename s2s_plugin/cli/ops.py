"""``s2s-postback db``, ``resend``, ``test-send`` and ``prune``: operating the outbox."""

from __future__ import annotations

import json
from typing import Optional

import click

from s2s_plugin.cli.base import database_option, main, user_errors
from s2s_plugin.cli.service import open_service
from s2s_plugin.errors import InputError


@main.group()
def db() -> None:
    """The plugin's tables: migrations."""


@db.command("upgrade")
@database_option
@click.option("--revision", default="head", show_default=True, help="Revision to upgrade to.")
@user_errors
def db_upgrade(database_url: str, revision: str) -> None:
    """Create the plugin's tables, or bring them up to date (Alembic migrations)."""
    from s2s_plugin.storage import migrate
    from s2s_plugin.storage.db import make_engine

    engine = make_engine(database_url)
    try:
        before, after = migrate.upgrade(engine, revision)
    except Exception as exc:  # an unreachable database or an unknown revision: one line, no traceback
        raise click.ClickException(f"could not upgrade: {exc}".splitlines()[0]) from None
    finally:
        engine.dispose()
    if before == after:
        click.echo(f"already at {after}")
    else:
        click.echo(f"upgraded from {before or '(empty)'} to {after}")


@db.command("current")
@database_option
@user_errors
def db_current(database_url: str) -> None:
    """Print the revision of the plugin's tables (nothing when they do not exist)."""
    from s2s_plugin.storage import migrate
    from s2s_plugin.storage.db import make_engine

    engine = make_engine(database_url)
    try:
        click.echo(migrate.current_revision(engine) or "")
    finally:
        engine.dispose()


@main.command()
@click.argument("delivery_ids", nargs=-1, type=int)
@database_option
@click.option("--source", "source_id", help="Deliveries to this traffic source.")
@click.option("--campaign", "campaign_id", help="Deliveries of this campaign.")
@click.option("--rule", "rule_id", help="Deliveries of this rule (source:ID or postback:N).")
@click.option("--subid", help="Deliveries for this click.")
@click.option("--outcome", type=click.Choice(["failed", "delivered", "retrying"]), help="Deliveries in this state.")
@click.option("--since", help="Queued at or after this time (ISO 8601, UTC unless stated).")
@click.option("--until", help="Queued before this time.")
@click.option("--dry-run", is_flag=True, help="Only list what would be resent.")
@user_errors
def resend(delivery_ids: tuple[int, ...], database_url: str, dry_run: bool, **filters: Optional[str]) -> None:
    """Send deliveries again now: by id, or every delivery matching the filters.

    A running worker (or the host's dispatcher) sends them; the retry schedule starts over.
    """
    if delivery_ids and any(filters.values()):
        raise InputError("give delivery ids or filters, not both")
    if not delivery_ids and not any(filters.values()):
        raise InputError("give delivery ids, or filters such as --source exo --outcome failed")
    service = open_service(database_url)
    try:
        if delivery_ids:
            done = [i for i in delivery_ids if dry_run or service.resend(i)]
            missing = sorted(set(delivery_ids) - set(done))
            if missing:
                click.echo(f"not resent (unknown, or being sent now): {', '.join(map(str, missing))}", err=True)
        else:
            done = service.resend_matching(dry_run=dry_run, **filters)
    finally:
        service.close()
    verb = "would resend" if dry_run else "resent"
    click.echo(
        f"{verb} {len(done)} deliver{'y' if len(done) == 1 else 'ies'}"
        + (f": {', '.join(map(str, done[:50]))}" if done else "")
    )


@main.command("test-send")
@click.argument("rule_id")
@database_option
@click.option("--status", help="Conversion status (default: the rule's first).")
@click.option("--payout", default="1.00", show_default=True)
@click.option("--currency", default="USD", show_default=True)
@click.option("--external-id", default="test-click-id", show_default=True, help="The source's click id.")
@click.option("--tid", help="Transaction id.")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE", help="More click parameters (repeat).")
@click.option("--allow-private-targets", is_flag=True, default=None, help="Allow loopback and private addresses.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@user_errors
def test_send(
    rule_id: str,
    database_url: str,
    params: tuple[str, ...],
    allow_private_targets: Optional[bool],
    as_json: bool,
    **sample: Optional[str],
) -> None:
    """Send RULE_ID (source:ID or postback:N) now with sample values and show the answer.

    Nothing is queued or logged. Exit code 1 when the source did not accept it.
    """
    extra = {}
    for item in params:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise InputError(f"--param {item!r} is not NAME=VALUE")
        extra[name] = value
    service = open_service(database_url, allow_private_targets=allow_private_targets)
    try:
        result = service.test_send(rule_id, params=extra, **{k: v for k, v in sample.items() if v is not None})
    finally:
        service.close()
    click.echo(json.dumps(result.to_dict(), ensure_ascii=False) if as_json else str(result))
    if result.outcome != "delivered":
        raise SystemExit(1)


@main.command()
@database_option
@click.option("--older-than", required=True, help="Age of log entries to delete, e.g. 30d, 12h.")
@user_errors
def prune(database_url: str, older_than: str) -> None:
    """Delete attempt-log entries older than --older-than (pending deliveries' entries are kept)."""
    from s2s_plugin.ops.operations import parse_duration

    seconds = parse_duration(older_than)
    service = open_service(database_url)
    try:
        pruned = service.prune(seconds)
    finally:
        service.close()
    click.echo(
        f"deleted {pruned.attempts} attempt log entr{'y' if pruned.attempts == 1 else 'ies'} older than {older_than}"
    )
