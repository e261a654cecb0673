"""``sample-host``: the sample tracker's command line. Commands parse, call the tracker, print."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import os
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any, Optional

import click

from s2s_plugin.hooks.plugins import loading_failure
from s2s_plugin.resolution.causes import Cause

from . import DEFAULT_DATABASE_URL
from .errors import HostError
from .tables import RECEIVED_POSTBACK_COLUMNS, SENT_POSTBACK_COLUMNS, format_table

DB_ENV = "SAMPLE_HOST_DB"
PRIVATE_TARGETS_ENV = "S2S_ALLOW_PRIVATE_TARGETS"


class UserError(click.ClickException):
    """A mistake the user can fix: one line on stderr, exit code 2, no traceback."""

    exit_code = 2


def _truthy(value: Optional[str]) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def db_option(func: Any, envvar: Optional[str] = None) -> Any:
    """``--db URL``, accepted after any command as well as before it.

    Only the top-level option reads ``SAMPLE_HOST_DB``, so a ``--db`` given anywhere on the command
    line wins over the environment.
    """
    return click.option(
        "--db",
        "database_url",
        envvar=envvar,
        default=None,
        metavar="URL",
        help=f"SQLAlchemy database URL (env {DB_ENV}; default {DEFAULT_DATABASE_URL}).",
    )(func)


def private_targets_option(func: Any) -> Any:
    """``--allow-private-targets`` (or ``S2S_ALLOW_PRIVATE_TARGETS=1``)."""
    return click.option(
        "--allow-private-targets",
        is_flag=True,
        default=False,
        help=f"Let postbacks go to loopback and private addresses (env {PRIVATE_TARGETS_ENV}=1).",
    )(func)


def _database_url(database_url: Optional[str]) -> str:
    ctx = click.get_current_context()
    group_url = (ctx.find_root().obj or {}).get("database_url")
    return database_url or group_url or DEFAULT_DATABASE_URL


@contextlib.contextmanager
def open_tracker(database_url: Optional[str], *, allow_private_targets: bool = False) -> Iterator[Any]:
    """Open the tracker for one command, turning user errors into one-line messages."""
    from sqlalchemy.exc import ArgumentError, OperationalError

    from .tracker import Tracker

    url = _database_url(database_url)
    allow = allow_private_targets or _truthy(os.environ.get(PRIVATE_TARGETS_ENV))
    try:
        tracker = Tracker(url, allow_private_targets=allow)
    except (ArgumentError, OperationalError) as exc:
        raise UserError(f"cannot open database {url!r}: {str(exc).splitlines()[0]}") from None
    except Exception as exc:
        failure = loading_failure(exc)  # S2S_PLUGINS_STRICT: a broken plugin stops the command
        if failure is None:
            raise
        raise UserError(failure) from None
    try:
        with user_errors():
            yield tracker
    finally:
        tracker.close()


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Report the tracker's ``HostError`` as a one-line ``UserError``."""
    try:
        yield
    except HostError as exc:
        raise UserError(str(exc)) from None


def _print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False, default=str))


def _rule_rows(rules: list[Any]) -> list[dict[str, Any]]:
    from .tracker import rule_to_dict

    return [rule_to_dict(r) for r in rules]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@functools.partial(db_option, envvar=DB_ENV)
@click.pass_context
def main(ctx: click.Context, database_url: Optional[str]) -> None:
    """A small ad tracker that sends S2S postbacks to traffic sources through s2s-postback."""
    _require_web_stack()
    ctx.ensure_object(dict)
    ctx.obj["database_url"] = database_url


def _require_web_stack() -> None:
    """Stop with one line when the sample host's extra is not installed (a plugin-only install)."""
    import importlib.util

    missing = [
        name
        for name in ("starlette", "uvicorn", "jinja2", "multipart", "itsdangerous")
        if importlib.util.find_spec(name) is None
    ]
    if missing:
        raise click.ClickException(
            f"the sample host needs its web stack ({', '.join(missing)} missing): "
            "pip install 's2s-postback[sample-host]'"
        )


