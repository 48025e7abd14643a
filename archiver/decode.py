"""Decoding from bytes: the JSON text of stream records in, ChangeRecords (or reasons) out.

One decoder serves every source: the body of a Lambda invocation, a GetRecords
response and the files ``archiver ingest`` reads are cut into the raw text of
each record (:mod:`archiver.split`), and :func:`decode_record` turns one record's text into the
archive's columns without rebuilding its images: ``Keys``, ``NewImage`` and
``OldImage`` stay the exact text that arrived, the envelope is that text with
the images cut out, and only the few fields the archive keeps as columns are
decoded. Numbers inside images are never parsed, so none becomes a float.

Two shapes arrive: DynamoDB Streams records (``eventSource: aws:dynamodb``) and
Kinesis Data Streams records carrying a DynamoDB change as base64 JSON
(``eventSource: aws:kinesis``). A record that cannot be archived raises
RecordError naming the record and the problem, so the caller dead-letters it
and archives the rest.

What is checked (see the README's "Validation" section): always the envelope
fields that become columns (ids, event name, sequence number of at most 40
ASCII digits, or 128 for Kinesis, a plausible change time, view type, sizes
within 64 bits), the keys (a non-empty map of S, N or B values: they are small
and become the canonical item key), and that every image is a JSON object of
valid UTF-8. ``full_check=True`` also checks every attribute value of every
image against DynamoDB's types: the default for files people make, a setting
for records from the AWS service, which DynamoDB has already checked.
"""

from __future__ import annotations

import base64
import binascii
import re
import sys
from itertools import pairwise
from typing import Annotated, Any, Literal

import msgspec
import orjson

from archiver.archive.dynamojson import check_image, check_keys, plain_keys, valid_keys
from archiver.archive.errors import InvalidNameError, RecordError
from archiver.archive.layout import validate_table_name
from archiver.archive.record import (
    DYNAMODB_SOURCE,
    KINESIS_SOURCE,
    TTL_PRINCIPAL,
    ChangeRecord,
    EventName,
    ViewType,
)
from archiver.jsontext import JsonTextError, decode_members, members, replace_members

__all__ = [
    "as_text",
    "decode_record",
    "item_identifier",
    "table_of",
    "typed_records",
]

_STREAM_ARN = re.compile(r"^arn:aws[\w-]*:dynamodb:[^:]*:[^:]*:table/(?P<table>[^/]+)/stream/.+$")
_EVENT_NAMES = {e.value: e for e in EventName}
_VIEW_TYPES = frozenset(v.value for v in ViewType)
_IMAGES = ("Keys", "NewImage", "OldImage")
_NULLS = {name: b"null" for name in _IMAGES}
_PLACEHOLDERS = {name: orjson.dumps(name) + b":null" for name in _IMAGES}
_HEADERS = {name: orjson.dumps(name) + b":" for name in _IMAGES}
# DynamoDB sequence numbers have 21 to 40 digits (some emulators write fewer); Kinesis ones
# up to 128. Longer ones would sort out of order once padded to the column's width.
_MAX_DIGITS = {DYNAMODB_SOURCE: 40, KINESIS_SOURCE: 128}
# Changes made before 2000 or after 2200 are not plausible stream records.
_MIN_S, _MAX_S = 946_684_800, 7_258_118_400
_PRECISION = {"MILLISECOND": 1_000, "MICROSECOND": 1}
_INT64 = 2**63

_STR = msgspec.json.Decoder(str)
_OPTIONAL_STR = msgspec.json.Decoder(str | None)
_INT = msgspec.json.Decoder(int)
_NUMBER = msgspec.json.Decoder(int | float)
_valid_tables: set[str] = set()
_tables_by_arn: dict[str, str | None] = {}

# The fast path: one typed decode (in C) of everything the columns need, with the checks
# as constraints; images stay raw. A record it refuses goes to the exact walk below, which
# decodes the unusual shapes too, or says what is wrong.
_ABSENT = msgspec.Raw(b"")
_Seconds = Annotated[int, msgspec.Meta(ge=_MIN_S, lt=_MAX_S)]
_FloatSeconds = Annotated[float, msgspec.Meta(ge=_MIN_S, lt=_MAX_S)]


# gc=False: thousands of these are made per event and none can hold a cycle; untracked, the
# cyclic GC never walks them.
class _FastDynamodb(msgspec.Struct, gc=False):
    ApproximateCreationDateTime: _Seconds | _FloatSeconds
    Keys: msgspec.Raw
    SequenceNumber: Annotated[str, msgspec.Meta(pattern="^[0-9]{1,40}$")]
    NewImage: msgspec.Raw = _ABSENT
    OldImage: msgspec.Raw = _ABSENT
    SizeBytes: Annotated[int, msgspec.Meta(ge=0, le=_INT64 - 1)] | None = None
    StreamViewType: Literal["KEYS_ONLY", "NEW_IMAGE", "OLD_IMAGE", "NEW_AND_OLD_IMAGES"] | None = (
        None
    )


