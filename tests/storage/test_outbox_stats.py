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
