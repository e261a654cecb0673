"""``s2s-postback lint`` and ``s2s-postback campaign-link``: getting a source's set-up right."""

from __future__ import annotations

import sys
from typing import Optional

import click

from s2s_plugin.cli.base import database_option, main, user_errors
from s2s_plugin.cli.inspect import _library
from s2s_plugin.cli.service import open_service


@main.command()
@click.argument("url", required=False)
@click.option("--template", help="The source template the URL came from (names its placeholders).")
@click.option("--body", help="The postback's body template, for a POST.")
@click.option("--method", type=click.Choice(["GET", "POST"], case_sensitive=False), default="GET", show_default=True)
@click.option("--all", "lint_all", is_flag=True, help="Lint every configured source and campaign postback instead.")
@database_option
@user_errors
def lint(
    url: Optional[str], template: Optional[str], body: Optional[str], method: str, lint_all: bool, database_url: str
) -> None:
    """Check a postback URL: unknown macros (with a suggestion), placeholders left in, a missing
    click-id macro, plain http. Exits 1 when something was found."""
    from s2s_plugin.resolution.lint import lint as lint_url
    from s2s_plugin.resolution.lint import lint_rule
    from s2s_plugin.resolution.templates import find_template

    if lint_all:
        service = open_service(database_url)
        try:
            library = service.templates()
            findings = [
                (f"{rule.id} {rule.url}", lint_rule(rule, library)) for rule in service.sources() + service.postbacks()
            ]
        finally:
            service.close()
    elif url:
        library = _library()
        findings = [
            (url, lint_url(url, body=body, method=method, template=find_template(library, template), library=library))
        ]
    else:
        raise click.UsageError("give a URL to check, or --all for every configured postback")
    found = False
    for what, warnings in findings:
        if warnings:
            found = True
            click.echo(what)
            for warning in warnings:
                click.echo(f"  {warning.code}: {warning.message}")
        elif not lint_all:
            click.echo(f"no problems found in {what}")
    if lint_all and not found:
        click.echo(f"no problems found in {len(findings)} postback(s)")
    sys.exit(1 if found else 0)


@main.command("campaign-link")
@click.argument("campaign")
@click.option("--base-url", required=True, help="Your tracker's address, e.g. https://tracker.example")
@click.option("--template", help="The source's template (its click-id macro goes in the link).")
@click.option("--source", "source_id", help="A configured source: its template decides the macro.")
@database_option
@user_errors
def campaign_link(
    campaign: str, base_url: str, template: Optional[str], source_id: Optional[str], database_url: str
) -> None:
    """Print the campaign link to give the traffic source, with its click-id macro:
    https://HOST/c/CAMPAIGN?external_id={conversions_tracking}"""
    from s2s_plugin.resolution.links import UNKNOWN_SOURCE_MACRO
    from s2s_plugin.resolution.templates import campaign_link as link_for
    from s2s_plugin.resolution.templates import find_template

    if source_id:
        service = open_service(database_url)
        try:
            link = service.campaign_link(source_id, base_url, campaign, template=template)
        finally:
            service.close()
    else:
        link = link_for(find_template(_library(), template), base_url, campaign)
    click.echo(link)
    if UNKNOWN_SOURCE_MACRO in link:
        click.echo(
            f"note: the source's click-id macro is not known here: replace {UNKNOWN_SOURCE_MACRO} with the macro "
            "from the source's documentation",
            err=True,
        )