class _FastRecord(msgspec.Struct, gc=False):
    eventID: Annotated[str, msgspec.Meta(min_length=1)]
    eventName: Literal["INSERT", "MODIFY", "REMOVE"]
    dynamodb: _FastDynamodb
    eventSource: Literal["aws:dynamodb"] = "aws:dynamodb"
    eventSourceARN: str | None = None
    awsRegion: str | None = None
    userIdentity: msgspec.Raw = _ABSENT


class _FastKinesisDynamodb(msgspec.Struct, gc=False):
    ApproximateCreationDateTime: Annotated[int, msgspec.Meta(ge=0)]
    Keys: msgspec.Raw
    NewImage: msgspec.Raw = _ABSENT
    OldImage: msgspec.Raw = _ABSENT
    SizeBytes: Annotated[int, msgspec.Meta(ge=0, le=_INT64 - 1)] | None = None
    StreamViewType: Literal["KEYS_ONLY", "NEW_IMAGE", "OLD_IMAGE", "NEW_AND_OLD_IMAGES"] | None = (
        None
    )
    ApproximateCreationDateTimePrecision: Literal["MILLISECOND", "MICROSECOND"] = "MILLISECOND"


class _FastChange(msgspec.Struct, gc=False):
    """The DynamoDB change inside a Kinesis record's ``data``."""

    eventID: Annotated[str, msgspec.Meta(min_length=1)]
    eventName: Literal["INSERT", "MODIFY", "REMOVE"]
    dynamodb: _FastKinesisDynamodb
    tableName: str
    awsRegion: str | None = None
    userIdentity: msgspec.Raw = _ABSENT


class _FastKinesisData(msgspec.Struct, gc=False):
    sequenceNumber: Annotated[str, msgspec.Meta(pattern="^[0-9]{1,128}$")]
    data: str


class _FastKinesisRecord(msgspec.Struct, gc=False):
    kinesis: _FastKinesisData
    eventSource: Literal["aws:kinesis"] = "aws:kinesis"
    eventSourceARN: str | None = None


class _Identity(msgspec.Struct):
    principalId: str | None = None
    PrincipalId: str | None = None


_encode = msgspec.json.encode
_intern = sys.intern
_FAST = msgspec.json.Decoder(_FastRecord)
_FAST_KINESIS = msgspec.json.Decoder(_FastKinesisRecord)
_FAST_CHANGE = msgspec.json.Decoder(_FastChange)
_IDENTITY = msgspec.json.Decoder(_Identity)


def as_text(record: Any) -> bytes:
    """A record given as a Python object (a Lambda event's element) as compact JSON text.

    Raises
    ------
    RecordError
        When the object cannot be written as JSON (strings with lone
        surrogates, nesting deeper than the encoders allow).
    """
    if isinstance(record, bytes | bytearray | memoryview):
        return bytes(record)
    try:
        return orjson.dumps(record)
    except (TypeError, orjson.JSONEncodeError) as err:
        reason = err
    try:
        # msgspec writes integers of any size exactly (orjson stops at 64 bits), and spells
        # everything else as orjson does, but for the exponent of large floats.
        return _encode(record)
    except (TypeError, ValueError, RecursionError, msgspec.EncodeError):
        raise RecordError(f"the record cannot be written as JSON ({reason})") from None


def _where(table: Any, event_id: Any, sequence: Any) -> str:
    return f"{table or '?'}/{event_id or '?'}/{sequence or '?'}"


_ID_IN_TEXT = re.compile(rb'"eventID"[ \t\r\n]*:[ \t\r\n]*"([!#-\[\]-~]{1,128})"')
_SEQUENCE_IN_TEXT = re.compile(
    rb'"(?:SequenceNumber|sequenceNumber)"[ \t\r\n]*:[ \t\r\n]*"([0-9]{1,128})"'
)


def _where_of_text(text: bytes) -> str:
    """How to name a record the parser refuses: its eventID and sequence number, if legible."""
    event_id = _ID_IN_TEXT.search(text[:65536])
    sequence = _SEQUENCE_IN_TEXT.search(text)
    if event_id is None and sequence is None:
        return ""
    return _where(
        None,
        event_id[1].decode() if event_id else None,
        sequence[1].decode() if sequence else None,
    )


def _table_of_arn(arn: str) -> str | None:
    # A batch (and a Lambda's life) sees a handful of ARNs: parse each once.
    table = _tables_by_arn.get(arn, "")
    if table == "":
        match = _STREAM_ARN.match(arn)
        table = match["table"] if match else None
        if len(_tables_by_arn) < 1024:
            _tables_by_arn[arn] = table
    return table


# --- what a record is, even when it cannot be decoded -------------------------------------


def _fields(raw: Any) -> dict[str, msgspec.Raw] | None:
    if not isinstance(raw, bytes | bytearray | memoryview | msgspec.Raw):
        return None
    try:
        return decode_members(raw)
    except JsonTextError:
        return None


def _string(fields: dict[str, msgspec.Raw] | None, name: str) -> str | None:
    if fields is None or name not in fields:
        return None
    try:
        value = _STR.decode(fields[name])
    except msgspec.DecodeError:
        return None
    return value


