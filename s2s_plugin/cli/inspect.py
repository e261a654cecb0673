"""``s2s-postback explain`` and ``s2s-postback templates``: looking at what the plugin knows."""

from __future__ import annotations

import json

import click

from hookspecs import SourceTemplate
from s2s_plugin.cli.base import database_option, main, user_errors
from s2s_plugin.cli.service import open_service


@main.command()
@click.argument("subid")
@database_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of sentences.")
@user_errors
def explain(subid: str, database_url: str, as_json: bool) -> None:
    """Why each postback for click SUBID was sent, retried, skipped or failed."""
    service = open_service(database_url)
    try:
        result = service.explain(subid)
    finally:
        service.close()
    click.echo(json.dumps(result.to_dict(), indent=2, ensure_ascii=False) if as_json else str(result))


@main.group()
def templates() -> None:
    """The traffic-source template library: built in, and from installed plugins."""


def _library() -> dict[str, SourceTemplate]:
    """The built-in templates and the installed plugins' (a failing plugin is named on stderr)."""
    from s2s_plugin.entrypoint import build_plugin_manager
    from s2s_plugin.resolution.templates import source_templates

    library, failures = source_templates(build_plugin_manager())
    for failure in failures:
        click.echo(f"warning: {failure.describe()}; its templates are missing", err=True)
    return library


@templates.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print every template's facts as a JSON list.")
@user_errors
def templates_list(as_json: bool) -> None:
    """List the templates: name, confidence, the source's click-id macro, the postback URL."""
    from s2s_plugin.resolution.templates import builtin_facts, describe_template

    library = _library()
    if as_json:
        click.echo(json.dumps([describe_template(t) for _, t in sorted(library.items())], indent=2, ensure_ascii=False))
        return
    width = max(len(name) for name in library)
    facts = builtin_facts()
    for name, template in sorted(library.items()):
        confidence = (template.confidence or "-") + (" legacy" if name in facts and facts[name].legacy else "")
        click.echo(f"{name:<{width}}  {confidence:<11}  {template.source_macro or '-':<24}  {template.postback_url}")


@templates.command("show")
@click.argument("name")
@user_errors
def templates_show(name: str) -> None:
    """Show one template: its postback URL, the placeholders to replace, the campaign link to give
    the source, what is known about the source's answers, and where that is documented."""
    from s2s_plugin.resolution.templates import campaign_link, describe_template, find_template

    template = find_template(_library(), name)
    if template is None:  # find_template raises for an unknown name; None only for no name at all
        raise click.UsageError("name a template")
    facts = describe_template(template)
    rows = [
        ("name", template.name),
        ("title", template.title),
        ("legacy", "yes: kept for existing sources; its endpoint may no longer answer" if facts["legacy"] else None),
        ("formats", ", ".join(facts["formats"])),
        ("postback URL", f"{template.method} {template.postback_url}"),
        ("replace", ", ".join(template.placeholders)),
        ("source macro", template.source_macro or "unknown (see the source's documentation)"),
        ("campaign link", campaign_link(template, "https://TRACKER", "CAMPAIGN")),
        ("parameters", "; ".join(f"{name} = {macro}" for name, macro in template.parameters.items())),
        ("statuses", ", ".join(template.statuses)),
        ("success", f"HTTP 2xx whose body contains {template.success_body!r}" if template.success_body else None),
        ("secrets", ", ".join(template.secrets)),
        ("notes", template.notes),
        ("confidence", template.confidence),
    ]
    for key, value in rows:
        if value:
            click.echo(f"{key + ':':<15}{value}")
    citations = facts["citations"]
    for index, citation in enumerate(citations or ["none that can be opened (see the notes)"]):
        click.echo(f"{'sources:' if index == 0 else '':<15}{citation}")
