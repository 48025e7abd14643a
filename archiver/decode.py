"""Decoding: raw Lambda event records in, validated ChangeRecords (or reasons) out.

Two shapes arrive: DynamoDB Streams records (``eventSource: aws:dynamodb``)
and Kinesis Data Streams records carrying a DynamoDB change as base64 JSON
(``eventSource: aws:kinesis``). Each record is checked before it is archived:
a record that cannot be decoded raises RecordError, naming the record and the
attribute path, so the caller can dead-letter it and archive the rest.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from typing import Any

import orjson

from archiver.archive.dynamojson import check_image, check_keys, valid_image, valid_keys
from archiver.archive.errors import InvalidNameError, RecordError
from archiver.archive.layout import validate_table_name
from archiver.archive.record import (
    DYNAMODB_SOURCE,
    KINESIS_SOURCE,
    ChangeRecord,
    EventName,
    ViewType,
)

__all__ = ["decode_record", "item_identifier", "table_of"]

_STREAM_ARN = re.compile(r"^arn:aws[\w-]*:dynamodb:[^:]*:[^:]*:table/(?P<table>[^/]+)/stream/.+$")
_DIGITS = re.compile(r"\d{1,128}")
_EVENT_NAMES = {e.value: e for e in EventName}
_VIEW_TYPES = frozenset(v.value for v in ViewType)
_IMAGE_KEYS = ("Keys", "NewImage", "OldImage")
# Changes made before 2000 or after 2200 are not plausible stream records.
_MIN_US, _MAX_US = 946_684_800 * 10**6, 7_258_118_400 * 10**6
_PRECISION = {"MILLISECOND": 1_000, "MICROSECOND": 1}
_valid_tables: set[str] = set()


def _where(table: Any, event_id: Any, sequence: Any) -> str:
    return f"{table or '?'}/{event_id or '?'}/{sequence or '?'}"


_tables_by_arn: dict[str, str | None] = {}


def _table_of_arn(arn: str) -> str | None:
    # A batch (and a Lambda's life) sees a handful of ARNs: parse each once.
    table = _tables_by_arn.get(arn, "")
    if table == "":
        match = _STREAM_ARN.match(arn)
        table = match["table"] if match else None
        if len(_tables_by_arn) < 1024:
            _tables_by_arn[arn] = table
    return table


def table_of(raw: Any, default_table: str | None = None) -> str | None:
    """The table a raw record belongs to, if it can be told (used to file dead letters too)."""
    if not isinstance(raw, dict):
        return default_table
    arn = raw.get("eventSourceARN")
    if raw.get("eventSource") != KINESIS_SOURCE and isinstance(arn, str):
        table = _table_of_arn(arn)
        if table is not None:
            return table
    return default_table


def item_identifier(raw: Any) -> str | None:
    """What Lambda expects back in ``batchItemFailures`` for this record."""
    if not isinstance(raw, dict):
        return None
    if raw.get("eventSource") == KINESIS_SOURCE:
        value = (raw.get("kinesis") or {}).get("sequenceNumber")
    else:
        value = (raw.get("dynamodb") or {}).get("SequenceNumber")
    return value if isinstance(value, str) else None


def decode_record(
    raw: Any, default_table: str | None = None, shard_id: str | None = None
) -> ChangeRecord:
    """Decode and validate one record of a Lambda event.

    Parameters
    ----------
    raw
        One element of the event's ``Records``.
    default_table
        The table to file records under when they do not name one
        (a DynamoDB Streams record without ``eventSourceARN``).
    shard_id
        The stream shard the record was read from, when known (the poller).

    Raises
    ------
    RecordError
        Naming the record (table/eventID/sequence) and what was wrong.
    """
    if not isinstance(raw, dict):
        raise RecordError(f"a stream record must be a JSON object, got {type(raw).__name__}")
    if raw.get("eventSource") == KINESIS_SOURCE or "kinesis" in raw:
        return _decode_kinesis(raw)
    return _decode_dynamodb(raw, default_table, shard_id)


def _decode_dynamodb(
    raw: dict[str, Any], default_table: str | None, shard_id: str | None
) -> ChangeRecord:
    event_id = raw.get("eventID")
    ddb = raw.get("dynamodb")
    sequence = ddb.get("SequenceNumber") if isinstance(ddb, dict) else None
    table = table_of(raw, default_table)
    where = _where(table, event_id, sequence)
    source = raw.get("eventSource", DYNAMODB_SOURCE)
    if source != DYNAMODB_SOURCE:
        raise RecordError(f"unknown eventSource {source!r}", where)
    if not isinstance(ddb, dict):
        raise RecordError("missing 'dynamodb'", where)
    if not isinstance(sequence, str) or _DIGITS.fullmatch(sequence) is None:
        raise RecordError("dynamodb.SequenceNumber must be a string of digits", where)
    if table is None:
        arn = raw.get("eventSourceARN")
        reason = (
            f"eventSourceARN {arn!r} is not a DynamoDB stream ARN"
            if arn is not None
            else "no eventSourceARN and no default table to file it under"
        )
        raise RecordError(reason, where)
    change_us = _seconds_to_us(ddb.get("ApproximateCreationDateTime"), where)
    return _change(
        raw,
        ddb,
        table,
        DYNAMODB_SOURCE,
        sequence,
        change_us,
        where,
        envelope=_envelope(raw, ddb),
        stream_arn=raw.get("eventSourceARN"),
        shard_id=shard_id,
    )


def _decode_kinesis(raw: dict[str, Any]) -> ChangeRecord:
    kinesis = raw.get("kinesis")
    sequence = kinesis.get("sequenceNumber") if isinstance(kinesis, dict) else None
    where = _where(None, raw.get("eventID"), sequence)
    if not isinstance(kinesis, dict):
        raise RecordError("missing 'kinesis'", where)
    if not isinstance(sequence, str) or _DIGITS.fullmatch(sequence) is None:
        raise RecordError("kinesis.sequenceNumber must be a string of digits", where)
    data = kinesis.get("data")
    if not isinstance(data, str):
        raise RecordError("kinesis.data must be base64 text", where)
    try:
        change = orjson.loads(base64.b64decode(data, validate=True))
    except (TypeError, ValueError, binascii.Error):
        raise RecordError("kinesis.data is not base64 of a JSON change record", where) from None
    if not isinstance(change, dict):
        raise RecordError("kinesis.data does not hold a JSON object", where)
    table = change.get("tableName")
    where = _where(table, change.get("eventID"), sequence)
    ddb = change.get("dynamodb")
    if not isinstance(ddb, dict):
        raise RecordError("missing 'dynamodb' in kinesis.data", where)
    if not isinstance(table, str):
        raise RecordError("missing tableName in kinesis.data", where)
    precision = ddb.get("ApproximateCreationDateTimePrecision", "MILLISECOND")
    if precision not in _PRECISION:
        raise RecordError(f"unknown ApproximateCreationDateTimePrecision {precision!r}", where)
    stamp = ddb.get("ApproximateCreationDateTime")
    if type(stamp) is not int:
        raise RecordError(
            f"dynamodb.ApproximateCreationDateTime must be an integer of {precision.lower()}s",
            where,
        )
    change_us = stamp * _PRECISION[precision]
    _check_time(change_us, where)
    envelope = dict(raw)
    envelope["kinesis"] = dict(kinesis, data=_envelope(change, ddb))
    return _change(
        change,
        ddb,
        table,
        KINESIS_SOURCE,
        sequence,
        change_us,
        where,
        envelope=envelope,
        stream_arn=raw.get("eventSourceARN"),
    )


def _envelope(record: dict[str, Any], ddb: dict[str, Any]) -> dict[str, Any]:
    envelope = dict(record)
    images_out = dict(ddb)
    for key in _IMAGE_KEYS:
        if key in images_out:
            images_out[key] = None  # a placeholder keeps the field's place for the rebuild
    envelope["dynamodb"] = images_out
    return envelope


def _change(
    record: dict[str, Any],
    ddb: dict[str, Any],
    table: str,
    source: str,
    sequence: str,
    change_us: int,
    where: str,
    *,
    envelope: dict[str, Any],
    stream_arn: Any,
    shard_id: str | None = None,
) -> ChangeRecord:
    if table not in _valid_tables:
        try:
            validate_table_name(table)
        except InvalidNameError as err:
            raise RecordError(str(err), where) from None
        if len(_valid_tables) < 1024:
            _valid_tables.add(table)
    event_id = record.get("eventID")
    if not isinstance(event_id, str) or not event_id:
        raise RecordError("eventID must be a non-empty string", where)
    name = _EVENT_NAMES.get(record.get("eventName"))  # type: ignore[arg-type]
    if name is None:
        raise RecordError(f"unknown eventName {record.get('eventName')!r}", where)
    keys = ddb.get("Keys")
    if keys is None:
        raise RecordError("missing dynamodb.Keys", where)
    if not valid_keys(keys):
        check_keys(keys, f"{where} Keys")
    new_image = ddb.get("NewImage")
    old_image = ddb.get("OldImage")
    if new_image is not None and not valid_image(new_image):
        check_image(new_image, f"{where} NewImage")
    if old_image is not None and not valid_image(old_image):
        check_image(old_image, f"{where} OldImage")
    view = ddb.get("StreamViewType")
    if view is not None:
        if view not in _VIEW_TYPES:
            raise RecordError(f"unknown StreamViewType {view!r}", where)
        _check_images_present(name, view, new_image, old_image, where)
    size = ddb.get("SizeBytes")
    if size is not None and type(size) is not int:
        raise RecordError("dynamodb.SizeBytes must be an integer", where)
    identity = record.get("userIdentity")
    if identity is not None and not isinstance(identity, dict):
        raise RecordError("userIdentity must be an object", where)
    if stream_arn is not None and not isinstance(stream_arn, str):
        raise RecordError("eventSourceARN must be a string", where)
    region = record.get("awsRegion")
    return ChangeRecord(
        table_name=table,
        event_id=event_id,
        event_name=name,
        event_source=source,
        sequence_number=sequence,
        change_time_us=change_us,
        keys=keys,
        new_image=new_image,
        old_image=old_image,
        envelope=envelope,
        stream_arn=stream_arn,
        view_type=view,
        size_bytes=size,
        aws_region=region if isinstance(region, str) else None,
        user_identity=identity,
        shard_id=shard_id,
    )


def _check_images_present(name: EventName, view: str, new: Any, old: Any, where: str) -> None:
    wants_new = view in ("NEW_IMAGE", "NEW_AND_OLD_IMAGES") and name is not EventName.REMOVE
    wants_old = view in ("OLD_IMAGE", "NEW_AND_OLD_IMAGES") and name is not EventName.INSERT
    if wants_new and new is None:
        raise RecordError(f"missing dynamodb.NewImage for a {name} with view type {view}", where)
    if wants_old and old is None:
        raise RecordError(f"missing dynamodb.OldImage for a {name} with view type {view}", where)


def _seconds_to_us(value: Any, where: str) -> int:
    if type(value) is int:
        change_us = value * 1_000_000
    elif type(value) is float and math.isfinite(value):
        change_us = round(value * 1_000_000)
    else:
        raise RecordError(
            "dynamodb.ApproximateCreationDateTime must be epoch seconds (a number)", where
        )
    _check_time(change_us, where)
    return change_us


def _check_time(change_us: int, where: str) -> None:
    if not _MIN_US <= change_us < _MAX_US:
        raise RecordError(
            "dynamodb.ApproximateCreationDateTime is not a plausible change time", where
        )
