"""Money: payout modes, minimum payout, formatting and currency, through the public API to a real source."""

from __future__ import annotations

from decimal import Decimal

import pytest

from hookspecs import Click, Conversion, PostbackRule
from s2s_plugin import ConfigError, InputError
from s2s_plugin.resolution.money import apply_payout_mode, check_payout_settings, coerce_payout, format_amount
from s2s_plugin.resolution.resolve import plan_one


def click(subid: str = "m1") -> Click:
    return Click(subid=subid, campaign_id="summer", source_id="exo", params={"external_id": f"X-{subid}"})


def sale(pm, subid: str, payout, currency: str | None = "USD", tid: str | None = None) -> None:
    pm.hook.on_conversion(conversion=Conversion(subid=subid, status="sale", payout=payout, currency=currency, tid=tid))


def test_payout_modes_end_to_end(make_s2s, standin, host) -> None:
    pm, s2s = make_s2s()
    s2s.add_source(
        "exo",
        postback_url=standin.url + "/src?c={external_id}&v={revenue}&cur={currency}",
        statuses=["sale"],
        payout_mode="percent",
        payout_value=40,
    )
    s2s.add_postback(
        "summer",
        url=standin.url + "/fixed?c={external_id}&v={payout}&cur={currency}",
        statuses=["sale"],
        payout_mode="fixed",
        payout_value="0.75",
    )
    s2s.add_postback("summer", url=standin.url + "/real?c={external_id}&v={revenue}&cur={currency}", statuses=["sale"])
    pm.hook.on_click(click=click())
    sale(pm, "m1", Decimal("12.50"), "EUR")
    s2s.drain(timeout=5)
    assert sorted(r.target for r in standin.requests) == [
        "/fixed?c=X-m1&v=0.75&cur=EUR",
        "/real?c=X-m1&v=12.5&cur=EUR",
        "/src?c=X-m1&v=5&cur=EUR",
    ]
    assert {a.outcome for a in host.attempts} == {"delivered"}


def test_minimum_payout_skips_with_the_reason_and_sends_above_it(make_s2s, standin, host) -> None:
    pm, s2s = make_s2s()
    s2s.add_source(
        "exo",
        postback_url=standin.url + "/src?c={external_id}&v={revenue}",
        statuses=["sale", "rebill"],
        payout_mode="percent",
        payout_value="50",
        min_payout="1",
    )
    pm.hook.on_click(click=click())
    sale(pm, "m1", Decimal("1.5"), tid="T1")  # 50 % of 1.5 = 0.75: below the minimum
    sale(pm, "m1", Decimal("4"), tid="T2")  # a rebill: 2 is enough
    s2s.drain(timeout=5)
    assert [r.target for r in standin.requests] == ["/src?c=X-m1&v=2"]
    (skipped,) = [a for a in host.attempts if a.outcome == "skipped"]
    assert skipped.status == "sale"
    assert skipped.reason == "payout 0.75 is below source exo's postback's minimum of 1"


def test_no_payout_with_a_minimum_is_skipped(make_s2s, standin, host) -> None:
    pm, s2s = make_s2s()
    s2s.add_source("exo", postback_url=standin.url + "/src?c={external_id}", statuses=["sale"], min_payout="0.01")
    pm.hook.on_click(click=click())
    sale(pm, "m1", None)
    s2s.drain(timeout=5)
    assert standin.requests == []
    assert "payout none is below" in host.attempts[0].reason


@pytest.mark.parametrize(
    "payout, expected",
    [
        (Decimal("1E+1"), "10"),
        (Decimal("2.50"), "2.5"),
        (Decimal("0.000001"), "0.000001"),
        (0.1 + 0.2, "0.3"),
        (3, "3"),
        ("7,25", "7.25"),
        (Decimal("1234567890.123456789"), "1234567890.12345679"),
        (Decimal("0E-10"), "0"),
    ],
)
def test_amounts_never_print_an_exponent_or_float_noise(make_s2s, standin, host, payout, expected) -> None:
    pm, s2s = make_s2s()
    s2s.add_source("exo", postback_url=standin.url + "/src?v={revenue}&p={payout}&c={external_id}", statuses=["sale"])
    pm.hook.on_click(click=click())
    sale(pm, "m1", payout)
    s2s.drain(timeout=5)
    assert standin.requests[0].params == {"v": expected, "p": expected, "c": "X-m1"}


