"""Handing waiting conversions to the postback plugin never stalls behind a few that always fail:
the run goes past them, backs them off, and shows them as stuck on a page, in ``/metrics`` and in
``explain`` (on SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

import hookspecs
from sample_host import db
from sample_host.handoff import STUCK_AFTER, backoff
from sample_host.metrics import collect, render
from sample_host.standin import StandInSource
from sample_host.tracker import Tracker

from .conftest import Admin, Host, sign_in, test_tracker


class Down:
    """The postback plugin while its database is down: it takes nothing."""

    @hookspecs.hookimpl
    def on_conversion(self, conversion: hookspecs.Conversion) -> None:
        raise RuntimeError("plugin database down")


class Poison:
    """A plugin that always fails on some clicks' conversions (say, a value it cannot store)."""

    @hookspecs.hookimpl
    def on_conversion(self, conversion: hookspecs.Conversion) -> None:
        if conversion.click.params.get("external_id", "").startswith("poison"):
            raise ValueError(f"cannot store click {conversion.click.params['external_id']}")


@pytest.fixture
def campaign(any_tracker: Tracker, standin: StandInSource) -> Tracker:
    any_tracker.init()
    any_tracker.add_source("exo", postback_url=f"{standin.url}/pb?c={{external_id}}", statuses=["sale"])
    any_tracker.add_campaign("summer", source_id="exo", offer_url="https://offer.example/")
    return any_tracker


def _convert(tracker: Tracker, external_id: str) -> str:
    click, _ = tracker.record_click("summer", {"external_id": external_id})
    assert tracker.receive_postback(tracker.credentials().postback_key, {"subid": click.subid}).http_status == 200
    return click.subid


def _handoff_rows(tracker: Tracker) -> dict[str, dict]:
    with tracker.engine.connect() as conn:
        return {row.subid: dict(row._mapping) for row in conn.execute(sa.select(db.handoffs))}


def test_conversions_that_always_fail_are_gone_past_backed_off_and_counted(
    campaign: Tracker, standin: StandInSource
) -> None:
    tracker = campaign
    tracker.handoffs.backoff = lambda tries: 0.0  # due again at once: the run meets them all
    tracker.pm.register(Down(), name="down")
    poisoned = [_convert(tracker, f"poison-{n}") for n in range(12)]  # the oldest: first in line
    for n in range(5):
        _convert(tracker, f"ok-{n}")
    assert tracker.handoffs.waiting() == 17
    tracker.pm.unregister(name="down")
    tracker.pm.register(Poison(), name="poison")

    # The twelve that fail are first in line; the five behind them are taken all the same.
    handed = tracker.hand_over_waiting(due_only=True)
    assert (handed.taken, handed.failed) == (5, 12) and "cannot store click poison-" in handed.error
    assert set(_handoff_rows(tracker)) == set(poisoned)
    tracker.s2s.drain(timeout=5)
    assert sorted(r.raw_query for r in standin.wait_for(5)) == sorted(f"c=ok-{n}" for n in range(5))

    # Each failure is counted with its error and backs the conversion off.
    tracker.handoffs.backoff = backoff
    before = db.utcnow()
    assert tracker.hand_over_waiting(due_only=True).failed == 12
    rows = _handoff_rows(tracker)
    assert {row["tries"] for row in rows.values()} == {STUCK_AFTER}
    assert all(row["last_error"].startswith("ValueError: cannot store click poison-") for row in rows.values())
    assert all(
        before + dt.timedelta(seconds=59) <= row["next_try_at"] <= db.utcnow() + dt.timedelta(seconds=61)
        for row in rows.values()
    )  # the third failure waits 60 s
    # Backing off: the periodic run leaves them alone, and a new click is not held up by them.
    fresh = _convert(tracker, "ok-late")
    assert tracker.hand_over_waiting(due_only=True) == type(handed)(0, None, 0)
    assert fresh not in _handoff_rows(tracker)
    assert tracker.handoffs.stuck() == 12
    assert "sample_host_stuck_handoffs 12" in render(collect(tracker)).splitlines()


def test_backoff_doubles_from_15_seconds_to_at_most_5_minutes() -> None:
    assert [backoff(n) for n in range(1, 9)] == [15, 30, 60, 120, 240, 300, 300, 300]


def test_a_stuck_conversion_of_a_click_holds_back_only_that_clicks_later_ones(campaign: Tracker) -> None:
    tracker = campaign
    tracker.add_source(
        "exo", postback_url="https://exo.example/pb?c={external_id}&s={status}", statuses=["lead", "sale"]
    )
    tracker.pm.register(Poison(), name="poison")
    click, _ = tracker.record_click("summer", {"external_id": "poison-x"})
    key = tracker.credentials().postback_key
    for status in ("lead", "sale"):
        assert tracker.receive_postback(key, {"subid": click.subid, "status": status}).http_status == 200
    waiting = tracker.handoffs.waiting_for(click.subid)
    # The lead failed (and backs off); the sale waits behind it, never tried on its own.
    assert [(row["status"], row["tries"]) for row in waiting] == [("lead", 2), ("sale", 0)]
    assert tracker.waiting_notes(click.subid)[1].endswith(
        "is not with the postback plugin yet: it is handed over on the next run"
    )


