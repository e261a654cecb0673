"""``explain SUBID``: the checklist in plain sentences, the cause of a problem in the first line."""

from __future__ import annotations

import json
from decimal import Decimal

from click.testing import CliRunner

from hookspecs import Click, Conversion
from s2s_plugin.cli import main as s2s_main
from sample_host.cli import main as host_main
from sample_host.demo import run_demo


def click(pm, subid: str, external_id: str | None = "X1", source: str | None = "exo") -> None:
    params = {"external_id": external_id} if external_id is not None else {}
    pm.hook.on_click(click=Click(subid=subid, campaign_id="summer", source_id=source, params=params))


def convert(
    pm, subid: str, status: str, tid: str | None = "T1", payout: str | None = "2.5", original: str | None = None
) -> None:
    pm.hook.on_conversion(
        conversion=Conversion(
            subid=subid, status=status, tid=tid, original_status=original, payout=Decimal(payout) if payout else None
        )
    )


def test_skipped_case_names_the_missing_click_id_first(make_s2s, standin) -> None:
    pm, s2s = make_s2s()
    s2s.add_source("exo", template="exoclick", postback_url=standin.url + "/tag.php?goal=G1&tag={external_id}")
    click(pm, "s1", "{conversions_tracking}")
    convert(pm, "s1", "sale")
    s2s.drain(timeout=5)
    text = str(s2s.explain("s1")).splitlines()
    assert text[0] == (
        "Click id: none usable, the click's external_id is '{conversions_tracking}', ExoClick's own macro, which the "
        "source did not substitute: the campaign link (?external_id={conversions_tracking}) was opened outside the "
        "source's campaign (a test click or a bot), so only clicks the source sends can be reported. 1 postback(s) "
        "need it, so they are not sent for this click."
    )
    assert any("(delivery #1): not sent: source exo's postback needs the source's click id" in line for line in text)


def test_missing_click_id_names_the_macro_for_the_campaign_link(make_s2s, standin) -> None:
    pm, s2s = make_s2s()
    s2s.add_source("pa", template="propellerads", postback_url=standin.url + "/c?v={external_id}")
    click(pm, "s1", None, source="pa")
    convert(pm, "s1", "sale")
    headline = s2s.explain("s1").headline
    assert headline.startswith(
        "Click id: none usable, the click has no external_id: put PropellerAds' click-id macro "
        "${SUBID} in the campaign link, e.g. ?external_id=${SUBID}."
    )


def test_failed_case_names_the_answer_and_the_likely_cause_first(make_s2s, standin) -> None:
    pm, s2s = make_s2s()
    standin.script("/tag.php", [], default=(200, "ERROR: Goal ID is invalid."))
    s2s.add_source(
        "exo", template="exoclick", postback_url=standin.url + "/tag.php?goal=GOAL_ID&tag={external_id}&value={revenue}"
    )
    s2s.add_postback("summer", url=standin.url + "/ok?c={external_id}", statuses=["sale"])
    click(pm, "s1", "X1")
    convert(pm, "s1", "sale")
    s2s.drain(timeout=5)
    explanation = s2s.explain("s1")
    assert explanation.headline == (
        "Source exo's postback, status sale (delivery #1): failed after 1 attempt(s): the source answered HTTP 200 "
        "without 'OK': 'ERROR: Goal ID is invalid.'. Likely cause: GOAL_ID is a placeholder from the exoclick template: "
        "replace it with your account's value, or the source will reject the postback."
    )
    text = str(explanation)
    assert "    Campaign summer's postback #1, status sale (delivery #2): delivered on attempt 1." in text
    assert "      attempt 1 at " in text and "failed, HTTP 200 'ERROR: Goal ID is invalid.'" in text
    assert f"      URL: GET {standin.url}/tag.php?goal=GOAL_ID&tag=X1&value=2.5" in text


def test_http_error_case(make_s2s, standin) -> None:
    pm, s2s = make_s2s()
    standin.script("/pb", [], default=(404, "no such goal"))
    s2s.add_source("exo", postback_url=standin.url + "/pb?c={external_id}")
    click(pm, "s1")
    convert(pm, "s1", "sale")
    s2s.drain(timeout=5)
    assert s2s.explain("s1").headline == (
        "Source exo's postback, status sale (delivery #1): failed after 1 attempt(s): the source refused the postback with HTTP 404."
    )


def test_retrying_case_says_when_the_next_attempt_is(make_s2s, standin) -> None:
    pm, s2s = make_s2s(retry_schedule=[0, 3600])
    standin.script("/pb", [], default=(503, "busy"))
    s2s.add_source("exo", postback_url=standin.url + "/pb?c={external_id}")
    click(pm, "s1")
    convert(pm, "s1", "sale")
    s2s.drain(timeout=2)
    explanation = s2s.explain("s1")
    assert explanation.headline.startswith(
        "Source exo's postback, status sale (delivery #1): not delivered yet after 1 attempt(s): the source answered HTTP 503"
    )
    assert "next attempt at " in explanation.headline and "(in 1 h)" in explanation.headline
    assert explanation.data["deliveries"][0]["attempt_log"][0]["response_body"] == "busy"


def test_no_source_postback_and_no_conversion(make_s2s) -> None:
    pm, s2s = make_s2s()
    click(pm, "s1")
    explanation = s2s.explain("s1")
    assert explanation.problems == (
        "Source exo has no postback URL set: add one (add_source, or sample-host sources add) so the source learns about its conversions.",
        "No conversion has arrived for this click: check the affiliate network's postback to the tracker "
        "(its Received postbacks log) and that it sends this subid.",
    )
    assert "Campaign postbacks: campaign summer has no S2S postbacks of its own." in explanation.lines


