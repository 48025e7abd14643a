"""Times: ISO-8601 or epoch seconds in, epoch microseconds (UTC) out, and back; shared by both sides."""

from __future__ import annotations

import re
from datetime import UTC, datetime

__all__ = ["format_us", "parse_time"]

_EPOCH = re.compile(r"^-?\d+(\.\d+)?$")
_ORIGIN = datetime(1970, 1, 1, tzinfo=UTC)


def parse_time(text: str) -> int:
    """``2026-11-27T14:03:00Z``, ``2026-11-27 14:03``, ``2026-11-27`` or ``1795000000`` -> epoch µs.

    A time without an offset is UTC. Raises ValueError with a message naming the text.
    """
    value = text.strip()
    if _EPOCH.match(value):
        seconds, _, fraction = value.partition(".")
        us = int(seconds) * 1_000_000
        if fraction:
            us += int(fraction[:6].ljust(6, "0")) * (-1 if value.startswith("-") else 1)
        return us
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"{text!r} is not a time: use ISO-8601 (2026-11-27T14:03:00Z) or epoch seconds"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - _ORIGIN
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def format_us(us: int | None) -> str:
    """Epoch µs as ISO-8601 UTC, or '-' for None."""
    if us is None:
        return "-"
    seconds, micros = divmod(us, 1_000_000)
    moment = datetime.fromtimestamp(seconds, UTC).replace(microsecond=micros)
    return moment.isoformat().replace("+00:00", "Z")
