"""``s2s-postback plugins``: which third-party plugins this installation loads."""

from __future__ import annotations

import json

import click

from s2s_plugin.cli.base import main, user_errors
from s2s_plugin.entrypoint import build_plugin_manager
from s2s_plugin.hooks.plugins import report_dict, report_lines


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@user_errors
def plugins(as_json: bool) -> None:
    """List the loaded s2s_postback plugins with their versions and hooks, and any skipped."""
    pm = build_plugin_manager()
    click.echo(json.dumps(report_dict(pm), indent=2) if as_json else "\n".join(report_lines(pm)))
