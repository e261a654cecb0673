"""Statements compiled once and run on the DB-API connection behave as Core's do, on both databases."""

from __future__ import annotations

import threading
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError

from hookspecs import Click, Conversion
from s2s_plugin.storage import tables as t
from s2s_plugin.storage.database import Database
from s2s_plugin.storage.db import make_engine
from s2s_plugin.storage.migrate import upgrade
from s2s_plugin.storage.rawsql import compile_raw

DELIVERY = {
    "conversion_id": 7,
    "subid": "s1",
    "status": "sale",
    "rule_id": "source:exo",
    "method": "GET",
    "url": "https://pb.example.net/?c=1&p=100%",
    "state": "due",
    "created_at": 1.5,
    "updated_at": 1.5,
}


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Any) -> Any:
    url = f"sqlite:///{tmp_path}/raw.db" if request.param == "sqlite" else request.getfixturevalue("fresh_pg_url")
    made = Database(url)
    upgrade(made.engine)
    yield made
    made.close()


@pytest.fixture
def engine(database: Database) -> Any:
    return database.engine


def _sqlite_database(path: Any) -> Database:
    made = Database(f"sqlite:///{path}")
    upgrade(made.engine)
    return made


def _delivery_insert(engine: Any) -> Any:
    return compile_raw(insert(t.deliveries).returning(t.deliveries.c.id), engine.dialect, list(DELIVERY))


def test_an_insert_fills_constant_defaults_and_reads_back_as_core_reads_it(database: Any, engine: Any) -> None:
    statement = _delivery_insert(engine)
    with database.transaction() as tx:
        delivery_id = tx.scalar(statement, DELIVERY)
    with engine.connect() as conn:
        row = conn.execute(select(t.deliveries).where(t.deliveries.c.id == delivery_id)).one()
    # Left out of the values: the columns' defaults (False and 0), as a Core insert gives them.
    assert (row.follow_redirects, row.attempts, row.lease_token, row.lane, row.retry_base) == (False, 0, 0, 0, 0)
    assert (row.url, row.created_at) == (DELIVERY["url"], 1.5)

    read = compile_raw(
        select(t.deliveries.c.id, t.deliveries.c.url).where(t.deliveries.c.subid == bindparam("b_subid")),
        engine.dialect,
    )
    with database.transaction() as tx:
        (found,) = tx.all(read, {"b_subid": "s1"})
        assert tx.first(read, {"b_subid": "nobody"}) is None
    assert (found.id, found.url) == (delivery_id, DELIVERY["url"])


def test_an_update_sets_only_the_named_columns(database: Any, engine: Any) -> None:
    with database.transaction() as tx:
        delivery_id = tx.scalar(_delivery_insert(engine), DELIVERY)
    change = compile_raw(
        update(t.deliveries).where(t.deliveries.c.id == bindparam("b_id")), engine.dialect, ["state", "reason"]
    )
    with database.transaction() as tx:
        tx.execute(change, {"state": "failed", "reason": "gone", "b_id": delivery_id})
    with engine.connect() as conn:
        row = conn.execute(select(t.deliveries).where(t.deliveries.c.id == delivery_id)).one()
    assert (row.state, row.reason, row.url) == ("failed", "gone", DELIVERY["url"])


def test_a_failing_block_rolls_back_and_raises_sqlalchemys_exception(database: Any, engine: Any) -> None:
    statement = _delivery_insert(engine)
    once = compile_raw(insert(t.deliveries), engine.dialect, [*DELIVERY, "id"])
    with database.transaction() as tx:
        first_id = tx.scalar(statement, DELIVERY)
    with pytest.raises(IntegrityError), database.transaction() as tx:
        tx.scalar(statement, {**DELIVERY, "subid": "s2", "rule_id": "source:s2"})
        tx.execute(once, {**DELIVERY, "id": first_id})  # the same primary key again
    with pytest.raises(RuntimeError), database.transaction() as tx:
        tx.scalar(statement, {**DELIVERY, "subid": "s3", "rule_id": "source:s3"})
        raise RuntimeError("the caller failed")
    with engine.connect() as conn:
        assert list(conn.execute(select(t.deliveries.c.subid)).scalars()) == ["s1"]
    # The connection went back to the pool in a usable state.
    with database.transaction() as tx:
        assert tx.scalar(statement, {**DELIVERY, "subid": "s4", "rule_id": "source:s4"}) is not None


def test_a_missing_value_is_a_programming_error_named_in_the_message(database: Any, engine: Any) -> None:
    statement = _delivery_insert(engine)
    with pytest.raises(ValueError, match="'url'"), database.transaction() as tx:
        tx.execute(statement, {k: v for k, v in DELIVERY.items() if k != "url"})


def test_what_cannot_be_compiled_once_is_refused(database: Any, engine: Any) -> None:
    with pytest.raises(ValueError, match="rendered at execution time"):
        compile_raw(select(t.deliveries).where(t.deliveries.c.id.in_(bindparam("ids", expanding=True))), engine.dialect)


