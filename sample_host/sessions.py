"""Admin sessions kept on the server, so that signing out ends a session for good.

The signed cookie carries only a random session token; the ``admin_sessions`` table keeps its
SHA-256 (a copy of the table opens no session) with the time the session ends: a fixed time after
sign-in, whatever the session does or has written to it since. Signing out deletes the row, so a
copy of the cookie taken before stops working; a new admin password deletes them all.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from typing import Optional

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from . import db


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start(engine: Engine, lifetime: float) -> str:
    """A new session that ends ``lifetime`` seconds from now; returns its token for the cookie.

    Sessions that have ended are deleted on the way, so the table holds live ones only.
    """
    token = secrets.token_urlsafe(32)
    now = db.utcnow()
    table = db.admin_sessions
    with engine.begin() as conn:
        conn.execute(sa.delete(table).where(table.c.expires_at <= now))
        conn.execute(
            sa.insert(table).values(
                id=_digest(token), signed_in_at=now, expires_at=now + dt.timedelta(seconds=lifetime)
            )
        )
    return token


def is_live(engine: Engine, token: Optional[str]) -> bool:
    """Whether ``token`` names a session that was started, not ended, and has not expired."""
    if not token or not isinstance(token, str):
        return False
    table = db.admin_sessions
    with engine.connect() as conn:
        expires_at = conn.execute(sa.select(table.c.expires_at).where(table.c.id == _digest(token))).scalar()
    return expires_at is not None and expires_at > db.utcnow()


def end(engine: Engine, token: Optional[str]) -> None:
    """End one session (sign-out): its cookie, and every copy of it, stops working."""
    if token and isinstance(token, str):
        with engine.begin() as conn:
            conn.execute(sa.delete(db.admin_sessions).where(db.admin_sessions.c.id == _digest(token)))
