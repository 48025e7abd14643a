"""What the last sync of an Iceberg table saw of the archive: a listing in, the days that may hold new files out.

Finding which archive files an Iceberg table already holds means reading its
manifests, and reading all of them costs what the table holds, however little
is new. So each commit of ``archiver iceberg-sync`` records what the archive's
listing was: one digest per day of the keys it listed there (the table
property :data:`LISTING`), and that record's fingerprint in the summary of the
snapshot it makes. The next sync digests its own listing the same way; a day
whose digest is the recorded one holds the very files that commit saw, each of
which it had registered or left out (a compaction's outputs it could not take:
see :mod:`archiver.iceberg`). Only the files of the other days can be new, and
only the manifests whose ``change_time_hour`` bounds reach those days are read.

Why no file is missed or registered twice:

- The record is part of the commit (one metadata update with the snapshot): a
  sync that fails, or loses a race, records nothing.
- A file that arrives in a day after that day was listed (a late Lambda retry
  into an hour synced long ago; one written while the sync ran) changes the
  day's digest, so its day is read again, whatever its age.
- The record holds for the table its commit left and what descends from it:
  it counts only when its fingerprint is in the summary of the current
  snapshot or of one of its ancestors (a compaction may have committed since).
  After a rollback past it, or without one (a table synced before this, or
  recreated), every manifest is read, as before.
- A file a commit registered stays known while any snapshot references it;
  archiver's expiry deletes the files it leaves unreferenced from the archive,
  which changes their day. (A file another tool leaves in the archive after
  expiring every snapshot that referenced it is taken for new again only when
  its day changes: before this record, at the next sync. Either way its events
  would then be in the table twice.)
- A day the record holds whose listing changed (a compaction's outputs, an
  expiry's deletes) is read until a commit records it again.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Callable, Iterable, Sequence
from typing import Any, cast

import orjson
from pyiceberg.conversions import from_bytes
from pyiceberg.manifest import ManifestFile
from pyiceberg.partitioning import PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.table import Table
from pyiceberg.table.snapshots import ancestors_of
from pyiceberg.transforms import HourTransform
from pyiceberg.typedef import KeyDefaultDict

from archiver.archive.layout import US_PER_HOUR, Partition
from archiver.archive.schema import Col
from archiver.archive.store import StoredObject

__all__ = ["LISTING", "Listing", "day_of", "manifests_of_days", "recorded"]

LISTING = "archiver.synced-listing"  # the table property, and the snapshot summary's key
_VERSION = 1
_HOURS_PER_DAY = 24
_US_PER_DAY = _HOURS_PER_DAY * US_PER_HOUR


class Listing:
    """The archive's listing of one table, as one digest of its keys per day (since the epoch)."""

    def __init__(self, days: dict[int, str]) -> None:
        self.days = days

    @classmethod
    def of(cls, files: Iterable[tuple[Partition, StoredObject]]) -> Listing:
        keys: dict[int, list[str]] = {}
        for partition, obj in files:
            keys.setdefault(day_of(partition), []).append(obj.key)
        return cls({day: _digest("\n".join(sorted(found))) for day, found in sorted(keys.items())})

    @classmethod
    def parse(cls, text: str) -> Listing | None:
        """The listing a table property records; None for one this version cannot read."""
        try:
            record = orjson.loads(text)
            if record["v"] != _VERSION:
                return None
            first: int = record["first"]
            return cls({first + i: digest for i, digest in enumerate(record["days"]) if digest})
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return None

    def text(self) -> str:
        """The table property: the days from the first, a digest or "" (no file) each."""
        first = min(self.days, default=0)
        last = max(self.days, default=-1)
        days = [self.days.get(day, "") for day in range(first, last + 1)]
        return orjson.dumps({"v": _VERSION, "first": first, "days": days}).decode()

    @staticmethod
    def fingerprint(text: str) -> str:
        """What the summary of the snapshot committed with the record names it by."""
        return _digest(text)

    def changed(self, before: Listing) -> set[int]:
        """The days whose files are not the ones ``before`` lists (days now empty left out)."""
        return {day for day, digest in self.days.items() if before.days.get(day) != digest}

    def properties(self) -> tuple[dict[str, str], dict[str, str]]:
        """(the table property, the snapshot summary property) that record this listing."""
        text = self.text()
        return {LISTING: text}, {LISTING: self.fingerprint(text)}


def recorded(table: Table) -> Listing | None:
    """The listing the table records, when a commit in the current snapshot's lineage made it."""
    text = table.properties.get(LISTING)
    if not text:
        return None
    fingerprint = Listing.fingerprint(text)
    for snapshot in ancestors_of(table.current_snapshot(), table.metadata):
        if snapshot.summary is not None and snapshot.summary.get(LISTING) == fingerprint:
            return Listing.parse(text)
    return None


def day_of(partition: Partition) -> int:
    """The day (since the epoch) a partition's hour is in: a listing's unit."""
    return partition.hour_start_us // _US_PER_DAY


def manifests_of_days(
    schema: Schema, specs: dict[int, PartitionSpec], days: Iterable[int]
) -> Callable[[ManifestFile], bool]:
    """True for a manifest that can hold a file of one of the days (per the manifest list).

    The bounds of the ``hour(change_time)`` partition field in the manifest list's summary
    of each manifest decide; a manifest of a spec (of ``specs``, the table's) without that
    field, or whose summary lacks bounds or counts a null value, can hold any day.
    """
    wanted = sorted(set(days))
    try:
        source = schema.find_field(Col.CHANGE_TIME).field_id
    except ValueError:  # not a table of the archive's columns: nothing can be ruled out
        return lambda _: True

    def hour_field(spec_id: int) -> tuple[int, Any] | None:
        spec = specs.get(spec_id)
        if spec is None:
            return None
        for index, field in enumerate(spec.fields):
            if field.source_id == source and isinstance(field.transform, HourTransform):
                return index, spec.partition_type(schema).fields[index].field_type
        return None

    fields: KeyDefaultDict[int, tuple[int, Any] | None] = KeyDefaultDict(hour_field)

    def overlaps(manifest: ManifestFile) -> bool:
        found = fields[manifest.partition_spec_id]
        summaries = manifest.partitions
        if found is None or not summaries:
            return True
        index, kind = found
        if index >= len(summaries):
            return True
        summary = summaries[index]
        if summary.contains_null or summary.lower_bound is None or summary.upper_bound is None:
            return True
        # hours since the epoch (the hour transform's integers)
        low = cast(int, from_bytes(kind, summary.lower_bound)) // _HOURS_PER_DAY
        high = cast(int, from_bytes(kind, summary.upper_bound)) // _HOURS_PER_DAY
        return _any_between(wanted, low, high)

    return overlaps


def _any_between(values: Sequence[int], low: int, high: int) -> bool:
    """Whether any of the sorted ``values`` lies in ``low..high``."""
    at = bisect.bisect_left(values, low)
    return at < len(values) and values[at] <= high


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()
