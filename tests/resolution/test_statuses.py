"""Unit tests for status mapping and the conversion status rules."""

from __future__ import annotations

import pytest

from s2s_plugin.errors import InputError
from s2s_plugin.resolution.statuses import KnownConversion, decide, is_allowed_change, map_inbound_status


@pytest.mark.parametrize(
    "raw, mapping, expected",
    [
        (None, {}, "sale"),
        ("", {}, "sale"),
        ("approved", {}, "sale"),
        ("PENDING", {}, "lead"),
        ("declined", {}, "rejected"),
        ("rebill", {}, "rebill"),
        ("ok", {"sale_status": "ok,paid"}, "sale"),
        ("wait", {"lead_status": "wait"}, "lead"),
        ("bad", {"rejected_status": "bad"}, "rejected"),
        ("test", {"ignore_status": "test,demo"}, None),
        ("approved", {"lead_status": "approved"}, "lead"),
    ],
)
def test_map_inbound_status(raw, mapping, expected) -> None:
    assert map_inbound_status(raw, mapping) == expected


def test_unknown_status_is_a_one_line_input_error() -> None:
    with pytest.raises(InputError) as err:
        map_inbound_status("weird", {})
    assert "\n" not in str(err.value) and "weird" in str(err.value)


def test_allowed_changes() -> None:
    assert is_allowed_change("lead", "sale")
    assert is_allowed_change("sale", "rejected")
    assert not is_allowed_change("sale", "lead")
    assert not is_allowed_change("rejected", "sale")


def test_first_conversion_is_new() -> None:
    assert decide([], None, "lead").kind == "new"


def test_repeat_without_tid_does_not_fire() -> None:
    decision = decide([KnownConversion(1, "", "sale")], None, "sale")
    assert decision.kind == "repeat" and not decision.fires


def test_lead_then_sale_changes_the_conversion() -> None:
    decision = decide([KnownConversion(1, "", "lead")], "", "sale")
    assert (decision.kind, decision.conversion_id, decision.status) == ("change", 1, "sale")


def test_sale_then_lead_is_ignored_as_reordered() -> None:
    decision = decide([KnownConversion(1, "", "sale")], None, "lead")
    assert decision.kind == "ignored" and "reordered" in decision.reason


def test_lead_without_tid_then_sale_with_tid_adopts_the_tid() -> None:
    decision = decide([KnownConversion(1, "", "lead")], "T1", "sale")
    assert decision.kind == "change" and decision.adopt_tid


def test_new_tid_after_a_sale_is_a_rebill() -> None:
    decision = decide([KnownConversion(1, "T1", "sale")], "T2", "sale")
    assert (decision.kind, decision.status) == ("new", "rebill")


def test_same_tid_same_status_is_a_repeat() -> None:
    assert (
        decide([KnownConversion(1, "T1", "sale"), KnownConversion(2, "T2", "rebill")], "T2", "rebill").kind == "repeat"
    )


def test_rejection_of_a_rebill_by_tid() -> None:
    decision = decide([KnownConversion(1, "T1", "sale"), KnownConversion(2, "T2", "rebill")], "T2", "rejected")
    assert (decision.kind, decision.conversion_id) == ("change", 2)


def test_repeat_with_a_tid_adopts_it_so_a_later_new_tid_is_a_rebill() -> None:
    decision = decide([KnownConversion(1, "", "sale")], "T1", "sale")
    assert (decision.kind, decision.adopt_tid) == ("repeat", True)
    assert (decide([KnownConversion(1, "T1", "sale")], "T2", "sale").status) == "rebill"


def test_lead_with_a_tid_after_a_sale_without_one_is_reordered_not_new() -> None:
    decision = decide([KnownConversion(1, "", "sale")], "T1", "lead")
    assert (decision.kind, decision.adopt_tid) == ("ignored", True) and "reordered" in decision.reason


def test_rebill_with_the_tid_of_its_sale_is_a_new_rebill_once() -> None:
    first = decide([KnownConversion(1, "S1", "sale")], "S1", "rebill")
    assert (first.kind, first.status) == ("new", "rebill")
    again = decide([KnownConversion(1, "S1", "sale"), KnownConversion(2, "S1", "rebill")], "S1", "rebill")
    assert again.kind == "repeat"


def test_rebill_without_tid_fires_once() -> None:
    assert decide([KnownConversion(1, "", "sale")], None, "rebill").kind == "new"
    repeated = decide([KnownConversion(1, "", "sale"), KnownConversion(2, "", "rebill")], None, "rebill")
    assert repeated.kind == "repeat" and "new tid with every rebill" in repeated.reason


def test_rejected_after_rejected_is_a_repeat_and_sale_after_rejected_is_not_allowed() -> None:
    assert decide([KnownConversion(1, "", "rejected")], None, "rejected").kind == "repeat"
    refused = decide([KnownConversion(1, "", "rejected")], None, "sale")
    assert refused.kind == "ignored" and "not allowed" in refused.reason and refused.status == "rejected"


def test_a_new_tid_with_a_lead_is_a_second_conversion() -> None:
    decision = decide([KnownConversion(1, "T1", "sale")], "T2", "lead")
    assert (decision.kind, decision.status) == ("new", "lead")


def test_mapping_values_are_trimmed_and_case_insensitive() -> None:
    assert map_inbound_status(" Approved2 ", {"sale_status": "ok, APPROVED2 ,paid"}) == "sale"
    assert map_inbound_status("PING", {"ignore_status": "ping,test"}) is None