@main.command()
@db_option
@click.option("--json", "as_json", is_flag=True, help="Print the credentials as one JSON object.")
@click.option(
    "--base-url",
    default="http://127.0.0.1:8000",
    show_default=True,
    help="Where the tracker will be reachable, for the URLs printed.",
)
def init(database_url: Optional[str], as_json: bool, base_url: str) -> None:
    """Create the tables and the secrets (API token, postback key, admin password)."""
    with open_tracker(database_url) as tracker:
        creds = tracker.init()
    postback_url = (
        f"{base_url.rstrip('/')}/{creds.postback_key}/postback"
        "?subid={subid}&status={status}&payout={payout}&tid={tid}"
    )
    data = {
        "database_url": _database_url(database_url),
        "api_token": creds.api_token,
        "postback_key": creds.postback_key,
        "admin_password": creds.admin_password,
        "postback_url": postback_url,
    }
    if as_json:
        _print_json(data)
        return
    click.echo(f"database:       {data['database_url']}")
    click.echo(f"api token:      {creds.api_token}")
    click.echo(f"postback key:   {creds.postback_key}")
    if creds.admin_password:
        click.echo(f"admin password: {creds.admin_password}  (shown only now: store it)")
    else:
        click.echo("admin password: unchanged (already initialised; it was shown at the first init)")
    click.echo(f"postback URL for your affiliate networks:\n  {postback_url}")


@main.command()
@db_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535), help="Port to listen on.")
@click.option("--secure-cookies", is_flag=True, help="Mark the session cookie Secure (when served over HTTPS).")
@click.option(
    "--forwarded-allow-ips",
    default="127.0.0.1",
    show_default=True,
    help="Reverse proxies whose X-Forwarded-For names the client, comma-separated ('*': any). "
    "The sign-in and refusal throttles count that client (an IPv6 one by its /64).",
)
@private_targets_option
def serve(
    database_url: Optional[str],
    host: str,
    port: int,
    secure_cookies: bool,
    forwarded_allow_ips: str,
    allow_private_targets: bool,
) -> None:
    """Run the tracker's web app and its postback delivery dispatcher."""
    import uvicorn

    from .app import create_app
    from .logfilter import hide_postback_key

    with open_tracker(database_url, allow_private_targets=allow_private_targets) as tracker:
        creds = tracker.init()
        if creds.admin_password:
            click.echo(f"initialised; admin password (shown only now): {creds.admin_password}", err=True)
        click.echo(f"pages: http://{host}:{port}/  (sign in as admin)", err=True)
        click.echo(
            f"inbound postbacks: http://{host}:{port}/{creds.postback_key[:4]}.../postback?subid=... "
            "(full URL: `sample-host init`)",
            err=True,
        )
        hide_postback_key(creds.postback_key)  # access log lines carry the inbound postback's path
        app = create_app(tracker, run_dispatcher=True, secure_cookies=secure_cookies)
        uvicorn.run(
            app, host=host, port=port, log_level="info", proxy_headers=True, forwarded_allow_ips=forwarded_allow_ips
        )


@main.command("reset-password")
@db_option
def reset_password(database_url: Optional[str]) -> None:
    """Set a new random admin password, print it once, and sign out every session."""
    from .credentials import reset_admin_password

    with open_tracker(database_url) as tracker:
        tracker.init()
        password = reset_admin_password(tracker.engine)
    click.echo(f"admin password: {password}  (shown only now: store it)")


