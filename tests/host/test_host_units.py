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


# --- inbound settings, sign-in redirects, log filters: pure parts --------------------------------


def test_the_allow_list_matches_addresses_and_networks_of_both_families() -> None:
    from sample_host.inbound_settings import InboundSettings, parse_networks

    settings = InboundSettings(allowed=parse_networks(["203.0.113.0/24, 198.51.100.7", "2001:db8::/32"]))
    assert settings.allows("203.0.113.250") and settings.allows("198.51.100.7") and settings.allows("2001:db8::1")
    assert not settings.allows("198.51.100.8") and not settings.allows("10.0.0.1")
    assert not settings.allows(None) and not settings.allows("not-an-ip")
    assert InboundSettings().allows(None)  # no list: every address (the key still protects)
    assert settings.allowed_text == ["203.0.113.0/24", "198.51.100.7", "2001:db8::/32"]


def test_the_answer_text_is_one_printable_line() -> None:
    from sample_host.inbound_settings import clean_response_text

    assert clean_response_text("  OK\r\n  thanks\x00 ") == "OK thanks"
    assert clean_response_text("") == "OK" and len(clean_response_text("x" * 500)) == 200


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/sent?outcome=failed", "/sent?outcome=failed"),
        ("//evil.example/", "/dashboard"),
        ("https://evil.example/", "/dashboard"),
        ("/\\evil.example", "/dashboard"),
        (None, "/dashboard"),
    ],
)
def test_after_sign_in_only_local_paths(target, expected) -> None:
    from sample_host.security import safe_next

    assert safe_next(target) == expected


class _Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_sign_in_throttle_counts_attempts_per_client() -> None:
    from sample_host.security import SignInThrottle

    clock = _Clock()
    throttle = SignInThrottle(limit=2, window=60, clock=clock)
    assert throttle.attempt("203.0.113.1") and not throttle.blocked("203.0.113.1")
    assert throttle.attempt("203.0.113.1") and throttle.blocked("203.0.113.1")
    assert not throttle.attempt("203.0.113.1")  # refused, and not counted
    assert not throttle.blocked("203.0.113.2")
    throttle.succeeded("203.0.113.1")
    assert not throttle.blocked("203.0.113.1")
    throttle.attempt("203.0.113.1"), throttle.attempt("203.0.113.1")
    clock.now += 60.1  # the window has passed
    assert throttle.attempt("203.0.113.1")


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
        ("2001:db8:1:3::1", "2001:db8:1:3::/64"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("fe80::1%eth0", "fe80::/64"),
        ("unknown", "unknown"),
    ],
)
def test_throttles_key_ipv6_clients_by_their_64(address: str, key: str) -> None:
    from sample_host.throttles import client_key

    assert client_key(address) == key


def test_throttle_memory_is_bounded_and_idle_clients_are_forgotten() -> None:
    from sample_host.throttles import RecentCounts

    clock = _Clock()
    counts = RecentCounts(limit=3, window=60, max_keys=100, clock=clock)
    for n in range(100):
        counts.hit(f"idle-{n}")
    clock.now += 61
    counts.hit("busy")
    counts.hit("busy")
    counts.hit("new")  # past max_keys: the idle ones go, the recent ones stay
    assert len(counts) == 2
    assert counts.hit("busy") and counts.full("busy")  # its two earlier hits were kept
    for n in range(1000):  # an attacker with many addresses at once: the least recent go first
        counts.hit(f"spray-{n}")
    assert len(counts) <= 100
    assert counts.hit("spray-999") and counts.hit("spray-999") and not counts.hit("spray-999")


def test_work_slots_refuse_at_once_when_all_are_taken() -> None:
    from sample_host.throttles import WorkSlots

    slots = WorkSlots(2)
    with slots.slot() as first, slots.slot() as second, slots.slot() as third:
        assert (first, second, third) == (True, True, False)
    with slots.slot() as again:
        assert again


def test_log_filters_parse_times_and_check_outcomes() -> None:
    from sample_host.logs import SentFilter, parse_time

    assert parse_time("2024-05-01T12:00", "since") == dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC)
    assert parse_time("2024-05-01T12:00:00+02:00", "since").utcoffset() == dt.timedelta(hours=2)
    assert parse_time(" ", "since") is None
    with pytest.raises(HostError, match="since='soon' is not an ISO 8601 time"):
        parse_time("soon", "since")
    with pytest.raises(HostError, match="outcome 'lost' must be one of"):
        SentFilter(outcome="lost")
