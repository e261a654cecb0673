"""The hostile-source catalogue through the real dispatcher, on SQLite and PostgreSQL: every
broken answer ends as recorded attempts with the right outcomes, the requests that reached each
source equal the attempts recorded (no postback sent unseen), and no delivery is left claimed."""

from __future__ import annotations

import collections
from contextlib import ExitStack

import pytest
from sqlalchemy import select

import hookspecs
from s2s_plugin import tables as t
from tests.support.hostile import CATALOGUE, HostileSource, route_public_name, warm_up

from .conftest import click, convert

RETRIES = [0, 0.05, 0.05]  # the first attempt at once; a retried answer is tried three times, then fails
#: The recorded outcomes each sender outcome comes to with that schedule.
RECORDED = {"delivered": ["delivered"], "failed": ["failed"], "retry": ["retrying", "retrying", "failed"]}


class Hopper:
    @hookspecs.hookimpl
    def register_source_templates(self):
        return [hookspecs.SourceTemplate(name="hopper", postback_url="http://unused.example/?c={external_id}", follow_redirects=True)]


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request):
    return None if request.param == "sqlite" else request.getfixturevalue("fresh_pg_url")


def test_every_hostile_answer_is_recorded_and_nothing_is_sent_unseen(make_s2s, host, monkeypatch, database_url):
    route_public_name(monkeypatch)  # private targets refused, as in production
    warm_up()
    # 2 s: 38 sources answer at once on a shared machine; the dripping ones still take 3 x 2 s.
    pm, s2s = make_s2s(database_url, allow_private_targets=False, timeout=2.0, connect_timeout=1.0, retry_schedule=RETRIES)
    pm.register(Hopper())
    with ExitStack() as stack:
        # A source (a host) per case: one source's failures do not hold up another's.
        sources = {case.name: stack.enter_context(HostileSource({f"/{case.name}": case.answer})) for case in CATALOGUE}
        for case in CATALOGUE:
            url = sources[case.name].url_for("hostile.example") + f"/{case.name}?c={{external_id}}"
            s2s.add_source(case.name, template="hopper" if case.follow_redirects else None, postback_url=url, statuses=["sale"])
            pm.hook.on_click(click=click(case.name, source=case.name))
            convert(pm, case.name)
        s2s.drain(timeout=20)
        received = {name: len(source.requests) for name, source in sources.items()}

    attempts = collections.defaultdict(list)
    for attempt in host.attempts:
        attempts[attempt.subid].append(attempt)
    unseen = 0
    for case in CATALOGUE:
        made = attempts[case.name]
        print(f"{case.name}: {received[case.name]} requests, attempts {[a.outcome for a in made]}: {made[-1].reason if made else None}")
        unseen += received[case.name] - len(made) * case.hops
        assert [a.outcome for a in made] == RECORDED[case.outcome], (case.name, [a.reason for a in made])
        assert all(case.reason in a.reason and a.http_status == case.http_status for a in made), (case.name, [a.reason for a in made])
        assert received[case.name] == len(made) * case.hops, case.name  # each attempt's requests, no more
    print(f"invisible sends: {unseen}")
    assert unseen == 0
    with s2s.engine.connect() as conn:
        states = collections.Counter(conn.execute(select(t.deliveries.c.state)).scalars())
        stored = conn.execute(select(t.attempts.c.response_body)).scalars().all()
    assert set(states) <= {"delivered", "failed"} and sum(states.values()) == len(CATALOGUE)  # none left leased or due
    assert len(stored) == len(host.attempts)
