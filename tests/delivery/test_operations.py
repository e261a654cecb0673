"""Operations: resend one delivery or all matching a filter, test-send a rule, prune the log;
through the service and the s2s-postback command line."""

from __future__ import annotations

import json
import subprocess
import time

import pytest
from sqlalchemy import func, select, update

from s2s_plugin import InputError
from s2s_plugin.storage import tables as t

from .conftest import ROOT, cli, click, convert, process_env


def _run(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(cli(*args), cwd=ROOT, env=process_env(**env), capture_output=True, text=True, timeout=60)


@pytest.fixture
def two_sources(make_s2s, standin_factory):
    good, bad = standin_factory(), standin_factory(default=(404, "unknown goal"))
    pm, s2s = make_s2s()
    s2s.add_source("good", postback_url=good.url + "/pb?c={external_id}", statuses=["sale"])
    s2s.add_source("bad", postback_url=bad.url + "/pb?c={external_id}", statuses=["sale"])
    for n in range(3):
        for source in ("good", "bad"):
            pm.hook.on_click(click=click(f"{source}{n}", f"X{n}", source=source))
            convert(pm, f"{source}{n}")
    s2s.drain(timeout=5)
    return pm, s2s, good, bad


def test_resend_one_delivery(two_sources, host):
    pm, s2s, good, bad = two_sources
    delivery_id = next(a.delivery_id for a in host.attempts if a.subid == "good0")
    assert s2s.resend(delivery_id)
    s2s.drain(timeout=5)
    assert [r.params["c"] for r in good.requests].count("X0") == 2
    assert [a.attempt for a in host.attempts if a.delivery_id == delivery_id] == [1, 2]
    assert not s2s.resend(999_999)


def test_resend_by_source_and_outcome(two_sources, host):
    pm, s2s, good, bad = two_sources
    assert s2s.resend_matching(outcome="failed", source_id="good") == []
    ids = s2s.resend_matching(source_id="bad", outcome="failed")
    assert len(ids) == 3
    bad.set_default((200, "OK"))
    s2s.drain(timeout=5)
    assert len(bad.requests) == 6 and len(good.requests) == 3
    with s2s.engine.connect() as conn:
        states = dict(
            conn.execute(
                select(t.deliveries.c.source_id, func.count())
                .where(t.deliveries.c.state == "delivered")
                .group_by(t.deliveries.c.source_id)
            ).all()
        )
    assert states == {"good": 3, "bad": 3}


def test_resend_by_time_range(two_sources, host):
    pm, s2s, good, bad = two_sources
    now = time.time()
    with s2s.engine.begin() as conn:  # two of the failed ones were queued yesterday
        conn.execute(
            update(t.deliveries).where(t.deliveries.c.subid.in_(["bad0", "bad1"])).values(created_at=now - 86400)
        )
    yesterday = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now - 90000))
    ids = s2s.resend_matching(outcome="failed", since=yesterday, until=now - 3600, dry_run=True)
    assert len(ids) == 2
    assert len(s2s.resend_matching(outcome="failed", since=now - 60)) == 1


def test_resend_and_the_log_by_subid_find_that_clicks_deliveries_only(two_sources):
    pm, s2s, good, bad = two_sources
    ids = s2s.resend_matching(subid="bad1", dry_run=True)
    with s2s.engine.connect() as conn:
        assert list(conn.execute(select(t.deliveries.c.subid).where(t.deliveries.c.id.in_(ids))).scalars()) == ["bad1"]
    logged = s2s.attempts(subid="good2")
    assert logged and {a.subid for a in logged} == {"good2"}
    assert s2s.resend_matching(subid="nobody", dry_run=True) == []


def test_resend_refuses_no_filter_and_bad_input(two_sources):
    pm, s2s, good, bad = two_sources
    with pytest.raises(InputError, match="needs a filter"):
        s2s.resend_matching()
    with pytest.raises(InputError, match="not a date"):
        s2s.resend_matching(since="yesterday-ish")
    with pytest.raises(InputError, match="cannot be resent"):
        s2s.resend_matching(outcome="skipped")


