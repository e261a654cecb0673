"""Keeping the inbound postback key out of log files.

The key is part of the postback URL's path, so every access log line of an inbound postback
would carry it. ``hide_postback_key`` masks it in the server's access log (and any record that
mentions it) before anything is written.
"""

from __future__ import annotations

import logging
from typing import Any

MASK = "[postback-key]"


class SecretFilter(logging.Filter):
    """Replaces a secret in a record's message and arguments with ``MASK``."""

    def __init__(self, secret: str) -> None:
        super().__init__()
        self.secret = secret

    def _clean(self, value: Any) -> Any:
        return value.replace(self.secret, MASK) if isinstance(value, str) and self.secret in value else value

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self._clean(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(self._clean(arg) for arg in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: self._clean(v) for k, v in record.args.items()}
        return True


def hide_postback_key(
    postback_key: str, loggers: tuple[str, ...] = ("uvicorn.access", "uvicorn.error")
) -> SecretFilter:
    """Mask ``postback_key`` in the named loggers' records; returns the filter (to remove it)."""
    secret_filter = SecretFilter(postback_key)
    for name in loggers:
        logging.getLogger(name).addFilter(secret_filter)
    return secret_filter
