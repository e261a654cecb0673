"""The host's secrets: the API token, the inbound postback key, the admin password hash and the
key that signs session cookies.

They are generated once by ``sample-host init`` and kept in the ``settings`` table. The admin
password itself is never stored, only its scrypt hash, so it can be shown only when it is created.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import secrets
from typing import Optional

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from . import db

_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1


@dataclasses.dataclass(frozen=True)
class Credentials:
    """The secrets a tracker operator needs. ``admin_password`` is set only when just created."""

    api_token: str
    postback_key: str
    admin_password: Optional[str] = None


def hash_password(password: str) -> str:
    """A salted scrypt hash of ``password``, with its parameters, as one string."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P)
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches a hash made by ``hash_password``."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        candidate = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(candidate.hex(), digest)


def _read(engine: Engine) -> dict[str, str]:
    with engine.connect() as conn:
        return {row.key: row.value for row in conn.execute(sa.select(db.settings))}


def load(engine: Engine) -> Optional[Credentials]:
    """The stored credentials (without the admin password), or None before ``init``."""
    values = _read(engine)
    if "api_token" not in values or "postback_key" not in values:
        return None
    return Credentials(api_token=values["api_token"], postback_key=values["postback_key"])


def ensure(engine: Engine) -> Credentials:
    """The stored credentials, creating them first if this database has none.

    Returns the admin password only when it was just created: it cannot be recovered later.
    """
    existing = load(engine)
    if existing is not None:
        return existing
    created = Credentials(
        api_token=secrets.token_urlsafe(32),
        # The key is part of the postback URL given to networks: URL-safe and not guessable.
        postback_key=secrets.token_hex(16),
        admin_password=secrets.token_urlsafe(12),
    )
    assert created.admin_password is not None
    rows = [
        {"key": "api_token", "value": created.api_token},
        {"key": "postback_key", "value": created.postback_key},
        {"key": "admin_password_hash", "value": hash_password(created.admin_password)},
    ]
    with engine.begin() as conn:
        conn.execute(sa.delete(db.settings).where(db.settings.c.key.in_([r["key"] for r in rows])))
        conn.execute(sa.insert(db.settings), rows)
    return created


def check_admin_password(engine: Engine, password: str) -> bool:
    """Whether ``password`` is the admin password of this database."""
    stored = _read(engine).get("admin_password_hash")
    return stored is not None and verify_password(password, stored)


def admin_password_hash(engine: Engine) -> Optional[str]:
    """The stored hash of the admin password (None before ``init``)."""
    return _read(engine).get("admin_password_hash")


def reset_admin_password(engine: Engine) -> str:
    """Replace the admin password by a new random one and return it (shown once, then only its
    hash is kept). Every signed-in session ends: the server forgets them all, and their cookies
    carry the old hash's fingerprint."""
    password = secrets.token_urlsafe(12)
    with engine.begin() as conn:
        conn.execute(sa.delete(db.settings).where(db.settings.c.key == "admin_password_hash"))
        conn.execute(sa.insert(db.settings).values(key="admin_password_hash", value=hash_password(password)))
        conn.execute(sa.delete(db.admin_sessions))  # every session ends on the server too
    return password


def session_secret(engine: Engine) -> str:
    """The key that signs session cookies, created on first use and kept in the database so
    sessions survive a restart (and every process serving one database shares it)."""
    existing = _read(engine).get("session_secret")
    if existing:
        return existing
    created = secrets.token_urlsafe(32)
    try:
        with engine.begin() as conn:
            conn.execute(sa.insert(db.settings).values(key="session_secret", value=created))
    except sa.exc.IntegrityError:  # another process made it first: use theirs
        pass
    return _read(engine)["session_secret"]