def table_of(raw: Any, default_table: str | None = None) -> str | None:
    """The table a raw record belongs to, if it can be told (used to file dead letters too)."""
    if isinstance(raw, dict):
        try:
            raw = as_text(raw)
        except RecordError:
            return default_table
    fields = _fields(raw)
    if fields is None:
        return default_table
    if _string(fields, "eventSource") == KINESIS_SOURCE:
        return default_table
    arn = _string(fields, "eventSourceARN")
    if arn is not None:
        table = _table_of_arn(arn)
        if table is not None:
            return table
    return default_table


def item_identifier(raw: Any) -> str | None:
    """What Lambda expects back in ``batchItemFailures`` for this record (text or dict)."""
    if isinstance(raw, dict):
        if raw.get("eventSource") == KINESIS_SOURCE or "kinesis" in raw:
            value = (raw.get("kinesis") or {}).get("sequenceNumber")
        else:
            value = (raw.get("dynamodb") or {}).get("SequenceNumber")
        return value if isinstance(value, str) else None
    fields = _fields(raw)
    if fields is None:
        return None
    if "kinesis" in fields:
        return _string(_fields(fields["kinesis"]), "sequenceNumber")
    return _string(_fields(fields.get("dynamodb", b"null")), "SequenceNumber")


class _FastEvent(msgspec.Struct, gc=False):
    Records: list[_FastRecord]


_FAST_EVENT = msgspec.json.Decoder(_FastEvent)


def typed_records(body: bytes) -> list[Any] | None:
    """The typed decode of every record of a DynamoDB Streams event at once, else None.

    One pass over the body instead of one per record; None as soon as any
    record is not a plain DynamoDB Streams record (Kinesis, or one to refuse),
    or the body is not valid UTF-8, and each record then takes its own decode.
    A record cut from a body this accepts is valid UTF-8 (its text starts and
    ends at ASCII punctuation): :func:`decode_record` given its ``typed``
    decode does not check its text again.
    """
    if not (body.isascii() or _utf8_buffer(body)):
        return None
    try:
        return list(_FAST_EVENT.decode(body).Records)
    except (msgspec.DecodeError, RecursionError):
        return None


def _utf8_buffer(data: bytes) -> bool:
    """Whether ``data`` is valid UTF-8, checked in one pass by Arrow, without making a str.

    A 6 MB event checks in under 1 ms, where decoding each record's text to see takes
    about 3 ms in all (and makes a str of each).
    """
    import struct

    import pyarrow as pa  # loaded already by the archive's codec wherever records are written

    offsets = pa.py_buffer(struct.pack("<qq", 0, len(data)))
    array = pa.Array.from_buffers(pa.large_string(), 1, [None, offsets, pa.py_buffer(data)])
    try:
        array.validate(full=True)
    except pa.ArrowInvalid:
        return False
    return True


# --- one record ---------------------------------------------------------------------------


def decode_record(
    raw: Any,
    default_table: str | None = None,
    shard_id: str | None = None,
    *,
    stream_arn: str | None = None,
    full_check: bool = False,
    typed: Any = None,
) -> ChangeRecord:
    """Decode and check one stream record given as its JSON text (or as a Python object).

    Parameters
    ----------
    raw
        One record's JSON text: an element of a Lambda event's ``Records`` or of
        a GetRecords response. A Python object (a parsed element) is first
        written as compact JSON.
    default_table
        The table to file records under when they do not name one.
    shard_id
        The stream shard the record was read from, when known (the poller).
    stream_arn
        The stream the record was read from (GetRecords records carry no
        ``eventSourceARN``: it is added to the envelope, as Lambda adds it).
    full_check
        Check every attribute value of every image against DynamoDB's types.
    typed
        The record's typed decode when the caller made it already, for a whole
        event at once (see :func:`typed_records`).

    Raises
    ------
    RecordError
        Naming the record (table/eventID/sequence) and what was wrong.
    """
    if typed is not None:
        # typed_records checked the whole body's UTF-8, so this record's text is valid
        record = _decode_fast(
            raw, typed, default_table, shard_id, stream_arn, full_check, checked_utf8=True
        )
        if record is not None:
            return record
    if not isinstance(raw, bytes | bytearray | memoryview):
        if not isinstance(raw, dict):
            raise RecordError(f"a stream record must be a JSON object, got {type(raw).__name__}")
        raw = as_text(raw)
    text = bytes(raw)
    if b'"kinesis"' in text:
        record = _decode_fast_kinesis(text, full_check)
    else:
        try:
            fast = _FAST.decode(text)
        except (msgspec.DecodeError, RecursionError):
            fast = None
        record = (
            None
            if fast is None
            else _decode_fast(text, fast, default_table, shard_id, stream_arn, full_check)
        )
    if record is not None:
        return record
    try:
        fields = decode_members(text)
    except JsonTextError as err:
        reason = (
            "a stream record must be a JSON object, got another JSON value"
            if str(err) == "not a JSON object"
            else f"the record is {err}"
        )
        raise RecordError(reason, _where_of_text(text)) from None
    if "kinesis" in fields or _string(fields, "eventSource") == KINESIS_SOURCE:
        return _decode_kinesis(text, fields, full_check)
    return _decode_dynamodb(text, fields, default_table, shard_id, stream_arn, full_check)


