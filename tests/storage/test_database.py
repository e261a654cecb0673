"""The Database object: what it owns is its own, close() frees all of it, and a password stays hidden."""

from __future__ import annotations

import logging
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import select

from hookspecs import Click, Conversion
from s2s_plugin.errors import ConfigError
from s2s_plugin.storage import tables as t
from s2s_plugin.storage.database import Database
from s2s_plugin.storage.migrate import upgrade
from s2s_plugin.storage.rulecache import MISSING
from s2s_plugin.storage.store import Store

PASSWORD = "s3cret-Pw9"
#: The application name of the connections that count the others.
PROBE = "s2s-test-session-count"


def _checkpoint_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == "s2s-wal-checkpoint"]


def _convert(pm: Any, n: int) -> None:
    pm.hook.on_click(click=Click(subid=f"s{n}", campaign_id="summer", source_id="exo", params={"external_id": f"X{n}"}))
    pm.hook.on_conversion(conversion=Conversion(subid=f"s{n}", status="sale", payout=Decimal("1")))


def _with_password(url: str) -> str:
    """The test server trusts every local login: a password in the URL is accepted and ignored."""
    scheme, rest = url.split("://", 1)
    user, host = rest.split("@", 1)
    return f"{scheme}://{user}:{PASSWORD}@{host}"


def _sessions(url: str) -> int:
    """Connections to the database of ``url``, other than those asking (a server process ends a
    moment after its client closed the connection: an earlier question may still be counted)."""
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    dbname = dsn.rsplit("/", 1)[1]
    with psycopg.connect(dsn, application_name=PROBE) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND application_name <> %s", [dbname, PROBE]
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_two_databases_on_one_url_share_no_turn_writer_cache_or_thread(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/s2s.db"
    first, second = Database(url), Database(url)
    upgrade(first.engine)
    try:
        click = Click(subid="c1", campaign_id="summer", source_id="exo", params={})
        Store(first).save_click(click)
        Store(second).save_click(click)
        assert first.turn is not None and second.turn is not None and first.turn is not second.turn
        assert first.writer is not None and second.writer is not None
        assert first.writer.connection() is not second.writer.connection()
        assert first.checkpointer is not None and first.checkpointer is not second.checkpointer
        assert first.rules is not second.rules
        first.rules.get(7, "source", "exo")  # the configuration's version 7 read
        first.rules.put(7, "source", "exo", "the rule")
        assert first.rules.get(7, "source", "exo") == "the rule"
        assert second.rules.get(7, "source", "exo") is MISSING
        # Holding one's write turn does not hold the other's: only SQLite's own lock is shared.
        with first.transaction():
            assert second.turn.acquire(blocking=False)
            second.turn.release()
        first.close()
        # The other one keeps its connections and its checkpoint thread.
        assert second.checkpointer is not None and second.checkpointer.alive
        Store(second).save_click(Click(subid="c2", campaign_id="summer", source_id="exo", params={}))
        with second.engine.connect() as conn:
            assert sorted(conn.execute(select(t.clicks.c.subid)).scalars()) == ["c1", "c2"]
    finally:
        first.close()
        second.close()


def test_close_stops_the_checkpoint_thread_and_closes_every_sqlite_connection(tmp_path: Path, make_s2s: Any) -> None:
    before = _checkpoint_threads()
    pm, service = make_s2s(f"sqlite:///{tmp_path}/s2s.db")
    service.add_source("exo", postback_url="https://pb.example.net/?c={external_id}", statuses=["sale"])
    _convert(pm, 1)
    database = service.database
    writer_connection = database.writer.connection()
    assert len(_checkpoint_threads()) == len(before) + 1
    with database.reading():
        pass  # a pooled connection, back in the pool
    assert database.engine.pool.checkedin() >= 1
    service.close()
    assert _checkpoint_threads() == before
    assert database.engine.pool.checkedin() == 0
    with pytest.raises(Exception, match="closed"):
        writer_connection.execute("SELECT 1")
    database.close()  # again: nothing left to do, no error
    _convert(pm, 2)  # a late conversion is still recorded, but opens no writer and no thread
    assert _checkpoint_threads() == before
    with database.engine.connect() as conn:
        assert len(conn.execute(select(t.deliveries.c.id)).all()) == 2


def test_close_frees_every_postgresql_connection_of_the_service(fresh_pg_url: str, make_s2s: Any) -> None:
    pm, service = make_s2s(fresh_pg_url)
    service.add_source("exo", postback_url="https://pb.example.net/?c={external_id}", statuses=["sale"])
    service.start()  # the dispatcher: its pool connections and the LISTEN connection
    _convert(pm, 1)
    service.stats()
    assert _sessions(fresh_pg_url) >= 1
    service.close()
    deadline = time.monotonic() + 5
    while _sessions(fresh_pg_url) and time.monotonic() < deadline:
        time.sleep(0.05)  # a server process ends a moment after its client closed the connection
    assert _sessions(fresh_pg_url) == 0


def test_a_password_in_the_url_is_in_no_repr_key_or_log(
    fresh_pg_url: str, make_s2s: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    url = _with_password(fresh_pg_url)
    pm, service = make_s2s(url, max_concurrency=2)
    service.add_source("exo", postback_url="http://127.0.0.1:9/pb?c={external_id}", statuses=["sale"])
    _convert(pm, 1)
    service.drain(timeout=1)
    database = service.database
    shown = [repr(database), database.url, repr(database.engine), repr(service.store.engine)]
    shown += [repr(key) for key in database._statements]
    shown += [repr(key) for key in database.rules.entries]
    assert all(PASSWORD not in text for text in shown), shown
    assert "***" in repr(database)
    assert PASSWORD not in caplog.text
    for bad in (f"postgresql+nosuchdriver://u:{PASSWORD}@h/db", f"postgresql://u:{PASSWORD}@h:port/db"):
        with pytest.raises(ConfigError) as refused:
            Database(bad)
        assert PASSWORD not in str(refused.value)