def test_status_not_enabled_is_the_answer_only_when_nothing_else_is_wrong(make_s2s, standin) -> None:
    pm, s2s = make_s2s()
    s2s.add_source("exo", postback_url=standin.url + "/pb?c={external_id}", statuses=["sale"])
    click(pm, "s1")
    convert(pm, "s1", "lead")
    assert s2s.explain("s1").headline == (
        "Source exo's postback, status lead (delivery #1): not sent: status lead is not enabled for source exo's "
        "postback (enabled: sale)."
    )


def test_conversions_decisions_and_postbacks_per_status(make_s2s, standin) -> None:
    pm, s2s = make_s2s()
    s2s.add_source("exo", postback_url=standin.url + "/pb?c={external_id}&s={status}", statuses=["sale"])
    s2s.add_postback(
        "summer", url=standin.url + "/camp?c={external_id}", statuses=["lead"], payout_mode="percent", payout_value=50
    )
    click(pm, "s1")
    convert(pm, "s1", "lead", original="pending")
    convert(pm, "s1", "sale", original="approved")
    convert(pm, "s1", "sale")
    convert(pm, "s1", "lead")
    s2s.drain(timeout=5)
    explanation = s2s.explain("s1")
    assert explanation.headline == (
        "Every postback for this click was delivered (2); 2 other(s) are not enabled for the status that arrived."
    )
    assert explanation.problems == ()
    text = str(explanation)
    order = [
        "Source postback: source exo's postback fires for sale: GET ",
        "Campaign postbacks: campaign summer has 1:",
        "  postback:1 fires for lead, reports 50% of the payout: GET ",
        "Click id: the click carried the source's click id, external_id=X1.",
        "Conversions (4 reports from the network):",
        ": lead (network said 'pending'), tid T1, payout 2.5: first conversion of this click, tid 'T1'.",
        "    Source exo's postback, status lead (delivery #1): not sent: status lead is not enabled",
        "    Campaign summer's postback #1, status lead (delivery #2): delivered on attempt 1.",
        f"      URL: GET {standin.url}/camp?c=X1",
        ": sale (network said 'approved'), tid T1, payout 2.5: status changed lead → sale.",
        "    Source exo's postback, status sale (delivery #3): delivered on attempt 1.",
        "    Campaign summer's postback #1, status sale (delivery #4): not sent: status sale is not enabled",
        ": sale, tid T1, payout 2.5: status sale repeated for conversion #1: already handled, nothing sent again.",
        ": lead, tid T1, payout 2.5: lead arrived after sale (reordered by the network): kept sale, nothing sent.",
    ]
    positions = [text.find(piece) for piece in order]
    assert -1 not in positions, [p for p, at in zip(order, positions) if at == -1]
    assert positions == sorted(positions)
    data = explanation.to_dict()
    assert [c["decision"] for c in data["conversions"]] == ["new", "change", "repeat", "ignored"]
    assert [c["deliveries"] for c in data["conversions"]] == [[1, 2], [3, 4], [], []]
    assert json.dumps(data)  # JSON-ready


def test_unknown_click(make_s2s) -> None:
    _pm, s2s = make_s2s()
    assert s2s.explain("ghost").headline.startswith("Click ghost is unknown to the postback plugin")


def test_lint_findings_are_part_of_the_checklist(make_s2s) -> None:
    pm, s2s = make_s2s()
    s2s.add_source("exo", postback_url="https://pb.example/?c={external_id}&x={externa_id}")
    click(pm, "s1")
    assert (
        "Check source exo's postback: {externa_id} is not a known macro and renders empty: did you mean {external_id}?."
        in s2s.explain("s1").lines
    )


def test_all_three_explains_print_the_same(tmp_path) -> None:
    """The demo's skipped click, explained by the demo itself, by ``s2s-postback explain`` and by
    ``sample-host explain``: one text, whose first line names the missing click id."""
    result = run_demo(echo=lambda _line: None, workdir=tmp_path)
    subid = result.subids["skipped"]
    plugin = CliRunner().invoke(s2s_main, ["explain", subid, "--database-url", result.database_url])
    host = CliRunner().invoke(host_main, ["--db", result.database_url, "explain", subid])
    assert plugin.exit_code == 0 and host.exit_code == 0
    assert plugin.stdout == host.stdout == result.explain_text + "\n"
    first = result.explain_text.splitlines()[0]
    assert first.startswith("Click id: none usable, the click's external_id is '{conversions_tracking}'")
    assert "campaign link" in first
    as_json = json.loads(
        CliRunner().invoke(host_main, ["--db", result.database_url, "explain", subid, "--json"]).stdout
    )
    assert as_json["headline"] == first


def test_advice_is_listed_but_does_not_take_the_first_line(make_s2s, standin) -> None:
    pm, s2s = make_s2s()
    s2s.add_postback("summer", url=standin.url + "/own?s={subid}&z={zone}", statuses=["sale"])
    click(pm, "s1", source=None)
    convert(pm, "s1", "sale")
    s2s.drain(timeout=5)
    explanation = s2s.explain("s1")
    assert explanation.headline == "Every postback for this click was delivered (1)."
    assert any(
        line.startswith("Check campaign summer's postback #1: the postback has no {external_id}")
        for line in explanation.lines
    )
    assert any("{zone} is not a built-in macro" in line for line in explanation.lines)
    assert "Source postback: the click came from no traffic source, so no source postback applies." in explanation.lines
