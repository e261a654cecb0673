"""The latency-aware per-host limit, fed answer times directly (no network, no clock)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from s2s_plugin.delivery.hostlimits import ConcurrencyLimit


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0


def _rounds(
    limit: ConcurrencyLimit, rounds: int, answer_ms: Callable[[int], float], clock: _Clock, saturated: bool = True
) -> list[int]:
    """Feed ``rounds`` rounds of answers taking ``answer_ms(limit in force)``; the limit after each."""
    seen = []
    for _ in range(rounds):
        in_force = limit.current
        for _ in range(limit.round_answers):
            limit.answered(answer_ms(in_force), saturated=saturated, now=clock.now)
            clock.now += answer_ms(in_force) / 1000 / in_force
        seen.append(limit.current)
    return seen


def test_grows_by_doubling_while_answers_stay_at_their_no_load_time_up_to_the_cap():
    limit, clock = ConcurrencyLimit(cap=64, start=8), _Clock()
    # A source answering in 50 ms whatever the concurrency: the first round only measures, then
    # every round doubles the limit, up to the cap.
    assert _rounds(limit, 5, lambda _: 50.0, clock) == [8, 16, 32, 64, 64]


def test_does_not_grow_while_nothing_waits_for_the_host():
    limit, clock = ConcurrencyLimit(cap=64, start=4), _Clock()
    assert _rounds(limit, 5, lambda _: 50.0, clock, saturated=False) == [4] * 5


def test_a_source_that_answers_at_once_keeps_a_low_limit():
    # Our own CPU is the bottleneck: each attempt added waits for the others' turns, so answer
    # times grow with the attempts in flight (an answer now and then waits for no one) and more
    # attempts add no throughput. The limit comes down to a few and stays there (a round at half
    # of it now and then checks the no-load time).
    rng = random.Random(7)
    limit, clock = ConcurrencyLimit(cap=64), _Clock()
    seen = _rounds(limit, 200, lambda in_flight: 0.4 * (1 + (in_flight - 1) * rng.random() * 2), clock)
    assert max(seen) <= 16 and set(seen[-100:]) <= {1, 2}, seen
    assert sum(seen[-100:]) / 100 < 1.2, seen
    # It comes down within a few rounds: slow start's first doubling shows the queueing, and
    # each shrink is followed by a round at half the limit that corrects the no-load time.
    assert seen[10:].count(1) >= len(seen[10:]) * 0.85, seen[:20]


def test_one_slow_round_past_slow_start_does_not_shrink_the_limit():
    limit, clock = ConcurrencyLimit(cap=64, start=8), _Clock()
    limit.overloaded(started_at=time.time())  # past slow start, at 4
    assert _rounds(limit, 8, lambda _: 50.0, clock)[-1] == 11
    # A pause of our own process: one round's answers took three times as long.
    assert _rounds(limit, 1, lambda _: 150.0, clock) == [11]
    assert _rounds(limit, 2, lambda _: 50.0, clock) == [12, 13]


def test_more_attempts_that_bring_no_more_answers_per_second_go_back_down_to_one():
    # Our own CPU is the bottleneck and the waiting happens before each attempt is sent (a sender
    # waiting for its turn): answer times stay at 0.3 ms whatever the limit, so only the answers
    # per second show that more attempts bring nothing; they come at 2,000/s whatever the limit.
    limit, clock = ConcurrencyLimit(cap=64), _Clock()
    seen = []
    for _ in range(100):
        seen.append(limit.current)
        for _ in range(limit.round_answers):
            limit.answered(0.3, saturated=True, now=clock.now)
            clock.now += 1 / 2000
    # Slow start's first doubling brought nothing: back to 4, and a round at 2 answering as many
    # per second keeps it at 2; then 3 brought nothing, and 1 answers as many as 2.
    assert seen[:7] == [4, 4, 8, 2, 2, 3, 1], seen
    assert seen[7:].count(1) >= 0.9 * len(seen[7:]), seen
    assert max(seen[7:]) == 2, seen


def test_a_doubling_that_brings_too_few_more_answers_ends_slow_start_where_it_was():
    # Answers take 50 ms up to 40 at once; beyond, the source queues. 32 -> 64 brings 25 % more.
    limit, clock = ConcurrencyLimit(cap=128, start=8), _Clock()
    seen = _rounds(limit, 8, lambda in_flight: 50.0 * max(1.0, in_flight / 40), clock)
    assert seen[:6] == [8, 16, 32, 64, 16, 32], seen  # back to 32 (checked at 16 first)
    assert not limit.starting
    assert seen[6:] == [33, 34], seen  # then one more per round, while it pays


def test_a_limit_that_proved_too_many_is_tried_again_less_and_less_often():
    # Purely CPU-bound: every attempt added doubles the others' answer times.
    limit, clock = ConcurrencyLimit(cap=64), _Clock()
    seen = _rounds(limit, 200, lambda in_flight: 0.5 * in_flight, clock)
    tries = [n for n in range(20, len(seen)) if seen[n] == 2]
    gaps = [later - earlier for earlier, later in zip(tries, tries[1:])]
    assert tries and all(b >= a for a, b in zip(gaps, gaps[1:])), seen
    assert gaps[-1] >= 32, seen  # at most one round in 32 at the limit that only waits
    assert set(seen[20:]) == {1, 2}, seen


def test_a_source_answering_in_50_ms_reaches_64_within_a_few_rounds_of_answers():
    limit, clock = ConcurrencyLimit(cap=64), _Clock()
    answers = 0
    while limit.current < 64:
        limit.answered(50.0, saturated=True, now=clock.now)
        clock.now += 0.05 / limit.current
        answers += 1
    # A limit's worth to warm up, then 8 answers a round while slow start doubles 4 -> 64.
    assert answers <= 4 + 8 + 8 + 16 + 32, answers
    assert clock.now - 1000.0 < 0.35


def test_a_source_that_queues_past_its_capacity_settles_near_it():
    # Answers in 50 ms up to 40 at once; beyond, the source queues: 50 ms x in_flight / 40.
    limit, clock = ConcurrencyLimit(cap=128, start=8), _Clock()
    seen = _rounds(limit, 40, lambda in_flight: 50.0 * max(1.0, in_flight / 40), clock)
    settled = seen[-18:]
    assert max(settled) <= 48, seen
    # One round in five probes at half the limit whether the no-load time still holds.
    assert sum(value >= 36 for value in settled) >= len(settled) - 4, seen


def test_shrinks_when_the_source_slows_and_follows_it_once_slower_for_good():
    limit, clock = ConcurrencyLimit(cap=64, start=8), _Clock()
    _rounds(limit, 5, lambda _: 50.0, clock)
    assert limit.current == 64
    # The source now answers in 200 ms: 3 of every 4 attempts in flight only wait. Slow start ends
    # at once: halved, and the next round, at half of that, checks the no-load time.
    _rounds(limit, 1, lambda _: 200.0, clock)
    assert limit.current == 16
    # Back to 32 after the check. Past slow start one slow round is not a trend: the second in a
    # row halves it again (checked at 8 first).
    assert _rounds(limit, 4, lambda _: 200.0, clock) == [32, 32, 8, 16]
    # Two windows of the no-load time later, 200 ms is the host's no-load time: it grows again.
    clock.now += 25.0
    _rounds(limit, 2, lambda _: 200.0, clock)
    low = limit.current
    assert limit.no_load_ms == 200.0
    assert _rounds(limit, 10, lambda _: 200.0, clock)[-1] > low


def test_halves_once_per_round_trip_on_overload_then_grows_by_one_per_round():
    limit, clock = ConcurrencyLimit(cap=64, start=32), _Clock()
    before = time.time() - 1
    limit.overloaded(started_at=time.time())
    assert limit.current == 16
    limit.overloaded(started_at=before)  # sent before the cut: the cut already counted that trip
    assert limit.current == 16
    limit.overloaded(started_at=time.time() + 0.001)
    assert limit.current == 8
    # After a cut no more doubling: one more per round while answers stay quick.
    assert _rounds(limit, 4, lambda _: 10.0, clock) == [8, 9, 10, 11]
    for _ in range(100):
        limit.overloaded(started_at=time.time() + 1)
    assert limit.current == 1