def test_sqlite_transactions_hold_the_engines_write_turn(tmp_path: Any) -> None:
    database = _sqlite_database(tmp_path / "turn.db")
    engine = database.engine
    turn = database.turn
    assert turn is not None
    with database.transaction():
        # Another thread's Core transaction has to wait for its turn.
        assert not turn.acquire(blocking=False)
        taken = threading.Event()

        def core_transaction() -> None:
            with engine.begin():
                taken.set()

        other = threading.Thread(target=core_transaction, daemon=True)
        other.start()
        assert not taken.wait(0.2)
    assert taken.wait(5)
    other.join(5)
    database.close()


def test_postgresql_click_stays_locked_until_the_conversion_commits(fresh_pg_url: str, make_s2s: Any) -> None:
    """on_conversion locks the click row (FOR UPDATE) through its raw transaction."""
    import psycopg

    pm, service = make_s2s(fresh_pg_url)
    pm.hook.on_click(click=Click(subid="c1", campaign_id="summer", source_id="exo", params={}))
    dsn = fresh_pg_url.replace("postgresql+psycopg://", "postgresql://")
    locked: list[bool] = []

    def planner(conversion: Any, click: Any, rules: Any) -> list[Any]:
        with psycopg.connect(dsn) as other:
            try:
                other.execute("SELECT 1 FROM s2s_clicks WHERE subid = 'c1' FOR UPDATE NOWAIT")
                locked.append(False)
            except psycopg.errors.LockNotAvailable:
                locked.append(True)
        return []

    service.store.record_conversion(
        Conversion(subid="c1", status="sale", payout=Decimal("1")), extra_rules=[], planner=planner, first_delay=0
    )
    assert locked == [True]


def test_a_conversion_story_gives_the_same_rows_on_both_databases(engine: Any, make_s2s: Any) -> None:
    pm, service = make_s2s(engine.url.render_as_string(hide_password=False))
    service.add_source(
        "exo", postback_url="https://pb.example.net/s?c={external_id}&s={status}", statuses=["lead", "sale"]
    )
    service.add_postback("summer", url="ftp://partner.example.net/{status}", statuses=["sale"])
    pm.hook.on_click(click=Click(subid="c1", campaign_id="summer", source_id="exo", params={"external_id": "E1"}))
    story = [("lead", None, "1"), ("sale", None, "2.50"), ("sale", "T9", "2.50"), ("sale", "T9", "2.50")]
    decisions = [
        service.record(Conversion(subid="c1", status=s, tid=tid, payout=Decimal(p))).decision.kind
        for s, tid, p in story
    ]
    assert decisions == ["new", "change", "repeat", "repeat"]
    with engine.connect() as conn:
        conversion = conn.execute(select(t.conversions)).one()
        deliveries = conn.execute(
            select(t.deliveries.c.status, t.deliveries.c.rule_id, t.deliveries.c.state, t.deliveries.c.url).order_by(
                t.deliveries.c.id
            )
        ).all()
        skipped = conn.execute(select(t.attempts.c.outcome, t.attempts.c.reason)).all()
        events = list(conn.execute(select(t.events.c.decision).order_by(t.events.c.id)).scalars())
    # The repeat that carried a tid gave the conversion its tid.
    assert (conversion.status, conversion.tid, conversion.payout) == ("sale", "T9", "2.5")
    campaign_rule = service.postbacks()[0].id
    assert [tuple(d) for d in deliveries] == [
        ("lead", "source:exo", "due", "https://pb.example.net/s?c=E1&s=lead"),
        ("lead", campaign_rule, "skipped", "ftp://partner.example.net/{status}"),  # lead is not enabled there
        ("sale", "source:exo", "due", "https://pb.example.net/s?c=E1&s=sale"),
        ("sale", campaign_rule, "skipped", "ftp://partner.example.net/sale"),
    ]
    assert [outcome for outcome, _ in skipped] == ["skipped", "skipped"]
    assert events == decisions


def test_insert_gives_the_new_id_or_none_when_the_row_was_already_there(database: Any, engine: Any) -> None:
    from sqlalchemy.dialects import postgresql, sqlite

    from s2s_plugin.storage.rawsql import compile_raw_insert

    dialect_insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
    once = dialect_insert(t.deliveries).on_conflict_do_nothing(index_elements=["conversion_id", "status", "rule_id"])
    statement = compile_raw_insert(once, engine.dialect, list(DELIVERY))
    with database.transaction() as tx:
        first = tx.insert(statement, DELIVERY)
        again = tx.insert(statement, DELIVERY)
        other = tx.insert(statement, {**DELIVERY, "rule_id": "postback:1"})
    with engine.connect() as conn:
        ids = list(conn.execute(select(t.deliveries.c.id).order_by(t.deliveries.c.id)).scalars())
    assert again is None
    assert ids == [first, other]


