"""Where things live in an archive: object keys in, partitions out.

::

    {archive}/table_name={table}/dt={YYYY-MM-DD}/hour={HH}/{first}_{last}_{digest}.parquet
    {archive}/_errors/table_name={table}/dt={YYYY-MM-DD}/{digest}.jsonl

Partitions follow the change's own UTC time (ApproximateCreationDateTime), not
arrival time. Object names come from the batch's content, so a retried batch
overwrites itself. Keys are relative to the archive root.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from .errors import InvalidNameError

__all__ = [
    "DEAD_LETTER_PREFIX",
    "Partition",
    "dead_letter_key",
    "object_name",
    "parse_data_key",
    "partition_of",
    "partitions_between",
    "redrive_dead_letter_key",
    "table_prefix",
    "validate_table_name",
]

DEAD_LETTER_PREFIX = "_errors/"
DATA_SUFFIX = ".parquet"
US_PER_HOUR = 3_600_000_000

# DynamoDB's own rule for table names: 3 to 255 of [A-Za-z0-9_.-].
_TABLE_NAME = re.compile(r"[A-Za-z0-9_.\-]{3,255}")
_DATA_KEY = re.compile(
    r"^table_name=(?P<table>[A-Za-z0-9_.\-]{3,255})/dt=(?P<dt>\d{4}-\d{2}-\d{2})/hour=(?P<hour>\d{2})/"
    r"(?P<name>[^/]+\.parquet)$"
)
_OBJECT_PART = re.compile(r"[0-9A-Za-z]{1,128}")


def validate_table_name(name: str) -> str:
    """Return ``name`` if it is a valid DynamoDB table name, else raise InvalidNameError."""
    if not isinstance(name, str) or _TABLE_NAME.fullmatch(name) is None or name in {"..", "..."}:
        raise InvalidNameError(
            f"invalid table name {name!r}: DynamoDB table names are 3 to 255 characters "
            "of letters, digits, '_', '-' and '.'"
        )
    return name


@dataclass(frozen=True, slots=True, order=True)
class Partition:
    """One hour of one table's changes."""

    table: str
    hour_start_us: int  # epoch microseconds of the hour's first instant

    @property
    def dt(self) -> str:
        return self.start.strftime("%Y-%m-%d")

    @property
    def hour(self) -> str:
        return self.start.strftime("%H")

    @property
    def start(self) -> datetime:
        return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=self.hour_start_us)

    @property
    def prefix(self) -> str:
        return f"{table_prefix(self.table)}dt={self.dt}/hour={self.hour}/"

    def key(self, name: str) -> str:
        return self.prefix + name


def table_prefix(table: str) -> str:
    return f"table_name={validate_table_name(table)}/"


def day_prefix(table: str, day: str) -> str:
    return f"{table_prefix(table)}dt={day}/"


def partition_of(table: str, change_time_us: int) -> Partition:
    """The partition a change made at ``change_time_us`` belongs to."""
    return Partition(table, change_time_us - change_time_us % US_PER_HOUR)


def partitions_between(table: str, since_us: int, until_us: int) -> Iterator[Partition]:
    """Every hour partition that can hold a change in [since_us, until_us]."""
    if since_us > until_us:
        return  # an empty window holds no change
    hour = since_us - since_us % US_PER_HOUR
    while hour <= until_us:
        yield Partition(table, hour)
        hour += US_PER_HOUR


def parse_data_key(key: str) -> tuple[Partition, str] | None:
    """The partition and file name of a data object key, or None for anything else."""
    match = _DATA_KEY.match(key)
    if match is None:
        return None
    start_us = _day_start_us(match["dt"])
    hour = int(match["hour"])
    if start_us is None or hour > 23:
        return None
    return Partition(match["table"], start_us + hour * US_PER_HOUR), match["name"]


@functools.lru_cache(maxsize=4096)
def _day_start_us(dt: str) -> int | None:
    """Epoch microseconds of a ``dt=`` day's first instant, or None: parsed once per day."""
    try:
        day = datetime.strptime(dt, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        return None
    return int((day - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds()) * 1_000_000


def object_name(first: str, last: str, digest: str) -> str:
    """A data file's name from its batch: first and last sequence numbers and a digest."""
    for part in (first, last, digest):
        if _OBJECT_PART.fullmatch(part) is None:
            raise InvalidNameError(f"invalid object name part {part[:40]!r}")
    return f"{first}_{last}_{digest}{DATA_SUFFIX}"


def redrive_dead_letter_key(table: str, digest: str) -> str:
    """Where records that a consumer kept failing on are kept by ``replayer redrive``."""
    return f"{DEAD_LETTER_PREFIX}redrive/{table_prefix(table)}{digest}.jsonl"


def dead_letter_key(table: str | None, day: str | None, digest: str) -> str:
    """Where a batch's undecodable records go; ``table``/``day`` when they are known."""
    table_part = (
        f"table_name={table}/" if table and _TABLE_NAME.fullmatch(table) else "table_name=_unknown/"
    )
    day_part = f"dt={day}/" if day else "dt=_unknown/"
    return f"{DEAD_LETTER_PREFIX}{table_part}{day_part}{digest}.jsonl"