def _decode_fast(
    text: bytes,
    fast: _FastRecord,
    default_table: str | None,
    shard_id: str | None,
    stream_arn: str | None,
    full_check: bool,
    *,
    checked_utf8: bool = False,
) -> ChangeRecord | None:
    """A DynamoDB Streams record the typed decode accepted, or None to take the exact walk.

    Straight-line on purpose: at this rate every Python operation per record counts.
    ``checked_utf8``: the text is known to be valid UTF-8 (it was cut from a body that is).
    """
    if not (checked_utf8 or text.isascii() or _utf8(text)):
        return None  # the images and the envelope are cut from it: one check covers them all
    ddb = fast.dynamodb
    arn = fast.eventSourceARN
    if arn is None:
        arn = stream_arn
    # (the caches' hits inline: two calls fewer per record)
    table = None if arn is None else _tables_by_arn.get(arn, "") or _table_of_arn(arn)
    if table is None:
        table = default_table
        if table is None:
            return None
    if table not in _valid_tables and not _remember_table(table):
        return None
    cut = _cut_images(text, ddb)
    if cut is None:
        return None
    envelope, keys, new, old = cut
    if fast.eventSourceARN is None and stream_arn is not None:
        if b'"eventSourceARN"' in envelope:
            return None
        # GetRecords records carry no eventSourceARN; Lambda adds it, and so does the archive.
        close = envelope.rstrip().rfind(b"}")
        envelope = envelope[:close] + b',"eventSourceARN":' + _encode(stream_arn) + b"}"
    seconds = ddb.ApproximateCreationDateTime
    change_us = seconds * 1_000_000 if type(seconds) is int else round(seconds * 1_000_000)
    return _fast_record(
        fast,
        table,
        DYNAMODB_SOURCE,
        ddb.SequenceNumber,
        change_us,
        (keys, new, old, envelope),
        arn,
        shard_id,
        full_check,
    )


def _decode_fast_kinesis(text: bytes, full_check: bool) -> ChangeRecord | None:
    """A Kinesis-delivered change, or None to take the exact walk.

    Only records whose ``data`` the archive can give back byte for byte take this
    path: canonical base64 of an inner record whose image members are compact.
    """
    try:
        outer = _FAST_KINESIS.decode(text)
    except (msgspec.DecodeError, RecursionError):
        return None
    data = outer.kinesis.data
    try:
        inner = base64.b64decode(data, validate=True)
        change = _FAST_CHANGE.decode(inner)
    except (binascii.Error, ValueError, msgspec.DecodeError, RecursionError):
        return None
    if not (text.isascii() and inner.isascii()) and not (_utf8(text) and _utf8(inner)):
        return None  # what the images and the envelope are cut from: one check covers them
    ddb = change.dynamodb
    table = change.tableName
    if table not in _valid_tables and not _remember_table(table):
        return None
    cut = _cut_images(inner, ddb)
    if cut is None:
        return None
    inner_envelope, keys, new, old = cut
    quoted = b'"data":"' + data.encode() + b'"'
    if (
        text.count(b'"data":') != 1
        or quoted not in text
        or base64.b64encode(inner) != data.encode()
    ):
        return None
    factor = 1_000 if ddb.ApproximateCreationDateTimePrecision == "MILLISECOND" else 1
    change_us = ddb.ApproximateCreationDateTime * factor
    if not _MIN_S * 1_000_000 <= change_us < _MAX_S * 1_000_000:
        return None
    envelope = text.replace(quoted, b'"data":' + inner_envelope, 1)
    return _fast_record(
        change,
        table,
        KINESIS_SOURCE,
        outer.kinesis.sequenceNumber,
        change_us,
        (keys, new, old, envelope),
        outer.eventSourceARN,
        None,
        full_check,
    )


# The envelope's middle when the images follow one another as AWS writes them, by
# (NewImage present, OldImage present).
_MIDDLES = {
    (False, False): b"null",
    (True, False): b'null,"NewImage":null',
    (False, True): b'null,"OldImage":null',
    (True, True): b'null,"NewImage":null,"OldImage":null',
}


