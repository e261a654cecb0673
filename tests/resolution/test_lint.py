"""The template linter: each finding, its sentence, and where operators meet it."""

from __future__ import annotations

import logging

import pytest
from click.testing import CliRunner

from s2s_plugin.cli import main
from s2s_plugin.resolution.lint import lint
from s2s_plugin.resolution.templates import builtin_templates

LIBRARY = builtin_templates()


def codes(url: str, **kwargs) -> list[str]:
    return [w.code for w in lint(url, library=LIBRARY, **kwargs)]


def messages(url: str, **kwargs) -> list[str]:
    return [w.message for w in lint(url, library=LIBRARY, **kwargs)]


def test_a_good_url_has_no_findings() -> None:
    assert (
        lint(
            "https://pb.example/pb?cid={external_id}&p={payout}&s={status:lead=0 sale=1}&d={date:U,Europe/Kyiv}"
            "&e={date:d/m/Y}&f={random:99}",
            library=LIBRARY,
        )
        == []
    )


def test_unknown_macro_with_did_you_mean() -> None:
    assert messages("https://pb.example/?c={external_id}&x={externa_id}") == [
        "{externa_id} is not a known macro and renders empty: did you mean {external_id}?"
    ]
    assert messages("https://pb.example/?c={external_id}&p={_revnue}") == [
        "{_revnue} is not a known macro and renders empty: did you mean {_revenue}?"
    ]


def test_a_click_parameter_macro_is_only_a_note() -> None:
    assert messages("https://pb.example/?c={external_id}&z={zoneid}") == [
        "{zoneid} is not a built-in macro: it is filled from a click parameter named zoneid, and left empty when the click has none"
    ]


@pytest.mark.parametrize(
    "url, leftover",
    [
        ("https://pb.example/?id=REPLACE&c={external_id}", "REPLACE"),
        ("https://pb.example/?id=YOUR_ID&c={external_id}", "YOUR_ID"),
        ("https://pb.example/?id={REPLACE}&c={external_id}", "{REPLACE}"),
        ("https://s.magsrv.com/tag.php?goal=GOAL_ID&tag={external_id}", "GOAL_ID"),
        ("https://trackhta.com/close/?token={external_id}&advertiserid=YOUR_ADVERTISER_ID", "YOUR_ADVERTISER_ID"),
        ("http://sconvtrk.com/conversion/<40-hex-hash>/?visitor_id={external_id}", "<40-hex-hash>"),
        (
            "http://postback.zeroredirect1.com/zppostback/XXXXXX-XXXX-XXXX-XXXX-XXXXXX?cid={external_id}",
            "XXXXXX-XXXX-XXXX-XXXX-XXXXXX",
        ),
        ("http://serve.popads.net/cpixel.php?s2s=1&id={external_id}&value=conversionValue", "conversionValue"),
        ("https://voluum.example/postback?cid={external_id}&payout=OPTIONAL", "OPTIONAL"),
    ],
)
def test_leftovers(url: str, leftover: str) -> None:
    found = [w for w in lint(url, library=LIBRARY) if w.code == "leftover"]
    assert [w.message.split(" is a placeholder")[0] for w in found] == [leftover]


def test_leftover_names_its_template() -> None:
    exo = LIBRARY["exoclick"]
    assert messages(exo.postback_url, template=exo) == [
        "GOAL_ID is a placeholder from the exoclick template: replace it with your account's value, or the source will reject the postback"
    ]


def test_values_that_look_like_words_are_not_leftovers() -> None:
    assert codes("https://pb.example/?c={external_id}&cur=USD&type=goal1&action=conversion&e=lead&s2s=1") == []


def test_missing_click_id_and_plain_http() -> None:
    assert messages("http://pb.example/?p={payout}") == [
        "the URL uses plain http: the click id and payout travel unencrypted; use https:// if the source accepts it",
        "the postback has no {external_id}: the source cannot tell which of its clicks converted; "
        "put {external_id} where the source expects its click id",
    ]
    # An alias or a raw form counts as the click id, in the body too.
    assert codes("https://pb.example/?c={externalid}") == []
    assert codes("https://pb.example/", body='{"c": "{_external_id}"}', method="POST") == []


