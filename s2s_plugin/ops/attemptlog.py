"""Reading the plugin's own attempt log: attempts as ``PostbackAttempt`` events, newest first."""

from __future__ import annotations

from typing import Optional

from sqlalchemy import Engine, select

from hookspecs import PostbackAttempt
from s2s_plugin.storage import tables as t
from s2s_plugin.storage.rows import attempt_from_rows


def recent_attempts(
    engine: Engine,
    *,
    subid: Optional[str] = None,
    outcome: Optional[str] = None,
    source_id: Optional[str] = None,
    limit: int = 100,
    cause: Optional[str] = None,
) -> list[PostbackAttempt]:
    """The newest ``limit`` attempts matching every given filter (``cause``: a cause code such as
    ``timeout``), newest first."""
    A, D = t.attempts, t.deliveries
    query = (
        select(A.c.id, D.c.id).select_from(A.join(D, D.c.id == A.c.delivery_id)).order_by(A.c.id.desc()).limit(limit)
    )
    if subid:
        query = query.where(t.of_subid(subid))
    if outcome:
        query = query.where(A.c.outcome == outcome)
    if source_id:
        query = query.where(D.c.source_id == source_id)
    if cause:
        query = query.where(A.c.cause == cause)
    with engine.connect() as conn:
        rows = conn.execute(query).all()
        attempts = {r.id: r for r in conn.execute(select(A).where(A.c.id.in_([r[0] for r in rows])))}
        deliveries = {r.id: r for r in conn.execute(select(D).where(D.c.id.in_([r[1] for r in rows])))}
    return [attempt_from_rows(attempts[a], deliveries[d]) for a, d in rows]
