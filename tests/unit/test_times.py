"""Time arguments (archiver.archive.times): ISO-8601 or epoch seconds in, epoch microseconds out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archiver.archive.times import format_us, parse_duration, parse_time

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def us(moment: datetime) -> int:
    delta = moment - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


NOV27_1403 = us(datetime(2026, 11, 27, 14, 3, tzinfo=UTC))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-27T14:03:00Z", NOV27_1403),
        ("2026-11-27T14:03:00.250000Z", NOV27_1403 + 250_000),
        ("2026-11-27T16:03:00+02:00", NOV27_1403),
        ("2026-11-27T09:03:00-05:00", NOV27_1403),
        ("2026-11-28T00:03:00+10:00", NOV27_1403),
        ("2026-11-27T14:03:00", NOV27_1403),  # naive: UTC
        ("2026-11-27 14:03", NOV27_1403),
        ("  2026-11-27T14:03:00Z  ", NOV27_1403),
        ("2026-11-27", us(datetime(2026, 11, 27, tzinfo=UTC))),
        ("1795000000", 1_795_000_000_000_000),
        ("1795000000.5", 1_795_000_000_500_000),
        ("1795000000.123456", 1_795_000_000_123_456),
        ("1795000000.1234567", 1_795_000_000_123_456),  # finer than a microsecond is dropped
        ("0", 0),
        ("-1.5", -1_500_000),
    ],
)
def test_parse_time(text: str, expected: int) -> None:
    assert parse_time(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "yesterday",
        "2026-13-01",
        "2026-11-27T25:00",
        "1e9",
        "12:00",
        "2026-11-27T14:03:00 UTC",
        "1,5",
        "--1",
    ],
)
def test_bad_time_names_the_text(text: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_time(text)
    assert repr(text) in str(caught.value)
    assert "ISO-8601" in str(caught.value)


@pytest.mark.parametrize(
    "text",
    [
        "99999999999999",  # epoch seconds in the year 3 million: an OverflowError once
        "-99999999999999",
        "253402300800",  # 10000-01-01
        "-62135596801",  # one second before 0001-01-01
        "9" * 5000,  # more digits than Python turns into an int
        "9999-12-31T23:59:59-01:00",  # 10000-01-01 in UTC
        "0001-01-01T00:00:00+01:00",  # year 0 in UTC
    ],
    ids=lambda text: text[:20],
)
def test_a_time_before_year_1_or_after_9999_is_out_of_range(text: str) -> None:
    with pytest.raises(ValueError, match="out of range") as caught:
        parse_time(text)
    assert text[:20] in str(caught.value)


def test_the_first_and_last_representable_times_are_accepted() -> None:
    assert parse_time("0001-01-01") == us(datetime(1, 1, 1, tzinfo=UTC))
    assert parse_time("-62135596800") == us(datetime(1, 1, 1, tzinfo=UTC))
    last = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    assert parse_time("9999-12-31T23:59:59.999999Z") == us(last)
    assert parse_time("253402300799.999999") == us(last)


@settings(max_examples=200, deadline=None)
@given(
    st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2099, 12, 31)),
    st.integers(-14 * 60, 14 * 60),
)
def test_any_iso_time_with_offset(moment: datetime, offset_minutes: int) -> None:
    aware = moment.replace(tzinfo=timezone(timedelta(minutes=offset_minutes)))
    assert parse_time(aware.isoformat()) == us(aware)
    assert parse_time(moment.isoformat()) == us(moment.replace(tzinfo=UTC))


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 4_102_444_799 * 10**6))
def test_format_us_parses_back(change_us: int) -> None:
    text = format_us(change_us)
    assert text.endswith("Z")
    assert parse_time(text) == change_us
    seconds, micros = divmod(change_us, 1_000_000)
    assert parse_time(f"{seconds}.{micros:06d}") == change_us


def test_format_us_of_nothing() -> None:
    assert format_us(None) == "-"
    assert format_us(NOV27_1403) == "2026-11-27T14:03:00Z"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("7d", timedelta(days=7)),
        ("12h", timedelta(hours=12)),
        ("30m", timedelta(minutes=30)),
        ("45s", timedelta(seconds=45)),
        ("2w", timedelta(weeks=2)),
        ("1d12h", timedelta(days=1, hours=12)),
        (" 0s ", timedelta()),
    ],
)
def test_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "7", "d", "-1d", "1.5h", "7 days", "1y", "1d 2h"])
def test_what_is_not_a_duration_is_named(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration") as caught:
        parse_duration(text)
    assert repr(text) in str(caught.value)


def test_a_duration_past_any_date_is_out_of_range() -> None:
    with pytest.raises(ValueError, match="out of range"):
        parse_duration("999999999w")
