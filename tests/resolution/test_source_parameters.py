"""A source's parameter table (Keitaro's source "Parameters"): stored with the source, carried by
its campaign link, and a custom source's own click-id parameter and macro used end to end."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from sqlalchemy import select

from hookspecs import Click, Conversion, SourceTemplate
from s2s_plugin import ConfigError
from s2s_plugin.resolution.links import check_parameters, link_settings
from s2s_plugin.resolution.templates import builtin_facts, builtin_templates, campaign_link
from s2s_plugin.storage import migrate
from s2s_plugin.storage import tables as t
from s2s_plugin.storage.db import make_engine

KEITARO_LIST = "https://github.com/fenjo26/Orbitra.link/blob/d03673b5969d1d7c9c241cdaab2938fb967655e2/data/keitaro_traffic_sources.json"


#: Pages (besides Keitaro's list) that a template's parameter table is taken from.
OWN_TABLE_CITATIONS = {
    "https://help.mgid.com/macros.-setting-up-non-standard-markup-for-links-to-track-traffic",
    "https://kintura.com/docs/presets/pairings/taboola/cityads",
    "https://docs.geospot.media/en/articles/10006437-tracking-macros-supported",
}


def test_a_templates_campaign_link_carries_the_click_id_then_every_parameter_in_order() -> None:
    link = campaign_link(builtin_templates()["rollerads"], "https://trk.example/", "summer")
    assert link == (
        "https://trk.example/c/summer?external_id={clickid}&ad_campaign_id={campaignid}&creative_id={creativeid}"
        "&source={accid}&cost={cost}&sub_id_1={zoneid}&sub_id_2={device}&sub_id_3={feedid}&sub_id_4={carrier}"
        "&sub_id_5={agegroup}"
    )


def test_every_built_in_parameter_table_is_usable_and_cited() -> None:
    with_tables = {name: template for name, template in builtin_templates().items() if template.parameters}
    assert len(with_tables) >= 58
    for name, template in with_tables.items():
        # Loading checked each row; the click id never appears twice in a link.
        assert template.click_id_param not in template.parameters, name
        assert check_parameters(template.parameters, template.click_id_param) == dict(template.parameters)
        # Each table comes from a page the template cites: Keitaro's template list, or the
        # source's own macro list (MGID, GeoSpot Media) or a tracker's preset for it (Taboola).
        assert set(builtin_facts()[name].citations) & ({KEITARO_LIST} | OWN_TABLE_CITATIONS), name


def test_templates_list_json_and_show_print_the_parameter_table() -> None:
    from click.testing import CliRunner

    from s2s_plugin.cli import main

    listed = CliRunner().invoke(main, ["templates", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    by_name = {entry["name"]: entry for entry in json.loads(listed.output)}
    assert by_name["clickadu"]["parameters"] == {
        "ad_campaign_id": "{campaignid}",
        "creative_id": "{bannerid}",
        "source": "{zoneid}",
        "currency": "{currency}",
        "cost": "{cost}",
        "sub_id_1": "{cohort}",
        "sub_id_2": "{pn_type}",
    }
    assert by_name["exoclick"]["parameters"] == {}
    shown = CliRunner().invoke(main, ["templates", "show", "clickadu"])
    assert shown.exit_code == 0, shown.output
    assert "source={zoneid}" in shown.output
    assert "parameters:    ad_campaign_id = {campaignid}; creative_id = {bannerid}; source = {zoneid}" in shown.output


def test_a_sources_own_settings_win_over_its_templates() -> None:
    template = SourceTemplate(
        name="t",
        postback_url="https://t.example/pb?c={external_id}",
        source_macro="{cid}",
        parameters={"sub_id_1": "{zone}"},
    )
    assert link_settings(template).parameters == {"sub_id_1": "{zone}"}
    from hookspecs import PostbackRule

    own = PostbackRule(
        id="source:s",
        url="https://t.example/pb",
        source_id="s",
        click_id_param="clickid",
        source_macro="[CLICK]",
        parameters={"cost": "[PRICE]"},
    )
    assert campaign_link(template, "https://trk", "c", own) == "https://trk/c/c?clickid=[CLICK]&cost=[PRICE]"
    # A source saved before it had settings of its own uses its template's.
    older = PostbackRule(id="source:s", url="https://t.example/pb", source_id="s")
    assert campaign_link(template, "https://trk", "c", older) == "https://trk/c/c?external_id={cid}&sub_id_1={zone}"
    # An emptied table is empty, not the template's.
    emptied = PostbackRule(id="source:s", url="https://t.example/pb", source_id="s", parameters={})
    assert campaign_link(template, "https://trk", "c", emptied) == "https://trk/c/c?external_id={cid}"


@pytest.mark.parametrize(
    ("table", "fragment"),
    [
        ({"sub id": "{zone}"}, "'sub id' must start with a letter"),
        ({"1sub": "{zone}"}, "'1sub' must start with a letter"),
        ({"sub_id_1": "{zone id}"}, "without spaces or '&'"),
        ({"sub_id_1": "{a}&b={c}"}, "without spaces or '&'"),
        ({"sub_id_1": ""}, "the macro for sub_id_1"),
        ({"external_id": "{click}"}, "external_id receives the click id"),
    ],
)
def test_a_bad_parameter_row_is_refused_with_one_sentence(table: dict, fragment: str) -> None:
    with pytest.raises(ConfigError) as caught:
        check_parameters(table, "external_id")
    assert fragment in str(caught.value) and "\n" not in str(caught.value)


def test_add_source_stores_the_table_and_the_link_carries_it(make_s2s) -> None:
    _pm, s2s = make_s2s()
    from_template = s2s.add_source("roll", template="rollerads")
    assert from_template.click_id_param == "external_id" and from_template.source_macro == "{clickid}"
    assert from_template.parameters == dict(builtin_templates()["rollerads"].parameters)
    custom = s2s.add_source(
        "own",
        postback_url="https://own.example/pb?c={external_id}",
        click_id_param="clickid",
        source_macro="[CLICK_ID]",
        parameters={"sub_id_1": "[ZONE]", "cost": "[PRICE]"},
    )
    assert (custom.click_id_param, custom.source_macro, custom.parameters) == (
        "clickid",
        "[CLICK_ID]",
        {"sub_id_1": "[ZONE]", "cost": "[PRICE]"},
    )
    assert s2s.source("own") == custom
    assert s2s.campaign_link("own", "https://trk.example", "summer") == (
        "https://trk.example/c/summer?clickid=[CLICK_ID]&sub_id_1=[ZONE]&cost=[PRICE]"
    )
    # Changing the table keeps the rest; a template's table can be emptied.
    edited = s2s.add_source("roll", template="rollerads", parameters={})
    assert (
        edited.parameters == {} and s2s.campaign_link("roll", "https://t", "c") == "https://t/c/c?external_id={clickid}"
    )
    with pytest.raises(ConfigError, match="receives the click id"):
        s2s.add_source(
            "own", postback_url="https://own.example/pb", click_id_param="clickid", parameters={"clickid": "[X]"}
        )


def test_a_custom_click_id_parameter_feeds_external_id(make_s2s, standin, host) -> None:
    pm, s2s = make_s2s()
    s2s.add_source(
        "own",
        postback_url=standin.url + "/pb?c={external_id}&z={sub_id_1}",
        click_id_param="clickid",
        source_macro="[CLICK_ID]",
        parameters={"sub_id_1": "[ZONE]"},
        statuses=["sale"],
    )
    pm.hook.on_click(
        click=Click(subid="s1", campaign_id="summer", source_id="own", params={"clickid": "CK-1", "sub_id_1": "z9"})
    )
    pm.hook.on_click(click=Click(subid="s2", campaign_id="summer", source_id="own", params={"clickid": "[CLICK_ID]"}))
    for subid in ("s1", "s2"):
        pm.hook.on_conversion(conversion=Conversion(subid=subid, status="sale", payout=Decimal("2")))
    s2s.drain(timeout=5)
    assert [r.target for r in standin.requests] == ["/pb?c=CK-1&z=z9"]
    (skipped,) = [a for a in host.attempts if a.outcome == "skipped"]
    # The skip names the source's own macro and parameter.
    assert skipped.subid == "s2" and "[CLICK_ID]" in skipped.reason and "clickid" in skipped.reason


def test_migration_0006_keeps_sources_and_their_template_settings(tmp_path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/m.db")
    migrate.upgrade(engine, "0005")
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO s2s_sources (source_id, template, url, method, statuses, payout_mode, follow_redirects,"
            " enabled, gone, created_at, updated_at) VALUES ('roll', 'rollerads', 'https://x.example/pb', 'GET',"
            " 'sale', 'real', false, true, false, 1, 1)"
        )
    migrate.upgrade(engine)
    with engine.connect() as conn:
        row = conn.execute(select(t.sources)).one()
    assert (row.click_id_param, row.source_macro, row.parameters) == (None, None, None)
    migrate.downgrade(engine, "0005")
    with engine.connect() as conn:
        assert "parameters" not in conn.exec_driver_sql("SELECT * FROM s2s_sources").keys()  # noqa: SIM118 (a result's keys, not a dict)
    engine.dispose()
