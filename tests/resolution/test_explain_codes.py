"""``explain`` classifies deliveries and conversion events by their stored cause codes, never by
the wording of their reasons: rewording a sentence changes nothing it decides."""

from __future__ import annotations

from sqlalchemy import update

from s2s_plugin.storage import tables as t
from tests.support.flow import click, convert


def _reword(s2s, table, text: str) -> None:
    with s2s.engine.begin() as conn:
        conn.execute(update(table).values(reason=text))


def test_a_status_the_rule_does_not_fire_for_is_a_choice_by_its_code(make_s2s, standin):
    pm, s2s = make_s2s()
    s2s.add_source("exo", postback_url=standin.url + "/pb?c={external_id}", statuses=["sale"])
    s2s.add_postback("summer", url=standin.url + "/lead?c={external_id}", statuses=["lead"])
    pm.hook.on_click(click=click("s1"))
    convert(pm, "s1", "sale")
    s2s.drain(timeout=5)
    with s2s.engine.begin() as conn:
        conn.execute(update(t.deliveries).where(t.deliveries.c.state == "skipped").values(reason="reworded"))
    explanation = s2s.explain("s1")
    assert (
        explanation.headline
        == "Every postback for this click was delivered (1); 1 other(s) are not enabled for the status that arrived."
    )
    (skipped,) = [d for d in explanation.data["deliveries"] if d["state"] == "skipped"]
    assert skipped["cause"] == "status_not_enabled"

    # The same delivery with another code is a problem of its own, whatever its sentence says.
    with s2s.engine.begin() as conn:
        conn.execute(update(t.deliveries).where(t.deliveries.c.state == "skipped").values(cause="rule_disabled"))
    assert s2s.explain("s1").headline.endswith("not sent: reworded.")


def test_a_plugin_failure_on_a_conversion_is_read_from_the_events_code(make_s2s, standin):
    pm, s2s = make_s2s()
    s2s.add_source("exo", postback_url=standin.url + "/pb?c={external_id}", statuses=["sale"])
    pm.hook.on_click(click=click("s1"))
    convert(pm, "s1", "sale")
    s2s.drain(timeout=5)
    assert s2s.explain("s1").headline.startswith("Every postback for this click was delivered")
    # The words of a plugin failure alone are not one...
    _reword(s2s, t.events, "first conversion of this click; plugin 'x' failed in postback_rules: boom")
    assert s2s.explain("s1").headline.startswith("Every postback for this click was delivered")
    # ...the code is, whatever the words.
    with s2s.engine.begin() as conn:
        conn.execute(update(t.events).values(cause="plugin_failed", reason="a sentence in other words"))
    assert "a sentence in other words" in s2s.explain("s1").headline
