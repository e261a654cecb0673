"""The sample host's own hook implementations: it keeps the Sent postbacks log."""

from __future__ import annotations

import logging

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from hookspecs import PostbackAttempt, hookimpl

from . import db

log = logging.getLogger(__name__)

#: The PostbackAttempt fields, in the order they are stored and shown.
ATTEMPT_FIELDS: tuple[str, ...] = tuple(PostbackAttempt.__dataclass_fields__)


class SentPostbacksLog:
    """Writes every attempt (and every skipped postback) the plugin reports to ``sent_postbacks``."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @hookimpl
    def on_postback_sent(self, attempt: PostbackAttempt) -> None:
        """Store ``attempt`` with all its fields in the host's Sent postbacks log."""
        # Fields added to PostbackAttempt after this table was made are left out, not fatal.
        row = {name: getattr(attempt, name) for name in ATTEMPT_FIELDS if name in db.sent_postbacks.c}
        row["response_truncated"] = bool(row.get("response_truncated"))
        row["logged_at"] = attempt.started_at or db.utcnow()
        with self._engine.begin() as conn:
            conn.execute(sa.insert(db.sent_postbacks).values(**row))
