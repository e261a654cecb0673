"""Inspection: the attempt log, ``explain`` for a click, and the outbox's figures. Read-only."""

from __future__ import annotations

from typing import Optional

from sqlalchemy import Engine

from hookspecs import PostbackAttempt
from s2s_plugin.ops.attemptlog import recent_attempts
from s2s_plugin.ops.explain import Explanation, explain_subid
from s2s_plugin.ops.health import DeliveryHealth, delivery_health
from s2s_plugin.ops.stats import OutboxStats, outbox_stats
from s2s_plugin.service.library import TemplateLibrary
from s2s_plugin.storage.store import Store


class Inspection:
    """Answers to "what happened to my postbacks?", read from the outbox and the attempt log.

    :param engine: the outbox's database.
    :param store: clicks and rules, for ``explain``.
    :param library: templates, for ``explain``'s checks of a rule.
    """

    def __init__(self, engine: Engine, store: Store, library: TemplateLibrary) -> None:
        self._engine = engine
        self._store = store
        self._library = library

    def attempts(
        self,
        subid: Optional[str] = None,
        outcome: Optional[str] = None,
        source_id: Optional[str] = None,
        limit: int = 100,
        cause: Optional[str] = None,
    ) -> list[PostbackAttempt]:
        """The plugin's own attempt log, newest first."""
        return recent_attempts(
            self._engine, subid=subid, outcome=outcome, source_id=source_id, limit=limit, cause=cause
        )

    def explain(self, subid: str) -> Explanation:
        """Why each postback for this click was sent, retried, skipped or failed: failing step first."""
        return explain_subid(subid, store=self._store, engine=self._engine, templates=self._library.all())

    def stats(self) -> OutboxStats:
        """The outbox at this moment, for monitoring: deliveries per state, how many are due now,
        and how long the most overdue one has waited."""
        return outbox_stats(self._engine)

    def health(self, window_seconds: float = 86400.0, bucket_seconds: Optional[float] = None) -> DeliveryHealth:
        """Delivery health per postback over the last ``window_seconds`` (a day by default): counts by
        outcome, top causes, attempt times, host states, the queue and a chart per bucket (an hour for
        windows over six hours, else a minute, unless ``bucket_seconds`` is given)."""
        if bucket_seconds is None:
            bucket_seconds = 3600.0 if window_seconds > 6 * 3600 else 60.0
        return delivery_health(self._engine, window_seconds, bucket_seconds)
