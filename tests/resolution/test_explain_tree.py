"""``explain`` as a tree: click → conversions → postbacks → attempts, each with its state; the failing
step marked once with what to do; the text form rendered from the same tree."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

from hookspecs import Click, Conversion
from s2s_plugin.ops.explaintree import Node, mark_failing, render_lines, roll_up
from sample_host.standin import Reply


def _click(pm, subid: str, external_id: str | None = "X1") -> None:
    params = {"external_id": external_id} if external_id is not None else {}
    pm.hook.on_click(click=Click(subid=subid, campaign_id="summer", source_id="exo", params=params))


def _convert(pm, subid: str, status: str, tid: str = "T1") -> None:
    pm.hook.on_conversion(conversion=Conversion(subid=subid, status=status, tid=tid, payout=Decimal("2.5")))


def _shape(node: Node) -> list[tuple[int, str, str]]:
    """(depth, kind, state) of every node, depth first."""
    out: list[tuple[int, str, str]] = []

    def walk(n: Node, depth: int) -> None:
        out.append((depth, n.kind, n.state))
        for child in n.children:
            walk(child, depth + 1)

    walk(node, 0)
    return out


# --- the pure parts ----------------------------------------------------------------------------


def test_roll_up_shows_the_worst_state_and_a_chosen_skip_weighs_least() -> None:
    assert roll_up(["delivered", "failed", "retrying"]) == "failed"
    assert roll_up(["delivered", "skipped"]) == "skipped"  # a postback never sent is final
    assert roll_up(["retrying", "delivered"]) == "retrying"
    assert roll_up(["delivered", "ignored"]) == "delivered"
    assert roll_up([], "ignored") == "ignored"


def test_text_form_nests_conversions_postbacks_and_attempts_by_indentation() -> None:
    at = dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC)
    attempt = Node("attempt", "failed", "Attempt 1", "failed, HTTP 404", "attempt 1: failed", at=at)
    postback = Node(
        "postback",
        "failed",
        "Source exo's postback · sale",
        "failed",
        "Source exo's postback: failed.",
        details=("URL: GET https://s.example/pb",),
        children=(attempt,),
        key="delivery-1",
    )
    orphan = Node("postback", "queued", "Old", "queued", "Old postback: queued.", key="delivery-9")
    tree = Node(
        "click",
        "problem",
        "Click s1",
        "campaign summer",
        "Click s1: campaign summer.",
        children=(
            Node(
                "setup",
                "ok",
                "Campaign postbacks",
                "1",
                "Campaign postbacks: 1:",
                children=(Node("rule", "info", "postback:1", "", "postback:1 fires for sale"),),
            ),
            Node("conversion", "failed", "sale", "new", "sale: new.", children=(postback,)),
            orphan,
            Node("check", "advice", "Check", "http", "Check source exo's postback: plain http."),
        ),
    )
    assert render_lines(tree) == [
        "Click s1: campaign summer.",
        "Campaign postbacks: 1:",
        "  postback:1 fires for sale",
        "Conversions (1 report from the network):",
        "  sale: new.",
        "    Source exo's postback: failed.",
        "      URL: GET https://s.example/pb",
        "      attempt 1: failed",
        "Other deliveries for this click:",
        "    Old postback: queued.",
        "Check source exo's postback: plain http.",
    ]
    marked = mark_failing(tree, "delivery-1")
    assert [n.key for n in marked.walk() if n.failing] == ["delivery-1"]
    assert marked.find("delivery-1") is not None and marked.find("delivery-1").symbol == "✗"  # type: ignore[union-attr]
    assert mark_failing(tree, None) is tree and mark_failing(tree, "nowhere") == tree
    assert json.loads(json.dumps(marked.to_dict()))["children"][1]["children"][0]["children"][0]["at"] == at.isoformat()


# --- built from a real outbox --------------------------------------------------------------------


def test_skipped_click_tree_marks_the_click_id_once_and_points_at_the_campaign_link(make_s2s, standin) -> None:
    pm, s2s = make_s2s()
    s2s.add_source("exo", template="exoclick", postback_url=standin.url + "/tag.php?goal=G1&tag={external_id}")
    s2s.add_postback("summer", url=standin.url + "/own?s={subid}", statuses=["sale"])
    _click(pm, "s1", "{conversions_tracking}")
    _convert(pm, "s1", "sale")
    s2s.drain(timeout=5)
    explanation = s2s.explain("s1")
    tree = explanation.tree
    assert tree is not None
    assert [(d, k, s) for d, k, s in _shape(tree) if k != "check"] == [
        (0, "click", "problem"),
        (1, "setup", "ok"),  # the source's postback
        (1, "setup", "ok"),  # the campaign's postbacks
        (2, "rule", "info"),
        (1, "setup", "problem"),  # the click id
        (1, "conversion", "skipped"),
        (2, "postback", "skipped"),  # the source's: no click id
        (2, "postback", "delivered"),  # the campaign's own, keyed on subid
        (3, "attempt", "delivered"),
    ]
    failing = [node for node in tree.walk() if node.failing]
    assert [node.key for node in failing] == ["click-id"] and explanation.failing is failing[0]
    assert failing[0].sentence == explanation.headline
    # The headline is said once: the postback it stopped only points at the step above.
    skipped = tree.find("delivery-1")
    assert skipped is not None and skipped.symbol == "–" and skipped.cause == "no_click_id"
    assert skipped.summary == "not sent: the click has no usable click id"
    assert explanation.headline not in skipped.note
    fix = explanation.fix
    assert fix is not None and fix.setting == "campaign_link" and fix.campaign_id == "summer"
    assert "{conversions_tracking}" in fix.action
    # The text form is the tree's, under the headline.
    assert str(explanation).splitlines() == [explanation.headline, *render_lines(tree)]
    data = json.loads(json.dumps(explanation.to_dict()))
    assert data["fix"]["setting"] == "campaign_link" and data["tree"]["children"][2]["failing"] is True


def test_failed_postback_tree_marks_the_delivery_and_points_at_its_url(make_s2s, standin) -> None:
    pm, s2s = make_s2s()
    standin.script("/pb", [], default=(404, "unknown goal REPLACE"))
    s2s.add_source("exo", postback_url=standin.url + "/ok?c={external_id}", statuses=["sale", "rejected"])
    s2s.add_postback("summer", url=standin.url + "/pb?c={external_id}&goal=REPLACE", statuses=["sale"])
    _click(pm, "s1")
    _convert(pm, "s1", "sale")
    _convert(pm, "s1", "rejected")
    s2s.drain(timeout=5)
    explanation = s2s.explain("s1")
    tree = explanation.tree
    assert tree is not None
    sale, rejected = [node for node in tree.children if node.kind == "conversion"]
    assert (sale.state, sale.title) == ("failed", "sale · payout 2.5")
    assert [(p.title, p.state) for p in sale.children] == [
        ("Source exo's postback · sale", "delivered"),
        ("Campaign summer's postback #1 · sale", "failed"),
    ]
    failed = sale.children[1]
    assert failed.failing and failed.summary == "failed after 1 attempt(s): HTTP 404"
    assert [(a.title, a.state, a.summary) for a in failed.children] == [("Attempt 1", "failed", "failed, HTTP 404")]
    assert "Answer: unknown goal REPLACE" in failed.children[0].details
    assert failed.details == (f"URL: GET {standin.url}/pb?c=X1&goal=REPLACE",)
    # A status the campaign's postback does not fire for is a choice: the conversion shows delivered.
    assert rejected.state == "delivered"
    assert [(p.state, p.cause) for p in rejected.children] == [("delivered", None), ("skipped", "status_not_enabled")]
    assert sum(node.failing for node in tree.walk()) == 1
    fix = explanation.fix
    assert fix is not None
    assert (fix.setting, fix.rule_id, fix.campaign_id, fix.delivery_id) == ("postback_url", "postback:1", "summer", 2)
    # The linter's finding is in the tree, as a problem, and names the placeholder.
    checks = [node for node in tree.children if node.kind == "check" and node.state == "problem"]
    assert any("REPLACE is a placeholder" in node.summary for node in checks)


def test_unknown_click_is_a_tree_of_one_failing_node(make_s2s) -> None:
    _pm, s2s = make_s2s()
    explanation = s2s.explain("ghost")
    assert explanation.tree is not None and explanation.tree.failing and explanation.tree.children == ()
    assert explanation.fix is not None and explanation.fix.setting == "click"


def test_a_postback_waiting_for_a_host_that_is_not_answering_shows_as_paused(make_s2s, standin) -> None:
    standin.set_default(Reply(503, "down"))
    pm, s2s = make_s2s(
        max_concurrency=1,
        per_host_concurrency=1,
        retry_schedule=[0, 600],
        circuit_failures=1,
        circuit_cooldown=60,
        circuit_max_cooldown=60,
    )
    s2s.add_source("exo", postback_url=standin.url + "/pb?c={external_id}", statuses=["sale"])
    for n in range(2):
        _click(pm, f"s{n}", f"X{n}")
        _convert(pm, f"s{n}", "sale", tid=f"T{n}")
    s2s.drain(timeout=1)
    assert standin.count == 1  # the first answer opened the host's circuit; the other postback waits
    # Both wait for the host: the one it refused keeps its own retry, the other spent no attempt.
    for subid in ("s0", "s1"):
        explanation = s2s.explain(subid)
        node = explanation.failing
        assert node is not None and node.kind == "postback" and node.state == "paused"
        assert node.symbol == "⏸" and node.state_label == "host paused"
        assert node.summary.startswith("waiting: source host ") and node.summary.endswith(" is not answering")
        assert node.cause == ("host_not_answering" if not node.children else "http_server_error")
        assert explanation.tree is not None and explanation.tree.state == "paused"
        fix = explanation.fix
        assert fix is not None and (fix.setting, fix.source_id, fix.delivery_id) == ("host", "exo", node.delivery_id)


def test_a_refused_postback_without_a_lint_hint_takes_its_fix_from_the_cause_catalogue(make_s2s, standin) -> None:
    pm, s2s = make_s2s()
    standin.script("/pb", [], default=(410, "gone"))
    s2s.add_source("exo", postback_url=standin.url + "/pb?c={external_id}", statuses=["sale"])
    _click(pm, "s1")
    _convert(pm, "s1", "sale")
    s2s.drain(timeout=5)
    explanation = s2s.explain("s1")
    assert explanation.failing is not None and explanation.failing.cause == "http_gone"
    fix = explanation.fix
    assert fix is not None and (fix.setting, fix.rule_id, fix.delivery_id) == ("postback_url", "source:exo", 1)
    assert fix.action == "Set the source's current postback URL; then resend delivery #1."


def test_a_click_with_no_source_postback_and_no_conversion(make_s2s) -> None:
    pm, s2s = make_s2s()
    _click(pm, "s1")
    explanation = s2s.explain("s1")
    tree = explanation.tree
    assert tree is not None
    assert [(n.kind, n.state, n.title) for n in tree.children] == [
        ("setup", "problem", "Source postback"),
        ("setup", "info", "Campaign postbacks"),
        ("setup", "ok", "Click id"),
        ("no-conversion", "problem", "No conversion"),
    ]
    # The missing source postback comes first in the chain, so it is the failing step.
    assert explanation.failing is tree.children[0]
    assert explanation.fix is not None and (explanation.fix.setting, explanation.fix.source_id) == (
        "source_postback",
        "exo",
    )
