"""Claimed deliveries waiting for a sending slot, one queue per target host, served in turns.

A dispatcher holds more claimed deliveries than it has slots, so that a slot never waits for the
database. Served first come first served, the held rows of a source that hangs would take every
slot that frees up; here each host has its own queue, and free slots go to the hosts in turn
(round robin), each host taking at most what its room allows at that moment.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterator
from typing import Any


class FairQueue:
    """Rows waiting to be sent, by host, with a ring of the hosts that have some."""

    def __init__(self) -> None:
        self._by_host: dict[str, collections.deque[Any]] = {}
        self._ring: collections.deque[str] = collections.deque()
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def __bool__(self) -> bool:
        return self._size > 0

    def __iter__(self) -> Iterator[Any]:
        for rows in self._by_host.values():
            yield from rows

    def append(self, host: str, row: Any) -> None:
        """Queue ``row`` behind the rows of its host."""
        rows = self._by_host.get(host)
        if rows is None:
            rows = self._by_host[host] = collections.deque()
            self._ring.append(host)
        rows.append(row)
        self._size += 1

    def hosts(self) -> list[str]:
        """The hosts with rows waiting."""
        return list(self._by_host)

    def held(self, host: str) -> int:
        """How many rows of ``host`` are waiting."""
        rows = self._by_host.get(host)
        return len(rows) if rows else 0

    def take(self, host: str) -> list[Any]:
        """Remove and return every row of ``host``."""
        rows = self._by_host.pop(host, None)
        if not rows:
            return []
        self._ring.remove(host)
        self._size -= len(rows)
        return list(rows)

    def take_last(self, host: str, count: int) -> list[Any]:
        """Remove and return up to ``count`` of ``host``'s rows, the last queued first."""
        rows = self._by_host.get(host)
        if not rows or count <= 0:
            return []
        taken = [rows.pop() for _ in range(min(count, len(rows)))]
        if not rows:
            del self._by_host[host]
            self._ring.remove(host)
        self._size -= len(taken)
        return taken

    def drop(self, unwanted: Callable[[Any], bool]) -> list[Any]:
        """Remove and return the rows for which ``unwanted(row)`` is true."""
        dropped = [row for row in self if unwanted(row)]
        if dropped:
            gone = {id(row) for row in dropped}
            for host in list(self._by_host):
                rows = self._by_host[host]
                kept = [row for row in rows if id(row) not in gone]
                if len(kept) == len(rows):
                    continue
                if kept:
                    self._by_host[host] = collections.deque(kept)
                else:
                    del self._by_host[host]
                    self._ring.remove(host)
            self._size -= len(dropped)
        return dropped

    def clear(self) -> list[Any]:
        """Remove and return every row."""
        rows = list(self)
        self._by_host.clear()
        self._ring.clear()
        self._size = 0
        return rows

    def take_turns(self, free: int, room: Callable[[str], int], fresh_only: Callable[[], bool]) -> list[Any]:
        """Take up to ``free`` rows, one host at a time in ring order, each host at most ``room(host)``.

        ``room`` is asked once per host per call. While ``fresh_only()`` is true, a host's first
        attempts are taken and its retries left waiting. The ring keeps turning between calls, so
        the host after the last one served is first the next time.
        """
        taken: list[Any] = []
        allowance: dict[str, int] = {}
        idle = 0  # hosts in a row that could take nothing: a whole turn of them ends the call
        ring = self._ring
        while free > 0 and ring and idle < len(ring):
            host = ring[0]
            ring.rotate(-1)
            left = allowance.get(host)
            if left is None:
                left = allowance[host] = room(host)
            if left <= 0:
                idle += 1
                continue
            row = self._pop(host, fresh_only())
            if row is None:
                idle += 1
                continue
            allowance[host] = left - 1
            taken.append(row)
            free -= 1
            idle = 0
        return taken

    def _pop(self, host: str, fresh_only: bool) -> Any:
        rows = self._by_host[host]
        if not fresh_only:
            row = rows.popleft()
        else:
            row = next((r for r in rows if not r.lane), None)
            if row is None:
                return None
            rows.remove(row)
        self._size -= 1
        if not rows:
            del self._by_host[host]
            self._ring.remove(host)
        return row