@main.command("settings")
@db_option
@click.option(
    "--postback-allow-ip",
    "allow_ips",
    multiple=True,
    metavar="CIDR",
    help="Only take inbound postbacks from this address or network; repeat for more.",
)
@click.option("--postback-allow-any", is_flag=True, help="Take inbound postbacks from any address (with the key).")
@click.option(
    "--postback-response", default=None, metavar="TEXT", help="The answer to an accepted inbound postback (default OK)."
)
@click.option("--json", "as_json", is_flag=True, help="Print the settings as JSON.")
def settings_command(
    database_url: Optional[str],
    allow_ips: tuple[str, ...],
    postback_allow_any: bool,
    postback_response: Optional[str],
    as_json: bool,
) -> None:
    """Show or change the inbound postback settings (answer text, allowed addresses)."""
    if allow_ips and postback_allow_any:
        raise UserError("give --postback-allow-ip or --postback-allow-any, not both")
    with open_tracker(database_url) as tracker:
        allowed = list(allow_ips) if allow_ips else ([] if postback_allow_any else None)
        if allowed is not None or postback_response is not None:
            current = tracker.set_inbound_settings(response_text=postback_response, allowed_ips=allowed)
        else:
            current = tracker.inbound_settings()
    if as_json:
        _print_json({"postback_response": current.response_text, "postback_allowed_ips": current.allowed_text})
        return
    click.echo(f"postback response:    {current.response_text}")
    click.echo(f"postbacks allowed from: {', '.join(current.allowed_text) or 'any address (with the key)'}")


@main.command()
@db_option
@private_targets_option
def worker(database_url: Optional[str], allow_private_targets: bool) -> None:
    """Deliver due postbacks in the foreground until Ctrl-C (for a tracker that runs no `serve`)."""
    from .app import HANDOFF_INTERVAL

    stop = threading.Event()
    with open_tracker(database_url, allow_private_targets=allow_private_targets) as tracker:
        previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
        tracker.s2s.start()
        click.echo("delivering postbacks; Ctrl-C to stop", err=True)
        try:
            # Conversions the plugin failed to take are handed over again here too.
            # Everything at start (what made them fail may be fixed), then those due again.
            due_only = False
            while True:
                handed = tracker.hand_over_waiting(due_only=due_only)
                if handed.taken:
                    click.echo(f"handed {handed.taken} waiting conversion(s) to the postback plugin", err=True)
                if handed.failed:
                    click.echo(f"{handed.failed} waiting conversion(s) not taken: {handed.error}", err=True)
                due_only = True
                if stop.wait(HANDOFF_INTERVAL):
                    break
        except KeyboardInterrupt:
            pass
        finally:
            signal.signal(signal.SIGTERM, previous)
            click.echo("stopping", err=True)


@main.command()
@db_option
@click.option("--keep", is_flag=True, help="Keep the demo database and print where it is.")
def demo(database_url: Optional[str], keep: bool) -> None:
    """Run a whole tracker against a stand-in traffic source and print the Sent postbacks log.

    Without --db it runs on a temporary SQLite database (deleted after, unless --keep); with --db
    (or SAMPLE_HOST_DB) it adds its sources, campaigns, clicks and logs to that database.
    """
    from .demo import run_demo

    group_url = (click.get_current_context().find_root().obj or {}).get("database_url")
    with user_errors():
        run_demo(echo=click.echo, keep=keep, database_url=database_url or group_url)


@main.command()
@db_option
@click.argument("subid")
@click.option("--json", "as_json", is_flag=True, help="Print the explanation as JSON.")
def explain(database_url: Optional[str], subid: str, as_json: bool) -> None:
    """Why each postback for the click SUBID was sent, retried, skipped or failed."""
    with open_tracker(database_url) as tracker:
        explanation = tracker.explain(subid)
        waiting = tracker.waiting_notes(subid)
        if as_json:
            _print_json({**explanation.to_dict(), "waiting": waiting})
        else:
            for line in waiting:  # the step that failed first: the plugin has not seen these yet
                click.echo(line)
            click.echo(str(explanation))