def test_currency_is_passed_through_and_absent_is_empty(make_s2s, standin, host) -> None:
    pm, s2s = make_s2s()
    s2s.add_source("exo", postback_url=standin.url + "/src?c={external_id}&cur={currency}", statuses=["sale"])
    for subid, currency in (("a", "BTC"), ("b", None)):
        pm.hook.on_click(click=click(subid))
        sale(pm, subid, Decimal(1), currency)
    s2s.drain(timeout=5)
    assert sorted(r.target for r in standin.requests) == ["/src?c=X-a&cur=BTC", "/src?c=X-b&cur="]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"payout_mode": "half"}, "unknown payout mode 'half'"),
        ({"payout_mode": "fixed"}, "payout mode fixed needs payout_value"),
        ({"payout_mode": "percent"}, "payout mode percent needs payout_value"),
        ({"payout_mode": "fixed", "payout_value": "abc"}, "payout_value 'abc' is not a number"),
        ({"min_payout": "-1"}, "min_payout '-1' must be a non-negative number"),
        ({"min_payout": float("nan")}, "must be a non-negative number"),
    ],
)
def test_bad_payout_settings_are_refused_with_one_line(make_s2s, kwargs, message) -> None:
    _pm, s2s = make_s2s()
    for add in (
        lambda: s2s.add_source("exo", postback_url="https://pb.example/?c={external_id}", **kwargs),
        lambda: s2s.add_postback("summer", url="https://pb.example/?c={external_id}", **kwargs),
    ):
        with pytest.raises(ConfigError) as err:
            add()
        assert message in str(err.value) and "\n" not in str(err.value)


def test_update_postback_checks_the_payout_mode_with_its_amount(make_s2s) -> None:
    _pm, s2s = make_s2s()
    rule = s2s.add_postback("summer", url="https://pb.example/?c={external_id}")
    with pytest.raises(ConfigError, match="needs payout_value"):
        s2s.update_postback(rule.id, payout_mode="fixed")
    changed = s2s.update_postback(rule.id, payout_mode="fixed", payout_value=0.1 + 0.2)
    assert (changed.payout_mode, changed.payout_value) == ("fixed", Decimal("0.3"))
    assert s2s.update_postback(rule.id, min_payout="2.50").min_payout == Decimal("2.5")


def test_stored_settings_read_back_exactly(make_s2s) -> None:
    _pm, s2s = make_s2s()
    rule = s2s.add_source(
        "exo",
        postback_url="https://pb.example/?c={external_id}",
        payout_mode="percent",
        payout_value=Decimal("33.30"),
        min_payout=Decimal("1E+1"),
    )
    again = s2s.source("exo")
    assert (again.payout_mode, again.payout_value, again.min_payout) == ("percent", Decimal("33.3"), Decimal("10"))
    assert rule.payout_value == again.payout_value


def test_a_negative_payout_from_a_host_is_an_input_error(make_s2s) -> None:
    pm, s2s = make_s2s()
    pm.hook.on_click(click=click())
    with pytest.raises(InputError, match="negative"):
        sale(pm, "m1", "-5")


def test_money_helpers() -> None:
    assert format_amount(apply_payout_mode(Decimal("10"), "percent", Decimal("33.333"))) == "3.3333"
    assert format_amount(apply_payout_mode(Decimal("1"), "percent", Decimal("33.3333333333"))) == "0.33333333"
    assert apply_payout_mode(None, "fixed", Decimal("2")) == Decimal("2")
    assert apply_payout_mode(None, "percent", Decimal("2")) is None
    assert coerce_payout(Decimal("5")) == Decimal("5")
    assert check_payout_settings("real", None, None) == ("real", None, None)


def test_percent_of_a_payout_below_the_minimum_in_plan() -> None:
    rule = PostbackRule(
        id="postback:1",
        url="https://pb.example/?v={revenue}",
        statuses=("sale",),
        payout_mode="percent",
        payout_value=Decimal("10"),
        min_payout=Decimal("0.5"),
        campaign_id="summer",
    )
    planned = plan_one(Conversion(subid="m1", status="sale", payout=Decimal("4.99")), click(), rule, templates={})
    assert planned.state == "skipped" and "payout 0.499 is below" in planned.reason
