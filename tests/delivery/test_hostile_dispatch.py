"""The hostile-source catalogue through the real dispatcher, on SQLite and PostgreSQL: every
broken answer ends as recorded attempts with the right outcomes, the requests that reached each
source equal the attempts recorded (no postback sent unseen), and no delivery is left claimed.
TLS failures likewise, counted by connection."""

from __future__ import annotations

import collections
import ssl
from contextlib import ExitStack

import httpx
import pytest
import trustme
from sqlalchemy import select

from s2s_plugin.storage import tables as t
from tests.support.hostile import CATALOGUE, HostileSource, reset, route_public_name, warm_up

from .conftest import Hopper, click, convert

RETRIES = [0, 0.05, 0.05]  # the first attempt at once; a retried answer is tried three times, then fails
#: The recorded outcomes each sender outcome comes to with that schedule.
RECORDED = {"delivered": ["delivered"], "failed": ["failed"], "retry": ["retrying", "retrying", "failed"]}


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request):
    return None if request.param == "sqlite" else request.getfixturevalue("fresh_pg_url")


def test_every_hostile_answer_is_recorded_and_nothing_is_sent_unseen(make_s2s, host, monkeypatch, database_url):
    route_public_name(monkeypatch)  # private targets refused, as in production
    warm_up()
    # 2 s: 38 sources answer at once on a shared machine; the dripping ones still take 3 x 2 s.
    pm, s2s = make_s2s(
        database_url, allow_private_targets=False, timeout=2.0, connect_timeout=1.0, retry_schedule=RETRIES
    )
    pm.register(Hopper())
    with ExitStack() as stack:
        # A source (a host) per case: one source's failures do not hold up another's.
        sources = {case.name: stack.enter_context(HostileSource({f"/{case.name}": case.answer})) for case in CATALOGUE}
        for case in CATALOGUE:
            url = sources[case.name].url_for("hostile.example") + f"/{case.name}?c={{external_id}}"
            s2s.add_source(
                case.name, template="hopper" if case.follow_redirects else None, postback_url=url, statuses=["sale"]
            )
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
        print(
            f"{case.name}: {received[case.name]} requests, attempts {[a.outcome for a in made]}: {made[-1].reason if made else None}"
        )
        unseen += received[case.name] - len(made) * case.hops
        assert [a.outcome for a in made] == RECORDED[case.outcome], (case.name, [a.reason for a in made])
        assert all(
            case.reason in a.reason and a.http_status == case.http_status and a.cause == case.cause for a in made
        ), (
            case.name,
            [a.reason for a in made],
        )
        assert received[case.name] == len(made) * case.hops, case.name  # each attempt's requests, no more
    print(f"invisible sends: {unseen}")
    assert unseen == 0
    with s2s.engine.connect() as conn:
        states = collections.Counter(conn.execute(select(t.deliveries.c.state)).scalars())
        stored = conn.execute(select(t.attempts.c.response_body)).scalars().all()
    assert set(states) <= {"delivered", "failed"} and sum(states.values()) == len(CATALOGUE)  # none left leased or due
    assert len(stored) == len(host.attempts)


def _swallow_then_reset(sock):
    sock.recv(4096)  # the ClientHello
    reset(sock)
    return True


def test_tls_failures_are_recorded_once_per_connection(make_s2s, host, monkeypatch):
    # Plain HTTP on an https URL, a handshake reset, a certificate from an unknown authority; and a
    # good TLS source beside them. No request reaches a failing one, so connections are counted.
    ca = trustme.CA()
    real_context = httpx.create_ssl_context

    def trusting_context(*args, **kwargs):
        context = real_context(*args, **kwargs)
        ca.configure_trust(context)
        return context

    def serving(authority):
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        authority.issue_cert("hostile.example").configure_cert(context)
        return context

    monkeypatch.setattr(httpx, "create_ssl_context", trusting_context)
    route_public_name(monkeypatch)
    pm, s2s = make_s2s(allow_private_targets=False, timeout=2.0, connect_timeout=1.0, retry_schedule=RETRIES)
    with (
        HostileSource() as plain,
        HostileSource(on_connect=_swallow_then_reset) as resetting,
        HostileSource(tls=serving(trustme.CA())) as unknown,
        HostileSource(tls=serving(ca)) as good,
    ):
        sources = {"plain-on-https": plain, "handshake-reset": resetting, "unknown-authority": unknown, "good": good}
        for name, source in sources.items():
            url = f"https://hostile.example:{source.port}/pb?c={{external_id}}"
            s2s.add_source(name, postback_url=url, statuses=["sale"])
            pm.hook.on_click(click=click(name, source=name))
            convert(pm, name)
        s2s.drain(timeout=15)
        connections = {name: source.connections for name, source in sources.items()}
        requests = {name: len(source.requests) for name, source in sources.items()}
    made = collections.defaultdict(list)
    for attempt in host.attempts:
        made[attempt.subid].append(attempt)
    assert [a.outcome for a in made["good"]] == ["delivered"] and requests["good"] == 1
    for name, words in [
        ("plain-on-https", "WRONG_VERSION_NUMBER"),
        ("handshake-reset", "reset"),
        ("unknown-authority", "CERTIFICATE_VERIFY_FAILED"),
    ]:
        assert [a.outcome for a in made[name]] == RECORDED["retry"], (name, [a.reason for a in made[name]])
        assert all("TLS handshake failed" in a.reason and words.lower() in a.reason.lower() for a in made[name])
        assert requests[name] == 0 and connections[name] == len(made[name]), name
