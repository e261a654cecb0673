"""``PostbackService.stats()``: the outbox counts a host turns into metrics."""

from __future__ import annotations

import time
from decimal import Decimal

from hookspecs import Click, Conversion


def _convert(pm, subid: str, external_id: str) -> None:
    pm.hook.on_click(
        click=Click(subid=subid, campaign_id="summer", source_id="exo", params={"external_id": external_id})
    )
    pm.hook.on_conversion(conversion=Conversion(subid=subid, status="sale", payout=Decimal("1")))


def test_stats_count_deliveries_by_state_and_age_the_oldest_due_one(make_s2s, standin):
    pm, s2s = make_s2s()
    s2s.add_source("exo", postback_url=standin.url + "/pb?c={external_id}", statuses=["sale"])
    empty = s2s.stats()
    assert (empty.queue_depth, empty.due_now, empty.oldest_due_age) == (0, 0, 0.0)

    _convert(pm, "s1", "abc")
    _convert(pm, "s2", "")  # no click id: skipped, never due
    time.sleep(0.05)
    waiting = s2s.stats()
    assert waiting.by_state == {"due": 1, "skipped": 1}
    assert waiting.queue_depth == 1 and waiting.due_now == 1
    assert 0.05 <= waiting.oldest_due_age < 5

    s2s.drain(timeout=5)
    done = s2s.stats()
    assert done.by_state == {"delivered": 1, "skipped": 1}
    assert (done.queue_depth, done.due_now, done.oldest_due_age) == (0, 0, 0.0)


def test_stats_count_deliveries_by_cause_in_each_state(make_s2s, standin):
    from sample_host.standin import Reply

    pm, s2s = make_s2s(retry_schedule=[0])
    s2s.add_source("exo", postback_url=standin.url + "/pb?c={external_id}", statuses=["sale"])
    standin.script("/pb", [Reply(200, "OK"), Reply(400, "bad tag"), Reply(400, "bad tag")])
    for n in range(3):
        _convert(pm, f"s{n}", f"abc{n}")
    _convert(pm, "s9", "")  # no click id: skipped
    s2s.drain(timeout=5)
    stats = s2s.stats()
    assert stats.by_state == {"delivered": 1, "failed": 2, "skipped": 1}
    assert stats.by_cause == {
        "delivered": {"accepted": 1},
        "failed": {"http_refused": 2},
        "skipped": {"no_click_id": 1},
    }
    assert stats.failed_by_cause == {"http_refused": 2} and stats.skipped_by_cause == {"no_click_id": 1}
    # The attempt log filters by the same codes.
    refused = s2s.attempts(cause="http_refused")
    assert len(refused) == 2 and {a.cause for a in refused} == {"http_refused"}
    assert {a.http_status for a in refused} == {400}
    assert [a.subid for a in s2s.attempts(cause="no_click_id")] == ["s9"]
