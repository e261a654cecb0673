"""Counting requests per client in memory: the sign-in throttle and the refused-postback throttle.

Clients are keyed by ``client_key``: an IPv6 client by its /64, since one subscriber is given a
whole /64 and can pick a new address from it for every request. Memory stays bounded: keys idle
for a whole window are forgotten, and past ``max_keys`` the least recently seen ones go first.
"""

from __future__ import annotations

import collections
import contextlib
import ipaddress
import threading
import time
from collections.abc import Callable, Iterator


def client_key(address: str) -> str:
    """The key a throttle counts ``address`` under: an IPv4 address as it is, an IPv6 address by
    its /64 network (``2001:db8:1:2::/64``), an IPv4-mapped IPv6 address as its IPv4, anything
    else (``unknown``) as it is."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class RecentCounts:
    """At most ``limit`` events per key in any ``window`` seconds, counted in memory.

    :param max_keys: keys kept at most; idle ones are dropped first, then the least recently seen.
    :param clock: seconds, monotonic (tests pass their own).
    """

    def __init__(
        self, limit: int, window: float, *, max_keys: int = 10_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.window = window
        self.max_keys = max_keys
        self._clock = clock
        self._events: collections.OrderedDict[str, collections.deque[float]] = collections.OrderedDict()
        self._lock = threading.Lock()

    def hit(self, key: str) -> bool:
        """Count one event for ``key``; False (and not counted) when it already had ``limit``."""
        now = self._clock()
        with self._lock:
            events = self._recent(key, now)
            if len(events) >= self.limit:
                return False
            events.append(now)
            self._events[key] = events
            self._events.move_to_end(key)
            if len(self._events) > self.max_keys:
                self._shrink(now)
            return True

    def full(self, key: str) -> bool:
        """Whether ``key`` has had ``limit`` events in the window (nothing is counted)."""
        with self._lock:
            return len(self._recent(key, self._clock())) >= self.limit

    def forget(self, key: str) -> None:
        """Drop what was counted for ``key``."""
        with self._lock:
            self._events.pop(key, None)

    def __len__(self) -> int:
        return len(self._events)

    def _recent(self, key: str, now: float) -> collections.deque[float]:
        events = self._events.get(key) or collections.deque()
        while events and events[0] <= now - self.window:
            events.popleft()
        return events

    def _shrink(self, now: float) -> None:
        # Keys are in the order they were last counted, so the idle ones are the oldest: drop
        # them from the front, then the least recently counted while there are too many. Each
        # key is dropped once, so a spray of new addresses costs O(1) per request.
        while self._events:
            events = next(iter(self._events.values()))
            if len(self._events) <= self.max_keys and events and events[-1] > now - self.window:
                break
            self._events.popitem(last=False)


class WorkSlots:
    """At most ``size`` pieces of costly work (a password hash) at once; a caller that finds
    every slot taken is told so at once instead of queueing behind the others."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._slots = threading.BoundedSemaphore(size)

    @contextlib.contextmanager
    def slot(self) -> Iterator[bool]:
        """``with slots.slot() as got:`` ``got`` is False when every slot is taken."""
        got = self._slots.acquire(blocking=False)
        try:
            yield got
        finally:
            if got:
                self._slots.release()
