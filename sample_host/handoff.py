"""Handing recorded conversions to the postback plugin, and again until it takes them.

The tracker stores every accepted conversion together with a ``conversion_handoffs`` row in one
transaction, then calls ``on_conversion``. Only when the hook returns is the row deleted. If the
plugin fails (its database is down, a plugin raises), the conversion stays marked and is handed
over again: right away before any later conversion of the same click (so a lead still goes
before its sale), when the app starts, every few seconds while it runs, and in ``sample-host
worker``. A conversion the plugin already took and is handed again is a repeat to the plugin,
which never fires a status twice, so a crash between the hook and the delete costs nothing.

Each waiting conversion keeps its failed tries, its last error and when it is due again: a
failure backs it off (15 s, doubling, at most 5 minutes), and the recovery run goes past it to
the other clicks, so a few conversions that always fail never hold up the rest. After
``STUCK_AFTER`` failures a conversion counts as stuck: the Waiting conversions page, ``/metrics``
and ``explain`` show it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any, Optional

import pluggy
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from hookspecs import Click, Conversion

from . import db
from .errors import NotFound

log = logging.getLogger(__name__)


#: Failed hand-overs after which a waiting conversion counts as stuck.
STUCK_AFTER = 3

#: The longest a waiting conversion waits between two hand-overs (seconds).
MAX_BACKOFF = 300.0


def backoff(tries: int) -> float:
    """Seconds before a conversion whose hand-over failed ``tries`` times is handed over again:
    15 s, doubling, at most ``MAX_BACKOFF`` (a plugin back from an outage gets everything soon)."""
    return min(15.0 * 2 ** max(tries - 1, 0), MAX_BACKOFF)


@dataclasses.dataclass(frozen=True)
class Handed:
    """What one hand-over round did: conversions the plugin took, how many hand-overs failed, and
    the last error."""

    taken: int = 0
    error: Optional[str] = None
    failed: int = 0

    @property
    def complete(self) -> bool:
        """Whether nothing failed."""
        return self.error is None


def describe_error(exc: BaseException) -> str:
    """The error as one short line for the logs and pages (no traceback, nothing multi-line)."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__


def describe_waiting(rows: list[dict[str, Any]]) -> list[str]:
    """One line per waiting conversion of a click, for ``explain`` (pure): the plugin has not seen
    these, so its own explanation cannot mention them."""
    lines = []
    for row in rows:
        what = ", ".join(str(part) for part in (row.get("status"), row.get("tid") and f"tid {row['tid']}") if part)
        line = f"conversion #{row['conversion_id']}{f' ({what})' if what else ''} is not with the postback plugin yet"
        if not row["tries"]:
            lines.append(line + ": it is handed over on the next run")
            continue
        line += f": {row['tries']} failed tr{'y' if row['tries'] == 1 else 'ies'}"
        if row["tries"] >= STUCK_AFTER:
            line += " (stuck)"
        line += f"; last error: {row.get('last_error') or 'unknown'}"
        if row.get("next_try_at") is not None:
            line += f"; next try {row['next_try_at'].astimezone(dt.UTC):%Y-%m-%d %H:%M:%S} UTC"
        lines.append(line)
    return lines


