"""A snapshot of the outbox for monitoring: how many deliveries are in each state, how late the
oldest due one is, and each target host's concurrency limit and circuit state. Read-only; hosts turn it into metrics (the sample host's ``/metrics``)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from typing import Optional

from sqlalchemy import Engine, func, select

from s2s_plugin.delivery.hostlimits import HostStatus, host_statuses
from s2s_plugin.storage import tables as t

#: Delivery states that still have work to do.
PENDING_STATES = ("due", "leased")


@dataclasses.dataclass(frozen=True)
class OutboxStats:
    """Counts of the plugin's outbox at one moment.

    :param by_state: deliveries per state (``due``, ``leased``, ``delivered``, ``failed``, ``skipped``).
    :param due_now: deliveries whose next attempt time has come (waiting for a dispatcher).
    :param oldest_due_age: seconds the most overdue of those has waited past its due time (0 when
        none): the figure that says whether delivery keeps up.
    :param hosts: target hosts by host key (``hostlimits.HostStatus``): each one's adaptive
        concurrency limit and circuit state (an open host's deliveries wait for a probe).
    """

    by_state: Mapping[str, int]
    due_now: int
    oldest_due_age: float
    hosts: Mapping[str, HostStatus] = dataclasses.field(default_factory=dict)

    @property
    def open_hosts(self) -> list[HostStatus]:
        """The hosts whose circuit is open (not answering: their deliveries wait for a probe)."""
        return [status for status in self.hosts.values() if status.is_open]

    @property
    def queue_depth(self) -> int:
        """Deliveries still to send: due (now or later, retries included) or being sent."""
        return sum(self.by_state.get(state, 0) for state in PENDING_STATES)


def outbox_stats(engine: Engine, now: Optional[float] = None) -> OutboxStats:
    """Read the outbox counts in one short read transaction."""
    now = time.time() if now is None else now
    D = t.deliveries
    with engine.connect() as conn:
        by_state = {state: count for state, count in conn.execute(select(D.c.state, func.count()).group_by(D.c.state))}
        due_now, oldest = conn.execute(
            select(func.count(), func.min(D.c.next_attempt_at)).where(D.c.state == "due", D.c.next_attempt_at <= now)
        ).one()
    return OutboxStats(
        by_state=by_state,
        due_now=int(due_now),
        oldest_due_age=max(0.0, now - oldest) if oldest is not None else 0.0,
        hosts=host_statuses(engine),
    )
