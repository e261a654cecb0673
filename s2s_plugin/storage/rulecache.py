"""Postback rules kept in memory while the configuration is unchanged (``on_conversion`` reads them)."""

from __future__ import annotations

import threading
from typing import Any, Optional

#: What ``RuleCache.get`` answers for an entry it does not hold.
MISSING: Any = object()


class RuleCache:
    """Postback rules by source and by campaign, kept while the configuration is unchanged.

    Each ``on_conversion`` reads the configuration's version (``s2s_config_version``: one row, read
    in the conversion's own transaction, whatever the number of rules). Triggers bump it on every
    insert, update or delete of a rule, whichever process made it, so a rule changed by another
    process (an admin page, a CLI, plain SQL) is used by the very next conversion. Entries are
    keyed by the version they were read under, so a slow reader can never file old rules under a
    newer version. One per ``Database``: the stores of one database object share it.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.version: Any = None
        self.entries: dict[tuple[Any, str, Optional[str]], Any] = {}

    def get(self, version: Any, kind: str, key: Optional[str]) -> Any:
        """The cached value, or ``MISSING``."""
        with self.lock:
            if version != self.version:
                self.version = version
                self.entries.clear()
            return self.entries.get((version, kind, key), MISSING)

    def put(self, version: Any, kind: str, key: Optional[str], value: Any) -> None:
        """Keep ``value``, read under ``version`` (dropped if the version moved on meanwhile)."""
        with self.lock:
            if version == self.version:
                self.entries[(version, kind, key)] = value

    def clear(self) -> None:
        """Forget everything (this process changed a rule)."""
        with self.lock:
            self.version = None
            self.entries.clear()
