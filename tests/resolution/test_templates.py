"""The built-in template library: every template renders to its exact URL, and its facts hold."""

from __future__ import annotations

from decimal import Decimal
from urllib.parse import parse_qsl, urlsplit

import pytest
from click.testing import CliRunner

from hookspecs import Click, Conversion, PostbackRule
from s2s_plugin import ConfigError
from s2s_plugin.cli import main
from s2s_plugin.clickid import unsubstituted_macro
from s2s_plugin.lint import lint
from s2s_plugin.resolve import plan_one
from s2s_plugin.templates import (
    UNKNOWN_SOURCE_MACRO, builtin_templates, campaign_link, fill_placeholders, placeholders_left,
)

LIBRARY = builtin_templates()
CLICK = Click(subid="K1", campaign_id="summer", source_id="src", params={"external_id": "CLK 42/é", "sub_id_1": "trk-7"})
SALE = Conversion(subid="K1", status="sale", payout=Decimal("1.50"), currency="EUR", tid="T9")

# Every template rendered with the click above, a 1.50 sale, and each placeholder filled with
# its own name in lower case ("GOAL_ID" -> "goal-id-v").
EXPECTED = {
    "exoclick": "https://s.magsrv.com/tag.php?goal=goal-id-v&tag=CLK%2042%2F%C3%A9&value=1.5",
    "propellerads": "https://ad.propellerads.com/conversion.php?aid=aid-v&pid=&tid=tid-v&visitor_id=CLK%2042%2F%C3%A9&payout=1.5",
    "trafficstars": "https://tsyndicate.com/api/v1/cpa/action?clickid=CLK%2042%2F%C3%A9&value=1.5&key=key-v",
    "zeropark": "http://postback.zeroredirect1.com/zppostback/account-uuid-v?cid=CLK%2042%2F%C3%A9&payout=1.5",
    "richads": "https://us.ahows.co/log?action=conversion&key=CLK%2042%2F%C3%A9&price=1.5",
    "clickadu": "https://sconvtrk.com/conversion/hash-v/?visitor_id=CLK%2042%2F%C3%A9&aid=aid-v&payout=1.5",
    "adsterra": "https://www.pbterra.com/name/advertiser-login-v/at?subid_short=CLK%2042%2F%C3%A9&atpay=1.5",
    "hilltopads": "https://postback.hilltopads.com/close/?token=CLK%2042%2F%C3%A9&price=1.5&currency=USD&advertiserId=advertiser-id-v",
    "galaksion": "http://postback.info/postback.php?cid=goal-cid-v&click_id=CLK%2042%2F%C3%A9",
    "mgid": "https://a.mgid.com/postback?c=CLK%2042%2F%C3%A9&e=eventname-v&r=1.5",
    "outbrain": "https://tr.outbrain.com/unifiedPixel?ob_click_id=CLK%2042%2F%C3%A9&name=event-name-v&orderValue=1.5&currency=USD",
    "kadam": "http://kdtrk.net/ru/postback/?data=CLK%2042%2F%C3%A9",
    "evadav": "https://evadav.com/phpb?click_id=CLK%2042%2F%C3%A9&payout=1.5",
    "mondiad": "https://postback.mondiad.com/track?uid=uid-v&clickid=CLK%2042%2F%C3%A9&payout=1.5",
    "adcash": "https://www.imcounting.com/et/event.php?advertiser=advertiser-id-v&cid=CLK%2042%2F%C3%A9&id=event-id-v",
    "popads": "https://serve.popads.net/cpixel.php?s2s=1&aid=aid-v&id=CLK%2042%2F%C3%A9&value=1.5",
    "popcash": "https://ct.popcash.net/click?aid=aid-v&clickid=CLK%2042%2F%C3%A9&payout=1.5",
    "trafficforce": "http://delivery.trafficforce.com/conv.php?click_id=CLK%2042%2F%C3%A9",
    "revcontent": "https://trends.revcontent.com/api/v1/conversion.php?api_key=api-key-v&rc_uuid=CLK%2042%2F%C3%A9&amount=1.5",
    "clickadilla": "https://tracking.clickadilla.com/in/postbacks/?token=token-v&campaign_id=campaign-id-v&click_id=CLK%2042%2F%C3%A9&payout=1.5",
    "adxad": "http://conv.adxadserv.com/?clickid=CLK%2042%2F%C3%A9&payout=1.5&type=goal1",
    "eroadvertising": "https://tracker.ero-advertising.com/tracking/conv.php?cid=CLK%2042%2F%C3%A9",
    "go2mobi": "http://pb.g2trk.com/pb/?api_key=replace-v&clickid=CLK%2042%2F%C3%A9&payout=1.5",
    "airpush": "http://api.airpush.com/track/?guid=CLK%2042%2F%C3%A9",
    "leadbolt": "http://ad.leadbolt.net/conv/?track_id=trk-7&clk_id=CLK%2042%2F%C3%A9",
    "selfadvertiser": "http://clkpback3.com/adServe/ssapixel?subid=CLK%2042%2F%C3%A9&price=1.5",
    "trafficvance": "https://tracking.trafficvance.com/?id=replace-v&value=1.5&token=CLK%2042%2F%C3%A9",
}