def _cut_images(
    text: bytes, ddb: _FastDynamodb | _FastKinesisDynamodb
) -> tuple[bytes, bytes, bytes | None, bytes | None] | None:
    """``(envelope, keys, new_image, old_image)`` cut from a record's text, or None to decline.

    Exact: the envelope is the text with each image's value replaced by ``null``.
    Records as AWS writes them have ``Keys``, ``NewImage`` and ``OldImage`` one
    after the other: one search finds all three, and the text around them is
    checked for anything a placeholder could be confused with. Any other
    layout takes :func:`_cut_anywhere`.
    """
    keys_raw, new_raw, old_raw = ddb.Keys, ddb.NewImage, ddb.OldImage
    at = text.find(b'"Keys":') + 7
    if at == 6 or not text.startswith(keys_raw, at):
        return None
    end = at + len(keys_raw)
    keys = text[at:end]
    new = old = None
    if new_raw is not _ABSENT:
        start = end + 12
        if (
            len(new_raw) == 4  # an image that arrived as null keeps its null: the long way
            or not text.startswith(b',"NewImage":', end)
            or not text.startswith(new_raw, start)
        ):
            return _cut_anywhere(text, ddb)
        end = start + len(new_raw)
        new = text[start:end]
    if old_raw is not _ABSENT:
        start = end + 12
        if (
            len(old_raw) == 4
            or not text.startswith(b',"OldImage":', end)
            or not text.startswith(old_raw, start)
        ):
            return _cut_anywhere(text, ddb)
        end = start + len(old_raw)
        old = text[start:end]
    prefix, suffix = text[:at], text[end:]
    # No "Keys": before the first (found first), no "…Image": before it either, and no
    # ":null" after the images: the placeholders are then exactly one per image present.
    if b'Image":' in prefix or b":null" in suffix:
        return _cut_anywhere(text, ddb)
    envelope = prefix + _MIDDLES[new is not None, old is not None] + suffix
    return envelope, keys, new, old


def _cut_anywhere(
    text: bytes, ddb: _FastDynamodb | _FastKinesisDynamodb
) -> tuple[bytes, bytes, bytes | None, bytes | None] | None:
    """:func:`_cut_images` for images in any order, with anything between them."""
    keys = bytes(ddb.Keys)
    new_raw, old_raw = ddb.NewImage, ddb.OldImage
    new = None if new_raw is _ABSENT else bytes(new_raw)
    old = None if old_raw is _ABSENT else bytes(old_raw)
    if new == b"null":
        new = None
    if old == b"null":
        old = None
    # At the first member header followed by the image's own text (a header cannot occur
    # inside a JSON string). Were that another member with the very same text, replay would
    # still give back every byte; cuts that overlap, or an envelope whose placeholders are not
    # one per image, take the exact walk instead.
    key_at = text.find(b'"Keys":') + 7
    if key_at == 6 or not text.startswith(keys, key_at):
        return None
    cuts = [(key_at, key_at + len(keys))]
    for header, value in ((b'"NewImage":', new), (b'"OldImage":', old)):
        if value is not None:
            at = text.find(header) + 11
            if at == 10 or not text.startswith(value, at):
                return None
            cuts.append((at, at + len(value)))
    cuts.sort()
    parts = [text[: cuts[0][0]]]
    for (_, end), (start, _) in pairwise(cuts):
        if start < end:
            return None
        parts += (b"null", text[end:start])
    parts += (b"null", text[cuts[-1][1] :])
    envelope = b"".join(parts)
    # Replay finds each image's place by its placeholder: one for each image the record has
    # (an image that arrived as null keeps its null there), none for an absent one.
    if (
        envelope.count(b'"Keys":null') != 1
        or envelope.count(b'"NewImage":null') != (new_raw is not _ABSENT)
        or envelope.count(b'"OldImage":null') != (old_raw is not _ABSENT)
    ):
        return None
    return envelope, keys, new, old


def _fast_record(
    fast: _FastRecord | _FastChange,
    table: str,
    source: str,
    sequence: str,
    change_us: int,
    texts: tuple[bytes, bytes | None, bytes | None, bytes],
    arn: str | None,
    shard_id: str | None,
    full_check: bool,
) -> ChangeRecord | None:
    keys, new, old, envelope = texts
    ddb = fast.dynamodb
    name = _EVENT_NAMES[fast.eventName]
    view = ddb.StreamViewType
    if view is not None:
        if view == "NEW_AND_OLD_IMAGES":
            if (new is None and name is not EventName.REMOVE) or (
                old is None and name is not EventName.INSERT
            ):
                return None
        elif (view == "NEW_IMAGE" and new is None and name is not EventName.REMOVE) or (
            view == "OLD_IMAGE" and old is None and name is not EventName.INSERT
        ):
            return None
    if full_check:
        try:
            if new is not None:
                _check_image(new, "NewImage", True)
            if old is not None:
                _check_image(old, "OldImage", True)
        except RecordError:
            return None
    elif (new is not None and new[:1] != b"{") or (old is not None and old[:1] != b"{"):
        return None
    columns = _key_cache.get(keys) or _key_columns(keys)
    if columns is None:
        return None
    # One string per region and stream ARN, not one per record: a buffered record keeps both.
    region = fast.awsRegion
    if region is not None:
        region = _intern(region)
    if arn is not None:
        arn = _intern(arn)
    identity: bytes | None = None
    ttl = False
    if fast.userIdentity is not _ABSENT:
        identity = bytes(fast.userIdentity)
        if identity == b"null":
            identity = None
        else:
            try:
                who = _IDENTITY.decode(identity)
            except msgspec.DecodeError:
                return None
            principal = who.principalId if who.principalId is not None else who.PrincipalId
            ttl = name is EventName.REMOVE and principal == TTL_PRINCIPAL
    return ChangeRecord(
        table,
        fast.eventID,
        name,
        source,
        sequence,
        change_us,
        keys,
        new,
        old,
        envelope,
        columns[0],
        columns[1],
        arn,
        view,
        ddb.SizeBytes,
        region,
        identity,
        ttl,
        shard_id,
    )


