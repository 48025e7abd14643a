"""Timestamps of AWS responses: ``aws.parse_timestamp`` reads what botocore's parser reads."""

from __future__ import annotations

import datetime
import email.utils
from collections.abc import Callable

import botocore.utils
import pytest
from hypothesis import given
from hypothesis import strategies as st

from archiver.archive.aws import parse_timestamp

INSTANTS = st.datetimes(
    min_value=datetime.datetime(1000, 1, 1), max_value=datetime.datetime(9999, 12, 31)
)


def _answer(parse: Callable[[object], datetime.datetime], value: object) -> object:
    """What ``parse`` makes of ``value``: the instant, or the error's type and message."""
    try:
        return parse(value)
    except Exception as err:  # botocore raises ValueError, and RuntimeError for some epochs
        return f"{type(err).__name__}: {err}"


@given(INSTANTS, st.integers(min_value=0, max_value=6))
def test_iso_8601_as_s3_listings_send_it_reads_as_botocore_reads_it(
    instant: datetime.datetime, digits: int
) -> None:
    # As a ListObjectsV2 body gives LastModified: 2026-12-02T10:12:54.000Z
    text = instant.strftime("%Y-%m-%dT%H:%M:%S")
    if digits:
        text += "." + f"{instant.microsecond:06d}"[:digits]
    text += "Z"

    parsed = parse_timestamp(text)

    assert parsed == botocore.utils.parse_timestamp(text)
    assert parsed.utcoffset() == datetime.timedelta(0)


@given(INSTANTS)
def test_rfc_1123_as_s3_headers_send_it_reads_as_botocore_reads_it(
    instant: datetime.datetime,
) -> None:
    # As a GetObject response's Last-Modified header: Wed, 02 Dec 2026 10:12:54 GMT
    text = email.utils.format_datetime(instant.replace(tzinfo=datetime.UTC), usegmt=True)

    parsed = parse_timestamp(text)

    assert parsed == botocore.utils.parse_timestamp(text)
    assert parsed == instant.replace(microsecond=0, tzinfo=datetime.UTC)


@pytest.mark.parametrize(
    "value",
    [
        "2026-04-31T10:00:00Z",  # no such day
        "Fri, 31 Apr 2026 10:00:00 GMT",
        "Mon, 02 Dec 2026 10:12:54 GMT",  # the wrong weekday: both read the date alone
        "2026-12-02T10:12:54+01:00",  # forms S3 does not send go to botocore's parser
        "2026-12-02T10:12:54.1234567Z",
        "2026-12-02 10:12:54",
        "Wed, 02 Dec 2026 10:12:54 +0000",
        "1764670374",
        "1764670374.25",
        1764670374,
        1764670374.25,
        "next Tuesday",
        "",
        "٢٠٢٦-12-02T10:12:54Z",  # Arabic-Indic digits are no ISO 8601
    ],
)
def test_other_forms_and_bad_dates_give_botocores_answer(value: object) -> None:
    assert _answer(parse_timestamp, value) == _answer(botocore.utils.parse_timestamp, value)


# dateutil warns about a zone name it does not know ("ZTG") before botocore's parser refuses it.
@pytest.mark.filterwarnings("ignore::dateutil.parser.UnknownTimezoneWarning")
@given(st.text(alphabet="0123456789-:TZ. ,GMTWedDecAprFri+", max_size=32))
def test_any_text_gives_botocores_answer(text: str) -> None:
    assert _answer(parse_timestamp, text) == _answer(botocore.utils.parse_timestamp, text)
