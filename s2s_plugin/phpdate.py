"""PHP ``date()`` format letters, as trackers' postback templates use them (``{date:Y-m-d H:i:s}``)."""

from __future__ import annotations

import calendar
import datetime as dt


def _suffix(day: int) -> str:
    if 11 <= day % 100 <= 13:
        return "th"
    return {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")


def _offset(moment: dt.datetime, colon: bool) -> str:
    delta = moment.utcoffset() or dt.timedelta(0)
    minutes = int(delta.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    hours, mins = divmod(abs(minutes), 60)
    return f"{sign}{hours:02d}{':' if colon else ''}{mins:02d}"


_LETTERS = {
    "d": lambda t: f"{t.day:02d}",
    "D": lambda t: t.strftime("%a"),
    "j": lambda t: str(t.day),
    "l": lambda t: t.strftime("%A"),
    "N": lambda t: str(t.isoweekday()),
    "S": lambda t: _suffix(t.day),
    "w": lambda t: str(t.isoweekday() % 7),
    "z": lambda t: str(t.timetuple().tm_yday - 1),
    "W": lambda t: f"{t.isocalendar()[1]:02d}",
    "F": lambda t: t.strftime("%B"),
    "m": lambda t: f"{t.month:02d}",
    "M": lambda t: t.strftime("%b"),
    "n": lambda t: str(t.month),
    "t": lambda t: str(calendar.monthrange(t.year, t.month)[1]),
    "L": lambda t: "1" if calendar.isleap(t.year) else "0",
    "o": lambda t: str(t.isocalendar()[0]),
    "Y": lambda t: str(t.year),
    "y": lambda t: f"{t.year % 100:02d}",
    "a": lambda t: "am" if t.hour < 12 else "pm",
    "A": lambda t: "AM" if t.hour < 12 else "PM",
    "g": lambda t: str(t.hour % 12 or 12),
    "G": lambda t: str(t.hour),
    "h": lambda t: f"{t.hour % 12 or 12:02d}",
    "H": lambda t: f"{t.hour:02d}",
    "i": lambda t: f"{t.minute:02d}",
    "s": lambda t: f"{t.second:02d}",
    "u": lambda t: f"{t.microsecond:06d}",
    "v": lambda t: f"{t.microsecond // 1000:03d}",
    "e": lambda t: str(getattr(t.tzinfo, "key", None) or t.tzname() or "UTC"),
    "T": lambda t: t.tzname() or "UTC",
    "P": lambda t: _offset(t, True),
    "O": lambda t: _offset(t, False),
    "Z": lambda t: str(int((t.utcoffset() or dt.timedelta(0)).total_seconds())),
    "U": lambda t: str(int(t.timestamp())),
    "c": lambda t: t.replace(microsecond=0).isoformat(),
    "r": lambda t: t.strftime("%a, %d %b %Y %H:%M:%S ") + _offset(t, False),
}


def php_date(fmt: str, moment: dt.datetime) -> str:
    """Format ``moment`` with PHP ``date()`` letters; ``\\`` escapes the next character."""
    out: list[str] = []
    escaped = False
    for char in fmt:
        if escaped:
            out.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char in _LETTERS:
            out.append(_LETTERS[char](moment))
        else:
            out.append(char)
    return "".join(out)
