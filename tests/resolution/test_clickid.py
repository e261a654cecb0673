"""Click-side checks: a click whose click id is missing or an unsubstituted source macro has none,
and its postbacks are skipped with a reason naming the macro that belongs in the campaign link."""

from __future__ import annotations

import pytest

from hookspecs import Click, Conversion, PostbackRule
from s2s_plugin.resolution.clickid import click_id_of, describe_click_id_problem, unsubstituted_macro, usable_click_id
from s2s_plugin.resolution.resolve import plan
from s2s_plugin.resolution.templates import builtin_templates

LIBRARY = builtin_templates()


@pytest.mark.parametrize(
    "value",
    [
        "${SUBID}",
        "{conversions_tracking}",
        "[CLICK_ID]",
        "{{ctoken}}",
        "%guid%",
        "##SUB_ID_SHORT(action)##",
        "@@CLICK-ID@@",
        "__CLICKID__",
        "_~click_id~_",
        "[[c4]]",
        "{$cpv}",
        "%%CLICK_ID%%",
        "<click_id>",
        "{ clickid }",
        "%24%7BSUBID%7D",
        "%7Bconversions_tracking%7D",
        " {click_id} ",
    ],
)
def test_unsubstituted_macros_are_no_click_id(value: str) -> None:
    assert unsubstituted_macro(value) == value.strip()
    assert not usable_click_id(value)


@pytest.mark.parametrize("value", [None, "", "   ", "null", "undefined", "None", "click_id", "{clickid}", "REPLACE"])
def test_nothing_and_junk_are_no_click_id(value) -> None:
    assert not usable_click_id(value)


@pytest.mark.parametrize(
    "value",
    [
        "c86b8a88b91228911e723b93c65a5900bb49bc99",
        "d94ff74f-ea02-4153-ac04-111119!44117",
        "abc==",
        "1b9b3786-eae5",
        "a{b}c",
        "{not-closed",
        "50%",
        "ext 1",
        "[1,2",
        "__init",
        "0",
    ],
)
def test_real_click_ids_are_kept(value: str) -> None:
    assert usable_click_id(value)
    assert click_id_of(Click(subid="s", campaign_id="c", params={"external_id": value})) == value.strip()


def test_click_id_of_reads_the_templates_parameter() -> None:
    click = Click(subid="s", campaign_id="c", params={"cid": "Z9", "external_id": "${SUBID}"})
    assert (click_id_of(click, "cid"), click_id_of(click, "external_id"), click_id_of(None)) == ("Z9", None, None)


def sale_for(click: Click, rules: list[PostbackRule]):
    return plan(Conversion(subid=click.subid, status="sale"), click, rules, templates=LIBRARY)


@pytest.mark.parametrize("name", [n for n, t in sorted(LIBRARY.items()) if t.source_macro])
def test_every_templates_own_macro_left_in_the_link_skips_with_the_fix(name: str) -> None:
    template = LIBRARY[name]
    whose = template.title + ("'" if template.title.endswith("s") else "'s")
    click = Click(subid="s1", campaign_id="summer", source_id="src", params={"external_id": template.source_macro})
    rules = [
        PostbackRule(id="source:src", url=template.postback_url, statuses=("sale",), source_id="src", template=name),
        PostbackRule(id="postback:1", url="https://partner.example/?c={external_id}", campaign_id="summer"),
    ]
    source, campaign = sale_for(click, rules)
    for planned, what in ((source, "source src's postback"), (campaign, "campaign summer's postback #1")):
        assert planned.state == "skipped"
        assert planned.reason == (
            f"{what} needs the source's click id, but the click's external_id is {template.source_macro!r}, "
            f"{whose} own macro, which the source did not substitute: the campaign link "
            f"(?external_id={template.source_macro}) was opened outside the source's campaign (a test click or a bot), "
            "so only clicks the source sends can be reported"
        )


def test_another_sources_macro_names_the_right_one() -> None:
    click = Click(subid="s1", campaign_id="summer", source_id="exo", params={"external_id": "${SUBID}"})
    rule = PostbackRule(
        id="source:exo", url=LIBRARY["exoclick"].postback_url, statuses=("sale",), source_id="exo", template="exoclick"
    )
    (planned,) = sale_for(click, [rule])
    assert planned.reason == (
        "source exo's postback needs the source's click id, but the click's external_id is '${SUBID}', a macro the "
        "source did not substitute: put ExoClick's click-id macro {conversions_tracking} in the campaign link, "
        "e.g. ?external_id={conversions_tracking}"
    )


def test_no_click_id_at_all_names_the_macro() -> None:
    click = Click(subid="s1", campaign_id="summer", source_id="pa", params={"sub_id_1": "z"})
    rule = PostbackRule(
        id="source:pa",
        url=LIBRARY["propellerads"].postback_url,
        statuses=("sale",),
        source_id="pa",
        template="propellerads",
    )
    (planned,) = sale_for(click, [rule])
    assert planned.reason == (
        "source pa's postback needs the source's click id, but the click has no external_id: put PropellerAds' "
        "click-id macro ${SUBID} in the campaign link, e.g. ?external_id=${SUBID}"
    )


def test_unknown_source_macro_points_at_the_documentation() -> None:
    assert describe_click_id_problem(None) == (
        "the click has no external_id: put the source's click-id macro in the campaign link, "
        "e.g. ?external_id={click_id} (the source's documentation names its macro)"
    )


def test_postbacks_that_do_not_need_the_click_id_still_go() -> None:
    click = Click(subid="s1", campaign_id="summer", source_id="exo", params={"external_id": "{conversions_tracking}"})
    rule = PostbackRule(id="postback:2", url="https://own.example/conv?subid={subid}", campaign_id="summer")
    (planned,) = sale_for(click, [rule])
    assert (planned.state, planned.url) == ("due", "https://own.example/conv?subid=s1")


def test_skip_end_to_end_is_reported_and_nothing_is_sent(make_s2s, standin, host) -> None:
    pm, s2s = make_s2s()
    s2s.add_source("exo", template="exoclick", postback_url=standin.url + "/tag.php?goal=G&tag={external_id}")
    s2s.add_postback("summer", url=standin.url + "/own?s={subid}", statuses=["sale"])
    pm.hook.on_click(
        click=Click(subid="s1", campaign_id="summer", source_id="exo", params={"external_id": "[CLICK_ID]"})
    )
    pm.hook.on_conversion(conversion=Conversion(subid="s1", status="sale"))
    s2s.drain(timeout=5)
    assert [r.target for r in standin.requests] == ["/own?s=s1"]
    (skipped,) = [a for a in host.attempts if a.outcome == "skipped"]
    assert (skipped.rule_id, skipped.attempt) == ("source:exo", 0)
    assert "'[CLICK_ID]', a macro the source did not substitute" in skipped.reason
    assert "{conversions_tracking} in the campaign link" in skipped.reason