def test_pasted_binom_and_voluum_urls() -> None:
    assert codes("https://tsyndicate.com/api/v1/cpa/action?clickid={externalid}&value={payout}") == []
    found = messages("https://a.mgid.com/postback?c={externalid}&e={cnv_status}&r={payout}&t={clickid}")
    assert len(found) == 1 and "{clickid} is a traffic source's macro" in found[0]
    assert "in Binom and Voluum {clickid} is the tracker's own click id, here {subid}" in found[0]


def test_source_macros_pasted_into_a_postback() -> None:
    found = messages("https://pb.example/?tag={conversions_tracking}&v=${SUBID}&w=[CLICK_ID]")
    assert found[0].startswith(
        "{conversions_tracking} is a traffic source's macro, not a tracker macro (ExoClick writes it in its campaign links)"
    )
    assert any(m.startswith("${SUBID} is a traffic source's macro") and "sent literally" in m for m in found)
    assert any(m.startswith("[CLICK_ID] is a traffic source's macro") for m in found)
    assert "no-click-id" in codes("https://pb.example/?tag={conversions_tracking}")


def test_double_braces() -> None:
    assert messages("https://trackhta.com/close/?token={{click_id}}&price={{payout}}&c={external_id}") == [
        "{{click_id}} has double braces: macros here take one pair, e.g. {external_id}",
        "{{payout}} has double braces: macros here take one pair, e.g. {payout}",
    ]


@pytest.mark.parametrize(
    "macro, needle",
    [
        ("{status:lead=0 sold=1}", "sold=1 is not status=value"),
        ("{status:1}", "1 is not status=value"),
        ("{date:Y-m-d,Mars/Olympus}", "'Mars/Olympus' is not a time zone"),
        ("{random:a,b}", "the range must be two whole numbers"),
        ("{date:Europe/Kyiv}", "write the format first, then the zone, e.g. {date:Y-m-d H:i:s,Europe/Kyiv}"),
    ],
)
def test_bad_arguments(macro: str, needle: str) -> None:
    (warning,) = lint(f"https://pb.example/?c={{external_id}}&x={macro}", library=LIBRARY)
    assert warning.code == "bad-argument" and needle in warning.message


@pytest.mark.parametrize(
    "url, kwargs, code",
    [
        ("ftp://pb.example/?c={external_id}", {}, "not-http"),
        ("pb.example/?c={external_id}", {}, "not-http"),
        ("https://tracking.trafficvance.com/?id=1&amp;token={external_id}", {}, "html-escaped"),
        ("https://pb.example/?c={external_id}&n=a b", {}, "whitespace"),
        ("https://pb.example/", {"body": '{"c": "{external_id}",}', "method": "POST"}, "bad-json"),
        ("https://pb.example/", {"body": "c={external_id}", "method": "GET"}, "get-with-body"),
    ],
)
def test_other_findings(url: str, kwargs: dict, code: str) -> None:
    assert code in codes(url, **kwargs)