def test_insert_many_gives_each_row_its_own_id_in_order(database: Any, engine: Any) -> None:
    from s2s_plugin.storage.rawsql import compile_raw_insert

    statement = compile_raw_insert(insert(t.deliveries), engine.dialect, list(DELIVERY))
    with database.transaction() as tx:
        first = tx.insert_many(statement, [{**DELIVERY, "subid": f"a{n}", "rule_id": f"r{n}"} for n in range(3)])
    with engine.begin() as conn:  # the highest row gone: SQLite may give its id again
        conn.execute(t.deliveries.delete().where(t.deliveries.c.id == first[-1]))
    with database.transaction() as tx:
        one = tx.insert_many(statement, [{**DELIVERY, "subid": "b0", "rule_id": "b0"}])
        more = tx.insert_many(statement, [{**DELIVERY, "subid": f"c{n}", "rule_id": f"c{n}"} for n in range(40)])
    with engine.connect() as conn:
        by_subid = {subid: id_ for subid, id_ in conn.execute(select(t.deliveries.c.subid, t.deliveries.c.id))}
    assert first[:2] == [by_subid["a0"], by_subid["a1"]]
    assert one == [by_subid["b0"]]
    assert more == [by_subid[f"c{n}"] for n in range(40)]
    assert len(set(first[:2] + one + more)) == 43


def test_a_click_is_read_while_another_thread_holds_the_write_transaction(tmp_path: Any) -> None:
    from s2s_plugin.storage.store import Store

    database = _sqlite_database(tmp_path / "reads.db")
    store = Store(database)
    store.save_click(Click(subid="s1", campaign_id="c", source_id="exo", params={"external_id": "X1"}))
    read: list[Any] = []
    with database.transaction():  # holds this process's write turn and SQLite's write lock
        reader = threading.Thread(target=lambda: read.append(store.load_click("s1")))
        reader.start()
        reader.join(10)  # a read that waited for the turn would still be waiting (30 s)
        assert not reader.is_alive()
    assert read[0].params == {"external_id": "X1"}
    database.close()


def test_a_sqlite_file_keeps_a_connection_for_each_sending_thread(tmp_path: Any) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/pool.db")
    assert engine.pool.size() >= 20  # the default of 32 senders reading clicks opens none per read
    engine.dispose()
    memory = make_engine("sqlite://")  # one connection per thread: no pool size to set
    with memory.connect():
        pass
    memory.dispose()


def test_sqlite_writes_share_one_connection_outside_the_pool_and_survive_a_broken_one(tmp_path: Any) -> None:
    database = _sqlite_database(tmp_path / "writer.db")
    engine = database.engine
    statement = _delivery_insert(engine)
    seen = []
    for n in range(3):
        with database.transaction() as tx:
            # The write turn makes the writer connection this thread's alone: no pooled one is taken.
            assert engine.pool.checkedout() == 0
            seen.append(id(tx._cursor.connection))
            tx.scalar(statement, {**DELIVERY, "subid": f"s{n}", "rule_id": f"r{n}"})
    assert len(set(seen)) == 1
    broken = database.writer
    assert broken is not None
    broken.connection().close()  # as a connection that failed under us
    with pytest.raises(Exception), database.transaction() as tx:  # noqa: B017 (whatever the driver raises for a closed connection)
        tx.scalar(statement, {**DELIVERY, "subid": "lost", "rule_id": "lost"})
    with database.transaction() as tx:  # the next write opens a new connection
        tx.scalar(statement, {**DELIVERY, "subid": "s3", "rule_id": "r3"})
    with engine.connect() as conn:
        assert sorted(conn.execute(select(t.deliveries.c.subid)).scalars()) == ["s0", "s1", "s2", "s3"]
    writer_connection = broken.connection()
    engine.dispose()  # closes the writer's connection too
    with pytest.raises(Exception, match="closed"):
        writer_connection.execute("SELECT 1")


def test_a_forked_child_writes_on_a_connection_of_its_own(tmp_path: Any) -> None:
    import os

    database = _sqlite_database(tmp_path / "fork.db")
    engine = database.engine
    writer = database.writer
    assert writer is not None
    statement = _delivery_insert(engine)
    with database.transaction() as tx:
        tx.scalar(statement, {**DELIVERY, "subid": "parent1", "rule_id": "p1"})
    parents = writer.connection()
    pid = os.fork()
    if pid == 0:  # the child: exit status 0 only when its write landed on another connection
        code = 1
        try:
            with database.transaction() as tx:
                tx.scalar(statement, {**DELIVERY, "subid": "child", "rule_id": "c"})
            code = 0 if writer.connection() is not parents else 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
    with database.transaction() as tx:  # the parent's connection was left alone
        tx.scalar(statement, {**DELIVERY, "subid": "parent2", "rule_id": "p2"})
    assert writer.connection() is parents
    with engine.connect() as conn:
        assert sorted(conn.execute(select(t.deliveries.c.subid)).scalars()) == ["child", "parent1", "parent2"]
    database.close()