@main.command()
@db_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line instead of a table.")
@click.option("--subid", default=None, help="Only this click's postbacks.")
@click.option(
    "--outcome",
    type=click.Choice(["delivered", "retrying", "failed", "skipped"]),
    default=None,
    help="Only attempts with this outcome.",
)
@click.option("--source", default=None, help="Only postbacks of this traffic source.")
@click.option("--campaign", default=None, help="Only postbacks of this campaign.")
@click.option(
    "--cause",
    type=click.Choice([c.value for c in Cause]),
    default=None,
    help="Only entries with this cause code (why skipped, failed or retried).",
)
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000), help="Show the last N entries.")
def logs(
    database_url: Optional[str],
    as_json: bool,
    subid: Optional[str],
    outcome: Optional[str],
    source: Optional[str],
    campaign: Optional[str],
    cause: Optional[str],
    limit: int,
) -> None:
    """The Sent postbacks log: every attempt and every skipped postback, oldest first."""
    with open_tracker(database_url) as tracker:
        rows = tracker.sent_postbacks(
            subid=subid, outcome=outcome, source=source, campaign=campaign, cause=cause, limit=limit
        )
    if as_json:
        for row in rows:
            click.echo(json.dumps(row, default=str))
    elif rows:
        click.echo(format_table(rows, SENT_POSTBACK_COLUMNS))
    else:
        click.echo("no postbacks sent yet")


