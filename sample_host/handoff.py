"""Handing recorded conversions to the postback plugin, and again until it takes them.

The tracker stores every accepted conversion together with a ``conversion_handoffs`` row in one
transaction, then calls ``on_conversion``. Only when the hook returns is the row deleted. If the
plugin fails (its database is down, a plugin raises), the conversion stays marked and is handed
over again: right away before any later conversion of the same click (so a lead still goes
before its sale), when the app starts, every few seconds while it runs, and in ``sample-host
worker``. A conversion the plugin already took and is handed again is a repeat to the plugin,
which never fires a status twice, so a crash between the hook and the delete costs nothing.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from decimal import Decimal
from typing import Any, Optional

import pluggy
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from hookspecs import Click, Conversion

from . import db

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Handed:
    """What one hand-over round did: conversions the plugin took, and the error that stopped it."""

    taken: int = 0
    error: Optional[str] = None

    @property
    def complete(self) -> bool:
        """Whether nothing is left behind."""
        return self.error is None


def describe_error(exc: BaseException) -> str:
    """The error as one short line for the logs and pages (no traceback, nothing multi-line)."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__


class Handoffs:
    """The conversions not yet taken by the plugin, and the hand-over itself.

    :param load_click: the host's click for a subid (its parameters may have been updated by the
        conversion's ``sub_id_N``), passed to the plugin with each conversion.
    """

    def __init__(self, engine: Engine, pm: pluggy.PluginManager, load_click: Callable[[str], Click]) -> None:
        self._engine = engine
        self._pm = pm
        self._load_click = load_click

    @staticmethod
    def mark(conn: sa.Connection, conversion_id: int, subid: str) -> None:
        """Mark a conversion as not yet handed over, in the transaction that records it."""
        conn.execute(sa.insert(db.handoffs).values(conversion_id=conversion_id, subid=subid, created_at=db.utcnow()))

    def hand_over(self, subid: str) -> Handed:
        """Hand every waiting conversion of one click to the plugin, oldest first; stop at the
        first failure so a later status never overtakes an earlier one."""
        with self._engine.connect() as conn:
            ids = list(
                conn.execute(
                    sa.select(db.handoffs.c.conversion_id)
                    .where(db.handoffs.c.subid == subid)
                    .order_by(db.handoffs.c.conversion_id)
                ).scalars()
            )
        taken = 0
        for conversion_id in ids:
            error = self._hand_one(conversion_id)
            if error is not None:
                return Handed(taken, error)
            taken += 1
        return Handed(taken)

    def hand_over_all(self, limit: int = 1000, give_up_after: int = 3) -> Handed:
        """Hand over what every click has waiting (the recovery run at start and periodically).

        Stops after ``give_up_after`` clicks in a row failed: the plugin is still down, and the
        next run tries again.
        """
        with self._engine.connect() as conn:
            subids = list(
                conn.execute(
                    sa.select(db.handoffs.c.subid)
                    .group_by(db.handoffs.c.subid)
                    .order_by(sa.func.min(db.handoffs.c.conversion_id))
                    .limit(limit)
                ).scalars()
            )
        taken, failures, last_error = 0, 0, None
        for subid in subids:
            result = self.hand_over(subid)
            taken += result.taken
            if result.complete:
                failures = 0
                continue
            failures, last_error = failures + 1, result.error
            if failures >= give_up_after:
                break
        if taken:
            log.info("handed %d waiting conversion(s) to the postback plugin", taken)
        return Handed(taken, last_error)

    def waiting(self) -> int:
        """How many conversions the plugin has not taken yet."""
        with self._engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(db.handoffs)).scalar_one())

    def waiting_for(self, subid: str) -> list[dict[str, Any]]:
        """The waiting conversions of one click, with their tries and last error."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(db.handoffs).where(db.handoffs.c.subid == subid).order_by(db.handoffs.c.conversion_id)
            )
            return [dict(row._mapping) for row in rows]

    def _hand_one(self, conversion_id: int) -> Optional[str]:
        try:
            conversion = self._conversion(conversion_id)
            if conversion is not None:
                self._pm.hook.on_conversion(conversion=conversion)
        except Exception as exc:  # noqa: BLE001  (the plugin is down: keep the conversion, try later)
            log.exception("the postback plugin did not take conversion #%s", conversion_id)
            error = describe_error(exc)
            try:
                with self._engine.begin() as conn:
                    conn.execute(
                        sa.update(db.handoffs)
                        .where(db.handoffs.c.conversion_id == conversion_id)
                        .values(tries=db.handoffs.c.tries + 1, last_error=error, last_tried_at=db.utcnow())
                    )
            except Exception:  # noqa: BLE001  (the host's database may be what failed; the mark stays)
                log.exception("could not note the failed hand-over of conversion #%s", conversion_id)
            return error
        with self._engine.begin() as conn:
            conn.execute(sa.delete(db.handoffs).where(db.handoffs.c.conversion_id == conversion_id))
        return None

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
            created_at=row.created_at,
            click=self._load_click(row.subid),
        )