def filled(name: str) -> str:
    template = LIBRARY[name]
    return fill_placeholders(template.postback_url, template, {p: p.lower().replace("_", "-") + "-v" for p in template.placeholders})


def test_every_template_has_an_expected_url() -> None:
    assert sorted(EXPECTED) == sorted(LIBRARY)
    assert len(LIBRARY) == 27  # every usable entry of the traffic-source facts (a postback URL template)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_template_renders_exactly(name: str) -> None:
    rule = PostbackRule(id="source:src", url=filled(name), statuses=("sale",), source_id="src", template=name)
    planned = plan_one(SALE, CLICK, rule, templates=LIBRARY)
    assert (planned.state, planned.reason) == ("due", None)
    assert planned.url == EXPECTED[name]
    assert planned.method == "GET"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_template_facts(name: str) -> None:
    template = LIBRARY[name]
    assert template.click_id_param == "external_id" and template.statuses == ("sale",)
    assert "{external_id}" in template.postback_url
    # Every placeholder is in the URL, and nothing but placeholders and plain http worries the linter.
    assert placeholders_left(template.postback_url, template.placeholders) == list(template.placeholders)
    codes = {w.code for w in lint(template.postback_url, template=template, library=LIBRARY)}
    assert codes <= {"leftover", "plain-http"}
    assert ("leftover" in codes) == bool(template.placeholders)
    assert ("plain-http" in codes) == template.postback_url.startswith("http://")
    # A filled template has nothing left to replace.
    assert not {w.code for w in lint(filled(name), template=template, library=LIBRARY)} - {"plain-http"}
    # The macro the source writes is recognised when the source leaves it unsubstituted.
    if template.source_macro:
        assert unsubstituted_macro(template.source_macro) == template.source_macro
    # Secret parameters are really parameters of the URL.
    names = {k for k, _ in parse_qsl(urlsplit(template.postback_url).query, keep_blank_values=True)}
    assert set(template.secrets) - {"skey"} <= names
    assert template.title and template.notes and template.confidence and template.citation


def test_exoclick_success_rule_and_macro() -> None:
    exo = LIBRARY["exoclick"]
    assert (exo.source_macro, exo.success_body, exo.placeholders) == ("{conversions_tracking}", "OK", ("GOAL_ID",))


def test_sources_without_a_known_macro_say_so_in_the_link() -> None:
    assert [n for n, t in LIBRARY.items() if not t.source_macro] == ["galaksion", "mondiad"]
    assert campaign_link(LIBRARY["mondiad"], "https://t.example", "summer") == f"https://t.example/c/summer?external_id={UNKNOWN_SOURCE_MACRO}"
    assert unsubstituted_macro(UNKNOWN_SOURCE_MACRO)


@pytest.mark.parametrize(
    "name, link",
    [
        ("exoclick", "https://tracker.example/c/summer?external_id={conversions_tracking}"),
        ("propellerads", "https://tracker.example/c/summer?external_id=${SUBID}"),
        ("richads", "https://tracker.example/c/summer?external_id=[CLICK_ID]"),
        ("hilltopads", "https://tracker.example/c/summer?external_id={{ctoken}}"),
        ("airpush", "https://tracker.example/c/summer?external_id=%guid%"),
    ],
)
def test_campaign_links(name: str, link: str) -> None:
    assert campaign_link(LIBRARY[name], "https://tracker.example/", "summer") == link