def _utf8(text: bytes) -> bool:
    try:
        text.decode()
    except UnicodeDecodeError:
        return False
    return True


def _remember_table(table: str) -> bool:
    try:
        validate_table_name(table)
    except InvalidNameError:
        return False
    if len(_valid_tables) < 1024:
        _valid_tables.add(table)
    return True


_key_cache: dict[bytes, tuple[bytes, bytes] | None] = {}


def _key_columns(keys_text: bytes) -> tuple[bytes, bytes] | None:
    """``(item_key, keys_plain)`` of a key's text, or None when it is not a valid key map.

    Changes to one item repeat its key: a bounded cache saves the parse for the repeats.
    """
    try:
        return _key_cache[keys_text]
    except KeyError:
        pass
    try:
        keys = orjson.loads(keys_text)
    except orjson.JSONDecodeError:
        return None
    columns = None
    if valid_keys(keys):
        # msgspec, not orjson: its bytes are the text's size (orjson's keep a 4 KB buffer).
        columns = (_encode(keys, order="sorted"), _encode(plain_keys(keys)))
    if len(_key_cache) >= 16_384:
        _key_cache.clear()
    _key_cache[keys_text] = columns
    return columns


# --- the exact walk: unusual shapes, and the reason a record cannot be archived ----------


class _Change:
    """The DynamoDB change inside a record: its fields, images and envelope text."""

    __slots__ = ("ddb", "envelope", "exact", "fields", "images")

    def __init__(self, text: bytes, fields: dict[str, msgspec.Raw], where: str) -> None:
        self.fields = fields
        raw = fields.get("dynamodb")
        if raw is None:
            raise RecordError("missing 'dynamodb'", where)
        ddb_text = bytes(raw)
        try:
            self.ddb = decode_members(ddb_text)
        except JsonTextError:
            raise RecordError("'dynamodb' must be an object", where) from None
        images: dict[str, bytes | None] = {}
        for name in _IMAGES:
            value = self.ddb.get(name)
            images[name] = None if value is None or bytes(value) == b"null" else bytes(value)
        self.images = images
        try:
            spans = members(ddb_text, self.ddb)
            ddb_envelope = replace_members(ddb_text, spans, _NULLS, respell=True)
            outer = members(text, fields)
        except JsonTextError as err:
            raise RecordError(f"'dynamodb' or the record: {err}", where) from None
        # Replay puts each image back where its placeholder is: exact when the member was
        # spelled as the placeholder spells it, the same JSON in any case.
        self.exact = all(
            ddb_text[spans[name][0] : spans[name][1]] == _HEADERS[name]
            for name in _IMAGES
            if name in spans
        )
        self.envelope = replace_members(text, outer, {"dynamodb": ddb_envelope})

    def check_placeholders(self, envelope: bytes, where: str) -> None:
        for name in _IMAGES:
            if envelope.count(_PLACEHOLDERS[name]) != (1 if name in self.ddb else 0):
                raise RecordError(
                    f"the record holds a member named {name} outside 'dynamodb': "
                    "it could not be rebuilt exactly",
                    where,
                )


def _decode_dynamodb(
    text: bytes,
    fields: dict[str, msgspec.Raw],
    default_table: str | None,
    shard_id: str | None,
    stream_arn: str | None,
    full_check: bool,
) -> ChangeRecord:
    event_id = _string(fields, "eventID")
    ddb_fields = _fields(fields["dynamodb"]) if "dynamodb" in fields else None
    sequence = _string(ddb_fields, "SequenceNumber")
    arn = _string(fields, "eventSourceARN")
    if arn is None and bytes(fields.get("eventSourceARN", b"null")) != b"null":
        raise RecordError("eventSourceARN must be a string", _where(None, event_id, sequence))
    arn = arn if arn is not None else stream_arn
    table = _table_of_arn(arn) if arn is not None else None
    table = table if table is not None else default_table
    where = _where(table, event_id, sequence)
    source = _string(fields, "eventSource")
    if "eventSource" in fields and source != DYNAMODB_SOURCE:
        raise RecordError(f"unknown eventSource {_shown(fields['eventSource'])}", where)
    change = _Change(text, fields, where)
    _check_sequence(change.ddb.get("SequenceNumber"), DYNAMODB_SOURCE, where)
    assert sequence is not None
    if table is None:
        reason = (
            f"eventSourceARN {arn!r} is not a DynamoDB stream ARN"
            if arn is not None
            else "no eventSourceARN and no default table to file it under"
        )
        raise RecordError(reason, where)
    change_us = _seconds_to_us(change.ddb.get("ApproximateCreationDateTime"), where)
    envelope = change.envelope
    if stream_arn is not None and "eventSourceARN" not in fields:
        # GetRecords records carry no eventSourceARN; Lambda adds it, and so does the archive.
        close = envelope.rstrip().rfind(b"}")
        envelope = envelope[:close] + b',"eventSourceARN":' + _encode(stream_arn) + b"}"
    change.check_placeholders(envelope, where)
    return _record(
        change,
        table,
        DYNAMODB_SOURCE,
        sequence,
        change_us,
        where,
        envelope=envelope,
        stream_arn=arn,
        shard_id=shard_id,
        full_check=full_check,
    )


