"""Alembic migrations: from an empty database, from the previous revision, and adoption of
databases created before migrations existed; on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import subprocess
import time

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select

from s2s_plugin.storage import migrate
from s2s_plugin.storage import tables as t
from s2s_plugin.storage.db import make_engine
from tests.support.flow import ROOT, cli, process_env


def _schema_diff(engine):
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn,
            opts={
                "version_table": migrate.VERSION_TABLE,
                "include_name": lambda n, kind, p: kind != "table" or n.startswith("s2s_"),
            },
        )
        return compare_metadata(context, t.metadata)


def test_empty_database_upgrades_to_the_models(any_database_url):
    engine = make_engine(any_database_url)
    assert migrate.current_revision(engine) is None
    assert migrate.upgrade(engine) == (None, migrate.head_revision())
    assert _schema_diff(engine) == []
    # Up to date: a second run changes nothing.
    assert migrate.upgrade(engine) == (migrate.head_revision(), migrate.head_revision())
    engine.dispose()


def test_upgrade_from_previous_revision_keeps_and_completes_data(any_database_url):
    engine = make_engine(any_database_url)
    migrate.upgrade(engine, "0001")
    now = time.time()
    with engine.begin() as conn:
        # A retrying delivery, as the 0001 schema stored it.
        conn.exec_driver_sql(
            "INSERT INTO s2s_deliveries (conversion_id, subid, status, rule_id, method, url, follow_redirects, state,"
            " attempts, retry_base, next_attempt_at, lease_token, created_at, updated_at) VALUES"
            f" (1, 's1', 'sale', 'source:exo', 'GET', 'https://Pb.Example.net/x?c=1', false, 'due', 2, 0, {now}, 3, {now - 60}, {now})"
        )
    assert migrate.upgrade(engine) == ("0001", migrate.head_revision())
    assert _schema_diff(engine) == []
    with engine.connect() as conn:
        row = conn.execute(select(t.deliveries)).one()
    assert (row.host, row.lane, row.lease_token, row.attempts) == ("pb.example.net:443", 1, 3, 2)
    assert row.age_from == pytest.approx(now - 60)
    engine.dispose()


def test_database_made_before_migrations_is_adopted(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path}/old.db")
    migrate.upgrade(engine, "0001")
    with engine.begin() as conn:  # what create_all left behind: tables, but no version row
        conn.exec_driver_sql(f"DROP TABLE {migrate.VERSION_TABLE}")
    assert migrate.current_revision(engine) is None
    assert migrate.upgrade(engine) == ("0001", migrate.head_revision())
    assert _schema_diff(engine) == []
    engine.dispose()


def test_version_table_is_the_plugins_own(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path}/host.db")
    with engine.begin() as conn:  # a host with its own Alembic history in the same database
        conn.exec_driver_sql("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
        conn.exec_driver_sql("INSERT INTO alembic_version VALUES ('hosts_rev_7')")
    migrate.upgrade(engine)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == "hosts_rev_7"
    assert set(inspect(engine).get_table_names()) >= {"s2s_deliveries", migrate.VERSION_TABLE}
    engine.dispose()


def test_cli_db_upgrade_and_current(tmp_path):
    url = f"sqlite:///{tmp_path}/cli.db"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(cli(*args), cwd=ROOT, env=process_env(), capture_output=True, text=True, timeout=60)

    first = run("db", "upgrade", "--database-url", url)
    assert first.returncode == 0, first.stderr
    assert f"upgraded from (empty) to {migrate.head_revision()}" in first.stdout
    again = run("db", "upgrade", "--database-url", url)
    assert "already at" in again.stdout
    current = run("db", "current", "--database-url", url)
    assert current.stdout.strip() == migrate.head_revision()
    bad = run("db", "upgrade", "--database-url", "nope://")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and "database URL" in bad.stderr


def test_upgrade_from_0002_counts_rule_changes_and_downgrade_takes_it_back(any_database_url):
    engine = make_engine(any_database_url)
    migrate.upgrade(engine, "0002")
    rule = "url, method, statuses, payout_mode, follow_redirects, enabled, gone, created_at, updated_at"
    add_source = f"INSERT INTO s2s_sources (source_id, {rule}) VALUES ('exo', 'https://pb.example.net/', 'GET', 'sale', 'real', false, true, false, 1, 1)"
    with engine.begin() as conn:
        conn.exec_driver_sql(add_source)
    assert migrate.upgrade(engine) == ("0002", migrate.head_revision())
    assert _schema_diff(engine) == []
    with engine.begin() as conn:
        assert conn.execute(select(t.config_version.c.id, t.config_version.c.version)).all() == [(1, 0)]
        conn.exec_driver_sql("UPDATE s2s_sources SET statuses = 'lead'")
        assert conn.execute(select(t.config_version.c.version)).scalar_one() == 1
    migrate.downgrade(engine, "0002")
    assert "s2s_config_version" not in inspect(engine).get_table_names()
    with engine.begin() as conn:  # no trigger left behind that would bump a missing table
        conn.exec_driver_sql("UPDATE s2s_sources SET statuses = 'sale'")
    migrate.upgrade(engine)
    engine.dispose()
