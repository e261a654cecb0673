"""The core hooks as a third-party plugin sees them: on_click, on_conversion, on_postback_sent."""

from __future__ import annotations

import logging
from decimal import Decimal

import hookspecs
from hookspecs import Conversion

from .support import convert, make_click, registered


def test_on_click_is_remembered_so_a_conversion_resolves_by_subid_alone(make_s2s, standin, host):
    pm, s2s = make_s2s()
    s2s.add_source("exo", postback_url=standin.url + "/pb?c={external_id}&z={sub_id_1}", statuses=["sale"])
    seen = []

    class Watcher:
        @hookspecs.hookimpl
        def on_click(self, click):
            seen.append(click.subid)

    with registered(pm, Watcher(), "watcher"):
        pm.hook.on_click(click=make_click("s1", "C1", sub_id_1="zone 9"))
    pm.hook.on_conversion(conversion=Conversion(subid="s1", status="sale"))  # no click passed
    s2s.drain(timeout=5)
    assert seen == ["s1"]
    assert [r.target for r in standin.requests] == ["/pb?c=C1&z=zone%209"]


def test_on_conversion_queues_durably_and_sends_nothing_on_the_hosts_path(make_s2s, standin, host, tmp_path):
    pm, s2s = make_s2s()
    s2s.add_source("exo", postback_url=standin.url + "/pb?c={external_id}", statuses=["sale"])
    pm.hook.on_click(click=make_click("s1", "C1"))
    pm.hook.on_conversion(conversion=Conversion(subid="s1", status="sale", payout=Decimal("2.5")))
    assert standin.requests == []  # nothing sent by on_conversion itself
    s2s.close()  # a restart: the queued postback is in the database, not in memory
    pm2, s2s2 = make_s2s()
    s2s2.drain(timeout=5)
    assert [r.target for r in standin.requests] == ["/pb?c=C1"]


def test_on_postback_sent_a_failing_host_log_does_not_stop_delivery_or_the_other_logs(make_s2s, standin, host, caplog):
    pm, s2s = make_s2s()
    s2s.add_source("exo", postback_url=standin.url + "/pb?c={external_id}", statuses=["sale"])

    class BrokenLog:
        @hookspecs.hookimpl(tryfirst=True)
        def on_postback_sent(self, attempt):
            raise OSError("log disk full")

    with caplog.at_level(logging.WARNING), registered(pm, BrokenLog(), "broken_log"):
        pm.hook.on_click(click=make_click("s1", "C1"))
        convert(pm, "s1", "sale")
        s2s.drain(timeout=5)
    assert [(a.subid, a.outcome) for a in host.attempts] == [("s1", "delivered")]  # the other log got it
    assert len(standin.requests) == 1
    assert "plugin 'broken_log' failed in on_postback_sent: OSError: log disk full" in caplog.text