def _decode_kinesis(text: bytes, fields: dict[str, msgspec.Raw], full_check: bool) -> ChangeRecord:
    kinesis_raw = fields.get("kinesis")
    kinesis = _fields(kinesis_raw) if kinesis_raw is not None else None
    sequence = _string(kinesis, "sequenceNumber")
    where = _where(None, _string(fields, "eventID"), sequence)
    source = _string(fields, "eventSource")
    if "eventSource" in fields and source != KINESIS_SOURCE:
        raise RecordError(f"unknown eventSource {_shown(fields['eventSource'])}", where)
    if kinesis is None:
        raise RecordError("missing 'kinesis'", where)
    _check_sequence(kinesis.get("sequenceNumber"), KINESIS_SOURCE, where)
    assert sequence is not None and kinesis_raw is not None
    data = _string(kinesis, "data")
    if data is None:
        raise RecordError("kinesis.data must be base64 text", where)
    try:
        inner = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise RecordError("kinesis.data is not base64 of a JSON change record", where) from None
    try:
        inner_fields = decode_members(inner)
    except JsonTextError:
        raise RecordError("kinesis.data does not hold a JSON change record", where) from None
    table = _string(inner_fields, "tableName")
    where = _where(table, _string(inner_fields, "eventID"), sequence)
    change = _Change(inner, inner_fields, where)
    if table is None:
        raise RecordError("missing tableName in kinesis.data", where)
    precision = _string(change.ddb, "ApproximateCreationDateTimePrecision") or "MILLISECOND"
    if precision not in _PRECISION:
        raise RecordError(f"unknown ApproximateCreationDateTimePrecision {precision!r}", where)
    stamp = _integer(change.ddb.get("ApproximateCreationDateTime"))
    if stamp is None:
        raise RecordError(
            f"dynamodb.ApproximateCreationDateTime must be an integer of {precision.lower()}s",
            where,
        )
    change_us = _check_time_us(stamp * _PRECISION[precision], where)
    change.check_placeholders(change.envelope, where)
    if change.exact and base64.b64encode(inner) == data.encode():
        # Replay rebuilds the exact data: the inner record minus its images, as an object.
        kinesis_text = bytes(kinesis_raw)
        kinesis_spans = members(kinesis_text, kinesis)
        envelope = replace_members(
            text,
            members(text, fields),
            {"kinesis": replace_members(kinesis_text, kinesis_spans, {"data": change.envelope})},
        )
    else:
        envelope = text  # keeps the base64 text as it arrived, images and all
    return _record(
        change,
        table,
        KINESIS_SOURCE,
        sequence,
        change_us,
        where,
        envelope=envelope,
        stream_arn=_string(fields, "eventSourceARN"),
        full_check=full_check,
    )


def _record(
    change: _Change,
    table: str,
    source: str,
    sequence: str,
    change_us: int,
    where: str,
    *,
    envelope: bytes,
    stream_arn: str | None,
    shard_id: str | None = None,
    full_check: bool,
) -> ChangeRecord:
    if table not in _valid_tables:
        try:
            validate_table_name(table)
        except InvalidNameError as err:
            raise RecordError(str(err), where) from None
        if len(_valid_tables) < 1024:
            _valid_tables.add(table)
    fields, ddb = change.fields, change.ddb
    event_id = _string(fields, "eventID")
    if not event_id:
        raise RecordError("eventID must be a non-empty string", where)
    name = _EVENT_NAMES.get(_string(fields, "eventName") or "")
    if name is None:
        raise RecordError(f"unknown eventName {_shown(fields.get('eventName'))}", where)
    keys_text = change.images["Keys"]
    if keys_text is None:
        raise RecordError("missing dynamodb.Keys", where)
    try:
        keys = orjson.loads(keys_text)
    except orjson.JSONDecodeError:
        raise RecordError("dynamodb.Keys is not valid JSON", where) from None
    if not valid_keys(keys):
        check_keys(keys, f"{where} Keys")
    columns = _key_columns(keys_text)
    assert columns is not None
    new_image = change.images["NewImage"]
    old_image = change.images["OldImage"]
    for label, image in (("NewImage", new_image), ("OldImage", old_image)):
        if image is not None:
            _check_image(image, f"{where} {label}", full_check)
    view = _optional_string(ddb, "StreamViewType", where)
    if view is not None:
        if view not in _VIEW_TYPES:
            raise RecordError(f"unknown StreamViewType {view!r}", where)
        _check_images_present(name, view, new_image, old_image, where)
    size = _size(ddb.get("SizeBytes"), where)
    region = _optional_string(fields, "awsRegion", where)
    identity_raw = fields.get("userIdentity")
    identity = None if identity_raw is None or bytes(identity_raw) == b"null" else identity_raw
    ttl = False
    if identity is not None:
        who = _fields(identity)
        if who is None:
            raise RecordError("userIdentity must be an object", where)
        principal = _string(who, "principalId") or _string(who, "PrincipalId")
        ttl = name is EventName.REMOVE and principal == TTL_PRINCIPAL
    if not (envelope.isascii() or _utf8(envelope)) or not (keys_text.isascii() or _utf8(keys_text)):
        raise RecordError("the record is not valid UTF-8", where)
    return ChangeRecord(
        table_name=table,
        event_id=event_id,
        event_name=name,
        event_source=source,
        sequence_number=sequence,
        change_time_us=change_us,
        keys=keys_text,
        new_image=new_image,
        old_image=old_image,
        envelope=envelope,
        item_key=columns[0],
        keys_plain=columns[1],
        stream_arn=stream_arn,
        view_type=view,
        size_bytes=size,
        aws_region=region,
        user_identity=None if identity is None else bytes(identity),
        ttl_delete=ttl,
        shard_id=shard_id,
    )


