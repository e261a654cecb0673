"""``on_postback_sent`` costs nothing when no plugin listens: attempts are written as reported
(none is built for nobody, none is left to mark or to report later), and a plugin that registers
later hears every attempt made from then on."""

from __future__ import annotations

from typing import Any

import pluggy
from sqlalchemy import func, select

import hookspecs
import s2s_plugin
from s2s_plugin.delivery import dispatcher
from s2s_plugin.storage import queue
from s2s_plugin.storage import tables as t
from tests.support.plugin_host import RecordingHost

from .conftest import click, convert


def _install(url: str) -> tuple[pluggy.PluginManager, Any]:
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    return pm, s2s_plugin.install(pm, database_url=url, allow_private_targets=True)


def _reported(service: Any) -> dict[bool, int]:
    with service.engine.connect() as conn:
        rows = conn.execute(select(t.attempts.c.reported, func.count()).group_by(t.attempts.c.reported))
        return {bool(reported): count for reported, count in rows}


def test_with_no_listener_attempts_are_written_as_reported(
    any_database_url: str, standin: Any, monkeypatch: Any
) -> None:
    built, marked = [], []
    monkeypatch.setattr(dispatcher, "_attempt", lambda *a: built.append(a))
    mark = queue.mark_reported
    monkeypatch.setattr(queue, "mark_reported", lambda db, ids: (marked.extend(ids), mark(db, ids))[1])
    pm, service = _install(any_database_url)
    try:
        service.add_source("exo", postback_url=standin.url + "/pb?cid={external_id}", statuses=["sale"])
        for n in range(20):
            pm.hook.on_click(click=click(f"s{n}", external_id=f"E{n}"))
            convert(pm, f"s{n}")
        service.drain(timeout=10)
        assert len(standin.requests) == 20
        assert _reported(service) == {True: 20}
        assert built == [] and marked == []  # no report built for nobody, no second write to mark it
        assert queue.take_unreported(service.dispatcher.database, older_than=0) == []
    finally:
        service.close()


def test_a_listener_registered_later_hears_every_attempt_from_then_on(any_database_url: str, standin: Any) -> None:
    pm, service = _install(any_database_url)
    try:
        service.add_source("exo", postback_url=standin.url + "/pb?cid={external_id}", statuses=["sale"])
        for n in range(5):
            pm.hook.on_click(click=click(f"s{n}", external_id=f"E{n}"))
        convert(pm, "s0")
        service.drain(timeout=10)
        listener = RecordingHost()
        pm.register(listener)
        for n in range(1, 5):
            convert(pm, f"s{n}")
        service.drain(timeout=10)
        assert sorted(a.subid for a in listener.attempts) == ["s1", "s2", "s3", "s4"]
        assert all(a.outcome == "delivered" for a in listener.attempts)
        # The heard attempts are marked reported too: nothing is reported twice.
        assert _reported(service) == {True: 5}
    finally:
        service.close()
