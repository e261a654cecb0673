"""A snapshot of the outbox for monitoring: how many deliveries are in each state and, in each
state, by cause code; how late the oldest due one is; and each target host's concurrency limit and
circuit state. Read-only; hosts turn it into metrics (the sample host's ``/metrics``)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from typing import Optional

from sqlalchemy import Engine, func, select

from s2s_plugin.delivery.hostlimits import HostStatus, host_statuses
from s2s_plugin.resolution.states import PENDING_STATES, DeliveryState
from s2s_plugin.storage import tables as t

__all__ = ["PENDING_STATES", "OutboxStats", "outbox_stats"]


@dataclasses.dataclass(frozen=True)
class OutboxStats:
    """Counts of the plugin's outbox at one moment.

    :param by_state: deliveries per state (``due``, ``leased``, ``delivered``, ``failed``, ``skipped``).
    :param due_now: deliveries whose next attempt time has come (waiting for a dispatcher).
    :param oldest_due_age: seconds the most overdue of those has waited past its due time (0 when
        none): the figure that says whether delivery keeps up.
    :param hosts: target hosts by host key (``hostlimits.HostStatus``): each one's adaptive
        concurrency limit and circuit state (an open host's deliveries wait for a probe).
    :param by_cause: per state, deliveries by cause code (``resolution.causes.Cause`` values):
        why the skipped ones were skipped, why the failed ones failed, why the due ones are
        retried or wait (``"failed": {"timeout": 3, "http_refused": 1}``). Deliveries without a
        code (none to give: queued and untried) are left out.
    """

    by_state: Mapping[str, int]
    due_now: int
    oldest_due_age: float
    hosts: Mapping[str, HostStatus] = dataclasses.field(default_factory=dict)
    by_cause: Mapping[str, Mapping[str, int]] = dataclasses.field(default_factory=dict)

    @property
    def open_hosts(self) -> list[HostStatus]:
        """The hosts whose circuit is open (not answering: their deliveries wait for a probe)."""
        return [status for status in self.hosts.values() if status.is_open]

    @property
    def queue_depth(self) -> int:
        """Deliveries still to send: due (now or later, retries included) or being sent."""
        return sum(self.by_state.get(state, 0) for state in PENDING_STATES)

    @property
    def failed_by_cause(self) -> Mapping[str, int]:
        """Failed deliveries by cause code."""
        return self.by_cause.get(DeliveryState.FAILED, {})

    @property
    def skipped_by_cause(self) -> Mapping[str, int]:
        """Skipped deliveries by cause code."""
        return self.by_cause.get(DeliveryState.SKIPPED, {})


def outbox_stats(engine: Engine, now: Optional[float] = None) -> OutboxStats:
    """Read the outbox counts in one short read transaction."""
    now = time.time() if now is None else now
    D = t.deliveries
    by_state: dict[str, int] = {}
    by_cause: dict[str, dict[str, int]] = {}
    with engine.connect() as conn:
        # One scan for both: the count per state is the sum of its counts per cause.
        for state, cause, count in conn.execute(
            select(D.c.state, D.c.cause, func.count()).group_by(D.c.state, D.c.cause)
        ):
            by_state[state] = by_state.get(state, 0) + count
            if cause is not None:
                by_cause.setdefault(state, {})[cause] = count
        due_now, oldest = conn.execute(
            select(func.count(), func.min(D.c.next_attempt_at)).where(
                D.c.state == DeliveryState.DUE, D.c.next_attempt_at <= now
            )
        ).one()
    return OutboxStats(
        by_state=by_state,
        due_now=int(due_now),
        oldest_due_age=max(0.0, now - oldest) if oldest is not None else 0.0,
        hosts=host_statuses(engine),
        by_cause={
            state: dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))
            for state, counts in by_cause.items()
        },
    )
