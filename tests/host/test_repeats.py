"""An affiliate network retrying the same postback (same click, status and tid) is one conversion
in the host's tables, enforced by a unique key, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

from sample_host import db
from sample_host.receiving import repeat_key
from sample_host.standin import StandInSource

from .conftest import Host, test_tracker


@pytest.fixture
def subid(any_host: Host, standin: StandInSource) -> str:
    any_host.tracker.add_source(
        "exo", postback_url=f"{standin.url}/pb?c={{external_id}}&s={{status}}", statuses=["lead", "sale"]
    )
    any_host.tracker.add_campaign("summer", source_id="exo", offer_url="https://offer.example/")
    return any_host.click("summer", external_id="c1")


def test_a_retried_postback_is_one_conversion_logged_as_a_repeat(
    any_host: Host, subid: str, standin: StandInSource
) -> None:
    for payout in ("2.5", "2.50", "2.5"):  # a retry may reformat the payout: still the same sale
        answer = any_host.postback(subid=subid, status="sale", tid="T1", payout=payout)
        assert (answer.status_code, answer.text) == (200, "OK\n")
    (conversion,) = any_host.tracker.conversions(subid=subid)
    received = any_host.received(subid=subid)  # newest first
    assert [r["outcome"] for r in received] == ["ignored", "ignored", "accepted"]
    assert all(r["conversion_id"] == conversion["id"] for r in received)
    assert (
        received[0]["reason"]
        == f"repeat of conversion #{conversion['id']} (same subid, status and tid): not recorded again"
    )
    any_host.tracker.s2s.drain(timeout=5)
    assert [r.raw_query for r in standin.wait_for(1)] == ["c=c1&s=sale"]


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ({"status": "sale", "tid": "T1"}, {"status": "sale", "tid": "T2"}),  # a new tid is a new sale
        ({"status": "lead", "tid": "T1"}, {"status": "sale", "tid": "T1"}),  # the lead became a sale
        ({"status": "sale"}, {"status": "sale", "tid": "T1"}),  # no tid, then a tid
    ],
)
def test_a_new_status_or_tid_is_a_new_conversion(any_host: Host, subid: str, first: dict, second: dict) -> None:
    for params in (first, second, first, second):
        assert any_host.postback(subid=subid, **params).status_code == 200
    assert len(any_host.tracker.conversions(subid=subid)) == 2


def test_copies_arriving_at_once_are_recorded_once(any_host: Host, subid: str) -> None:
    key = any_host.tracker.credentials().postback_key
    start = threading.Barrier(8)
    answers: list[int] = []

    def send() -> None:
        start.wait(timeout=5)
        receipt = any_host.tracker.receive_postback(key, {"subid": subid, "status": "sale", "tid": "T7"})
        answers.append(receipt.http_status)

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert answers == [200] * 8
    assert len(any_host.tracker.conversions(subid=subid)) == 1
    assert sorted(r["outcome"] for r in any_host.received(subid=subid)) == ["accepted"] + ["ignored"] * 7


def test_the_database_refuses_a_second_row_with_the_same_key(any_host: Host, subid: str) -> None:
    assert any_host.postback(subid=subid, status="sale", tid="T1").status_code == 200
    row = {
        "subid": subid,
        "status": "sale",
        "tid": "T1",
        "params": {},
        "created_at": db.utcnow(),
        "repeat_key": repeat_key(subid, "sale", "T1"),
    }
    with pytest.raises(sa.exc.IntegrityError), any_host.tracker.engine.begin() as conn:
        conn.execute(sa.insert(db.conversions).values(**row))


def test_an_older_database_keeps_its_conversions_and_gets_the_key(any_database_url: str) -> None:
    engine = sa.create_engine(any_database_url)
    with engine.begin() as conn:  # the table as the previous version made it, with a repeat in it
        conn.execute(
            sa.text(
                "CREATE TABLE conversions (id INTEGER PRIMARY KEY, subid VARCHAR(32) NOT NULL, tid VARCHAR(200), "
                "status VARCHAR(16) NOT NULL, original_status VARCHAR(100), payout VARCHAR(40), currency VARCHAR(3), "
                "params JSON NOT NULL, created_at TIMESTAMP NOT NULL)"
            )
        )
        for number in (1, 2):
            conn.execute(
                sa.text(
                    f"INSERT INTO conversions VALUES ({number}, 'abc', 'T1', 'sale', 'sale', NULL, NULL, "
                    "'{}', '2026-01-01 00:00:00')"
                )
            )
    engine.dispose()
    with test_tracker(any_database_url) as tracker:
        assert [c["id"] for c in tracker.conversions(subid="abc")] == [2, 1]
        assert {c["repeat_key"] for c in tracker.conversions(subid="abc")} == {None}
        indexes = {index["name"]: index for index in sa.inspect(tracker.engine).get_indexes("conversions")}
        assert indexes["uq_conversions_repeat_key"]["unique"]