def test_resend_command(two_sources, tmp_path):
    pm, s2s, good, bad = two_sources
    url = str(s2s.engine.url)
    listed = _run("resend", "--database-url", url, "--source", "bad", "--outcome", "failed", "--dry-run")
    assert listed.returncode == 0 and "would resend 3 deliveries" in listed.stdout
    done = _run("resend", "--database-url", url, "--source", "bad", "--outcome", "failed")
    assert "resent 3 deliveries" in done.stdout
    with s2s.engine.connect() as conn:
        assert conn.execute(select(func.count()).where(t.deliveries.c.state == "due")).scalar() == 3
    nothing = _run("resend", "--database-url", url)
    assert (
        nothing.returncode == 2
        and "give delivery ids, or filters" in nothing.stderr
        and "Traceback" not in nothing.stderr
    )


def test_test_send_uses_sample_values_and_reports_the_answer(make_s2s, standin, host):
    standin.script("/pb", [(200, "OK")], default=(500, "broken"))
    pm, s2s = make_s2s()
    s2s.add_source(
        "exo",
        postback_url=standin.url + "/pb?c={external_id}&p={revenue}&z={sub_id_1}&k=K1",
        statuses=["sale"],
        secrets=["k"],
    )
    result = s2s.test_send("source:exo", payout="4.20", external_id="abc", params={"sub_id_1": "zone9"})
    assert result.outcome == "delivered" and result.http_status == 200 and result.cause == "accepted"
    assert standin.requests[0].params == {"c": "abc", "p": "4.2", "z": "zone9", "k": "K1"}
    assert "K1" not in result.url and "[REDACTED]" in result.url
    assert host.attempts == []  # not queued, not logged
    with s2s.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(t.deliveries)).scalar() == 0
    again = s2s.test_send("source:exo")
    assert again.outcome == "retry" and again.http_status == 500 and "500" in again.reason
    assert again.cause == "http_server_error"


def test_test_send_command(make_s2s, standin):
    standin.set_default((403, "bad token"))
    pm, s2s = make_s2s()
    rule = s2s.add_postback("summer", url=standin.url + "/camp?c={external_id}&s={status}", statuses=["lead"])
    out = _run("test-send", rule.id, "--database-url", str(s2s.engine.url), "--allow-private-targets", "--json")
    assert out.returncode == 1  # the source did not accept it
    result = json.loads(out.stdout)
    assert result["http_status"] == 403 and result["response_body"] == "bad token" and result["outcome"] == "failed"
    assert standin.requests[0].params == {"c": "test-click-id", "s": "lead"}
    refused = _run("test-send", rule.id, "--database-url", str(s2s.engine.url))
    assert refused.returncode == 1 and "private or internal address" in refused.stdout
    unknown = _run("test-send", "postback:99", "--database-url", str(s2s.engine.url))
    assert unknown.returncode == 2 and "no postback rule 'postback:99'" in unknown.stderr


def test_prune_by_age(two_sources, host):
    pm, s2s, good, bad = two_sources
    old = time.time() - 40 * 86400
    with s2s.engine.begin() as conn:
        conn.execute(update(t.attempts).where(t.attempts.c.id <= 4).values(started_at=old))
        # One old attempt belongs to a delivery still pending: it stays whatever its age.
        pending = conn.execute(select(t.attempts.c.delivery_id).where(t.attempts.c.id == 4)).scalar()
        conn.execute(
            update(t.deliveries)
            .where(t.deliveries.c.id == pending)
            .values(state="due", next_attempt_at=time.time() + 999)
        )
    out = _run("prune", "--older-than", "30d", "--database-url", str(s2s.engine.url))
    assert out.returncode == 0 and "deleted 3 attempt log entries older than 30d" in out.stdout
    with s2s.engine.connect() as conn:
        left = list(conn.execute(select(t.attempts.c.id).order_by(t.attempts.c.id)).scalars())
    assert left == [4, 5, 6]
    assert s2s.prune("30d").attempts == 0
    bad_age = _run("prune", "--older-than", "a while", "--database-url", str(s2s.engine.url))
    assert bad_age.returncode == 2 and "not a duration" in bad_age.stderr
