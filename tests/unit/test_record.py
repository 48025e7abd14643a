"""The record model and the error tree: padding, names for logs, TTL deletes, retryability."""

from __future__ import annotations

import gc
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archiver.archive.errors import (
    ArchiveError,
    FormatError,
    InvalidNameError,
    RecordError,
    SchemaVersionError,
    StoreAccessDenied,
    StoreError,
    StoreUnavailable,
)
from archiver.archive.record import (
    DYNAMODB_SOURCE,
    KINESIS_SOURCE,
    ChangeRecord,
    EventName,
    ViewType,
    pad_sequence,
)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 10**40 - 1), st.integers(0, 10**40 - 1))
def test_padded_text_order_is_numeric_order(a: int, b: int) -> None:
    pa, pb = pad_sequence(str(a)), pad_sequence(str(b))
    assert len(pa) == len(pb) == 40
    assert (pa < pb) == (a < b)
    assert int(pa) == a


def test_pad_sequence_width_by_source() -> None:
    assert pad_sequence("9") == "0" * 39 + "9"
    assert len(pad_sequence("123", KINESIS_SOURCE)) == 128
    assert pad_sequence("1" * 40, DYNAMODB_SOURCE) == "1" * 40


def change(**overrides: Any) -> ChangeRecord:
    fields: dict[str, Any] = {
        "table_name": "orders",
        "event_id": "e1",
        "event_name": EventName.REMOVE,
        "event_source": DYNAMODB_SOURCE,
        "sequence_number": "100000000000000000001",
        "change_time_us": 0,
        "keys": b'{"pk":{"S":"secret-key"}}',
        "new_image": None,
        "old_image": None,
        "envelope": b'{"eventID":"e1","dynamodb":{"Keys":null}}',
        "item_key": b'{"pk":{"S":"secret-key"}}',
        "keys_plain": b'{"pk":"secret-key"}',
    }
    fields.update(overrides)
    return ChangeRecord(**fields)


def test_ref_names_the_record_without_item_data() -> None:
    record = change()
    assert record.ref == "orders/e1/100000000000000000001"
    assert "secret-key" not in record.ref


@pytest.mark.parametrize("ttl", [True, False])
def test_is_ttl_delete_is_the_decoded_field(ttl: bool) -> None:
    # the decoder decides (tests/unit/test_decode.py); the record only carries the answer
    record = change(ttl_delete=ttl, user_identity=b'{"principalId":"dynamodb.amazonaws.com"}')
    assert record.is_ttl_delete is ttl
    assert change().ttl_delete is False


def test_a_record_is_frozen_json_text_without_cycles() -> None:
    record = change()
    with pytest.raises(AttributeError):
        record.keys = b"{}"  # type: ignore[misc]
    assert not gc.is_tracked(record)  # gc=False: the cyclic GC never walks a batch of them
    assert change() == record and hash(change()) == hash(record)
    assert change(envelope=b"{}") != record


def test_enums_are_the_stream_spellings() -> None:
    assert [e.value for e in EventName] == ["INSERT", "MODIFY", "REMOVE"]
    assert EventName("MODIFY") == "MODIFY"
    assert {v.value for v in ViewType} == {
        "KEYS_ONLY",
        "NEW_IMAGE",
        "OLD_IMAGE",
        "NEW_AND_OLD_IMAGES",
    }


def test_error_tree_and_retryability() -> None:
    assert issubclass(SchemaVersionError, FormatError)
    assert issubclass(StoreUnavailable, StoreError) and issubclass(StoreAccessDenied, StoreError)
    assert issubclass(InvalidNameError, ValueError)
    for kind in (RecordError, InvalidNameError, FormatError, SchemaVersionError, StoreError):
        assert issubclass(kind, ArchiveError)
    assert StoreUnavailable.transient is True
    assert StoreAccessDenied.transient is False
    assert FormatError.transient is False and RecordError.transient is False


def test_record_error_message_joins_where_and_reason() -> None:
    err = RecordError("missing dynamodb.Keys", "orders/e1/1")
    assert (err.reason, err.where, str(err)) == (
        "missing dynamodb.Keys",
        "orders/e1/1",
        "orders/e1/1: missing dynamodb.Keys",
    )
    assert str(RecordError("bad")) == "bad"