def test_campaign_link_alias_is_one_path_segment() -> None:
    assert campaign_link(None, "https://t.example", "a/b c") == f"https://t.example/c/a%2Fb%20c?external_id={UNKNOWN_SOURCE_MACRO}"


def test_add_source_fills_placeholders_and_keeps_the_template(make_s2s) -> None:
    _pm, s2s = make_s2s()
    rule = s2s.add_source("cl", template="clickadu", placeholders={"HASH": "9f86d081", "AID": "77 1"})
    assert rule.url == "https://sconvtrk.com/conversion/9f86d081/?visitor_id={external_id}&aid=77%201&payout={revenue}"
    assert (rule.template, rule.statuses, rule.warnings) == ("clickadu", ("sale",), ())
    assert s2s.campaign_link("cl", "https://t.example", "summer") == "https://t.example/c/summer?external_id=${SUBID}"
    half = s2s.add_source("cl2", template="clickadu", placeholders={"HASH": "9f86d081"})
    assert half.warnings == ("AID is a placeholder from the clickadu template: replace it with your account's value, "
                             "or the source will reject the postback",)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"template": "clickadu", "placeholders": {"GOAL_ID": "x"}}, "template clickadu has no placeholder 'GOAL_ID' (its placeholders: HASH, AID)"),
        ({"template": "clickadu", "placeholders": {"AID": " "}}, "placeholder AID of template clickadu needs a value"),
        ({"postback_url": "https://x.example/?c={external_id}", "placeholders": {"AID": "1"}}, "name the template too"),
        ({"template": "nope"}, "unknown template 'nope'"),
    ],
)
def test_add_source_template_errors(make_s2s, kwargs, message) -> None:
    _pm, s2s = make_s2s()
    with pytest.raises(ConfigError) as err:
        s2s.add_source("cl", **kwargs)
    assert message in str(err.value)


def test_exoclick_answers_are_judged_by_the_success_rule(make_s2s, standin, host) -> None:
    pm, s2s = make_s2s()
    standin.script("/tag.php", [(200, "ERROR: Tag is invalid!")], default=(200, "OK"))
    s2s.add_source("exo", template="exoclick", postback_url=standin.url + "/tag.php?goal=G&tag={external_id}")
    for subid in ("a", "b"):
        pm.hook.on_click(click=Click(subid=subid, campaign_id="summer", source_id="exo", params={"external_id": subid.upper()}))
        pm.hook.on_conversion(conversion=Conversion(subid=subid, status="sale", tid=subid))
        s2s.drain(timeout=5)
    first, second = host.attempts
    assert (first.outcome, first.http_status, first.response_body) == ("failed", 200, "ERROR: Tag is invalid!")
    assert "without 'OK'" in first.reason
    assert (second.outcome, second.response_body) == ("delivered", "OK")


def test_cli_campaign_link_and_templates_show(tmp_path) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["campaign-link", "summer", "--base-url", "https://t.example", "--template", "propellerads"])
    assert (result.exit_code, result.stdout) == (0, "https://t.example/c/summer?external_id=${SUBID}\n")
    unknown = runner.invoke(main, ["campaign-link", "summer", "--base-url", "https://t.example", "--template", "galaksion"])
    assert unknown.stdout == f"https://t.example/c/summer?external_id={UNKNOWN_SOURCE_MACRO}\n"
    assert "not known" in unknown.stderr
    shown = runner.invoke(main, ["templates", "show", "clickadu"])
    assert shown.exit_code == 0
    assert "replace:       HASH, AID\n" in shown.stdout
    assert "campaign link: https://TRACKER/c/CAMPAIGN?external_id=${SUBID}\n" in shown.stdout
    bad = runner.invoke(main, ["campaign-link", "summer", "--base-url", "https://t.example", "--template", "nope"])
    assert bad.exit_code == 2 and "unknown template 'nope'" in bad.stderr


def test_cli_campaign_link_for_a_configured_source(tmp_path, make_s2s) -> None:
    database_url = f"sqlite:///{tmp_path / 'cli.db'}"
    _pm, s2s = make_s2s(database_url=database_url)
    s2s.add_source("hill", template="hilltopads", placeholders={"ADVERTISER_ID": "5"})
    result = CliRunner().invoke(main, ["campaign-link", "summer", "--base-url", "https://t.example", "--source", "hill",
                                       "--database-url", database_url])
    assert (result.exit_code, result.stdout) == (0, "https://t.example/c/summer?external_id={{ctoken}}\n")
