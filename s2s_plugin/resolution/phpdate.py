"""PHP ``date()`` format letters, as trackers' postback templates use them (``{date:Y-m-d H:i:s}``).

Every letter of PHP 8's ``date()`` / ``DateTime::format()`` is supported and checked against PHP
itself in the tests. Names are English whatever the process locale (PHP's are too), and a letter
PHP does not know is copied unchanged, as PHP does. ``\\`` copies the next character; a trailing
``\\`` is dropped (PHP would write a NUL byte, which no URL should carry).
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Callable

_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _suffix(day: int) -> str:
    if 10 <= day <= 19:
        return "th"
    return {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")


def _offset_seconds(moment: dt.datetime) -> int:
    delta = moment.utcoffset() or dt.timedelta(0)
    return int(delta.total_seconds())


def _offset(moment: dt.datetime, colon: bool) -> str:
    # PHP prints hours and minutes and drops the seconds of an offset such as Amsterdam's
    # +00:19:32 in 1811 (truncating, not rounding), with the sign of the whole offset.
    seconds = _offset_seconds(moment)
    sign = "-" if seconds < 0 else "+"
    hours, rest = divmod(abs(seconds), 3600)
    return f"{sign}{hours:02d}{':' if colon else ''}{rest // 60:02d}"


def _zulu_offset(moment: dt.datetime) -> str:
    # PHP prints Z only for UTC itself; a zone that is merely at +00:00 (Europe/London in
    # winter, Africa/Abidjan) keeps +00:00.
    return "Z" if _zone_abbreviation(moment) in ("UTC", "Z") else _offset(moment, True)


def _zone_abbreviation(moment: dt.datetime) -> str:
    name = moment.tzname()
    if name is None or (name.startswith("UTC") and name != "UTC"):
        # A fixed offset (datetime.timezone(timedelta(hours=3))) is named like PHP names an offset zone.
        return "UTC" if not _offset_seconds(moment) else _offset(moment, True)
    return name


def _zone_identifier(moment: dt.datetime) -> str:
    key = getattr(moment.tzinfo, "key", None)
    if key:
        return str(key)
    return _zone_abbreviation(moment)


def _epoch_seconds(moment: dt.datetime) -> int:
    # Floor, as PHP's timestamps are: one microsecond before the epoch is -1, not 0.
    return (moment - _EPOCH) // dt.timedelta(seconds=1)


def _swatch_beat(moment: dt.datetime) -> str:
    # Swatch Internet Time: thousandths of a day on Biel Mean Time (UTC+1), whatever the zone.
    seconds = (_epoch_seconds(moment) + 3600) % 86400
    return f"{seconds * 10 // 864:03d}"


def _year(year: int) -> str:
    return f"{'-' if year < 0 else ''}{abs(year):04d}"


def _expanded_year(year: int, always_signed: bool) -> str:
    # X always carries a sign; x only when the year needs it (BCE, or 10000 and later).
    sign = "-" if year < 0 else "+" if always_signed or year >= 10000 else ""
    return f"{sign}{abs(year):04d}"


_LETTERS: dict[str, Callable[[dt.datetime], str]] = {
    # Day
    "d": lambda t: f"{t.day:02d}",
    "D": lambda t: _DAYS[t.weekday()][:3],
    "j": lambda t: str(t.day),
    "l": lambda t: _DAYS[t.weekday()],
    "N": lambda t: str(t.isoweekday()),
    "S": lambda t: _suffix(t.day),
    "w": lambda t: str(t.isoweekday() % 7),
    "z": lambda t: str(t.timetuple().tm_yday - 1),
    # Week
    "W": lambda t: f"{t.isocalendar()[1]:02d}",
    # Month
    "F": lambda t: _MONTHS[t.month - 1],
    "m": lambda t: f"{t.month:02d}",
    "M": lambda t: _MONTHS[t.month - 1][:3],
    "n": lambda t: str(t.month),
    "t": lambda t: str(calendar.monthrange(t.year, t.month)[1]),
    # Year
    "L": lambda t: "1" if calendar.isleap(t.year) else "0",
    "o": lambda t: str(t.isocalendar()[0]),
    "X": lambda t: _expanded_year(t.year, always_signed=True),
    "x": lambda t: _expanded_year(t.year, always_signed=False),
    "Y": lambda t: _year(t.year),
    "y": lambda t: f"{t.year % 100:02d}",
    # Time
    "a": lambda t: "am" if t.hour < 12 else "pm",
    "A": lambda t: "AM" if t.hour < 12 else "PM",
    "B": _swatch_beat,
    "g": lambda t: str(t.hour % 12 or 12),
    "G": lambda t: str(t.hour),
    "h": lambda t: f"{t.hour % 12 or 12:02d}",
    "H": lambda t: f"{t.hour:02d}",
    "i": lambda t: f"{t.minute:02d}",
    "s": lambda t: f"{t.second:02d}",
    "u": lambda t: f"{t.microsecond:06d}",
    "v": lambda t: f"{t.microsecond // 1000:03d}",
    # Time zone
    "e": _zone_identifier,
    "I": lambda t: "1" if t.dst() else "0",
    "O": lambda t: _offset(t, False),
    "P": lambda t: _offset(t, True),
    "p": _zulu_offset,
    "T": _zone_abbreviation,
    "Z": lambda t: str(_offset_seconds(t)),
    # Full date/time
    "c": lambda t: php_date("Y-m-d\\TH:i:sP", t),
    "r": lambda t: php_date("D, d M Y H:i:s O", t),
    "U": lambda t: str(_epoch_seconds(t)),
}

#: The format letters PHP's ``date()`` knows, every one supported here.
LETTERS = frozenset(_LETTERS)


def php_date(fmt: str, moment: dt.datetime) -> str:
    """Format ``moment`` (an aware datetime) with PHP ``date()`` letters; ``\\`` escapes the next character."""
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
