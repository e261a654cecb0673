"""The sample host's pure parts: inbound postback parsing, log tables, password hashing."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from sample_host.credentials import hash_password, verify_password
from sample_host.errors import HostError
from sample_host.inbound import parse_postback
from sample_host.tables import cell, format_table


def test_inbound_postback_is_read_in_keitaro_format() -> None:
    inbound = parse_postback(
        {"subid": " abc123 ", "status": "approved", "payout": "2,50", "currency": "usd", "tid": "T-1"}
    )
    assert inbound.subid == "abc123"
    assert inbound.status == "sale"
    assert inbound.original_status == "approved"
    assert inbound.payout == Decimal("2.50")
    assert inbound.currency == "USD"
    assert inbound.tid == "T-1"


def test_inbound_status_mapping_parameters_win_over_defaults() -> None:
    assert parse_postback({"subid": "s", "status": "ok", "sale_status": "ok,done"}).status == "sale"
    assert parse_postback({"subid": "s", "status": "wait", "lead_status": "wait"}).status == "lead"
    assert parse_postback({"subid": "s", "status": "test", "ignore_status": "test"}).status is None
    assert parse_postback({"subid": "s"}).status == "sale"  # Keitaro: no status means a sale


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({}, "subid is missing"),
        ({"subid": "   "}, "subid is missing"),
        ({"subid": "s", "payout": "abc"}, "payout 'abc' is not a number"),
        ({"subid": "s", "status": "weird"}, "unknown status 'weird'"),
        ({"subid": "s", "currency": "dollars"}, "3-letter code"),
        ({"subid": "s", "tid": "x" * 600}, "longer than"),
    ],
)
def test_bad_inbound_postbacks_are_refused_with_one_line(params: dict, fragment: str) -> None:
    with pytest.raises(HostError) as caught:
        parse_postback(params)
    message = str(caught.value)
    assert fragment in message
    assert "\n" not in message
    assert caught.value.http_status == 400


def test_table_columns_line_up_and_cells_stay_on_one_line() -> None:
    rows = [
        {"a": "x", "b": None, "c": "multi\nline"},
        {"a": "longer", "b": 3, "c": ["lead", "sale"]},
    ]
    table = format_table(rows, [("A", "a"), ("B", "b"), ("C", "c")]).splitlines()
    assert table == [
        "A       B  C",
        "x       -  multi line",
        "longer  3  lead,sale",
    ]


def test_cells_show_times_in_utc_to_the_second() -> None:
    moment = dt.datetime(2024, 5, 1, 14, 30, 5, 123456, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert cell(moment) == "2024-05-01 12:30:05"
    assert cell(moment.isoformat()) == "2024-05-01 12:30:05"


def test_admin_password_is_stored_as_a_salted_hash() -> None:
    stored = hash_password("correct horse")
    assert "correct horse" not in stored
    assert stored != hash_password("correct horse")  # salted
    assert verify_password("correct horse", stored)
    assert not verify_password("wrong", stored)
    assert not verify_password("correct horse", "garbage")