class Handoffs:
    """The conversions not yet taken by the plugin, and the hand-over itself.

    :param load_click: the host's click for a subid (its parameters may have been updated by the
        conversion's ``sub_id_N``), passed to the plugin with each conversion.
    """

    def __init__(
        self,
        engine: Engine,
        pm: pluggy.PluginManager,
        load_click: Callable[[str], Click],
        *,
        backoff: Callable[[int], float] = backoff,
    ) -> None:
        self._engine = engine
        self._pm = pm
        self._load_click = load_click
        #: Seconds a conversion waits after its n-th failed hand-over (``backoff(n)``).
        self.backoff = backoff

    @staticmethod
    def mark(conn: sa.Connection, conversion_id: int, subid: str) -> None:
        """Mark a conversion as not yet handed over, in the transaction that records it."""
        conn.execute(sa.insert(db.handoffs).values(conversion_id=conversion_id, subid=subid, created_at=db.utcnow()))

    def hand_over(self, subid: str, *, due_only: bool = False) -> Handed:
        """Hand every waiting conversion of one click to the plugin, oldest first; stop at the
        first failure so a later status never overtakes an earlier one.

        :param due_only: stop at a conversion still backing off from a failure (the recovery run);
            otherwise (a new conversion of the click just arrived) try them all now.
        """
        table = db.handoffs
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(table.c.conversion_id, table.c.next_try_at)
                .where(table.c.subid == subid)
                .order_by(table.c.conversion_id)
            ).all()
        now = db.utcnow()
        taken = 0
        for conversion_id, next_try_at in rows:
            if due_only and next_try_at is not None and next_try_at > now:
                break  # backing off: the click's later conversions wait behind it
            error = self._hand_one(conversion_id)
            if error is not None:
                return Handed(taken, error, failed=1)
            taken += 1
        return Handed(taken)

    def hand_over_all(self, limit: int = 1000, budget: float = 10.0, *, due_only: bool = True) -> Handed:
        """Hand over what every click has waiting (the recovery run at start and periodically).

        Clicks whose conversions failed least go first; a failure backs that conversion off and
        the run goes on with the next click, however many fail, so a few that always fail never
        hold up the rest. The run stops after ``budget`` seconds (a plugin whose database hangs
        fails slowly), and the next run goes on where it left off.

        :param due_only: skip conversions still backing off (the periodic run); False at start,
            when whatever made them fail may have been fixed.
        """
        table = db.handoffs
        due = sa.or_(table.c.next_try_at.is_(None), table.c.next_try_at <= db.utcnow()) if due_only else sa.true()
        with self._engine.connect() as conn:
            subids = list(
                conn.execute(
                    sa.select(table.c.subid)
                    .where(due)
                    .group_by(table.c.subid)
                    .order_by(sa.func.min(table.c.tries), sa.func.min(table.c.conversion_id))
                    .limit(limit)
                ).scalars()
            )
        deadline = time.monotonic() + budget
        taken, failed, last_error = 0, 0, None
        for subid in subids:
            if time.monotonic() > deadline:
                break
            result = self.hand_over(subid, due_only=due_only)
            taken += result.taken
            if not result.complete:
                failed, last_error = failed + 1, result.error
        if taken:
            log.info("handed %d waiting conversion(s) to the postback plugin", taken)
        if failed:
            log.warning(
                "%d waiting conversion(s) were not taken by the postback plugin (last error: %s)", failed, last_error
            )
        return Handed(taken, last_error, failed)

    def hand_over_now(self, conversion_id: int) -> Handed:
        """Make one waiting conversion due now and hand its click's conversions over (the
        operator's "Hand over now").

        :raises NotFound: when the conversion is not waiting (the plugin took it already).
        """
        table = db.handoffs
        with self._engine.begin() as conn:
            subid = conn.execute(sa.select(table.c.subid).where(table.c.conversion_id == conversion_id)).scalar()
            if subid is None:
                raise NotFound(f"conversion #{conversion_id} is not waiting: the postback plugin has it")
            conn.execute(sa.update(table).where(table.c.conversion_id == conversion_id).values(next_try_at=None))
        return self.hand_over(subid)

    def waiting(self) -> int:
        """How many conversions the plugin has not taken yet."""
        with self._engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(db.handoffs)).scalar_one())

    def stuck(self) -> int:
        """How many waiting conversions failed ``STUCK_AFTER`` hand-overs or more."""
        table = db.handoffs
        with self._engine.connect() as conn:
            return int(
                conn.execute(
                    sa.select(sa.func.count()).select_from(table).where(table.c.tries >= STUCK_AFTER)
                ).scalar_one()
            )

    def waiting_list(self, *, subid: Optional[str] = None, limit: int = 200) -> list[dict[str, Any]]:
        """Waiting conversions with their status and tid, tries, last error and next try: the
        stuck ones first (most tries first), then the oldest; of one click when ``subid`` is
        given (then oldest first, the order they are handed over in)."""
        table, conversions = db.handoffs, db.conversions
        query = (
            sa.select(table, conversions.c.status, conversions.c.tid)
            .select_from(table.outerjoin(conversions, conversions.c.id == table.c.conversion_id))
            .limit(limit)
        )
        if subid is not None:
            query = query.where(table.c.subid == subid).order_by(table.c.conversion_id)
        else:
            query = query.order_by(table.c.tries.desc(), table.c.conversion_id)
        with self._engine.connect() as conn:
            rows = [dict(row._mapping) for row in conn.execute(query)]
        for row in rows:
            row["stuck"] = row["tries"] >= STUCK_AFTER
        return rows

    def waiting_for(self, subid: str) -> list[dict[str, Any]]:
        """The waiting conversions of one click, oldest first, with their tries and last error."""
        return self.waiting_list(subid=subid)

    def _hand_one(self, conversion_id: int) -> Optional[str]:
        try:
            conversion = self._conversion(conversion_id)
            if conversion is not None:
                self._pm.hook.on_conversion(conversion=conversion)
        except Exception as exc:
            log.exception("the postback plugin did not take conversion #%s", conversion_id)
            error = describe_error(exc)
            self._note_failure(conversion_id, error)
            return error
        with self._engine.begin() as conn:
            conn.execute(sa.delete(db.handoffs).where(db.handoffs.c.conversion_id == conversion_id))
        return None

    def _note_failure(self, conversion_id: int, error: str) -> None:
        """Count a failed hand-over and back the conversion off."""
        table = db.handoffs
        try:
            with self._engine.begin() as conn:
                tries = conn.execute(
                    sa.select(table.c.tries).where(table.c.conversion_id == conversion_id)
                ).scalar_one_or_none()
                if tries is None:
                    return
                now = db.utcnow()
                conn.execute(
                    sa.update(table)
                    .where(table.c.conversion_id == conversion_id)
                    .values(
                        tries=tries + 1,
                        last_error=error,
                        last_tried_at=now,
                        next_try_at=now + dt.timedelta(seconds=self.backoff(tries + 1)),
                    )
                )
        except Exception:
            log.exception("could not note the failed hand-over of conversion #%s", conversion_id)

    def _conversion(self, conversion_id: int) -> Optional[Conversion]:
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(db.conversions).where(db.conversions.c.id == conversion_id)).first()
        if row is None:  # deleted by hand: nothing to hand over
            return None
        return Conversion(
            subid=row.subid,
            status=row.status,
            payout=None if row.payout is None else Decimal(row.payout),
            currency=row.currency,
            tid=row.tid,
            original_status=row.original_status,
            params=dict(row.params or {}),
            created_at=row.converted_at or row.created_at,
            click=self._load_click(row.subid),
        )