def test_add_source_and_add_postback_keep_the_url_and_report_warnings(make_s2s, caplog) -> None:
    _pm, s2s = make_s2s()
    with caplog.at_level(logging.WARNING, logger="s2s_postback"):
        source = s2s.add_source("exo", template="exoclick")
        postback = s2s.add_postback("summer", url="http://partner.example/pb?x={externa_id}")
    assert source.url == LIBRARY["exoclick"].postback_url  # stored although GOAL_ID is still in it
    assert source.warnings == (
        "GOAL_ID is a placeholder from the exoclick template: replace it with your account's value, or the source will reject the postback",
    )
    assert [w.split(":")[0] for w in postback.warnings] == [
        "the URL uses plain http",
        "{externa_id} is not a known macro and renders empty",
        "the postback has no {external_id}",
    ]
    assert s2s.postbacks("summer")[0].url == "http://partner.example/pb?x={externa_id}"
    logged = [r.getMessage() for r in caplog.records]
    assert f"source exo's postback: {source.warnings[0]}" in logged
    assert f"campaign summer's postback postback:1: {postback.warnings[1]}" in logged
    fixed = s2s.update_postback(postback.id, url="https://partner.example/pb?x={external_id}")
    assert fixed.warnings == ()
    assert [str(w) for w in s2s.lint(s2s.source("exo"))] == list(source.warnings)
    assert s2s.lint("https://pb.example/?goal=GOAL_ID&c={external_id}", template="exoclick")[0].code == "leftover"


def test_cli_lint(tmp_path, make_s2s) -> None:
    runner = CliRunner()
    bad = runner.invoke(main, ["lint", "http://pb.example/?c={externa_id}&id=YOUR_ID"])
    assert bad.exit_code == 1
    assert bad.stdout.splitlines() == [
        "http://pb.example/?c={externa_id}&id=YOUR_ID",
        "  plain-http: the URL uses plain http: the click id and payout travel unencrypted; use https:// if the source accepts it",
        "  leftover: YOUR_ID is a placeholder: replace it with your account's value, or the source will reject the postback",
        "  unknown-macro: {externa_id} is not a known macro and renders empty: did you mean {external_id}?",
        "  no-click-id: the postback has no {external_id}: the source cannot tell which of its clicks converted; "
        "put {external_id} where the source expects its click id",
    ]
    good = runner.invoke(main, ["lint", "https://pb.example/?c={external_id}"])
    assert (good.exit_code, good.stdout) == (0, "no problems found in https://pb.example/?c={external_id}\n")
    database_url = f"sqlite:///{tmp_path / 'lint.db'}"
    _pm, s2s = make_s2s(database_url=database_url)
    s2s.add_source("pa", template="propellerads", placeholders={"AID": "1", "TID": "2"})
    s2s.add_postback("summer", url="https://p.example/?c={external_id}&g=GOAL_ID")
    every = runner.invoke(main, ["lint", "--all", "--database-url", database_url])
    assert every.exit_code == 1
    assert every.stdout.splitlines() == [
        "postback:1 https://p.example/?c={external_id}&g=GOAL_ID",
        "  leftover: GOAL_ID is a placeholder from the exoclick template: replace it with your account's value, "
        "or the source will reject the postback",
    ]
    missing = runner.invoke(main, ["lint"])
    assert missing.exit_code == 2 and "give a URL" in missing.stderr


def test_sample_host_management_commands_show_the_warnings(tmp_path) -> None:
    from sample_host.cli import main as host_main

    db = f"sqlite:///{tmp_path / 'host.db'}"
    runner = CliRunner()
    assert runner.invoke(host_main, ["--db", db, "init"]).exit_code == 0
    added = runner.invoke(host_main, ["--db", db, "sources", "add", "pa", "--template", "propellerads"])
    assert added.exit_code == 0
    assert added.stderr.splitlines() == [
        "warning: AID is a placeholder from the propellerads template: replace it with your account's value, or the source will reject the postback",
        "warning: TID is a placeholder from the propellerads template: replace it with your account's value, or the source will reject the postback",
    ]
    assert (
        runner.invoke(
            host_main,
            [
                "--db",
                db,
                "campaigns",
                "add",
                "summer",
                "--source",
                "pa",
                "--offer-url",
                "https://offer.example/?s={subid}",
            ],
        ).exit_code
        == 0
    )
    pb = runner.invoke(
        host_main, ["--db", db, "postbacks", "add", "summer", "--url", "https://p.example/?c={extrnal_id}"]
    )
    assert (
        pb.exit_code == 0
        and "warning: {extrnal_id} is not a known macro and renders empty: did you mean {external_id}?" in pb.stderr
    )
