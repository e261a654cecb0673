"""Reading values out of requests: whole numbers in range and text a database can store.

Pure functions, no I/O. Each raises ``HostError`` with a one-line reason, so a page or API
endpoint answers odd input (``?before=²``, a NUL byte, a number larger than any row id) with a
400 instead of failing deeper down, where SQLite and PostgreSQL would fail differently.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any, Optional

from .errors import HostError

#: How deeply a JSON body may nest arrays and objects; postbacks and API calls need two levels.
MAX_JSON_DEPTH = 16

_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.S)
_BRACKETS = re.compile(rb"[\[\]{}]")

#: The largest row id the host's tables hold (a 32-bit INTEGER on PostgreSQL).
MAX_ID = 2**31 - 1


def whole_number(value: Optional[str], name: str, *, low: int = 0, high: int = MAX_ID) -> Optional[int]:
    """``value`` as an int from ``low`` to ``high``; None when absent or empty.

    Only ASCII digits count: ``str.isdigit`` also accepts ``²`` and other digits ``int`` refuses.
    """
    if value is None or value == "":
        return None
    text = value.strip()
    if not (text.isascii() and text.isdigit()) or len(text) > len(str(high)) or not low <= int(text) <= high:
        raise HostError(f"{name}={_shown(value)} must be a whole number from {low} to {high}")
    return int(text)


def row_id_in_range(value: int) -> bool:
    """Whether an id taken from a path can name a row at all (larger ones overflow SQLite)."""
    return 0 <= value <= MAX_ID


def check_text(values: Iterable[tuple[str, Any]], where: str) -> None:
    """Refuse text holding a NUL byte, which PostgreSQL cannot store or even compare.

    :param values: (name, value) pairs; values that are not strings are skipped.
    :param where: what holds them, for the message (``query parameter``, ``form field``).
    """
    for name, value in values:
        if isinstance(value, str) and "\x00" in value:
            raise HostError(f"{where} {_shown(name)} holds a NUL byte: send text without it")
        if isinstance(name, str) and "\x00" in name:
            raise HostError(f"a {where} name holds a NUL byte: send text without it")


def check_json_text(data: Any, where: str = "field of the JSON body") -> None:
    """``check_text`` for every string in a decoded JSON document (keys and values)."""
    if isinstance(data, Mapping):
        check_text(data.items(), where)
        for value in data.values():
            if isinstance(value, (Mapping, list)):
                check_json_text(value, where)
    elif isinstance(data, list):
        check_text(((f"item {i}", v) for i, v in enumerate(data)), where)
        for value in data:
            if isinstance(value, (Mapping, list)):
                check_json_text(value, where)


def json_depth(body: bytes) -> int:
    """How deeply ``body`` nests arrays and objects (brackets inside strings do not count).

    Measured before decoding: ``json.loads`` would recurse once per level and fail with a
    ``RecursionError`` only after a thousand of them.
    """
    depth = deepest = 0
    for bracket in _BRACKETS.findall(_JSON_STRING.sub(b'""', body)):
        depth += 1 if bracket in b"[{" else -1
        deepest = max(deepest, depth)
    return deepest


def parse_json(body: bytes, what: str = "body") -> Any:
    """Decode a JSON request body that nests at most ``MAX_JSON_DEPTH`` levels and holds no NUL.

    :raises HostError: for invalid JSON, deeper nesting, or a NUL byte in a string.
    """
    if json_depth(body) > MAX_JSON_DEPTH:
        raise HostError(f"{what} nests JSON more than {MAX_JSON_DEPTH} levels deep: send flat parameters")
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        raise HostError(f"{what} is not valid JSON") from None
    check_json_text(data, f"field of the JSON {what}")
    return data


def _shown(value: str) -> str:
    """A value for a message: quoted, control characters escaped, long ones cut."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "...'"