@main.command()
@db_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line instead of a table.")
@click.option("--subid", default=None, help="Only postbacks for this subid.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
def received(database_url: Optional[str], as_json: bool, subid: Optional[str], limit: int) -> None:
    """The Received postbacks log: every inbound conversion postback and what became of it."""
    with open_tracker(database_url) as tracker:
        rows = tracker.received_postbacks(subid=subid, limit=limit)
    if as_json:
        for row in rows:
            click.echo(json.dumps(row, default=str))
    elif rows:
        click.echo(format_table(rows, RECEIVED_POSTBACK_COLUMNS))
    else:
        click.echo("no postbacks received yet")


# --- sources ----------------------------------------------------------------------------------


@main.group()
def sources() -> None:
    """Traffic sources and their postbacks."""


def _pairs(items: tuple[str, ...], what: str, form: str, example: str) -> dict[str, str]:
    """``NAME=VALUE`` options as a mapping (``--placeholder GOAL_ID=1b9b...``, ``--param sub_id_1={zoneid}``)."""
    pairs: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise UserError(f"{what} is written {form} ({example}): got {item!r}")
        pairs[name.strip()] = value.strip()
    return pairs


def postback_options(func: Any) -> Any:
    """The options every postback has, for ``sources add|edit`` and ``postbacks add|edit``.

    Each is None when not given, so ``edit`` keeps what is stored.
    """
    options = [
        click.option(
            "--method",
            type=click.Choice(["GET", "POST"], case_sensitive=False),
            default=None,
            help="GET, or POST with a body.",
        ),
        click.option(
            "--status",
            "statuses",
            multiple=True,
            metavar="S",
            help="Status it fires for (lead, sale, rejected, rebill); repeat for more.",
        ),
        click.option(
            "--payout-mode",
            type=click.Choice(["real", "fixed", "percent"]),
            default=None,
            help="Payout to report: the conversion's (real), a fixed amount, or a percentage of it.",
        ),
        click.option(
            "--payout-value",
            "--amount",
            "payout_value",
            default=None,
            metavar="AMOUNT",
            help="The fixed amount, or the percentage, for --payout-mode fixed|percent.",
        ),
        click.option(
            "--min-payout",
            default=None,
            metavar="AMOUNT",
            help="Send nothing for a payout below this (after the payout mode).",
        ),
        click.option(
            "--body",
            default=None,
            metavar="TEMPLATE",
            help="POST body with macros, e.g. '{\"click\": \"{external_id}\"}'; '' for none.",
        ),
        click.option(
            "--content-type",
            default=None,
            metavar="TYPE",
            help="Content-Type of the body (default: JSON or form, from the body); '' for the default.",
        ),
        click.option(
            "--secret",
            "secrets",
            multiple=True,
            metavar="NAME",
            help="A parameter, body field or header whose value logs mask; repeat for more.",
        ),
        click.option(
            "--follow-redirects/--no-follow-redirects",
            default=None,
            help="Follow the target's redirects (each hop checked like the first).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def source_options(func: Any) -> Any:
    """A source's own options: its template's placeholders and its campaign link."""
    options = [
        click.option(
            "--placeholder",
            "placeholders",
            multiple=True,
            metavar="NAME=VALUE",
            help="Fill one of the template's placeholders, e.g. GOAL_ID=1b9b...; repeat for more.",
        ),
        click.option(
            "--click-id-param",
            default=None,
            metavar="NAME",
            help="The campaign link's parameter for the source's click id (default external_id).",
        ),
        click.option(
            "--source-macro",
            default=None,
            metavar="MACRO",
            help="The macro the source writes for its click id, e.g. {clickid}.",
        ),
        click.option(
            "--param",
            "parameters",
            multiple=True,
            metavar="NAME=MACRO",
            help="A row of the source's parameter table, e.g. sub_id_1={zoneid}; repeat for more (replaces the table).",
        ),
        click.option("--no-params", is_flag=True, help="Empty the source's parameter table."),
        click.option(
            "--base-url",
            default="http://127.0.0.1:8000",
            show_default=True,
            help="Where the tracker is reachable, for the campaign link printed.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _setting_changes(options: dict[str, Any]) -> dict[str, Any]:
    """The settings a command was given (None for those it was not), as the tracker names them."""
    changes = {
        name: options[name]
        for name in ("method", "payout_mode", "payout_value", "min_payout", "body", "content_type", "follow_redirects")
        if name in options
    }
    changes["statuses"] = list(options["statuses"]) or None
    secrets = [name for value in options["secrets"] for name in value.replace(",", " ").split()]
    changes["secrets"] = secrets if options["secrets"] else None
    if "placeholders" in options:
        changes["placeholders"] = (
            _pairs(options["placeholders"], "--placeholder", "NAME=VALUE", "GOAL_ID=1b9b...") or None
        )
        changes["click_id_param"] = options["click_id_param"]
        changes["source_macro"] = options["source_macro"]
        table = _pairs(options["parameters"], "--param", "NAME=MACRO", "sub_id_1={zoneid}")
        if options["no_params"] and table:
            raise UserError("give --param or --no-params, not both")
        changes["parameters"] = {} if options["no_params"] else (table or None)
    return changes


def _echo_source(tracker: Any, rule: Any, base_url: str) -> None:
    """A source's postback, and the campaign link its campaigns need (each one's when it has some)."""
    from .rulesettings import describe

    lines = describe(rule)
    click.echo(f"source {rule.source_id}: {lines[0]} (statuses: {', '.join(rule.statuses)})")
    for line in lines[2:]:
        click.echo(f"  {line}")
    campaigns = [c["alias"] for c in tracker.campaigns() if c["source_id"] == rule.source_id]
    if campaigns:
        for alias in campaigns:
            click.echo(f"campaign link for {alias}: {tracker.campaign_link(alias, base_url)}")
    else:
        link = tracker.s2s.campaign_link(rule.source_id, base_url=base_url, campaign_alias="CAMPAIGN")
        click.echo(f"campaign link: {link}  (CAMPAIGN: the alias of each campaign you buy from it)")
    for warning in rule.warnings:  # the plugin's template linter: saved anyway, but worth fixing
        click.echo(f"warning: {warning}", err=True)


@sources.command("add")
@db_option
@click.argument("source_id", metavar="ID")
@click.option("--template", default=None, help="Source template name (`sample-host sources templates`).")
@click.option("--postback-url", default=None, help="Postback URL with macros; default: the template's.")
@postback_options
@source_options
def sources_add(
    database_url: Optional[str],
    source_id: str,
    template: Optional[str],
    postback_url: Optional[str],
    base_url: str,
    **options: Any,
) -> None:
    """Add or replace the traffic source ID; prints its postback and the campaign link to give it."""
    changes = _setting_changes(options)
    with open_tracker(database_url) as tracker:
        kwargs = {name: value for name, value in changes.items() if value is not None}
        rule = tracker.add_source(source_id, template=template, postback_url=postback_url, **kwargs)
        _echo_source(tracker, rule, base_url)


@sources.command("edit")
@db_option
@click.argument("source_id", metavar="ID")
@click.option("--postback-url", default=None, help="A new postback URL with macros.")
@postback_options
@source_options
def sources_edit(
    database_url: Optional[str], source_id: str, postback_url: Optional[str], base_url: str, **options: Any
) -> None:
    """Change some settings of the traffic source ID; the others stay as they are."""
    changes = _setting_changes(options)
    with open_tracker(database_url) as tracker:
        rule = tracker.edit_source(source_id, postback_url=postback_url, **changes)
        _echo_source(tracker, rule, base_url)


@sources.command("list")
@db_option
@click.option("--json", "as_json", is_flag=True)
def sources_list(database_url: Optional[str], as_json: bool) -> None:
    """List traffic sources."""
    with open_tracker(database_url) as tracker:
        rows = _rule_rows(tracker.sources())
    if as_json:
        _print_json(rows)
        return
    columns = [
        ("ID", "source_id"),
        ("TEMPLATE", "template"),
        ("METHOD", "method"),
        ("STATUSES", "statuses"),
        ("POSTBACK URL", "url"),
    ]
    click.echo(format_table(rows, columns) if rows else "no sources yet: `sample-host sources add ID --template NAME`")


@main.command()
@db_option
@click.option("--json", "as_json", is_flag=True, help="Print the plugins as JSON.")
def plugins(database_url: Optional[str], as_json: bool) -> None:
    """List the loaded plugins with their versions and hooks, and the installed ones not loaded."""
    from s2s_plugin.hooks.plugins import report_dict, report_lines

    with open_tracker(database_url) as tracker:
        tracker.templates()  # builds the template library, which is where a failing plugin shows
        failures = [f.describe() for f in tracker.s2s.template_failures]
        if as_json:
            _print_json({**report_dict(tracker.pm), "failures": failures})
            return
        click.echo("\n".join(report_lines(tracker.pm)))
        for failure in failures:
            click.echo(f"warning: {failure}; its templates are missing")


@sources.command("templates")
@db_option
def sources_templates(database_url: Optional[str]) -> None:
    """List the source templates, with the macro each source puts in its campaign link."""
    with open_tracker(database_url) as tracker:
        rows = [dataclasses.asdict(t) for _, t in sorted(tracker.templates().items())]
    columns = [("NAME", "name"), ("SOURCE MACRO", "source_macro"), ("POSTBACK URL", "postback_url")]
    click.echo(format_table(rows, columns))


# --- campaigns --------------------------------------------------------------------------------


@main.group()
def campaigns() -> None:
    """Campaigns: the links traffic sources send visitors to."""


@campaigns.command("add")
@db_option
@click.argument("alias")
@click.option("--source", "source_id", required=True, help="The traffic source buying this campaign.")
@click.option("--offer-url", required=True, help="Where visitors go; {subid} is replaced by the click's id.")
@click.option("--name", default=None, help="Display name (default: the alias).")
def campaigns_add(database_url: Optional[str], alias: str, source_id: str, offer_url: str, name: Optional[str]) -> None:
    """Add or update the campaign ALIAS (its link is /c/ALIAS)."""
    with open_tracker(database_url) as tracker:
        tracker.add_campaign(alias, source_id=source_id, offer_url=offer_url, name=name)
        link = tracker.campaign_link(alias, "http://127.0.0.1:8000")
    click.echo(f"campaign {alias}: give the source this link: {link}")


@campaigns.command("list")
@db_option
@click.option("--json", "as_json", is_flag=True)
@click.option(
    "--base-url",
    default="http://127.0.0.1:8000",
    show_default=True,
    help="Where the tracker is reachable, for the campaign links.",
)
def campaigns_list(database_url: Optional[str], as_json: bool, base_url: str) -> None:
    """List campaigns with their links."""
    with open_tracker(database_url) as tracker:
        rows = [{**c, "link": tracker.campaign_link(c["alias"], base_url)} for c in tracker.campaigns()]
    if as_json:
        _print_json(rows)
        return
    columns = [("ALIAS", "alias"), ("SOURCE", "source_id"), ("OFFER URL", "offer_url"), ("LINK", "link")]
    click.echo(format_table(rows, columns) if rows else "no campaigns yet: `sample-host campaigns add`")


# --- campaign postbacks -----------------------------------------------------------------------


@main.group()
def postbacks() -> None:
    """A campaign's own S2S postbacks (besides its source's postback)."""


def _echo_postback(rule: Any, alias: str) -> None:
    from .rulesettings import describe

    lines = describe(rule)
    click.echo(f"postback {rule.id} on campaign {alias}: {lines[0]} (statuses: {', '.join(rule.statuses)})")
    for line in lines[2:]:
        click.echo(f"  {line}")
    for warning in rule.warnings:
        click.echo(f"warning: {warning}", err=True)


@postbacks.command("add")
@db_option
@click.argument("alias")
@click.option("--url", required=True, help="Postback URL with macros such as {external_id} and {revenue}.")
@postback_options
def postbacks_add(database_url: Optional[str], alias: str, url: str, **options: Any) -> None:
    """Add an S2S postback to the campaign ALIAS (GET, for every status, unless told otherwise)."""
    changes = _setting_changes(options)
    with open_tracker(database_url) as tracker:
        rule = tracker.add_postback(
            alias, url=url, **{name: value for name, value in changes.items() if value is not None}
        )
    _echo_postback(rule, alias)


@postbacks.command("edit")
@db_option
@click.argument("postback_id", metavar="ID")
@click.option("--url", default=None, help="A new postback URL with macros.")
@postback_options
def postbacks_edit(database_url: Optional[str], postback_id: str, url: Optional[str], **options: Any) -> None:
    """Change some settings of the campaign postback ID (as `postbacks list` shows it)."""
    changes = _setting_changes(options)
    with open_tracker(database_url) as tracker:
        rule = tracker.edit_postback(postback_id, url=url, **changes)
    _echo_postback(rule, rule.campaign_id or "")


@postbacks.command("list")
@db_option
@click.argument("alias", required=False)
@click.option("--json", "as_json", is_flag=True)
def postbacks_list(database_url: Optional[str], alias: Optional[str], as_json: bool) -> None:
    """List S2S postbacks, of one campaign when ALIAS is given."""
    with open_tracker(database_url) as tracker:
        rows = _rule_rows(tracker.postbacks(alias))
    if as_json:
        _print_json(rows)
        return
    columns = [
        ("ID", "id"),
        ("CAMPAIGN", "campaign_id"),
        ("METHOD", "method"),
        ("STATUSES", "statuses"),
        ("URL", "url"),
    ]
    click.echo(format_table(rows, columns) if rows else "no campaign postbacks yet")


@postbacks.command("remove")
@db_option
@click.argument("postback_id", metavar="ID")
def postbacks_remove(database_url: Optional[str], postback_id: str) -> None:
    """Remove the campaign postback ID (as `postbacks list` shows it)."""
    with open_tracker(database_url) as tracker:
        tracker.remove_postback(postback_id)
    click.echo(f"removed {postback_id}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
