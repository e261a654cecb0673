"""The network's conversion time: it feeds {conversion_datetime} and {date:...}; the time the
tracker received the postback is kept beside it and shown in the log."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from sample_host import db
from sample_host.errors import HostError
from sample_host.inbound import parse_conversion_time
from sample_host.standin import StandInSource

from .conftest import Host


@pytest.fixture
def timed(any_host: Host, standin: StandInSource) -> Host:
    any_host.tracker.add_source(
        "exo",
        postback_url=standin.url + "/pb?c={external_id}&at={conversion_datetime}"
        "&d={date:Y-m-d\\TH:i,Europe/Kyiv}&ts={timestamp}",
        statuses=["lead", "sale"],
    )
    any_host.tracker.add_campaign("summer", source_id="exo", offer_url="https://offer.example/?s={subid}")
    return any_host


@pytest.mark.parametrize(
    "sent", ["1764406800", "2025-11-29T09:00:00Z", "2025-11-29 11:00:00+02:00", "2025-11-29T09:00:00"]
)
def test_the_networks_conversion_time_feeds_the_postback(timed: Host, standin: StandInSource, sent: str) -> None:
    subid = timed.click("summer", external_id="x")
    answer = timed.postback(subid=subid, status="sale", payout="1", conversion_time=sent)
    assert answer.status_code == 200
    timed.tracker.s2s.drain(timeout=5)
    (request,) = standin.wait_for(1)
    assert request.params["at"] == "2025-11-29 09:00:00"
    assert request.params["d"] == "2025-11-29T11:00"  # Kyiv is UTC+2 in November
    assert request.params["ts"] == "1764406800"
    with timed.tracker.engine.connect() as conn:
        row = conn.execute(sa.select(db.conversions.c.created_at, db.conversions.c.converted_at)).one()
        (reason,) = conn.execute(sa.select(db.received_postbacks.c.reason)).scalars()
    assert row.converted_at == dt.datetime(2025, 11, 29, 9, tzinfo=dt.UTC)
    assert (dt.datetime.now(dt.UTC) - row.created_at).total_seconds() < 300  # received now, kept beside it
    assert "converted at 2025-11-29 09:00:00 UTC" in reason


def test_without_a_conversion_time_the_received_time_is_used(timed: Host, standin: StandInSource) -> None:
    subid = timed.click("summer", external_id="x")
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    assert timed.postback(subid=subid, status="sale").status_code == 200
    timed.tracker.s2s.drain(timeout=5)
    (request,) = standin.wait_for(1)
    assert int(request.params["ts"]) >= int(before.timestamp())
    with timed.tracker.engine.connect() as conn:
        assert conn.execute(sa.select(db.conversions.c.converted_at)).scalar() is None


@pytest.mark.parametrize(
    ("sent", "why"),
    [
        ("yesterday", "is not Unix seconds or an ISO 8601 time"),
        ("1764406800000", "is not Unix seconds"),  # milliseconds
        ("99999999999", "not a time a conversion can have"),  # year 5138
        ("1999-12-31T23:59:59Z", "not a time a conversion can have"),
        ("2025-13-01T00:00:00Z", "is not Unix seconds or an ISO 8601 time"),
    ],
)
def test_a_bad_conversion_time_is_a_one_line_400_and_nothing_is_recorded(timed: Host, sent: str, why: str) -> None:
    subid = timed.click("summer", external_id="x")
    answer = timed.postback(subid=subid, status="sale", conversion_time=sent)
    assert answer.status_code == 400 and why in answer.text and answer.text.count("\n") <= 1
    assert timed.tracker.conversions(subid=subid) == []


def test_parse_conversion_time_bounds():
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    assert parse_conversion_time("1767226500.5", now=now) == dt.datetime(2026, 1, 1, 0, 15, 0, 500000, tzinfo=dt.UTC)
    assert parse_conversion_time(None) is None
    with pytest.raises(HostError):
        parse_conversion_time("2026-01-01T02:00:01Z", now=now)  # more than an hour ahead
