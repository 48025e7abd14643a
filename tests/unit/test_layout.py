"""The archive layout: table names, partitions of UTC hours, data keys and object names."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archiver.archive.errors import InvalidNameError
from archiver.archive.layout import (
    DEAD_LETTER_PREFIX,
    Partition,
    dead_letter_key,
    object_name,
    parse_data_key,
    partition_of,
    partitions_between,
    table_prefix,
    validate_table_name,
)
from tests.strategies import MAX_SECONDS, MIN_SECONDS, table_names

PROPERTY = settings(max_examples=200, deadline=None)
HOUR_US = 3_600_000_000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
change_times_us = st.integers(MIN_SECONDS * 10**6, MAX_SECONDS * 10**6 + 999_999)


def us(moment: datetime) -> int:
    delta = moment - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def moment(change_us: int) -> datetime:
    return EPOCH + timedelta(microseconds=change_us)


# --- table names -------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["abc", "Orders", "my_table-2026.v1", "a" * 255, "___", "a.b", "..a"]
)
def test_validate_table_name_accepts_dynamodb_names(name: str) -> None:
    assert validate_table_name(name) == name
    assert table_prefix(name) == f"table_name={name}/"


@PROPERTY
@given(table_names)
def test_validate_table_name_accepts_every_generated_name(name: str) -> None:
    assert validate_table_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "ab",
        "a/b",
        "../x",
        "..",
        "...",
        "a" * 256,
        "tabl\u00e9",
        "\u8868\u540d\u524d",
        "a b",
        "a\\b",
        "a=b",
        "a%2Fb",
        "abc\n",
        "\u0661\u0662\u0663",
    ],
)
def test_validate_table_name_rejects(name: str) -> None:
    with pytest.raises(InvalidNameError) as caught:
        validate_table_name(name)
    assert repr(name) in str(caught.value)
    assert isinstance(caught.value, ValueError)
    with pytest.raises(InvalidNameError):
        table_prefix(name)


@pytest.mark.parametrize("name", [None, 123, b"orders"])
def test_validate_table_name_rejects_non_strings(name: object) -> None:
    with pytest.raises(InvalidNameError):
        validate_table_name(name)  # type: ignore[arg-type]


# --- partitions ----------------------------------------------------------------------


def test_partition_prefix_is_the_utc_hour() -> None:
    change = us(datetime(2026, 11, 27, 14, 3, 0, 123456, tzinfo=UTC))
    partition = partition_of("orders", change)
    assert partition.prefix == "table_name=orders/dt=2026-11-27/hour=14/"
    assert partition.hour_start_us == us(datetime(2026, 11, 27, 14, tzinfo=UTC))
    assert partition.key("a.parquet") == "table_name=orders/dt=2026-11-27/hour=14/a.parquet"
    # an offset time is filed under its UTC hour
    offset = datetime(2026, 11, 28, 6, 30, tzinfo=timezone(timedelta(hours=5)))
    assert partition_of("orders", us(offset)).prefix == "table_name=orders/dt=2026-11-28/hour=01/"


@pytest.mark.parametrize(
    ("when", "prefix"),
    [
        (datetime(2026, 1, 1, 0, 0, tzinfo=UTC), "dt=2026-01-01/hour=00/"),
        (datetime(2025, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), "dt=2025-12-31/hour=23/"),
        (datetime(2028, 2, 29, 9, 0, tzinfo=UTC), "dt=2028-02-29/hour=09/"),
        (datetime(2099, 12, 31, 23, 0, tzinfo=UTC), "dt=2099-12-31/hour=23/"),
    ],
)
def test_partition_boundaries(when: datetime, prefix: str) -> None:
    assert partition_of("orders", us(when)).prefix == "table_name=orders/" + prefix


@PROPERTY
@given(table_names, change_times_us)
def test_partition_of_holds_the_change_and_parses_back(table: str, change_us: int) -> None:
    partition = partition_of(table, change_us)
    assert partition.hour_start_us <= change_us < partition.hour_start_us + HOUR_US
    when = moment(change_us)
    assert partition.prefix == f"table_name={table}/dt={when:%Y-%m-%d}/hour={when:%H}/"
    assert partition.start == when.replace(minute=0, second=0, microsecond=0)
    key = partition.key("100_200_0123456789abcdef.parquet")
    assert parse_data_key(key) == (partition, "100_200_0123456789abcdef.parquet")


def test_partitions_sort_by_table_then_time() -> None:
    a1, a2 = Partition("aaa", 0), Partition("aaa", HOUR_US)
    b0 = Partition("bbb", -HOUR_US)
    assert sorted([b0, a2, a1]) == [a1, a2, b0]


# --- data keys -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "table_name=orders/dt=2026-11-27/hour=24/a.parquet",
        "table_name=orders/dt=2026-11-27/hour=1/a.parquet",
        "table_name=orders/dt=2026-13-01/hour=01/a.parquet",
        "table_name=orders/dt=2026-02-30/hour=01/a.parquet",
        "table_name=orders/dt=2026-11-27/a.parquet",
        "table_name=orders/hour=01/a.parquet",
        "dt=2026-11-27/hour=01/a.parquet",
        "table_name=orders/dt=2026-11-27/hour=01/",
        "table_name=orders/dt=2026-11-27/hour=01/a.jsonl",
        "table_name=orders/dt=2026-11-27/hour=01/sub/a.parquet",
        "table_name=ab/dt=2026-11-27/hour=01/a.parquet",
        "table_name=a b/dt=2026-11-27/hour=01/a.parquet",
        "archive/table_name=orders/dt=2026-11-27/hour=01/a.parquet",
        "_errors/table_name=orders/dt=2026-11-27/0123456789abcdef.jsonl",
        "_errors/table_name=orders/dt=2026-11-27/hour=01/a.parquet",
        "table_name=orders/dt=20261127/hour=01/a.parquet",
        "",
    ],
)
def test_parse_data_key_rejects_other_keys(key: str) -> None:
    assert parse_data_key(key) is None


def test_parse_data_key_reads_a_data_key() -> None:
    parsed = parse_data_key("table_name=my.table-1/dt=2026-11-27/hour=23/1_2_ab.parquet")
    assert parsed is not None
    partition, name = parsed
    assert partition == Partition("my.table-1", us(datetime(2026, 11, 27, 23, tzinfo=UTC)))
    assert name == "1_2_ab.parquet"


# --- partitions_between ----------------------------------------------------------------


def test_partitions_between_is_inclusive_at_both_ends() -> None:
    start = us(datetime(2026, 11, 27, 14, tzinfo=UTC))
    hours = [p.prefix for p in partitions_between("orders", start, start + HOUR_US)]
    assert hours == [
        "table_name=orders/dt=2026-11-27/hour=14/",
        "table_name=orders/dt=2026-11-27/hour=15/",
    ]
    assert [p.hour for p in partitions_between("orders", start - 1, start)] == ["13", "14"]
    assert [p.hour for p in partitions_between("orders", start + 5, start + 5)] == ["14"]
    assert list(partitions_between("orders", start + 1, start)) == []


def test_partitions_between_crosses_days() -> None:
    since = us(datetime(2026, 12, 31, 22, 30, tzinfo=UTC))
    until = us(datetime(2027, 1, 1, 1, 0, tzinfo=UTC))
    assert [(p.dt, p.hour) for p in partitions_between("orders", since, until)] == [
        ("2026-12-31", "22"),
        ("2026-12-31", "23"),
        ("2027-01-01", "00"),
        ("2027-01-01", "01"),
    ]


@PROPERTY
@given(change_times_us, st.integers(0, 30 * HOUR_US), st.data())
def test_partitions_between_covers_the_window_exactly(
    since: int, length: int, data: st.DataObject
) -> None:
    until = since + length
    partitions = list(partitions_between("orders", since, until))
    starts = [p.hour_start_us for p in partitions]
    assert starts == sorted(starts)
    assert all(b - a == HOUR_US for a, b in itertools.pairwise(starts))
    # every partition overlaps the window, and every instant of the window has its partition
    assert all(p.hour_start_us <= until and p.hour_start_us + HOUR_US > since for p in partitions)
    instant = data.draw(st.integers(since, until))
    assert partition_of("orders", instant) in partitions
    assert partition_of("orders", since) == partitions[0]
    assert partition_of("orders", until) == partitions[-1]


# --- object names and dead letters ---------------------------------------------------


def test_object_name_joins_its_parts() -> None:
    name = object_name("100000000000000000001", "100000000000000000009", "0123456789abcdef")
    assert name == "100000000000000000001_100000000000000000009_0123456789abcdef.parquet"
    assert object_name("1" * 128, "2", "ab") == "1" * 128 + "_2_ab.parquet"


@pytest.mark.parametrize(
    ("first", "last", "digest"),
    [
        ("", "2", "ab"),
        ("1", "", "ab"),
        ("1", "2", ""),
        ("a/b", "2", "ab"),
        ("../x", "2", "ab"),
        ("..", "2", "ab"),
        ("1", "2_3", "ab"),
        ("1", "2", "a.b"),
        ("1", "2", "ab\n"),
        ("1" * 129, "2", "ab"),
        ("\u0661", "2", "ab"),
        ("1", "2", "%2F"),
    ],
)
def test_object_name_rejects_unsafe_parts(first: str, last: str, digest: str) -> None:
    with pytest.raises(InvalidNameError, match="invalid object name part"):
        object_name(first, last, digest)


def test_dead_letter_keys_live_apart_from_data() -> None:
    key = dead_letter_key("orders", "2026-11-27", "0123456789abcdef")
    assert key == "_errors/table_name=orders/dt=2026-11-27/0123456789abcdef.jsonl"
    assert key.startswith(DEAD_LETTER_PREFIX)
    assert parse_data_key(key) is None
    assert dead_letter_key(None, None, "ab") == "_errors/table_name=_unknown/dt=_unknown/ab.jsonl"
    # a name that is not a valid table name never reaches the key
    assert dead_letter_key("../../etc", "2026-11-27", "ab") == (
        "_errors/table_name=_unknown/dt=2026-11-27/ab.jsonl"
    )