def _shown(raw: msgspec.Raw | None) -> str:
    """A field's value for an error message: short, and only for fields that hold no item data."""
    if raw is None:
        return "None"
    try:
        return repr(_STR.decode(raw)[:40])
    except msgspec.DecodeError:
        text = bytes(raw)
        return text[:40].decode("utf-8", "replace") + ("..." if len(text) > 40 else "")


def _optional_string(fields: dict[str, msgspec.Raw], name: str, where: str) -> str | None:
    raw = fields.get(name)
    if raw is None:
        return None
    try:
        value: str | None = _OPTIONAL_STR.decode(raw)
    except msgspec.DecodeError:
        raise RecordError(f"{name} must be a string", where) from None
    return value


def _check_image(image: bytes, where: str, full_check: bool) -> None:
    if image[:1] != b"{":
        raise RecordError("must be a map of attribute values", where)
    if full_check:
        try:
            check_image(orjson.loads(image), where)
        except orjson.JSONDecodeError:
            raise RecordError("not valid JSON", where) from None
    elif not image.isascii():
        try:
            image.decode()
        except UnicodeDecodeError:
            raise RecordError("not valid UTF-8", where) from None


def _check_sequence(raw: msgspec.Raw | None, source: str, where: str) -> None:
    field = "kinesis.sequenceNumber" if source == KINESIS_SOURCE else "dynamodb.SequenceNumber"
    try:
        value = _STR.decode(raw) if raw is not None else None
    except msgspec.DecodeError:
        value = None
    limit = _MAX_DIGITS[source]
    if value is None or not (value.isascii() and value.isdigit()) or len(value) > limit:
        raise RecordError(f"{field} must be a string of 1 to {limit} ASCII digits", where)


def _check_images_present(
    name: EventName, view: str, new: bytes | None, old: bytes | None, where: str
) -> None:
    wants_new = view in ("NEW_IMAGE", "NEW_AND_OLD_IMAGES") and name is not EventName.REMOVE
    wants_old = view in ("OLD_IMAGE", "NEW_AND_OLD_IMAGES") and name is not EventName.INSERT
    if wants_new and new is None:
        raise RecordError(f"missing dynamodb.NewImage for a {name} with view type {view}", where)
    if wants_old and old is None:
        raise RecordError(f"missing dynamodb.OldImage for a {name} with view type {view}", where)


def _integer(raw: msgspec.Raw | None) -> int | None:
    if raw is None:
        return None
    try:
        value: int = _INT.decode(raw)
    except msgspec.DecodeError:
        return None
    return value


def _size(raw: msgspec.Raw | None, where: str) -> int | None:
    if raw is None or bytes(raw) == b"null":
        return None
    size = _integer(raw)
    if size is None or not 0 <= size < _INT64:
        raise RecordError("dynamodb.SizeBytes must be an integer from 0 to 2^63-1", where)
    return size


def _seconds_to_us(raw: msgspec.Raw | None, where: str) -> int:
    try:
        value = _NUMBER.decode(raw) if raw is not None else None
    except msgspec.DecodeError:
        value = None  # not a number, or one beyond a double's range
    if value is None or not _MIN_S <= value < _MAX_S:
        raise RecordError(
            "dynamodb.ApproximateCreationDateTime must be epoch seconds between 2000 and 2200",
            where,
        )
    return value * 1_000_000 if type(value) is int else round(value * 1_000_000)


def _check_time_us(change_us: int, where: str) -> int:
    if not _MIN_S * 1_000_000 <= change_us < _MAX_S * 1_000_000:
        raise RecordError(
            "dynamodb.ApproximateCreationDateTime is not a plausible change time", where
        )
    return change_us
