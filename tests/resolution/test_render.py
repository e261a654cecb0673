"""Unit tests for macro rendering, money formatting and click-id checks (no database, no network)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from hookspecs import Click, Conversion, PostbackRule
from s2s_plugin.errors import InputError
from s2s_plugin.resolution.clickid import unsubstituted_macro, usable_click_id
from s2s_plugin.resolution.macros import find_macros, render
from s2s_plugin.resolution.money import apply_payout_mode, format_amount, parse_payout
from s2s_plugin.resolution.resolve import plan_one
from s2s_plugin.resolution.values import MacroValues

CLICK = Click(
    subid="sub1",
    campaign_id="summer",
    source_id="exo",
    params={"external_id": "ext 1", "sub_id_1": "zone&1", "cost": "0.5", "placement": "p/1"},
    created_at=dt.datetime(2026, 3, 1, 12, 30, 5, tzinfo=dt.UTC),
    ip="203.0.113.9",
    country="UA",
)
CONV = Conversion(
    subid="sub1",
    status="sale",
    payout=Decimal("2.5"),
    currency="EUR",
    tid="T-1",
    original_status="approved",
    created_at=dt.datetime(2026, 3, 2, 23, 15, 0, tzinfo=dt.UTC),
)
RULE = PostbackRule(id="postback:1", url="", statuses=("sale",), campaign_id="summer")


def rendered(template: str, conversion: Conversion = CONV, amount: Decimal | None = Decimal("2.5")) -> str:
    values = MacroValues(CLICK, conversion, RULE, amount)
    return render(template, values.lookup).text


@pytest.mark.parametrize(
    "template, expected",
    [
        ("{subid}", "sub1"),
        ("{external_id}", "ext%201"),
        ("{_external_id}", "ext%201"),
        ("{_sub_id_1}", "zone&1"),
        ("{sub_id_1}", "zone%261"),
        ("{tid}|{status}|{original_status}", "T-1|sale|approved"),
        ("{revenue}|{payout}|{currency}", "2.5|2.5|EUR"),
        ("{cost}|{profit}", "0.5|2"),
        ("{campaign_id}|{source}|{ts_id}", "summer|exo|exo"),
        ("{ip}|{country}", "203.0.113.9|UA"),
        ("{placement}", "p%2F1"),
        ("{externalid}", "ext%201"),
        ("{status:lead=0 sale=1 rejected=2}", "1"),
        ("{date:Y-m-d H:i:s}", "2026-03-02%2023%3A15%3A00"),
        ("{_date:Y-m-d H:i:s,Europe/Kyiv}", "2026-03-03%2001:15:00"),
        ("{_date:d.m.y}", "02.03.26"),
        ("{_click_datetime}", "2026-03-01%2012:30:05"),
        ("{sub_id_9}", ""),
    ],
)
def test_builtin_macros(template: str, expected: str) -> None:
    assert rendered(template) == expected


def test_random_is_within_its_range() -> None:
    values = {int(rendered("{random:5,7}")) for _ in range(50)}
    assert values <= {5, 6, 7} and len(values) > 1


def test_unknown_macro_renders_empty_and_is_reported() -> None:
    values = MacroValues(CLICK, CONV, RULE, Decimal(1))
    result = render("a={externa_id}&b={subid}", values.lookup)
    assert result.text == "a=&b=sub1"
    assert result.unknown == ("{externa_id}",)


def test_json_braces_are_not_macros() -> None:
    assert [m.name for m in find_macros('{"a": "{subid}", "b": {"c": 1}}')] == ["subid"]


def test_status_alias_falls_back_to_the_status() -> None:
    lead = Conversion(subid="sub1", status="rebill")
    assert rendered("{status:lead=0 sale=1}", lead) == "rebill"


@pytest.mark.parametrize(
    "value, text",
    [
        (Decimal("1E+1"), "10"),
        (Decimal("2.50"), "2.5"),
        (Decimal("0.1") + Decimal("0.2"), "0.3"),
        (Decimal("0"), "0"),
        (Decimal("1.000000001"), "1"),
        (None, ""),
    ],
)
def test_format_amount_never_prints_exponent_or_noise(value: Decimal | None, text: str) -> None:
    assert format_amount(value) == text


def test_payout_modes() -> None:
    assert apply_payout_mode(Decimal("10"), "real", None) == Decimal("10")
    assert apply_payout_mode(Decimal("10"), "fixed", Decimal("1.5")) == Decimal("1.5")
    assert format_amount(apply_payout_mode(Decimal("10"), "percent", Decimal("33"))) == "3.3"


@pytest.mark.parametrize(
    "text, value", [("2.5", Decimal("2.5")), ("2,5", Decimal("2.5")), (" 3 ", Decimal(3)), ("", None), (None, None)]
)
def test_parse_payout(text: str | None, value: Decimal | None) -> None:
    assert parse_payout(text) == value


@pytest.mark.parametrize("text", ["abc", "NaN", "-1", "Infinity", "1,000.5", "1e999999", "1000000000000"])
def test_parse_payout_refuses_bad_values(text: str) -> None:
    with pytest.raises(InputError):
        parse_payout(text)


@pytest.mark.parametrize(
    "value",
    [
        "${SUBID}",
        "{conversions_tracking}",
        "[CLICK_ID]",
        "{{ctoken}}",
        "%guid%",
        "##SUB_ID_SHORT##",
        "@@CLICK-ID@@",
        "__CLICKID__",
    ],
)
def test_unsubstituted_source_macros_are_not_click_ids(value: str) -> None:
    assert unsubstituted_macro(value) == value
    assert not usable_click_id(value)


@pytest.mark.parametrize("value", ["abc123", "1b9b3786-eae5", "{not-closed", "a{b}c"])
def test_real_click_ids_are_usable(value: str) -> None:
    assert usable_click_id(value)


def test_min_payout_skips() -> None:
    rule = PostbackRule(
        id="postback:2",
        url="https://example.net/?c={external_id}",
        statuses=("sale",),
        min_payout=Decimal(5),
        campaign_id="summer",
    )
    planned = plan_one(CONV, CLICK, rule, templates={})
    assert planned.state == "skipped" and "below" in planned.reason and "minimum of 5" in planned.reason


def test_non_http_scheme_is_skipped() -> None:
    rule = PostbackRule(
        id="postback:3", url="ftp://example.net/?c={external_id}", statuses=("sale",), campaign_id="summer"
    )
    assert plan_one(CONV, CLICK, rule, templates={}).state == "skipped"
