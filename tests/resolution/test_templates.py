"""The built-in template library: every template renders to its exact URL, and its facts hold."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from urllib.parse import parse_qsl, urlsplit

import pytest
from click.testing import CliRunner

from hookspecs import Click, Conversion, PostbackRule, SourceTemplate
from s2s_plugin import ConfigError
from s2s_plugin.cli import main
from s2s_plugin.resolution.clickid import unsubstituted_macro
from s2s_plugin.resolution.lint import lint
from s2s_plugin.resolution.resolve import plan_one
from s2s_plugin.resolution.statuses import CANONICAL_STATUSES
from s2s_plugin.resolution.templates import (
    CONFIDENCE_LEVELS,
    UNKNOWN_SOURCE_MACRO,
    builtin_facts,
    builtin_templates,
    campaign_link,
    fill_placeholders,
    placeholders_left,
)

LIBRARY = builtin_templates()
FACTS = builtin_facts()
CLICK = Click(
    subid="K1", campaign_id="summer", source_id="src", params={"external_id": "CLK 42/é", "sub_id_1": "trk-7"}
)
SALE = Conversion(subid="K1", status="sale", payout=Decimal("1.50"), currency="EUR", tid="T9")

# The exact request every template makes for the click above and a 1.50 EUR sale, each placeholder
# filled with its own name in lower case ("GOAL_ID" -> "goal-id-v"): method and URL (no body: all GET).
EXPECTED = {
    "activerevenue": ("GET", "http://xml.activerevenue.com/conversion?c=CLK%2042%2F%C3%A9&count=1&value=1.5"),
    "adcash": (
        "GET",
        "https://www.pixelhere.com/et/event.php?advertiser=advertiser-id-v&cid=CLK%2042%2F%C3%A9&id=event-id-v&campagne=campaign-id-v&type=CPAtarget",
    ),
    "admaven": ("GET", "http://pop.rtb-passthrough.com/conversion?c=CLK%2042%2F%C3%A9&count=1&value=1.5"),
    "adoperator": ("GET", "https://s2s.adoperator.com/conversion?c=CLK%2042%2F%C3%A9&value=1.5"),
    "adscompass": ("GET", "https://clickco.net/sst?clickid=CLK%2042%2F%C3%A9&price=1.5"),
    "adskeeper": ("GET", "https://a.adskeeper.co.uk/postback?c=CLK%2042%2F%C3%A9&e=event-name-v&r=1.5"),
    "adsterra": ("GET", "https://www.pbterra.com/name/advertiser-login-v/at?subid_short=CLK%2042%2F%C3%A9&atpay=1.5"),
    "adsupply": ("GET", "https://engine.4dsply.com/conversion.engine?s2sParam=CLK%2042%2F%C3%A9"),
    "advertizer": (
        "GET",
        "http://postback.advertizer.com/pb.php?clickid=CLK%2042%2F%C3%A9&amount=1.5&advertiser_id=advertiser-id-v&key=key-v",
    ),
    "adxad": ("GET", "http://conv.adxadserv.com/?clickid=CLK%2042%2F%C3%A9&payout=1.5&type=goal1"),
    "adxpansion": ("GET", "https://api.adxpansion.com/v1/conversions/log?token=token-v&id=CLK%2042%2F%C3%A9"),
    "airpush": ("GET", "http://api.airpush.com/track/?guid=CLK%2042%2F%C3%A9"),
    "bidvertiser": (
        "GET",
        "http://secure.bidvertiser.com/performance/pc.dbm?ver=1.0&AID=aid-from-dashboard-v&CLICKID=CLK%2042%2F%C3%A9&revenue=1.5",
    ),
    "bitmedia": (
        "GET",
        "https://api.bitmediacdn.com/conversion?eventName=event-name-v&eventValue=1.5&conversionID=conversion-id-v&clickID=CLK%2042%2F%C3%A9",
    ),
    "clickadilla": (
        "GET",
        "https://tracking.clickadilla.com/in/postbacks/?token=token-v&campaign_id=campaign-id-v&click_id=CLK%2042%2F%C3%A9&payout=1.5",
    ),
    "clickadu": ("GET", "https://sconvtrk.com/conversion/hash-v/?visitor_id=CLK%2042%2F%C3%A9&aid=aid-v&payout=1.5"),
    "daoad": ("GET", "http://api.daopush-api.info/api/postback/campaign?key=key-v&sum=1.5&click-id=CLK%2042%2F%C3%A9"),
    "epicads": ("GET", "https://epicapi.net/api/postback?click_id=CLK%2042%2F%C3%A9&amount=1.5"),
    "eroadvertising": ("GET", "https://tracker.ero-advertising.com/tracking/conv.php?cid=CLK%2042%2F%C3%A9"),
    "evadav": ("GET", "https://evadav.com/phpb?click_id=CLK%2042%2F%C3%A9&payout=1.5"),
    "exoclick": ("GET", "https://s.magsrv.com/tag.php?goal=goal-id-v&tag=CLK%2042%2F%C3%A9&value=1.5"),
    "explorads": ("GET", "http://xml.leoyard.com/conversion?c=CLK%2042%2F%C3%A9&count=1&value=1.5"),
    "ezmob": ("GET", "https://xml.ezmob.com/conversion?c=CLK%2042%2F%C3%A9&value=1.5"),
    "galaksion": ("GET", "http://postback.report/postback?cid=goal-cid-v&click_id=CLK%2042%2F%C3%A9"),
    "geospotmedia": (
        "GET",
        "https://api-events.geospotmedia.com/v1/ev?tp=direct&api_key=api-key-v&app_event=event-name-v&can_claim=1&view_through=0&bid_id=CLK%2042%2F%C3%A9&revenue_USD=1.5",
    ),
    "geozo": (
        "GET",
        "https://postbacks.geozo.com/click/postback/keitaro?click_uuid=CLK%2042%2F%C3%A9&money=1.5&status=dep",
    ),
    "go2mobi": ("GET", "http://pb.g2trk.com/pb/?api_key=replace-v&clickid=CLK%2042%2F%C3%A9&payout=1.5"),
    "hilltopads": (
        "GET",
        "https://postback.hilltopads.com/close/?token=CLK%2042%2F%C3%A9&price=1.5&currency=USD&advertiserId=advertiser-id-v",
    ),
    "juicyads": (
        "GET",
        "https://ck.juicyads.com/ilikeitjuicy.php?c=21519&s2s=CLK%2042%2F%C3%A9&amount=1.5&token=token-v&data=data-v&goal=goal-v",
    ),
    "kadam": ("GET", "http://kdtrk.net/ru/postback/?data=CLK%2042%2F%C3%A9"),
    "leadbolt": ("GET", "http://ad.leadbolt.net/conv/?track_id=trk-7&clk_id=CLK%2042%2F%C3%A9"),
    "luckyads": ("GET", "https://kipyn.com/v1/click/postback/?click_uuid=CLK%2042%2F%C3%A9&money=1.5&status=sale"),
    "megapush": ("GET", "https://megapu.sh/pb?cid=CLK%2042%2F%C3%A9&p=1.5&currency=EUR"),
    "mgid": ("GET", "https://a.mgid.com/postback?c=CLK%2042%2F%C3%A9&e=eventname-v&r=1.5"),
    "mondiad": ("GET", "https://postback.mondiad.com/track?uid=uid-v&clickid=CLK%2042%2F%C3%A9&payout=1.5"),
    "mybid": (
        "GET",
        "https://postback.mb-d.com/api/v1/postback?click_id=CLK%2042%2F%C3%A9&cost=1.5&goal_id=mybid-goal-id-v",
    ),
    "noviclick": ("GET", "https://panel.noviclick.com/postback?cid=CLK%2042%2F%C3%A9&payout=1.5&key=key-v"),
    "octoclick": (
        "GET",
        "https://s2s.octoclick.com/postback?uuid=CLK%2042%2F%C3%A9&cost=1.5&status=approved&currency=USD&a_s=approved&p_s=process&c_s=canceled",
    ),
    "onclicka": (
        "GET",
        "https://tracking.onclicka.com/in/postbacks/?token=token-v&campaign_id=campaign-id-v&click_id=CLK%2042%2F%C3%A9&payout=1.5",
    ),
    "outbrain": (
        "GET",
        "https://tr.outbrain.com/unifiedPixel?ob_click_id=CLK%2042%2F%C3%A9&name=event-name-v&orderValue=1.5&currency=USD",
    ),
    "popads": ("GET", "https://serve.popads.net/cpixel.php?s2s=1&aid=aid-v&id=CLK%2042%2F%C3%A9&value=1.5"),
    "popcash": ("GET", "https://ct.popcash.net/click?aid=aid-v&clickid=CLK%2042%2F%C3%A9&payout=1.5"),
    "propellerads": (
        "GET",
        "https://ad.propellerads.com/conversion.php?aid=aid-v&pid=&tid=tid-v&visitor_id=CLK%2042%2F%C3%A9&payout=1.5",
    ),
    "pushground": ("GET", "https://lupush.com/conversion?click_id=CLK%2042%2F%C3%A9&amount=1.5"),
    "pushhouse": ("GET", "http://api.push.house/v1/postback?click_id=CLK%2042%2F%C3%A9&cost=1.5"),
    "reacheffect": (
        "GET",
        "https://go1.reacheffecti.work/conversion.go?pid=user-id-v&cid=CLK%2042%2F%C3%A9&conv_type=b",
    ),
    "realpush": ("GET", "https://click-adc.realsh.xyz/sst?clickid=CLK%2042%2F%C3%A9&price=1.5"),
    "reklamstore": ("GET", "http://pxl.reklamselfie.com/log?action=conversion&key=CLK%2042%2F%C3%A9&price=1.5"),
    "revcontent": (
        "GET",
        "https://trends.revcontent.com/api/v1/conversion.php?api_key=api-key-v&rc_uuid=CLK%2042%2F%C3%A9&amount=1.5",
    ),
    "richads": ("GET", "http://xml.auxml.com/log?action=conversion&key=CLK%2042%2F%C3%A9&price=1.5"),
    "rivertraffic": ("GET", "https://callback.rivertraffic.com/callback/account-name-v?click_id=CLK%2042%2F%C3%A9"),
    "rollerads": (
        "GET",
        "https://trk.roller.ad/conversion/aid/account-number-v/tracking-key-v?click_id=CLK%2042%2F%C3%A9",
    ),
    "selfadvertiser": ("GET", "http://clkpback3.com/adServe/ssapixel?subid=CLK%2042%2F%C3%A9&price=1.5"),
    "smartyads": ("GET", "https://conversions.smartyads.com/postback?type=global&uid=uid-v&clid=CLK%2042%2F%C3%A9"),
    "taboola": (
        "GET",
        "https://trc.taboola.com/actions-handler/log/3/s2s-action?click-id=CLK%2042%2F%C3%A9&name=event-name-v&revenue=1.5",
    ),
    "tacoloco": ("GET", "https://postback.tacolo.co/conversion?user=user-id-v&cid=CLK%2042%2F%C3%A9&sum=1.5"),
    "targeleon": ("GET", "https://clickco.net/sst?clickid=CLK%2042%2F%C3%A9&price=1.5"),
    "tonic": ("GET", "https://tnccv.com/conversion/postback?value=1.5&clickid=CLK%2042%2F%C3%A9"),
    "trafficforce": ("GET", "http://delivery.trafficforce.com/conv.php?click_id=CLK%2042%2F%C3%A9"),
    "traffichunt": (
        "GET",
        "http://ads.traffichunt.com/adx-dir-d/servlet/WebF_AdManager.AdActionManager?nid=traffichunt-id-v&txn_id=CLK%2042%2F%C3%A9",
    ),
    "trafficnomads": ("GET", "https://node2.trafficnomads.com/conv/?clickid=CLK%2042%2F%C3%A9&payout=1.5"),
    "trafficshop": (
        "GET",
        "https://ad.trafficshop.com/track.php?track_id=track-id-v&ts_subid=CLK%2042%2F%C3%A9&atpay=1.5",
    ),
    "trafficstars": ("GET", "https://tsyndicate.com/api/v1/cpa/action?clickid=CLK%2042%2F%C3%A9&value=1.5&key=key-v"),
    "trafficvance": ("GET", "https://tracking.trafficvance.com/?id=replace-v&value=1.5&token=CLK%2042%2F%C3%A9"),
    "traforama": ("GET", "https://p.pa5ka.com/api/click/CLK%2042%2F%C3%A9?subid=traforama-subid-v&c=1&cpa=1.5"),
    "twinred": ("GET", "https://ad.twinrdengine.com/conversion/tracker-name-v?id=CLK%2042%2F%C3%A9"),
    "vimmy": ("GET", "https://vmmpb.com/ic?id=CLK%2042%2F%C3%A9&payout=1.5"),
    "zeropark": ("GET", "http://postback.zeroredirect1.com/zppostback/account-uuid-v?cid=CLK%2042%2F%C3%A9&payout=1.5"),
}


def filled(name: str) -> str:
    template = LIBRARY[name]
    return fill_placeholders(
        template.postback_url, template, {p: p.lower().replace("_", "-") + "-v" for p in template.placeholders}
    )


def test_every_template_has_an_expected_request() -> None:
    assert sorted(EXPECTED) == sorted(LIBRARY)
    assert len(LIBRARY) >= 60


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_template_renders_exactly(name: str) -> None:
    template = LIBRARY[name]
    rule = PostbackRule(id="source:src", url=filled(name), statuses=template.statuses, source_id="src", template=name)
    planned = plan_one(SALE, CLICK, rule, templates=LIBRARY)
    assert (planned.state, planned.reason) == ("due", None)
    assert (planned.method, planned.url, planned.body) == (*EXPECTED[name], None)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_template_facts(name: str) -> None:
    template = LIBRARY[name]
    # The click id: the source's macro goes into external_id, and the postback sends it back.
    assert template.click_id_param == "external_id" and "{external_id}" in template.postback_url
    assert template.source_macro and unsubstituted_macro(template.source_macro) == template.source_macro
    link_tail = "".join(f"&{param}={macro}" for param, macro in template.parameters.items())
    assert (
        campaign_link(template, "https://t.example", "c")
        == f"https://t.example/c/c?external_id={template.source_macro}{link_tail}"
    )
    assert template.method == "GET" and template.statuses and set(template.statuses) <= set(CANONICAL_STATUSES)
    # Every macro is one the plugin knows, every placeholder is in the URL, and nothing but
    # placeholders and plain http worries the linter.
    assert placeholders_left(template.postback_url, template.placeholders) == list(template.placeholders)
    query = urlsplit(template.postback_url).query
    assert not set(template.placeholders) & {k for k, _ in parse_qsl(query)}  # a value, never a parameter's name
    codes = {w.code for w in lint(template.postback_url, template=template, library=LIBRARY)}
    assert codes <= {"leftover", "plain-http"}
    assert ("leftover" in codes) == bool(template.placeholders)
    assert ("plain-http" in codes) == template.postback_url.startswith("http://")
    assert not {w.code for w in lint(filled(name), template=template, library=LIBRARY)} - {"plain-http"}
    # Secret parameters are really parameters of the URL (ExoClick's skey is added for CPA bidding).
    names = {k for k, _ in parse_qsl(urlsplit(template.postback_url).query, keep_blank_values=True)}
    assert set(template.secrets) - {"skey"} <= names
    assert template.title and template.notes and template.confidence in CONFIDENCE_LEVELS


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_template_citations_can_be_opened(name: str) -> None:
    template, facts = LIBRARY[name], FACTS[name]
    for citation in facts.citations:
        assert re.fullmatch(r"https?://[^\s;]+", citation), citation
        if "github.com/" in citation:  # a repository file: owner/name/blob/ref/path
            assert re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+/blob/[\w.-]+/\S+", citation), citation
    assert template.citation == (" ; ".join(facts.citations) or None)
    if not facts.citations:  # allowed only when it is said, and the confidence says so
        assert template.confidence == "low" and "no page can be cited" in template.notes
    if facts.legacy:
        assert template.confidence == "low" and "Legacy network" in template.notes


def test_legacy_networks_are_marked() -> None:
    assert sorted(n for n, f in FACTS.items() if f.legacy) == [
        "airpush",
        "eroadvertising",
        "go2mobi",
        "leadbolt",
        "selfadvertiser",
        "trafficvance",
    ]


def test_shipped_data_is_checked_when_it_loads() -> None:
    from s2s_plugin.resolution.templates import _template

    good = {"name": "x", "postback_url": "https://x.example/?c={external_id}", "confidence": "low", "citations": []}
    assert _template(good)[0] == SourceTemplate(name="x", postback_url=good["postback_url"], confidence="low")
    with pytest.raises(ValueError, match="confidence must be one of high, medium, low"):
        _template({**good, "confidence": "medium-high"})
    with pytest.raises(ValueError, match="citation 'search-index id 37447522603' is not a URL"):
        _template({**good, "citations": ["search-index id 37447522603"]})


def test_exoclick_success_rule_and_macro() -> None:
    exo = LIBRARY["exoclick"]
    assert (exo.source_macro, exo.success_body, exo.placeholders) == ("{conversions_tracking}", "OK", ("GOAL_ID",))


def test_a_source_without_a_known_macro_says_so_in_the_link() -> None:
    custom = SourceTemplate(name="custom", postback_url="https://pb.example/?c={external_id}")
    assert (
        campaign_link(custom, "https://t.example", "summer")
        == f"https://t.example/c/summer?external_id={UNKNOWN_SOURCE_MACRO}"
    )
    assert unsubstituted_macro(UNKNOWN_SOURCE_MACRO)


@pytest.mark.parametrize(
    "name, link",
    [
        ("exoclick", "https://tracker.example/c/summer?external_id={conversions_tracking}"),
        ("propellerads", "https://tracker.example/c/summer?external_id=${SUBID}"),
        (
            "richads",
            "https://tracker.example/c/summer?external_id=[CLICK_ID]&ad_campaign_id=[CAMPAIGN_ID]"
            "&creative_id=[CREATIVE_ID]&source=[SITE_ID]&sub_id_2=[PUBLISHER_ID]&sub_id_3=[REGION]&currency=usd",
        ),
        (
            "hilltopads",
            "https://tracker.example/c/summer?external_id={{ctoken}}&cost={{price}}&source={{zoneid}}"
            "&ad_campaign_id={{campaignid}}&creative_id={{adid}}",
        ),
        ("airpush", "https://tracker.example/c/summer?external_id=%guid%"),
    ],
)
def test_campaign_links(name: str, link: str) -> None:
    assert campaign_link(LIBRARY[name], "https://tracker.example/", "summer") == link


def test_campaign_link_alias_is_one_path_segment() -> None:
    assert (
        campaign_link(None, "https://t.example", "a/b c")
        == f"https://t.example/c/a%2Fb%20c?external_id={UNKNOWN_SOURCE_MACRO}"
    )


def test_add_source_fills_placeholders_and_keeps_the_template(make_s2s) -> None:
    _pm, s2s = make_s2s()
    rule = s2s.add_source("cl", template="clickadu", placeholders={"HASH": "9f86d081", "AID": "77 1"})
    assert rule.url == "https://sconvtrk.com/conversion/9f86d081/?visitor_id={external_id}&aid=77%201&payout={revenue}"
    assert (rule.template, rule.statuses, rule.warnings) == ("clickadu", ("sale",), ())
    assert s2s.campaign_link("cl", "https://t.example", "summer") == (
        "https://t.example/c/summer?external_id=${SUBID}&ad_campaign_id={campaignid}&creative_id={bannerid}"
        "&source={zoneid}&currency={currency}&cost={cost}&sub_id_1={cohort}&sub_id_2={pn_type}"
    )
    half = s2s.add_source("cl2", template="clickadu", placeholders={"HASH": "9f86d081"})
    assert half.warnings == (
        "AID is a placeholder from the clickadu template: replace it with your account's value, "
        "or the source will reject the postback",
    )


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            {"template": "clickadu", "placeholders": {"GOAL_ID": "x"}},
            "template clickadu has no placeholder 'GOAL_ID' (its placeholders: HASH, AID)",
        ),
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
        pm.hook.on_click(
            click=Click(subid=subid, campaign_id="summer", source_id="exo", params={"external_id": subid.upper()})
        )
        pm.hook.on_conversion(conversion=Conversion(subid=subid, status="sale", tid=subid))
        s2s.drain(timeout=5)
    first, second = host.attempts
    assert (first.outcome, first.http_status, first.response_body) == ("failed", 200, "ERROR: Tag is invalid!")
    assert "without 'OK'" in first.reason
    assert (second.outcome, second.response_body) == ("delivered", "OK")


def test_cli_campaign_link_and_templates_show(tmp_path) -> None:
    runner = CliRunner()
    result = runner.invoke(
        main, ["campaign-link", "summer", "--base-url", "https://t.example", "--template", "propellerads"]
    )
    assert (result.exit_code, result.stdout) == (0, "https://t.example/c/summer?external_id=${SUBID}\n")
    unknown = runner.invoke(main, ["campaign-link", "summer", "--base-url", "https://t.example"])
    assert unknown.stdout == f"https://t.example/c/summer?external_id={UNKNOWN_SOURCE_MACRO}\n"
    assert "not known" in unknown.stderr
    shown = runner.invoke(main, ["templates", "show", "clickadu"])
    assert shown.exit_code == 0
    assert "replace:       HASH, AID\n" in shown.stdout
    assert "campaign link: https://TRACKER/c/CAMPAIGN?external_id=${SUBID}&ad_campaign_id={campaignid}" in shown.stdout
    bad = runner.invoke(main, ["campaign-link", "summer", "--base-url", "https://t.example", "--template", "nope"])
    assert bad.exit_code == 2 and "unknown template 'nope'" in bad.stderr


def test_cli_campaign_link_for_a_configured_source(tmp_path, make_s2s) -> None:
    database_url = f"sqlite:///{tmp_path / 'cli.db'}"
    _pm, s2s = make_s2s(database_url=database_url)
    s2s.add_source("hill", template="hilltopads", placeholders={"ADVERTISER_ID": "5"})
    result = CliRunner().invoke(
        main,
        [
            "campaign-link",
            "summer",
            "--base-url",
            "https://t.example",
            "--source",
            "hill",
            "--database-url",
            database_url,
        ],
    )
    assert (result.exit_code, result.stdout) == (
        0,
        "https://t.example/c/summer?external_id={{ctoken}}&cost={{price}}"
        "&source={{zoneid}}&ad_campaign_id={{campaignid}}&creative_id={{adid}}\n",
    )


@pytest.fixture
def builtins_only(monkeypatch) -> None:
    """The command line without installed plugins (an example plugin replaces exoclick)."""
    monkeypatch.setenv("S2S_DISABLE_PLUGINS", "*")


def test_cli_templates_list_json_describes_every_template(builtins_only) -> None:
    result = CliRunner().invoke(main, ["templates", "list", "--json"])
    assert result.exit_code == 0, result.output
    listed = {item["name"]: item for item in json.loads(result.stdout)}
    assert sorted(listed) == sorted(LIBRARY)
    for name, template in LIBRARY.items():
        item = listed[name]
        assert item["builtin"] is True
        assert (item["title"], item["method"], item["postback_url"], item["source_macro"]) == (
            template.title,
            template.method,
            template.postback_url,
            template.source_macro,
        )
        assert (item["confidence"], item["legacy"], item["citations"], item["placeholders"]) == (
            template.confidence,
            FACTS[name].legacy,
            list(FACTS[name].citations),
            list(template.placeholders),
        )
        assert item["click_id_param"] == "external_id" and item["notes"] == template.notes
        assert item["parameters"] == dict(template.parameters)


def test_cli_templates_list_shows_confidence_and_legacy(builtins_only) -> None:
    result = CliRunner().invoke(main, ["templates", "list"])
    assert result.exit_code == 0
    lines = {line.split()[0]: line for line in result.stdout.splitlines()}
    for name, template in LIBRARY.items():
        assert lines[name].split()[1] == template.confidence
        assert ("legacy" in lines[name].split()) == FACTS[name].legacy
        assert lines[name].endswith(template.postback_url)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_cli_templates_show_prints_every_fact_cleanly(name: str, builtins_only) -> None:
    template, facts = LIBRARY[name], FACTS[name]
    result = CliRunner().invoke(main, ["templates", "show", name])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert f"postback URL:  GET {template.postback_url}\n" in out
    assert f"confidence:    {template.confidence}\n" in out
    link_tail = "".join(f"&{param}={macro}" for param, macro in template.parameters.items())
    assert f"campaign link: https://TRACKER/c/CAMPAIGN?external_id={template.source_macro}{link_tail}\n" in out
    if template.parameters:
        assert "parameters:    " + "; ".join(f"{p} = {m}" for p, m in template.parameters.items()) + "\n" in out
    sources = out[out.index("sources:") :].splitlines()
    assert [line[15:] for line in sources] == (list(facts.citations) or ["none that can be opened (see the notes)"])
    assert ("legacy:" in out) == facts.legacy
    assert "None" not in out and "search-index" not in out
    assert all(len(line) > 15 and line[:15].rstrip() in {"", *KEYS} for line in out.splitlines())


KEYS = {
    f"{key}:"
    for key in (
        "name",
        "title",
        "legacy",
        "formats",
        "postback URL",
        "replace",
        "source macro",
        "campaign link",
        "statuses",
        "success",
        "secrets",
        "notes",
        "confidence",
        "sources",
        "parameters",
    )
}
