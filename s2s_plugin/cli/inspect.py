"""``s2s-postback explain`` and ``s2s-postback templates``: looking at what the plugin knows."""

from __future__ import annotations

import json

import click

from .base import database_option, main, user_errors
from .service import open_service


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


def _library() -> dict:
    """The built-in templates and the installed plugins' (a failing plugin is named on stderr)."""
    from ..entrypoint import build_plugin_manager
    from ..templates import source_templates

    library, failures = source_templates(build_plugin_manager())
    for failure in failures:
        click.echo(f"warning: {failure.describe()}; its templates are missing", err=True)
    return library


@templates.command("list")
@user_errors
def templates_list() -> None:
    """List the templates: name, the source's click-id macro, the postback URL."""
    library = _library()
    width = max(len(name) for name in library)
    for name, template in sorted(library.items()):
        click.echo(f"{name:<{width}}  {template.source_macro or '-':<24}  {template.postback_url}")


@templates.command("show")
@click.argument("name")
@user_errors
def templates_show(name: str) -> None:
    """Show one template in full."""
    import dataclasses

    from ..templates import find_template

    template = find_template(_library(), name)
    for key, value in dataclasses.asdict(template).items():
        if value not in (None, "", ()):
            click.echo(f"{key}: {value}")
