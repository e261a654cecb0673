"""What the manual promises about the command line holds: every command takes --db, and the demo
runs on the database it is given."""

from __future__ import annotations

import json

import click
from click.testing import CliRunner

from sample_host.cli import main


def _leaf_commands(group: click.Group, prefix: str = "") -> dict[str, click.Command]:
    found: dict[str, click.Command] = {}
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found.update(_leaf_commands(command, f"{prefix}{name} "))
        else:
            found[prefix + name] = command
    return found


def test_every_command_takes_db() -> None:
    commands = _leaf_commands(main)
    assert "demo" in commands and "sources edit" in commands and "postbacks edit" in commands
    lacking = [
        name
        for name, command in commands.items()
        if not any("--db" in getattr(param, "opts", ()) for param in command.params)
    ]
    assert lacking == []


def test_the_demo_runs_on_the_database_it_is_given(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("S2S_DISABLE_PLUGINS", "*")
    monkeypatch.delenv("SAMPLE_HOST_DB", raising=False)
    database_url = f"sqlite:///{tmp_path / 'mine.db'}"
    runner = CliRunner()
    result = runner.invoke(main, ["demo", "--db", database_url], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert f"Kept the demo database: sample-host --db {database_url} logs" in result.stdout
    sources = json.loads(runner.invoke(main, ["sources", "list", "--db", database_url, "--json"]).stdout)
    assert [s["source_id"] for s in sources] == ["exoclick", "propellerads", "trafficstars"]
    logged = runner.invoke(main, ["--db", database_url, "logs", "--json", "--outcome", "delivered"]).stdout.splitlines()
    assert logged and all(json.loads(line)["outcome"] == "delivered" for line in logged)
