"""PHP ``date()`` letters, compared with PHP itself (Debian's php-cli) on random times and zones."""

from __future__ import annotations

import datetime as dt
import json
import random
import shutil
import subprocess
import zoneinfo

import pytest

from s2s_plugin.resolution.phpdate import LETTERS, php_date

#: Every letter PHP 8.2's date() documents.
PHP_LETTERS = "dDjlNSwzWFmMntLoXxYyaABgGhHisuveIOPpTZcrU"

#: One format with every letter, escapes, and characters PHP copies unchanged.
EVERY_LETTER = "|".join(PHP_LETTERS) + "|\\Y\\\\m\\d-Q k#%é"

# PHP runs once for all cases: it reads [[seconds, microseconds, zone, format], ...] as JSON and
# answers the formatted strings in the same order.
PHP_SCRIPT = r"""
$cases = json_decode(stream_get_contents(STDIN), true);
$out = [];
foreach ($cases as [$seconds, $micro, $zone, $format]) {
    $moment = DateTime::createFromFormat('U u', sprintf('%d %06d', $seconds, $micro), new DateTimeZone('UTC'));
    $moment->setTimezone(new DateTimeZone($zone));
    $out[] = $moment->format($format);
}
echo json_encode($out);
"""

# Python's datetime ends at year 9999; keep every local time inside years 2..9998.
EARLIEST = int(dt.datetime(2, 1, 1, tzinfo=dt.UTC).timestamp())
LATEST = int(dt.datetime(9998, 12, 31, tzinfo=dt.UTC).timestamp())
#: Names PHP reads as time-zone abbreviations (a fixed offset, e.g. CET = +01:00 all year), not as
#: the IANA zones of the same name (CET with summer time) that ``{date:...,CET}`` uses.
PHP_ABBREVIATIONS = {"CET", "EET", "EST", "GMT", "GMT+0", "GMT-0", "HST", "MET", "MST", "UCT", "WET"}
RECENT = (
    int(dt.datetime(1900, 1, 1, tzinfo=dt.UTC).timestamp()),
    int(dt.datetime(2100, 1, 1, tzinfo=dt.UTC).timestamp()),
)


def php_formats(cases: list[tuple[int, int, str, str]]) -> list[str]:
    php = shutil.which("php")
    assert php, "php-cli is needed to compare with PHP's date() (Debian: apt-get install php-cli; .ci/run installs it)"
    done = subprocess.run(
        [php, "-r", PHP_SCRIPT], input=json.dumps(cases), capture_output=True, text=True, timeout=60, check=True
    )
    return json.loads(done.stdout)


def moment(seconds: int, micro: int, zone: str) -> dt.datetime:
    utc = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=seconds, microseconds=micro)
    return utc.astimezone(zoneinfo.ZoneInfo(zone))


def random_cases(count: int, seed: int) -> list[tuple[int, int, str, str]]:
    rng = random.Random(seed)
    zones = sorted(zoneinfo.available_timezones() - PHP_ABBREVIATIONS)
    cases = []
    for index in range(count):
        # Mostly the years postbacks are sent in (DST rules, leap years), some from anywhere in 2..9998.
        low, high = RECENT if index % 4 else (EARLIEST, LATEST)
        seconds = rng.randint(low, high)
        micro = rng.choice((0, 999_999, rng.randint(0, 999_999)))
        letters = rng.choices(PHP_LETTERS + "\\-:/ ,.TXq", k=rng.randint(1, 12))
        fmt = EVERY_LETTER if index % 2 else "".join(letters).rstrip("\\") or "Y"
        cases.append((seconds, micro, rng.choice(zones), fmt))
    return cases


def edge_cases() -> list[tuple[int, int, str, str]]:
    edges = [
        (0, 0, "UTC"),
        (-1, 999_999, "UTC"),
        (-1, 0, "America/New_York"),
        # DST changes either side, and zones whose DST is odd: Dublin's negative DST, Lord Howe's
        # half hour, Chatham's +12:45, Kathmandu's +05:45, a pre-1900 offset with seconds.
        (1711846799, 0, "Europe/Berlin"),
        (1711846800, 0, "Europe/Berlin"),
        (1729987200, 0, "Europe/Berlin"),
        (1700000000, 0, "Europe/Dublin"),
        (1720000000, 0, "Europe/Dublin"),
        (1720000000, 0, "Australia/Lord_Howe"),
        (1720000000, 0, "Pacific/Chatham"),
        (1720000000, 0, "Asia/Kathmandu"),
        (-5000000000, 0, "Europe/Amsterdam"),
        # Year ends, where ISO week years (o, W) differ from calendar years, and a leap day.
        (1735603200, 0, "UTC"),
        (1609459199, 0, "Pacific/Kiritimati"),
        (1609459199, 0, "Pacific/Pago_Pago"),
        (1709164800, 123_456, "Asia/Tokyo"),
        (EARLIEST, 0, "UTC"),
        (LATEST, 0, "UTC"),
        # Midnight and noon in Biel (Swatch beats 000 and 500), Europe/London in winter (+00:00, not Z).
        (82800, 0, "Europe/Zurich"),
        (1700000000 - 1700000000 % 86400 + 39600, 0, "UTC"),
        (1700000000, 0, "Europe/London"),
        (1700000000, 0, "Etc/GMT+5"),
        (1700000000, 0, "Zulu"),
    ]
    return [(s, m, zone, EVERY_LETTER) for s, m, zone in edges]


def test_every_php_letter_is_supported() -> None:
    assert set(PHP_LETTERS) <= LETTERS
    assert set(PHP_LETTERS) == LETTERS  # no letter of our own that PHP would print literally


def test_matches_php_on_random_times_and_zones() -> None:
    cases = edge_cases() + random_cases(400, seed=20260201)
    expected = php_formats(cases)
    mismatches = [
        (case, want, got)
        for case, want in zip(cases, expected)
        if (got := php_date(case[3], moment(*case[:3]))) != want
    ]
    assert not mismatches[:5], f"{len(mismatches)} of {len(cases)} differ from PHP (case, php, ours): {mismatches[:5]}"


@pytest.mark.parametrize(
    "fmt, expected",
    [
        ("B", "041"),  # 1970-01-01 00:00 UTC is 01:00 in Biel: 41.66 beats
        ("X|x|Y|y", "+1970|1970|1970|70"),
        ("I|p|P|T|e", "0|Z|+00:00|UTC|UTC"),
        ("\\Y\\\\Y", "Y\\1970"),
        ("Y\\", "1970"),  # a trailing backslash is dropped (PHP writes a NUL byte)
    ],
)
def test_letters_at_the_epoch(fmt: str, expected: str) -> None:
    assert php_date(fmt, dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) == expected


def test_fixed_offset_zone_is_named_by_its_offset() -> None:
    moment = dt.datetime(2026, 7, 1, 12, tzinfo=dt.timezone(dt.timedelta(hours=3)))
    assert php_date("e|T|p|I|c", moment) == "+03:00|+03:00|+03:00|0|2026-07-01T12:00:00+03:00"
