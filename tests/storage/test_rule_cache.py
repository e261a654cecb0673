"""on_conversion keeps postback rules in memory: a change made anywhere is used by the next conversion."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import select

from hookspecs import Click, Conversion
from s2s_plugin.storage import tables as t
from s2s_plugin.storage.db import make_engine
from s2s_plugin.storage.migrate import upgrade

ROOT = Path(__file__).resolve().parents[2]


def _queued_urls(service: Any) -> list[str]:
    with service.engine.connect() as conn:
        return list(conn.execute(select(t.deliveries.c.url).order_by(t.deliveries.c.id)).scalars())


def _convert(pm: Any, n: int) -> None:
    pm.hook.on_click(click=Click(subid=f"s{n}", campaign_id="summer", source_id="exo", params={"external_id": f"X{n}"}))
    pm.hook.on_conversion(conversion=Conversion(subid=f"s{n}", status="sale"))


def test_a_change_written_by_another_connection_is_used_by_the_next_conversion(tmp_path: Path, make_s2s: Any) -> None:
    pm, service = make_s2s(f"sqlite:///{tmp_path}/s2s.db")
    service.add_source("exo", postback_url="https://one.example.net/pb?cid={external_id}", statuses=["sale"])
    _convert(pm, 1)
    # Another process edits the rule (plain sqlite3, not through this service or its cache).
    with sqlite3.connect(tmp_path / "s2s.db") as other:
        other.execute(
            "UPDATE s2s_sources SET url = 'https://two.example.net/pb?cid={external_id}', updated_at = updated_at + 1"
        )
    _convert(pm, 2)
    with sqlite3.connect(tmp_path / "s2s.db") as other:
        other.execute("DELETE FROM s2s_sources")
    _convert(pm, 3)
    assert _queued_urls(service) == ["https://one.example.net/pb?cid=X1", "https://two.example.net/pb?cid=X2"]


def test_a_campaign_postback_added_by_another_process_fires_at_once(tmp_path: Path, make_s2s: Any) -> None:
    url = f"sqlite:///{tmp_path}/s2s.db"
    pm, service = make_s2s(url)
    _convert(pm, 1)  # no rules yet: nothing queued, and the empty campaign is cached
    code = (
        "import pluggy, hookspecs, s2s_plugin\n"
        "pm = pluggy.PluginManager(hookspecs.PROJECT_NAME); pm.add_hookspecs(hookspecs)\n"
        f"s = s2s_plugin.install(pm, database_url={url!r})\n"
        "s.add_postback('summer', url='https://partner.example.net/pb?cid={external_id}', statuses=['sale'])\n"
        "s.close()\n"
    )
    subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, check=True
    )
    _convert(pm, 2)
    assert _queued_urls(service) == ["https://partner.example.net/pb?cid=X2"]


def _plain_sql(database_url: str, *statements: str) -> None:
    """Run statements on a connection of its own, as another program would (no service, no cache)."""
    engine = make_engine(database_url)
    with engine.begin() as conn:
        for statement in statements:
            conn.exec_driver_sql(statement)
    engine.dispose()


def test_every_kind_of_change_to_a_rule_table_bumps_the_configuration_version(any_database_url: str) -> None:
    engine = make_engine(any_database_url)
    upgrade(engine)

    def version() -> int:
        with engine.connect() as conn:
            return conn.execute(select(t.config_version.c.version)).scalar_one()

    rule = "url, method, statuses, payout_mode, follow_redirects, enabled, gone, created_at, updated_at"
    values = "'https://pb.example.net/?c={external_id}', 'GET', 'sale', 'real', false, true, false, 1, 1"
    changes = [
        f"INSERT INTO s2s_sources (source_id, {rule}) VALUES ('exo', {values})",
        "UPDATE s2s_sources SET statuses = 'sale,lead'",
        "DELETE FROM s2s_sources",
        f"INSERT INTO s2s_postbacks (campaign_id, {rule}) VALUES ('summer', {values})",
        "UPDATE s2s_postbacks SET enabled = false",
        "DELETE FROM s2s_postbacks",
    ]
    if engine.dialect.name == "postgresql":
        changes.append("TRUNCATE s2s_postbacks")
    seen = [version()]
    for change in changes:
        _plain_sql(any_database_url, change)
        seen.append(version())
    assert all(later > earlier for earlier, later in zip(seen, seen[1:])), (changes, seen)
    engine.dispose()


def test_a_rule_changed_with_plain_sql_is_used_by_the_next_conversion_on_both_databases(
    any_database_url: str, make_s2s: Any
) -> None:
    pm, service = make_s2s(any_database_url)
    service.add_source("exo", postback_url="https://one.example.net/pb?cid={external_id}", statuses=["sale"])
    _convert(pm, 1)
    _plain_sql(
        any_database_url, "UPDATE s2s_sources SET url = 'https://two.example.net/pb?cid={external_id}'"
    )  # updated_at untouched
    _convert(pm, 2)
    assert _queued_urls(service) == ["https://one.example.net/pb?cid=X1", "https://two.example.net/pb?cid=X2"]


def test_without_the_version_row_the_rules_are_read_for_every_conversion(tmp_path: Path, make_s2s: Any) -> None:
    pm, service = make_s2s(f"sqlite:///{tmp_path}/s2s.db")
    service.add_source("exo", postback_url="https://one.example.net/pb?cid={external_id}", statuses=["sale"])
    with sqlite3.connect(tmp_path / "s2s.db") as other:
        other.execute("DELETE FROM s2s_config_version")
    _convert(pm, 1)
    with sqlite3.connect(tmp_path / "s2s.db") as other:  # the triggers find no row to bump
        other.execute("UPDATE s2s_sources SET url = 'https://two.example.net/pb?cid={external_id}'")
    _convert(pm, 2)
    assert _queued_urls(service) == ["https://one.example.net/pb?cid=X1", "https://two.example.net/pb?cid=X2"]
