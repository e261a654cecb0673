"""Every macro of the contract, its aliases, and encoding no value can break (hypothesis)."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from urllib.parse import parse_qsl, unquote, urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hookspecs import Click, Conversion, PostbackRule
from s2s_plugin.resolution.clickid import usable_click_id
from s2s_plugin.resolution.macros import find_macros, render
from s2s_plugin.resolution.resolve import plan_one
from s2s_plugin.resolution.values import ALIASES, BUILTIN_NAMES, MacroValues, did_you_mean

SUB_IDS = {f"sub_id_{n}": f"s{n}" for n in range(1, 31)}
CLICK = Click(
    subid="K7Q2",
    campaign_id="summer",
    source_id="exo",
    campaign_name="Summer sale",
    params={"external_id": "ext-9", "cost": "0.05", "zone": "z 1", "Banner": "b/2", "_hidden": "h", **SUB_IDS},
    created_at=dt.datetime(2026, 1, 31, 22, 5, 9, tzinfo=dt.UTC),
    ip="198.51.100.4",
    user_agent="Mozilla/5.0 (X11)",
    country="DE",
)
CONV = Conversion(
    subid="K7Q2",
    status="lead",
    payout=Decimal("1.20"),
    currency="USD",
    tid="TX-1",
    original_status="pending",
    params={"goal": "reg"},
    created_at=dt.datetime(2026, 2, 1, 0, 0, 1, tzinfo=dt.UTC),
)
RULE = PostbackRule(id="postback:7", url="", campaign_id="summer")


def text(
    template: str, click: Click | None = CLICK, conversion: Conversion = CONV, amount: Decimal | None = Decimal("1.2")
) -> str:
    return render(template, MacroValues(click, conversion, RULE, amount).lookup).text


@pytest.mark.parametrize(
    "macro, value",
    [
        ("subid", "K7Q2"),
        ("external_id", "ext-9"),
        ("tid", "TX-1"),
        ("status", "lead"),
        ("original_status", "pending"),
        ("revenue", "1.2"),
        ("payout", "1.2"),
        ("cost", "0.05"),
        ("profit", "1.15"),
        ("currency", "USD"),
        ("campaign_id", "summer"),
        ("campaign_name", "Summer%20sale"),
        ("source", "exo"),
        ("ts_id", "exo"),
        ("ip", "198.51.100.4"),
        ("user_agent", "Mozilla%2F5.0%20%28X11%29"),
        ("country", "DE"),
        ("click_datetime", "2026-01-31%2022%3A05%3A09"),
        ("conversion_datetime", "2026-02-01%2000%3A00%3A01"),
        ("timestamp", "1769904001"),
        # Aliases operators paste from Binom and Voluum postback URLs.
        ("externalid", "ext-9"),
        ("cnv_status", "lead"),
        ("cnv_currency", "USD"),
        ("clickcost", "0.05"),
        ("trafficsource", "exo"),
        ("txid", "TX-1"),
        ("transaction_id", "TX-1"),
        ("sub_id", "K7Q2"),
        ("country_code", "DE"),
        ("campaign", "summer"),
        ("ua", "Mozilla%2F5.0%20%28X11%29"),
        # Any click parameter by its exact name, then the conversion's own parameters.
        ("zone", "z%201"),
        ("Banner", "b%2F2"),
        ("goal", "reg"),
    ],
)
def test_each_macro(macro: str, value: str) -> None:
    assert text("{" + macro + "}") == value


def test_macro_names_are_case_insensitive_for_built_ins() -> None:
    assert text("{SUBID}|{External_ID}|{PAYOUT}") == "K7Q2|ext-9|1.2"


@pytest.mark.parametrize("n", range(1, 31))
def test_sub_id_1_to_30(n: int) -> None:
    assert text(f"{{sub_id_{n}}}") == f"s{n}"


def test_missing_sub_id_renders_empty_not_unknown() -> None:
    bare = Click(subid="b", campaign_id="c")
    result = render("{sub_id_30}", MacroValues(bare, CONV, RULE, None).lookup)
    assert (result.text, result.unknown) == ("", ())


def test_every_alias_points_at_a_built_in() -> None:
    assert set(ALIASES.values()) <= BUILTIN_NAMES


def test_raw_form_keeps_url_structure_but_not_spaces() -> None:
    assert text("{_Banner}") == "b/2"
    assert text("{_zone}") == "z%201"
    assert text("{_hidden}") == "h"  # a click parameter whose own name starts with "_"


@pytest.mark.parametrize(
    "template, status, expected",
    [
        ("{status:lead=0 sale=1 rejected=2}", "lead", "0"),
        ("{status:lead=0 sale=1 rejected=2}", "rejected", "2"),
        ("{status:lead=pending,sale=approved}", "sale", "approved"),
        ("{status:sale=buy123456}", "lead", "lead"),
        ("{status:rebill=sale}", "rebill", "sale"),
    ],
)
def test_status_renaming(template: str, status: str, expected: str) -> None:
    assert text(template, conversion=Conversion(subid="K7Q2", status=status)) == expected


@pytest.mark.parametrize(
    "template, expected",
    [
        ("{_date:Y-m-d H:i:s}", "2026-02-01%2000:00:01"),
        ("{_date:Y-m-d H:i:s,Europe/Kyiv}", "2026-02-01%2002:00:01"),
        ("{_date:Y-m-d\\TH:i:sP,America/New_York}", "2026-01-31T19:00:01-05:00"),
        ("{_date:U}", "1769904001"),
        ("{_date:D, d M Y}", "Sun,%2001%20Feb%202026"),  # a comma in the format, no zone
        ("{_date:jS F y, l}", "1st%20February%2026,%20Sunday"),
        ("{_click_datetime:d.m.Y H:i,Asia/Tokyo}", "01.02.2026%2007:05"),
        ("{_conversion_datetime:c}", "2026-02-01T00:00:01+00:00"),
        ("{date}", "2026-02-01%2000%3A00%3A01"),
    ],
)
def test_dates_with_php_letters_and_zones(template: str, expected: str) -> None:
    assert text(template) == expected


def test_random_ranges() -> None:
    assert {text("{random:3,3}") for _ in range(5)} == {"3"}
    assert {int(text("{random:9,7}")) for _ in range(60)} == {7, 8, 9}
    assert 1 <= int(text("{random:2}")) <= 2
    assert int(text("{random}")) >= 1


def test_argument_on_a_plain_macro_is_a_default() -> None:
    assert text("{tid:none}|{zone:none}|{absent:n%2Fa}") == "TX-1|z%201|n%252Fa"
    bare = Conversion(subid="K7Q2", status="sale")
    assert text("{tid:0}", conversion=bare) == "0"


def test_unknown_macros_are_reported_with_a_suggestion() -> None:
    result = render("x={externa_id}&y={payot}&z={placement}", MacroValues(CLICK, CONV, RULE, None).lookup)
    assert result.text == "x=&y=&z="
    assert result.unknown == ("{externa_id}", "{payot}", "{placement}")
    assert [did_you_mean(m) for m in result.unknown] == ["did you mean {external_id}?", "did you mean {payout}?", None]


def test_unknown_macro_reason_in_plan_names_the_fix() -> None:
    rule = PostbackRule(id="postback:1", url="https://pb.example/?c={external_id}&p={revnue}", campaign_id="summer")
    planned = plan_one(CONV, CLICK, rule, templates={})
    assert planned.url == "https://pb.example/?c=ext-9&p="
    assert planned.reason == "unknown macro {revnue} rendered empty (did you mean {revenue}?)"


def test_headers_can_never_carry_a_line_break() -> None:
    evil = Click(subid="h", campaign_id="summer", params={"external_id": "x\r\nX-Injected: 1"})
    rule = PostbackRule(
        id="postback:1",
        url="https://pb.example/",
        campaign_id="summer",
        headers={"X-Click": "{external_id}", "X-Raw": "{_external_id}"},
    )
    planned = plan_one(CONV, evil, rule, templates={})
    assert planned.headers == {"X-Click": "xX-Injected: 1", "X-Raw": "xX-Injected: 1"}


def test_json_body_values_are_escaped() -> None:
    rule = PostbackRule(
        id="postback:1",
        url="https://pb.example/",
        method="POST",
        campaign_id="summer",
        body='{"id": "{external_id}", "v": {revenue}, "ua": "{user_agent}"}',
    )
    quoted = Click(subid="q", campaign_id="summer", params={"external_id": 'a"b\\c\n'}, user_agent="é")
    planned = plan_one(CONV, quoted, rule, templates={})
    assert json.loads(planned.body) == {"id": 'a"b\\c\n', "v": 1.2, "ua": "é"}


def test_find_macros_lists_every_form() -> None:
    found = find_macros("{a}{_b}{c:x y}{{d}}{$e}")
    assert [(m.name, m.argument, m.raw) for m in found] == [
        ("a", None, False),
        ("b", None, True),
        ("c", "x y", False),
        ("d", None, False),
    ]


# --- encoding no value can break -------------------------------------------------------------------

TEMPLATE = (
    "https://pb.example.com/zp/{sub_id_1}/goal/{_sub_id_9}?cid={external_id}&p={payout}&s={status:sale=1 lead=0}"
    "&z={zone}&t={tid}&c={currency}&n={campaign_name}&u={user_agent}&d={date:Y-m-d H:i,Europe/Kyiv}#frag"
)
PARAMS = ["cid", "p", "s", "z", "t", "c", "n", "u", "d"]
anything = st.text(st.characters(codec=None, exclude_categories=()), max_size=40)
safe_raw = st.text(st.characters(codec="ascii", exclude_characters="/?#&=%"), max_size=20)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    external_id=anything,
    sub_id_1=anything,
    zone=anything,
    tid=anything,
    currency=anything,
    campaign_name=anything,
    user_agent=anything,
    raw=safe_raw,
)
def test_no_value_changes_the_url_structure(
    external_id, sub_id_1, zone, tid, currency, campaign_name, user_agent, raw
) -> None:
    click = Click(
        subid="p",
        campaign_id="summer",
        campaign_name=campaign_name,
        user_agent=user_agent,
        params={"external_id": external_id, "sub_id_1": sub_id_1, "zone": zone, "sub_id_9": raw},
    )
    conversion = Conversion(
        subid="p", status="sale", tid=tid, currency=currency, created_at=dt.datetime(2026, 5, 1, tzinfo=dt.UTC)
    )
    url = render(TEMPLATE, MacroValues(click, conversion, RULE, Decimal("0.1")).lookup).text
    parts = urlsplit(url)
    assert (parts.scheme, parts.hostname, parts.port, parts.fragment) == ("https", "pb.example.com", None, "frag")
    segments = parts.path.split("/")
    assert len(segments) == 5 and segments[:2] == ["", "zp"] and segments[3] == "goal"
    assert unquote(segments[2], errors="replace") == utf8(sub_id_1)
    assert unquote(segments[4]) == raw
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    assert [name for name, _ in pairs] == PARAMS
    values = dict(pairs)
    for name, expected in (("z", zone), ("n", campaign_name or "summer"), ("u", user_agent)):
        assert values[name] == utf8(expected)
    assert "\r" not in url and "\n" not in url and " " not in url and url.isascii()


def utf8(value: str) -> str:
    """What survives UTF-8: a lone surrogate (never valid text) becomes "?"."""
    return value.encode("utf-8", "replace").decode("utf-8")


@settings(max_examples=200, deadline=None)
@given(external_id=anything.filter(usable_click_id), sub_id_2=anything)
def test_planned_postback_keeps_its_structure(external_id: str, sub_id_2: str) -> None:
    click = Click(subid="p", campaign_id="summer", params={"external_id": external_id, "sub_id_2": sub_id_2})
    rule = PostbackRule(
        id="postback:1",
        campaign_id="summer",
        statuses=("sale",),
        url="https://s.magsrv.com/tag.php?goal=G&tag={external_id}&value={revenue}&sub={sub_id_2}",
    )
    planned = plan_one(Conversion(subid="p", status="sale", payout=Decimal("3")), click, rule, templates={})
    assert planned.state == "due"
    parts = urlsplit(planned.url)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "s.magsrv.com", "/tag.php")
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    assert [name for name, _ in pairs] == ["goal", "tag", "value", "sub"]
    assert dict(pairs)["tag"] == utf8(external_id)
    assert dict(pairs)["value"] == "3"


@settings(max_examples=200, deadline=None)
@given(value=anything)
def test_raw_values_never_carry_spaces_controls_or_unicode(value: str) -> None:
    click = Click(subid="p", campaign_id="summer", params={"v": value})
    url = render("https://pb.example/?v={_v}", MacroValues(click, CONV, RULE, None).lookup).text
    assert url.isascii() and not any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url)


@settings(max_examples=3000, deadline=None)
@given(st.one_of(st.text(), st.text(alphabet="AZaz09_.~-%&=/?# "), st.from_regex(r"[A-Za-z0-9_.~-]*", fullmatch=True)))
def test_url_values_are_encoded_exactly_as_quote_encodes_them(value: str) -> None:
    from urllib.parse import quote

    from s2s_plugin.resolution.macros import encode_url_value

    # Values of unreserved characters only skip quote(): the result must not change.
    assert encode_url_value(value) == quote(value, safe="", errors="replace")