@pytest.fixture
def stuck_host(host: Host, standin: StandInSource) -> Iterator[tuple[Host, str]]:
    """A served tracker with one click whose conversion is stuck (failed ``STUCK_AFTER`` times)."""
    tracker = host.tracker
    tracker.add_source("exo", postback_url=f"{standin.url}/pb?c={{external_id}}", statuses=["sale"])
    tracker.add_campaign("summer", source_id="exo", offer_url="https://offer.example/")
    tracker.pm.register(Poison(), name="poison")
    subid = host.click("summer", external_id="poison-1")
    assert host.postback(subid=subid, status="sale", tid="T-1").status_code == 200
    for _ in range(STUCK_AFTER - 1):
        tracker.hand_over_waiting()
    try:
        yield host, subid
    finally:
        if tracker.pm.has_plugin("poison"):
            tracker.pm.unregister(name="poison")


def test_a_stuck_conversion_is_shown_on_its_page_in_metrics_and_in_explain(
    stuck_host: tuple[Host, str], standin: StandInSource
) -> None:
    host, subid = stuck_host
    admin = Admin(sign_in(host.base_url, host.admin_password))
    page = admin.get("/handoffs")
    assert page.status_code == 200
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page.text))
    assert "1 waiting, 1 stuck." in text and "stuck" in text and subid in text
    assert "ValueError: cannot store click poison-1" in text and "tid T-1" in text
    assert 'href="/handoffs"' in admin.get("/received").text

    metrics = host.api.get("/metrics").text
    assert "sample_host_stuck_handoffs 1" in metrics.splitlines()
    assert "sample_host_conversions_waiting_for_plugin 1" in metrics.splitlines()

    note = (
        f"(sale, tid T-1) is not with the postback plugin yet: {STUCK_AFTER} failed tries (stuck); "
        "last error: ValueError: cannot store click poison-1; next try "
    )
    explained = host.api.get(f"/api/explain/{subid}").json()
    assert len(explained["waiting"]) == 1 and note in explained["waiting"][0]
    assert explained["text"].startswith(explained["waiting"][0])
    assert note in admin.get("/explain", params={"subid": subid}).text.replace("&#39;", "'")
    api = host.api.get("/api/handoffs").json()
    assert api["stuck"] == 1 and api["items"][0]["subid"] == subid and api["items"][0]["tries"] == STUCK_AFTER

    # Fixed: the operator hands it over now instead of waiting for its next try.
    host.tracker.pm.unregister(name="poison")
    (row,) = api["items"]
    answer = admin.post(f"/handoffs/{row['conversion_id']}/retry")
    assert answer.status_code == 303 and answer.headers["location"] == "/handoffs"
    assert "was handed to the postback plugin" in admin.get("/handoffs").text
    assert host.tracker.handoffs.waiting() == 0
    host.tracker.s2s.drain(timeout=5)
    assert [r.raw_query for r in standin.wait_for(1)] == ["c=poison-1"]
    assert admin.post(f"/handoffs/{row['conversion_id']}/retry").status_code == 404  # not waiting any more
    admin.client.close()


def test_explain_on_the_command_line_names_the_stuck_conversion_first(stuck_host: tuple[Host, str]) -> None:
    from click.testing import CliRunner

    from sample_host.cli import main

    host, subid = stuck_host
    result = CliRunner().invoke(main, ["explain", "--db", host.tracker.database_url, subid])
    assert result.exit_code == 0, result.output
    first = result.output.splitlines()[0]
    assert first.startswith("conversion #1 (sale, tid T-1) is not with the postback plugin yet: 3 failed tries (stuck)")


def test_an_older_database_gets_the_new_column_and_keeps_its_waiting_conversions(any_database_url: str) -> None:
    engine = sa.create_engine(any_database_url)
    with engine.begin() as conn:  # the table as the previous version made it
        conn.execute(
            sa.text(
                "CREATE TABLE conversion_handoffs (conversion_id INTEGER PRIMARY KEY, subid VARCHAR(32) NOT NULL, "
                "created_at TIMESTAMP NOT NULL, tries INTEGER NOT NULL, last_error TEXT, last_tried_at TIMESTAMP)"
            )
        )
        conn.execute(
            sa.text("INSERT INTO conversion_handoffs VALUES (7, 'abc', '2026-01-01 00:00:00', 4, 'boom', NULL)")
        )
    engine.dispose()
    with test_tracker(any_database_url) as tracker:
        (row,) = tracker.handoffs.waiting_list()
        assert (row["conversion_id"], row["tries"], row["next_try_at"], row["stuck"]) == (7, 4, None, True)
        assert tracker.handoffs.hand_over_all().taken == 1  # its conversion is gone: nothing to hand over
    with test_tracker(any_database_url) as again:  # and a second start changes nothing
        assert again.handoffs.waiting() == 0
