"""Times: ISO-8601 or epoch seconds in, epoch microseconds (UTC) out, and back; durations; shared by both sides."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

__all__ = ["format_us", "parse_duration", "parse_time"]

_EPOCH = re.compile(r"^-?\d+(\.\d+)?$")
_DURATION = re.compile(r"^(?:\d{1,9}[wdhms])+$")
_DURATION_PART = re.compile(r"(\d+)([wdhms])")
_UNITS = {"w": "weeks", "d": "days", "h": "hours", "m": "minutes", "s": "seconds"}
_ORIGIN = datetime(1970, 1, 1, tzinfo=UTC)
# What a datetime holds (years 1 to 9999): a time outside it would overflow further on.
_FIRST_US = -62_135_596_800_000_000  # 0001-01-01T00:00:00Z
_LAST_US = 253_402_300_799_999_999  # 9999-12-31T23:59:59.999999Z


def parse_time(text: str) -> int:
    """``2026-11-27T14:03:00Z``, ``2026-11-27 14:03``, ``2026-11-27`` or ``1795000000`` -> epoch µs.

    A time without an offset is UTC. Raises ValueError with a message naming the text,
    also for a time before the year 1 or after 9999.
    """
    value = text.strip()
    if _EPOCH.match(value):
        seconds, _, fraction = value.partition(".")
        # More than 12 digits is past the year 9999 (and int() refuses thousands of digits).
        if len(seconds.lstrip("-").lstrip("0")) > 12:
            raise _out_of_range(text)
        us = int(seconds) * 1_000_000
        if fraction:
            us += int(fraction[:6].ljust(6, "0")) * (-1 if value.startswith("-") else 1)
    else:
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(
                f"{text!r} is not a time: use ISO-8601 (2026-11-27T14:03:00Z) or epoch seconds"
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        delta = moment - _ORIGIN
        us = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    if not _FIRST_US <= us <= _LAST_US:
        raise _out_of_range(text)
    return us


def _out_of_range(text: str) -> ValueError:
    shown = repr(text) if len(text) <= 40 else f"{text[:40]!r}..."
    return ValueError(f"{shown} is out of range: use a time from 0001-01-01 to 9999-12-31")


def format_us(us: int | None) -> str:
    """Epoch µs as ISO-8601 UTC, or '-' for None."""
    if us is None:
        return "-"
    seconds, micros = divmod(us, 1_000_000)
    moment = datetime.fromtimestamp(seconds, UTC).replace(microsecond=micros)
    return moment.isoformat().replace("+00:00", "Z")


def parse_duration(text: str) -> timedelta:
    """``7d``, ``12h``, ``30m``, ``45s``, ``2w``, or several, as ``1d12h`` -> a timedelta.

    Raises ValueError with a message naming the text.
    """
    value = text.strip()
    if not _DURATION.match(value):
        shown = repr(text) if len(text) <= 40 else f"{text[:40]!r}..."
        raise ValueError(
            f"{shown} is not a duration: use a number and a unit (w, d, h, m or s), as 7d, "
            "12h, 30m or 1d12h"
        )
    try:
        return sum(
            (timedelta(**{_UNITS[unit]: int(n)}) for n, unit in _DURATION_PART.findall(value)),
            timedelta(),
        )
    except OverflowError:
        raise ValueError(f"{text!r} is out of range: use fewer than a million days") from None
