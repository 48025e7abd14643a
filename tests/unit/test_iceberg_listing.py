"""The listing a sync records in its Iceberg table, and the manifests that can hold a day's files."""

from __future__ import annotations

import random

import pytest
from pyiceberg.conversions import to_bytes
from pyiceberg.manifest import ManifestContent, ManifestFile, PartitionFieldSummary
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.transforms import DayTransform, HourTransform
from pyiceberg.types import IntegerType, NestedField, StringType, TimestamptzType

from archiver.archive.layout import US_PER_HOUR, Partition
from archiver.archive.store import StoredObject
from archiver.iceberg_listing import Listing, day_of, manifests_of_days

DAY = 20_000  # days since the epoch
HOUR = DAY * 24  # its first hour


def files(hours: dict[int, list[str]]) -> list[tuple[Partition, StoredObject]]:
    """Archive files by the hour (since the epoch) they hold, named as given."""
    found = []
    for hour, names in hours.items():
        partition = Partition("orders", hour * US_PER_HOUR)
        found += [
            (partition, StoredObject(partition.key(f"{name}.parquet"), 100)) for name in names
        ]
    return found


def test_a_listing_digests_each_day_of_its_files_whatever_their_order() -> None:
    listed = files({HOUR: ["a", "b"], HOUR + 23: ["c"], HOUR + 24: ["d"], HOUR + 72: ["e"]})
    listing = Listing.of(listed)
    assert sorted(listing.days) == [DAY, DAY + 1, DAY + 3]
    shuffled = listed[:]
    random.Random(1).shuffle(shuffled)
    assert Listing.of(shuffled).days == listing.days
    assert day_of(listed[2][0]) == DAY and day_of(listed[3][0]) == DAY + 1


def test_a_listing_round_trips_through_its_property_text() -> None:
    listing = Listing.of(files({HOUR: ["a"], HOUR + 72: ["b"]}))
    text = listing.text()
    parsed = Listing.parse(text)
    assert parsed is not None and parsed.days == listing.days
    assert Listing.parse(Listing({}).text()) is not None
    # the table property, and the snapshot summary's fingerprint of it
    table, summary = listing.properties()
    assert table == {"archiver.synced-listing": text}
    assert summary == {"archiver.synced-listing": Listing.fingerprint(text)}
    assert Listing.fingerprint(text) != Listing.fingerprint(Listing({}).text())


@pytest.mark.parametrize(
    "text", ["", "not json", "[]", '{"v": 2, "first": 1, "days": []}', '{"v": 1}', "null"]
)
def test_a_record_this_version_cannot_read_is_none(text: str) -> None:
    assert Listing.parse(text) is None


def test_the_days_changed_are_those_with_other_files() -> None:
    before = Listing.of(files({HOUR: ["a"], HOUR + 24: ["b"], HOUR + 48: ["c"]}))
    # a late file in the first day, the second day as it was, the third day's file gone,
    # and a new day
    now = Listing.of(files({HOUR + 5: ["a0"], HOUR: ["a"], HOUR + 24: ["b"], HOUR + 96: ["e"]}))
    assert now.changed(before) == {DAY, DAY + 4}
    # a file replaced by another (an expiry's delete, a sink's write) changes its day
    swapped = Listing.of(files({HOUR: ["z"], HOUR + 24: ["b"], HOUR + 48: ["c"]}))
    assert swapped.changed(before) == {DAY}
    assert before.changed(before) == set()
    assert before.changed(Listing({})) == {DAY, DAY + 1, DAY + 2}


# --- the manifests that can hold a day's files -----------------------------------------------

SCHEMA = Schema(
    NestedField(1, "event_id", StringType(), required=True),
    NestedField(2, "change_time", TimestamptzType(), required=True),
)
HOURLY = PartitionSpec(
    PartitionField(source_id=2, field_id=1000, transform=HourTransform(), name="change_time_hour"),
    spec_id=0,
)
DAILY = PartitionSpec(
    PartitionField(source_id=2, field_id=1001, transform=DayTransform(), name="change_time_day"),
    spec_id=1,
)
UNPARTITIONED = PartitionSpec(spec_id=2)
SPECS = {0: HOURLY, 1: DAILY, 2: UNPARTITIONED}


def manifest(
    low: int | None, high: int | None, spec_id: int = 0, contains_null: bool = False
) -> ManifestFile:
    """A manifest-list entry whose files' hours (since the epoch) span low..high."""
    summaries = [
        PartitionFieldSummary.from_args(
            contains_null=contains_null,
            contains_nan=False,
            lower_bound=None if low is None else to_bytes(IntegerType(), low),
            upper_bound=None if high is None else to_bytes(IntegerType(), high),
        )
    ]
    return ManifestFile.from_args(
        manifest_path=f"m-{low}-{high}-{spec_id}.avro",
        manifest_length=1,
        partition_spec_id=spec_id,
        content=ManifestContent.DATA,
        sequence_number=1,
        min_sequence_number=1,
        added_snapshot_id=1,
        partitions=summaries if spec_id != 2 else [],
    )


def test_only_the_manifests_whose_hours_reach_a_day_can_hold_its_files() -> None:
    can_hold = manifests_of_days(SCHEMA, SPECS, [DAY + 1, DAY + 5])
    assert not can_hold(manifest(HOUR, HOUR + 23))  # the day before
    assert can_hold(manifest(HOUR + 23, HOUR + 24))  # reaches into it
    assert can_hold(manifest(HOUR + 30, HOUR + 31))
    assert not can_hold(manifest(HOUR + 48, HOUR + 5 * 24 - 1))  # between the two days
    assert can_hold(manifest(HOUR, HOUR + 10 * 24))  # spans both
    assert not can_hold(manifest(HOUR + 6 * 24, HOUR + 7 * 24))  # after
    assert not manifests_of_days(SCHEMA, SPECS, [])(manifest(HOUR, HOUR))


def test_a_manifest_whose_summary_cannot_tell_is_read() -> None:
    can_hold = manifests_of_days(SCHEMA, SPECS, [DAY + 1])
    assert can_hold(manifest(HOUR, HOUR, contains_null=True))  # a file of no partition value
    assert can_hold(manifest(None, None))
    assert can_hold(manifest(0, 0, spec_id=1))  # another spec's field
    assert can_hold(manifest(None, None, spec_id=2))  # no partition at all
    assert can_hold(manifest(0, 0, spec_id=9))  # a spec the table does not know
    foreign = Schema(NestedField(1, "id", StringType(), required=True))  # no change_time
    assert manifests_of_days(foreign, SPECS, [DAY + 1])(manifest(0, 0))
