"""Decoding stream records (DynamoDB Streams and Kinesis-wrapped) from their JSON text into ChangeRecords.

Images, keys and envelopes are JSON text: tests compare them as exact bytes where the
exact text is the point, and parsed where only the JSON matters.
"""

from __future__ import annotations

import base64
import copy
import gc
import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archiver import decode
from archiver.archive.codec import item_key
from archiver.archive.errors import RecordError
from archiver.archive.record import ChangeRecord, EventName
from archiver.decode import decode_record, item_identifier, table_of, typed_records
from archiver.jsontext import decode_members
from archiver.split import split_event
from devkit.traffic import kinesis_record
from tests.strategies import dynamodb_records, kinesis_records

PROPERTY = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
EVENTS = Path(__file__).parents[1] / "events"
ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/orders/stream/2026-11-27T00:00:00.000"
SEQ = "100000000000000000001"
KINESIS_SEQ = "49590338271490256608559692538361571095921575989136588899"  # devkit base + 1
SECRET = "s3cr3t-VALUE-4711"
PLACEHOLDERS = (b'"Keys":null', b'"NewImage":null', b'"OldImage":null')


def load_event(name: str) -> Any:
    return orjson.loads((EVENTS / f"{name}.json").read_bytes())


def make_record(
    event_name: str = "MODIFY",
    view: str = "NEW_AND_OLD_IMAGES",
    *,
    seconds: Any = 1_795_000_000,
    new: dict[str, Any] | None = None,
    old: dict[str, Any] | None = None,
) -> dict[str, Any]:
    keys = {"pk": {"S": "order#1"}}
    ddb: dict[str, Any] = {"ApproximateCreationDateTime": seconds, "Keys": keys}
    if event_name != "REMOVE" and view in ("NEW_IMAGE", "NEW_AND_OLD_IMAGES"):
        ddb["NewImage"] = new if new is not None else {**keys, "status": {"S": "paid"}}
    if event_name != "INSERT" and view in ("OLD_IMAGE", "NEW_AND_OLD_IMAGES"):
        ddb["OldImage"] = old if old is not None else {**keys, "status": {"S": "new"}}
    ddb.update({"SequenceNumber": SEQ, "SizeBytes": 42, "StreamViewType": view})
    return {
        "eventID": "e1",
        "eventName": event_name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": ddb,
        "eventSourceARN": ARN,
    }


def kinesis_data(record: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = orjson.loads(base64.b64decode(record["kinesis"]["data"]))
    return data


def with_data(record: dict[str, Any], change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """A Kinesis record whose inner change was edited by ``change``."""
    record = copy.deepcopy(record)
    data = kinesis_data(record)
    change(data)
    record["kinesis"]["data"] = base64.b64encode(orjson.dumps(data)).decode()
    return record


def exact_walk(text: bytes, *, stream_arn: str | None = None, full_check: bool = False) -> Any:
    """What the exact walk (the decoder's slow path) makes of ``text``."""
    fields = decode_members(text)
    if "kinesis" in fields:
        return decode._decode_kinesis(text, fields, full_check)
    return decode._decode_dynamodb(text, fields, None, None, stream_arn, full_check)


def fast_path(text: bytes) -> ChangeRecord | None:
    """What the fast path makes of ``text``: a record, or None when it declines."""
    if b'"kinesis"' in text:
        return decode._decode_fast_kinesis(text, False)
    try:
        typed = decode._FAST.decode(text)
    except msgspec.DecodeError:
        return None
    return decode._decode_fast(text, typed, None, None, None, False)


def spliced(envelope: bytes, keys: bytes, new: bytes | None, old: bytes | None) -> bytes:
    """The oracle of the rebuild: each placeholder (there exactly once) replaced by its image."""
    text = envelope
    for placeholder, image in zip(PLACEHOLDERS, (keys, new, old), strict=True):
        if image is None:
            assert placeholder not in text
            continue
        assert text.count(placeholder) == 1, placeholder
        text = text.replace(placeholder, placeholder[: -len(b"null")] + image)
    return text


def nulled(raw: dict[str, Any]) -> dict[str, Any]:
    """The record with each image present set to None: what its envelope parses to."""
    out = copy.deepcopy(raw)
    for name in ("Keys", "NewImage", "OldImage"):
        if name in out["dynamodb"]:
            out["dynamodb"][name] = None
    return out


def plain(av: dict[str, Any]) -> Any:
    """A key attribute value as plain JSON, written here independently of the product."""
    ((tag, value),) = av.items()
    return Decimal(value) if tag == "N" else value


def assert_same_except_text_layout(got: ChangeRecord, want: ChangeRecord) -> None:
    """Two decodings of one record written with other whitespace: equal but for the JSON layout."""
    texts = ("keys", "new_image", "old_image", "envelope", "user_identity")
    got_fields, want_fields = msgspec.structs.asdict(got), msgspec.structs.asdict(want)
    for name in texts:
        a, b = got_fields.pop(name), want_fields.pop(name)
        assert (a is None) == (b is None), name
        if a is not None:
            assert orjson.loads(a) == orjson.loads(b), name
    assert got_fields == want_fields  # item_key and keys_plain are canonical: the same bytes


# --- DynamoDB Streams records ----------------------------------------------------------


def test_decode_recorded_event() -> None:
    # Given the recorded event as Lambda delivers it, pretty-printed, cut into record texts
    body = (EVENTS / "dynamodb_event.json").read_bytes()
    texts = split_event(body)
    records = orjson.loads(body)["Records"]
    # When each record is decoded from its text
    decoded = [decode_record(text) for text in texts]
    # Then the columns hold its fields
    assert [d.event_name for d in decoded] == [EventName.INSERT, EventName.MODIFY, EventName.REMOVE]
    first = decoded[0]
    assert first.table_name == "ExampleTableWithStream"
    assert first.event_id == "c4ca4238a0b923820dcc509a6f75849b"
    assert first.event_source == "aws:dynamodb"
    assert first.sequence_number == "111000000000000000001"
    assert first.change_time_us == 1_795_000_000_000_000
    assert decoded[1].change_time_us == 1_795_000_001_000_000  # a float of seconds
    assert first.stream_arn == records[0]["eventSourceARN"]
    assert first.view_type == "NEW_AND_OLD_IMAGES"
    assert first.size_bytes == 26
    assert first.aws_region == "us-east-1"
    assert (
        first.ref == "ExampleTableWithStream/c4ca4238a0b923820dcc509a6f75849b/111000000000000000001"
    )
    assert not first.is_ttl_delete and not first.ttl_delete
    # and the images are the text that arrived, spaces and all, never parsed and re-dumped
    assert first.keys == b'{"Id": {"N": "101"}}'
    assert first.new_image == (
        b'{"Message": {"S": "New item!"}, "Id": {"N": "101"}, '
        b'"Price": {"N": "12345678901234567890.123456789012345678"}}'
    )
    assert first.new_image in body
    assert first.old_image is None
    assert first.item_key == b'{"Id":{"N":"101"}}'
    assert first.keys_plain == b'{"Id":101}'
    ttl = decoded[2]
    assert ttl.is_ttl_delete and ttl.ttl_delete
    assert ttl.user_identity == b'{"type": "Service", "principalId": "dynamodb.amazonaws.com"}'
    assert ttl.new_image is None and ttl.old_image is not None
    # and the same records given as dicts decode to the same JSON
    for text, raw, got in zip(texts, records, decoded, strict=True):
        assert_same_except_text_layout(decode_record(raw), got)
        assert orjson.loads(text) == raw


def test_envelope_is_the_record_without_its_images() -> None:
    # Given a record as Lambda's runtime hands it over (a dict: written as compact JSON)
    raw = make_record("MODIFY")
    original = copy.deepcopy(raw)
    # When it is decoded
    decoded = decode_record(raw)
    # Then the envelope is exactly that text with each image's value set to null
    assert decoded.envelope == orjson.dumps(nulled(raw))
    assert list(orjson.loads(decoded.envelope)["dynamodb"]) == list(raw["dynamodb"])
    assert decoded.keys == b'{"pk":{"S":"order#1"}}'
    assert decoded.new_image == orjson.dumps(raw["dynamodb"]["NewImage"])
    assert decoded.old_image == orjson.dumps(raw["dynamodb"]["OldImage"])
    # and putting the images back gives the record's text, byte for byte
    assert spliced(decoded.envelope, decoded.keys, decoded.new_image, decoded.old_image) == (
        orjson.dumps(raw)
    )
    assert raw == original  # the input is left alone


def test_envelope_keeps_every_byte_but_the_image_values() -> None:
    # Given the recorded event's first record, pretty-printed as it is in the file
    [text, *_] = split_event((EVENTS / "dynamodb_event.json").read_bytes())
    decoded = decode_record(text)
    # Then its envelope is that text with the image members spelled as placeholders, every
    # other byte (the spaces around "dynamodb" included) as it arrived
    expected = text
    for name, image in ((b"Keys", decoded.keys), (b"NewImage", decoded.new_image)):
        assert image is not None
        member = b'"' + name + b'": ' + image
        assert expected.count(member) == 1
        expected = expected.replace(member, b'"' + name + b'":null')
    assert decoded.envelope == expected


def test_get_records_records_get_the_stream_arn_appended() -> None:
    # Given a record as GetRecords returns it: no eventSourceARN, no Lambda fields
    raw = make_record("INSERT")
    del raw["eventSourceARN"]
    for text in (orjson.dumps(raw), json.dumps(raw, indent=2).encode()):
        # When it is decoded with the stream it was read from
        decoded = decode_record(text, stream_arn=ARN, shard_id="shardId-1")
        # Then the envelope gains eventSourceARN at its end, as Lambda would have added it
        assert decoded.table_name == "orders" and decoded.stream_arn == ARN
        assert decoded.shard_id == "shardId-1"
        assert decoded.envelope.endswith(b',"eventSourceARN":' + orjson.dumps(ARN) + b"}")
        assert orjson.loads(decoded.envelope) == {**nulled(raw), "eventSourceARN": ARN}
    compact = decode_record(orjson.dumps(raw), stream_arn=ARN)
    assert compact.envelope == orjson.dumps({**nulled(raw), "eventSourceARN": ARN})


@PROPERTY
@given(dynamodb_records())
def test_decode_any_generated_record(raw: dict[str, Any]) -> None:
    text = orjson.dumps(raw)
    decoded = decode_record(text)
    ddb = raw["dynamodb"]
    table = raw["eventSourceARN"].split(":table/")[1].split("/stream/")[0]
    assert decoded.table_name == table
    assert decoded.event_id == raw["eventID"]
    assert decoded.event_name == raw["eventName"]
    assert decoded.sequence_number == ddb["SequenceNumber"]
    assert decoded.change_time_us == round(ddb["ApproximateCreationDateTime"] * 1_000_000)
    assert decoded.keys == orjson.dumps(ddb["Keys"])
    assert decoded.new_image == (orjson.dumps(ddb["NewImage"]) if "NewImage" in ddb else None)
    assert decoded.old_image == (orjson.dumps(ddb["OldImage"]) if "OldImage" in ddb else None)
    assert decoded.item_key == item_key(ddb["Keys"])
    plain_keys = json.loads(decoded.keys_plain, parse_float=Decimal, parse_int=Decimal)
    assert plain_keys == {name: plain(av) for name, av in ddb["Keys"].items()}
    assert decoded.view_type == ddb["StreamViewType"]
    assert decoded.size_bytes == ddb["SizeBytes"]
    assert decoded.is_ttl_delete == ("userIdentity" in raw)
    assert decoded.envelope == orjson.dumps(nulled(raw))
    # the envelope with the images spliced back is the text that arrived, byte for byte
    assert spliced(decoded.envelope, decoded.keys, decoded.new_image, decoded.old_image) == text
    # and the dict, written as the Lambda handler writes it, decodes the same
    assert decode_record(raw) == decoded


@PROPERTY
@given(dynamodb_records() | kinesis_records())
def test_fast_path_and_exact_walk_agree(raw: dict[str, Any]) -> None:
    # Given a record's compact text
    text = orjson.dumps(raw)
    # When the decoder decodes it, and the exact walk decodes it on its own
    decoded = decode_record(text)
    walked = exact_walk(text)
    # Then both give the same record, and so does the fast path wherever it accepts the text
    assert walked == decoded
    fast = fast_path(text)
    if fast is not None:
        assert fast == walked
    assert exact_walk(text, full_check=True) == decode_record(text, full_check=True) == decoded


def test_the_fast_path_takes_ordinary_records() -> None:
    # the property above compares something: ordinary records do take the fast path
    for raw in (make_record(), make_record("REMOVE"), kinesis_record(make_record(), 1)):
        text = orjson.dumps(raw)
        fast = fast_path(text)
        assert fast is not None
        assert fast == exact_walk(text) == decode_record(text)


def _reordered(raw: dict[str, Any]) -> None:
    ddb = raw["dynamodb"]
    raw["dynamodb"] = {
        "OldImage": ddb.pop("OldImage"),
        **{k: v for k, v in ddb.items() if k != "NewImage"},
        "NewImage": ddb["NewImage"],
    }


def _null_new_image(raw: dict[str, Any]) -> None:
    raw["eventName"] = "REMOVE"
    raw["dynamodb"]["NewImage"] = None


def _null_after_images(raw: dict[str, Any]) -> None:
    raw["note"] = 'with "Keys":null and :null in it'
    raw["userIdentity"] = None


def _image_named_before_keys(raw: dict[str, Any]) -> None:
    ddb = raw["dynamodb"]
    raw["dynamodb"] = {"ProfileImage": {"S": "x"}, "xNewImage": None, **ddb}


def _key_named_like_an_image(raw: dict[str, Any]) -> None:
    keys = {"NewImage": {"S": "k"}, "OldImage": {"N": "1"}}
    raw["dynamodb"]["Keys"] = keys
    raw["dynamodb"]["NewImage"] = {**keys, "status": {"S": "paid"}}
    raw["dynamodb"]["OldImage"] = {**keys}


def _only_old_image(raw: dict[str, Any]) -> None:
    raw["eventName"] = "REMOVE"
    raw["dynamodb"]["StreamViewType"] = "OLD_IMAGE"
    del raw["dynamodb"]["NewImage"]


def _keys_only(raw: dict[str, Any]) -> None:
    raw["dynamodb"]["StreamViewType"] = "KEYS_ONLY"
    del raw["dynamodb"]["NewImage"], raw["dynamodb"]["OldImage"]


@pytest.mark.parametrize(
    "change",
    [
        _reordered,
        _null_new_image,
        _null_after_images,
        _image_named_before_keys,
        _key_named_like_an_image,
        _only_old_image,
        _keys_only,
    ],
)
def test_the_fast_cut_and_its_long_way_round_agree_with_the_exact_walk(
    change: Callable[[dict[str, Any]], None],
) -> None:
    # Given a record whose images are not laid out one after the other, or whose text
    # around them holds something a placeholder could be confused with
    raw = make_record("MODIFY")
    change(raw)
    text = orjson.dumps(raw)
    # When the fast path decodes it
    fast = fast_path(text)
    # Then it takes it (cutting the long way round where it must) and agrees with the
    # exact walk, and the images spliced back into the envelope give the text that arrived
    assert fast is not None
    assert fast == exact_walk(text) == decode_record(text)
    # (an image that arrived as null keeps its null in the envelope)
    new, old = (
        b"null" if image is None and placeholder in fast.envelope else image
        for image, placeholder in (
            (fast.new_image, PLACEHOLDERS[1]),
            (fast.old_image, PLACEHOLDERS[2]),
        )
    )
    assert spliced(fast.envelope, fast.keys, new, old) == text


@PROPERTY
@given(dynamodb_records() | kinesis_records())
def test_pretty_printed_records_decode_as_their_compact_text(raw: dict[str, Any]) -> None:
    # Given one record written compactly and pretty-printed (which takes the exact walk)
    compact = decode_record(orjson.dumps(raw))
    pretty_text = json.dumps(raw, indent=2).encode()
    # When the pretty text is decoded
    pretty = decode_record(pretty_text)
    # Then the exact walk agrees, and every field equals the compact one's but for whitespace
    assert exact_walk(pretty_text) == pretty
    assert_same_except_text_layout(pretty, compact)
    if "kinesis" not in raw:
        # and the images spliced back into the envelope give the same JSON
        rebuilt = spliced(pretty.envelope, pretty.keys, pretty.new_image, pretty.old_image)
        assert orjson.loads(rebuilt) == raw


@pytest.mark.parametrize(
    ("seconds", "expected_us"),
    [
        (1_795_000_000, 1_795_000_000_000_000),
        (1_795_000_000.0, 1_795_000_000_000_000),
        (1_795_000_000.5, 1_795_000_000_500_000),
        (1_795_000_000.123456, 1_795_000_000_123_456),
        (1_577_836_800, 1_577_836_800_000_000),
        (4_102_444_799.999999, 4_102_444_799_999_999),
    ],
)
def test_change_time_from_int_or_float_seconds(seconds: float, expected_us: int) -> None:
    assert decode_record(make_record(seconds=seconds)).change_time_us == expected_us


def test_default_table_files_records_without_an_arn() -> None:
    raw = make_record()
    del raw["eventSourceARN"]
    decoded = decode_record(raw, default_table="orders")
    assert decoded.table_name == "orders"
    assert decoded.stream_arn is None
    assert decoded.envelope == orjson.dumps(nulled(raw))  # nothing added without a stream ARN


@pytest.mark.parametrize(
    ("event_name", "view"),
    [
        ("INSERT", "KEYS_ONLY"),
        ("MODIFY", "KEYS_ONLY"),
        ("REMOVE", "KEYS_ONLY"),
        ("INSERT", "NEW_IMAGE"),
        ("MODIFY", "NEW_IMAGE"),
        ("REMOVE", "NEW_IMAGE"),
        ("INSERT", "OLD_IMAGE"),
        ("MODIFY", "OLD_IMAGE"),
        ("REMOVE", "OLD_IMAGE"),
        ("INSERT", "NEW_AND_OLD_IMAGES"),
        ("MODIFY", "NEW_AND_OLD_IMAGES"),
        ("REMOVE", "NEW_AND_OLD_IMAGES"),
    ],
)
def test_every_event_name_and_view_type(event_name: str, view: str) -> None:
    decoded = decode_record(make_record(event_name, view))
    assert decoded.event_name == event_name
    assert decoded.view_type == view
    assert (decoded.new_image is not None) == (event_name != "REMOVE" and "NEW" in view)
    assert (decoded.old_image is not None) == (event_name != "INSERT" and "OLD" in view)
    assert decoded.envelope.count(b'"NewImage":null') == (decoded.new_image is not None)
    assert decoded.envelope.count(b'"OldImage":null') == (decoded.old_image is not None)


@pytest.mark.parametrize(
    ("event_name", "identity", "ttl"),
    [
        ("REMOVE", {"type": "Service", "principalId": "dynamodb.amazonaws.com"}, True),
        ("REMOVE", {"Type": "Service", "PrincipalId": "dynamodb.amazonaws.com"}, True),
        ("REMOVE", {"type": "Service", "principalId": "events.amazonaws.com"}, False),
        ("REMOVE", {"type": "Service", "principalId": "lambda.amazonaws.com"}, False),
        ("REMOVE", None, False),
        ("MODIFY", {"type": "Service", "principalId": "dynamodb.amazonaws.com"}, False),
    ],
)
def test_ttl_delete_needs_remove_and_the_service_principal(
    event_name: str, identity: dict[str, str] | None, ttl: bool
) -> None:
    raw = make_record(event_name)
    if identity is not None:
        raw["userIdentity"] = identity
    for text in (orjson.dumps(raw), json.dumps(raw, indent=1).encode()):
        decoded = decode_record(text)
        assert decoded.ttl_delete is ttl and decoded.is_ttl_delete is ttl
        assert (decoded.user_identity is None) == (identity is None)
        if identity is not None:
            assert decoded.user_identity is not None
            assert orjson.loads(decoded.user_identity) == identity


# --- Kinesis-wrapped records --------------------------------------------------------------


def test_decode_kinesis_record_from_devkit_shape() -> None:
    change = make_record("INSERT", seconds=1_795_000_000.0)
    raw = kinesis_record(change, 7)
    decoded = decode_record(raw)
    assert decoded.event_source == "aws:kinesis"
    assert decoded.table_name == "orders"
    assert decoded.event_id == "e1"  # the change's own eventID, not the Kinesis one
    assert decoded.sequence_number == raw["kinesis"]["sequenceNumber"]
    assert decoded.stream_arn == raw["eventSourceARN"]
    assert decoded.change_time_us == 1_795_000_000_000_000
    assert decoded.keys == orjson.dumps(change["dynamodb"]["Keys"])
    assert decoded.new_image == orjson.dumps(change["dynamodb"]["NewImage"])
    assert decoded.ref == f"orders/e1/{raw['kinesis']['sequenceNumber']}"
    # the envelope keeps the outer record, and the change minus its images as an object
    envelope = orjson.loads(decoded.envelope)
    data = kinesis_data(raw)
    assert envelope == {**raw, "kinesis": {**raw["kinesis"], "data": nulled(data)}}
    assert item_identifier(raw) == raw["kinesis"]["sequenceNumber"]
    assert item_identifier(orjson.dumps(raw)) == raw["kinesis"]["sequenceNumber"]


@pytest.mark.parametrize(
    ("precision", "stamp", "expected_us"),
    [
        ("MILLISECOND", 1_795_000_000_123, 1_795_000_000_123_000),
        ("MICROSECOND", 1_795_000_000_123_456, 1_795_000_000_123_456),
        (None, 1_795_000_000_123, 1_795_000_000_123_000),  # no precision field: milliseconds
    ],
)
def test_kinesis_change_time_by_precision(
    precision: str | None, stamp: int, expected_us: int
) -> None:
    def edit(data: dict[str, Any]) -> None:
        data["dynamodb"]["ApproximateCreationDateTime"] = stamp
        if precision is None:
            del data["dynamodb"]["ApproximateCreationDateTimePrecision"]
        else:
            data["dynamodb"]["ApproximateCreationDateTimePrecision"] = precision

    raw = with_data(kinesis_record(make_record(), 1), edit)
    assert decode_record(raw).change_time_us == expected_us


@PROPERTY
@given(kinesis_records())
def test_decode_any_generated_kinesis_record(raw: dict[str, Any]) -> None:
    decoded = decode_record(raw)
    data = kinesis_data(raw)
    factor = {"MILLISECOND": 1_000, "MICROSECOND": 1}[
        data["dynamodb"]["ApproximateCreationDateTimePrecision"]
    ]
    assert decoded.change_time_us == data["dynamodb"]["ApproximateCreationDateTime"] * factor
    assert decoded.table_name == data["tableName"]
    assert decoded.event_id == data["eventID"]
    assert decoded.keys == orjson.dumps(data["dynamodb"]["Keys"])
    assert decoded.new_image == (
        orjson.dumps(data["dynamodb"]["NewImage"]) if "NewImage" in data["dynamodb"] else None
    )
    assert decoded.sequence_number == raw["kinesis"]["sequenceNumber"]
    # the data as an object: the images spliced back into it give the base64 text that arrived
    envelope = orjson.loads(decoded.envelope)
    inner = spliced(
        orjson.dumps(envelope["kinesis"]["data"]),
        decoded.keys,
        decoded.new_image,
        decoded.old_image,
    )
    assert base64.b64encode(inner).decode() == raw["kinesis"]["data"]
    assert {**envelope, "kinesis": {**envelope["kinesis"], "data": raw["kinesis"]["data"]}} == raw


def _noncanonical_base64(data: bytes) -> str:
    """Base64 of ``data`` with the unused low bits of its last character set: it decodes the same."""
    while len(data) % 3 != 1:
        data += b" "  # trailing whitespace after the JSON: one byte left over, "==" padding
    text = base64.b64encode(data).decode()
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    last = text[-3]
    changed = text[:-3] + alphabet[alphabet.index(last) ^ 1] + "=="
    assert base64.b64decode(changed, validate=True) == data and changed != text
    return changed


def kinesis_variants() -> list[tuple[str, dict[str, Any]]]:
    """Kinesis records whose ``data`` the archive cannot rebuild from an object: kept as text."""
    raw = kinesis_record(make_record(), 1)
    inner = kinesis_data(raw)
    spaced = json.dumps(inner).encode()  # spaces after colons and commas
    indented = json.dumps(inner, indent=2).encode()
    return [
        ("spaces after colons", {**raw, "kinesis": {**raw["kinesis"], "data": b64(spaced)}}),
        ("indented inner record", {**raw, "kinesis": {**raw["kinesis"], "data": b64(indented)}}),
        (
            "non-canonical base64",
            {
                **raw,
                "kinesis": {**raw["kinesis"], "data": _noncanonical_base64(orjson.dumps(inner))},
            },
        ),
    ]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.mark.parametrize(
    ("case", "raw"), kinesis_variants(), ids=[c for c, _ in kinesis_variants()]
)
def test_kinesis_data_that_cannot_be_rebuilt_is_kept_as_it_arrived(
    case: str, raw: dict[str, Any]
) -> None:
    # Given a Kinesis record whose data is base64 of a change, but not as the archive writes it
    text = orjson.dumps(raw)
    # When it is decoded
    decoded = decode_record(text)
    # Then it is decoded as any other change, and the envelope keeps the whole record as it came
    assert decoded.table_name == "orders" and decoded.event_id == "e1"
    assert decoded.envelope == text
    assert orjson.loads(decoded.keys) == {"pk": {"S": "order#1"}}
    assert decoded.new_image is not None
    assert orjson.loads(decoded.new_image) == make_record()["dynamodb"]["NewImage"]
    assert exact_walk(text) == decoded


# --- failures: each names the record and the problem -------------------------------------


def _without(path: str) -> Callable[[dict[str, Any]], None]:
    def edit(record: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target = record
        for step in parents:
            target = target[step]
        del target[last]

    return edit


def _setting(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(record: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target = record
        for step in parents:
            target = target[step]
        target[last] = value

    return edit


# Digits to str.isdigit(), not to DynamoDB: 21 Arabic-Indic and 21 fullwidth ones.
ARABIC_INDIC = "\u0661" + "\u0660" * 19 + "\u0661"
FULLWIDTH = "\uff11" * 21
SEQUENCE_DIGITS = "dynamodb.SequenceNumber must be a string of 1 to 40 ASCII digits"
TIME_RANGE = "dynamodb.ApproximateCreationDateTime must be epoch seconds between 2000 and 2200"


def _time_failure(case: str, value: Any) -> tuple[str, Callable[[dict[str, Any]], None], str, str]:
    return (
        case,
        _setting("dynamodb.ApproximateCreationDateTime", value),
        f"orders/e1/{SEQ}",
        TIME_RANGE,
    )


FAILURES: list[tuple[str, Callable[[dict[str, Any]], None], str, str]] = [
    ("missing dynamodb", _without("dynamodb"), "orders/e1/?", "missing 'dynamodb'"),
    (
        "dynamodb not an object",
        _setting("dynamodb", []),
        "orders/e1/?",
        "'dynamodb' must be an object",
    ),
    (
        "unknown eventName",
        _setting("eventName", "UPSERT"),
        f"orders/e1/{SEQ}",
        "unknown eventName 'UPSERT'",
    ),
    ("missing eventName", _without("eventName"), f"orders/e1/{SEQ}", "unknown eventName None"),
    (
        "letters in SequenceNumber",
        _setting("dynamodb.SequenceNumber", "12a"),
        "orders/e1/12a",
        SEQUENCE_DIGITS,
    ),
    (
        "SequenceNumber as a number",
        _setting("dynamodb.SequenceNumber", 123),
        "orders/e1/?",
        SEQUENCE_DIGITS,
    ),
    (
        "missing SequenceNumber",
        _without("dynamodb.SequenceNumber"),
        "orders/e1/?",
        SEQUENCE_DIGITS,
    ),
    (
        "Arabic-Indic digits in SequenceNumber",
        _setting("dynamodb.SequenceNumber", ARABIC_INDIC),
        "orders/e1/" + ARABIC_INDIC,
        SEQUENCE_DIGITS,
    ),
    (
        "fullwidth digits in SequenceNumber",
        _setting("dynamodb.SequenceNumber", FULLWIDTH),
        "orders/e1/" + FULLWIDTH,
        SEQUENCE_DIGITS,
    ),
    (
        "41-digit SequenceNumber",
        _setting("dynamodb.SequenceNumber", "1" * 41),
        "orders/e1/" + "1" * 41,
        SEQUENCE_DIGITS,
    ),
    ("missing Keys", _without("dynamodb.Keys"), f"orders/e1/{SEQ}", "missing dynamodb.Keys"),
    (
        "Keys of a BOOL",
        _setting("dynamodb.Keys", {"pk": {"BOOL": True}}),
        f"orders/e1/{SEQ} Keys.pk",
        "must be S, N or B",
    ),
    ("empty Keys", _setting("dynamodb.Keys", {}), f"orders/e1/{SEQ} Keys", ""),
    (
        "missing NewImage",
        _without("dynamodb.NewImage"),
        f"orders/e1/{SEQ}",
        "missing dynamodb.NewImage for a MODIFY with view type NEW_AND_OLD_IMAGES",
    ),
    (
        "missing OldImage",
        _without("dynamodb.OldImage"),
        f"orders/e1/{SEQ}",
        "missing dynamodb.OldImage for a MODIFY with view type NEW_AND_OLD_IMAGES",
    ),
    (
        "OldImage not a map",
        _setting("dynamodb.OldImage", []),
        f"orders/e1/{SEQ} OldImage",
        "must be a map",
    ),
    (
        "NewImage a string",
        _setting("dynamodb.NewImage", "{}"),
        f"orders/e1/{SEQ} NewImage",
        "must be a map",
    ),
    (
        "unknown view type",
        _setting("dynamodb.StreamViewType", "ALL"),
        f"orders/e1/{SEQ}",
        "unknown StreamViewType 'ALL'",
    ),
    (
        "SizeBytes as text",
        _setting("dynamodb.SizeBytes", "42"),
        f"orders/e1/{SEQ}",
        "SizeBytes must be an integer from 0 to 2^63-1",
    ),
    (
        "SizeBytes of 2^63",
        _setting("dynamodb.SizeBytes", 2**63),
        f"orders/e1/{SEQ}",
        "SizeBytes must be an integer from 0 to 2^63-1",
    ),
    (
        "negative SizeBytes",
        _setting("dynamodb.SizeBytes", -1),
        f"orders/e1/{SEQ}",
        "SizeBytes must be an integer from 0 to 2^63-1",
    ),
    (
        "missing eventID",
        _without("eventID"),
        f"orders/?/{SEQ}",
        "eventID must be a non-empty string",
    ),
    (
        "empty eventID",
        _setting("eventID", ""),
        f"orders/?/{SEQ}",
        "eventID must be a non-empty string",
    ),
    (
        "userIdentity as text",
        _setting("userIdentity", "dynamodb"),
        f"orders/e1/{SEQ}",
        "userIdentity must be an object",
    ),
    # every change time that is not epoch seconds of 2000-2200 gets the same message
    _time_failure("time as text", "1795000000"),
    ("no time", _without("dynamodb.ApproximateCreationDateTime"), f"orders/e1/{SEQ}", TIME_RANGE),
    _time_failure("time NaN", float("nan")),
    _time_failure("time in milliseconds", 1_795_000_000_000),
    _time_failure("time as a boolean", True),
    _time_failure("time of 1e308", 1e308),
    _time_failure("time of 2^63", 2**63),
    _time_failure("time before 2000", 946_684_799),
    (
        "unknown eventSource",
        _setting("eventSource", "aws:sqs"),
        f"orders/e1/{SEQ}",
        "unknown eventSource 'aws:sqs'",
    ),
    (
        "table name too short",
        _setting("eventSourceARN", ARN.replace("table/orders/", "table/x/")),
        f"x/e1/{SEQ}",
        "invalid table name 'x'",
    ),
    (
        "not a stream ARN",
        _setting("eventSourceARN", "arn:aws:dynamodb:us-east-1:123456789012:table/orders"),
        f"?/e1/{SEQ}",
        "is not a DynamoDB stream ARN",
    ),
    (
        "no ARN, no default table",
        _without("eventSourceARN"),
        f"?/e1/{SEQ}",
        "no eventSourceARN and no default table",
    ),
]


@pytest.mark.parametrize(
    ("case", "edit", "where", "problem"), FAILURES, ids=[f[0] for f in FAILURES]
)
@pytest.mark.parametrize("full_check", [False, True], ids=["light", "full"])
def test_each_failure_names_the_record_and_the_problem(
    case: str,
    edit: Callable[[dict[str, Any]], None],
    where: str,
    problem: str,
    full_check: bool,
) -> None:
    raw = make_record()
    edit(raw)
    texts = [orjson.dumps(raw)]
    if not case.endswith("NaN"):  # NaN is not JSON: orjson writes null, json writes NaN
        texts.append(json.dumps(raw, indent=2).encode())
    for text in texts:
        with pytest.raises(RecordError) as caught:
            decode_record(text, full_check=full_check)
        message = str(caught.value)
        assert message.startswith(where + ":"), message
        assert problem in message
        assert caught.value.where == where


# The full check looks inside every attribute value; the light check (the default for
# records from the AWS service, which DynamoDB has checked) does not.
IMAGE_FAILURES: list[tuple[str, dict[str, Any], str, str]] = [
    ("unknown type", {"x": {"M": {"y": {"Q": "1"}}}}, "NewImage.x.*", "unknown attribute type 'Q'"),
    ("letters in a number", {"n": {"N": "12abc"}}, "NewImage.n", "N must hold a number"),
    ("39-digit number", {"n": {"N": "1" * 39}}, "NewImage.n", "N must hold a number"),
    ("number beyond 1E+126", {"n": {"N": "1E+126"}}, "NewImage.n", "N must hold a number"),
    ("number as a JSON number", {"n": {"N": 7}}, "NewImage.n", "got a number"),
    ("empty string set", {"s": {"SS": []}}, "NewImage.s", "SS"),
    ("number in a string set", {"s": {"SS": ["a", 1]}}, "NewImage.s", "SS must hold strings"),
    ("binary not base64", {"b": {"B": "not base64!"}}, "NewImage.b", "B must hold base64"),
    ("two type keys", {"x": {"S": "a", "N": "1"}}, "NewImage.x", "one type key"),
]


@pytest.mark.parametrize(
    ("case", "image", "where", "problem"), IMAGE_FAILURES, ids=[f[0] for f in IMAGE_FAILURES]
)
def test_image_values_are_checked_only_by_the_full_check(
    case: str, image: dict[str, Any], where: str, problem: str
) -> None:
    raw = make_record(new={"pk": {"S": "order#1"}, **image})
    text = orjson.dumps(raw)
    # Given the full check, Then the record is refused with the attribute path
    with pytest.raises(RecordError) as caught:
        decode_record(text, full_check=True)
    assert caught.value.where == f"orders/e1/{SEQ} {where}"
    assert problem in caught.value.reason
    # Given the light check, Then the image is archived as the text that arrived
    decoded = decode_record(text)
    assert decoded.new_image == orjson.dumps(raw["dynamodb"]["NewImage"])
    assert exact_walk(text) == decoded


def test_missing_new_image_on_insert() -> None:
    raw = make_record("INSERT")
    del raw["dynamodb"]["NewImage"]
    with pytest.raises(RecordError) as caught:
        decode_record(raw)
    assert str(caught.value) == (
        f"orders/e1/{SEQ}: missing dynamodb.NewImage for a INSERT with view type NEW_AND_OLD_IMAGES"
    )
    assert caught.value.where == f"orders/e1/{SEQ}"


@pytest.mark.parametrize("raw", [[], "record", 1, None])
def test_not_an_object(raw: Any) -> None:
    with pytest.raises(RecordError, match=r"a stream record must be a JSON object, got \w+"):
        decode_record(raw)
    with pytest.raises(RecordError, match=r"a stream record must be a JSON object"):
        decode_record(orjson.dumps(raw))


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (b"", "not valid JSON"),
        (b"{", "not valid JSON"),
        (b'{"eventID": "e1"', "not valid JSON"),
        (b'{"a":' + b"[" * 5000 + b"]" * 5000 + b"}", "nested deeper than the parser allows"),
        (b'{"eventID":"\\ud800"}', "not valid JSON"),
    ],
    ids=["empty", "unclosed", "truncated", "nested too deep", "lone surrogate"],
)
def test_text_that_is_not_json_is_refused(text: bytes, problem: str) -> None:
    with pytest.raises(RecordError) as caught:
        decode_record(text)
    assert problem in caught.value.reason


def test_invalid_default_table_is_refused() -> None:
    raw = make_record()
    del raw["eventSourceARN"]
    with pytest.raises(RecordError) as caught:
        decode_record(raw, default_table="a/b")
    assert str(caught.value).startswith(f"a/b/e1/{SEQ}: invalid table name 'a/b'")


KINESIS_FAILURES: list[tuple[str, Callable[[dict[str, Any]], dict[str, Any]], str, str]] = [
    (
        "data not base64",
        lambda r: {**r, "kinesis": {**r["kinesis"], "data": "not base64!!"}},
        f"?/shardId-000000000000:1/{KINESIS_SEQ}",
        "kinesis.data is not base64",
    ),
    (
        "data base64 of text",
        lambda r: {**r, "kinesis": {**r["kinesis"], "data": b64(b"{nope")}},
        f"?/shardId-000000000000:1/{KINESIS_SEQ}",
        "kinesis.data does not hold a JSON change record",
    ),
    (
        "data base64 of a list",
        lambda r: {**r, "kinesis": {**r["kinesis"], "data": b64(b"[1]")}},
        f"?/shardId-000000000000:1/{KINESIS_SEQ}",
        "kinesis.data does not hold a JSON change record",
    ),
    (
        "no data",
        lambda r: {**r, "kinesis": {k: v for k, v in r["kinesis"].items() if k != "data"}},
        f"?/shardId-000000000000:1/{KINESIS_SEQ}",
        "kinesis.data must be base64 text",
    ),
    (
        "no kinesis",
        lambda r: {k: v for k, v in r.items() if k != "kinesis"},
        "?/shardId-000000000000:1/?",
        "missing 'kinesis'",
    ),
    (
        "bad sequence",
        lambda r: {**r, "kinesis": {**r["kinesis"], "sequenceNumber": "x1"}},
        "?/shardId-000000000000:1/x1",
        "kinesis.sequenceNumber must be a string of 1 to 128 ASCII digits",
    ),
    (
        "129-digit sequence",
        lambda r: {**r, "kinesis": {**r["kinesis"], "sequenceNumber": "9" * 129}},
        "?/shardId-000000000000:1/" + "9" * 129,
        "kinesis.sequenceNumber must be a string of 1 to 128 ASCII digits",
    ),
    (
        "missing tableName",
        lambda r: with_data(r, _without("tableName")),
        f"?/e1/{KINESIS_SEQ}",
        "missing tableName",
    ),
    (
        "table name with a slash",
        lambda r: with_data(r, _setting("tableName", "a/b")),
        f"a/b/e1/{KINESIS_SEQ}",
        "invalid table name 'a/b'",
    ),
    (
        "table name too short",
        lambda r: with_data(r, _setting("tableName", "x")),
        f"x/e1/{KINESIS_SEQ}",
        "invalid table name 'x'",
    ),
    (
        "missing dynamodb",
        lambda r: with_data(r, _without("dynamodb")),
        f"orders/e1/{KINESIS_SEQ}",
        "missing 'dynamodb'",
    ),
    (
        "unknown precision",
        lambda r: with_data(r, _setting("dynamodb.ApproximateCreationDateTimePrecision", "SECOND")),
        f"orders/e1/{KINESIS_SEQ}",
        "unknown ApproximateCreationDateTimePrecision 'SECOND'",
    ),
    (
        "float stamp",
        lambda r: with_data(r, _setting("dynamodb.ApproximateCreationDateTime", 1795000000123.5)),
        f"orders/e1/{KINESIS_SEQ}",
        "must be an integer of milliseconds",
    ),
    (
        "stamp in seconds",
        lambda r: with_data(r, _setting("dynamodb.ApproximateCreationDateTime", 1795000000)),
        f"orders/e1/{KINESIS_SEQ}",
        "not a plausible change time",
    ),
    (
        "unknown eventName",
        lambda r: with_data(r, _setting("eventName", "PUT")),
        f"orders/e1/{KINESIS_SEQ}",
        "unknown eventName 'PUT'",
    ),
    (
        "missing Keys",
        lambda r: with_data(r, _without("dynamodb.Keys")),
        f"orders/e1/{KINESIS_SEQ}",
        "missing dynamodb.Keys",
    ),
]


@pytest.mark.parametrize(
    ("case", "edit", "where", "problem"), KINESIS_FAILURES, ids=[f[0] for f in KINESIS_FAILURES]
)
def test_each_kinesis_failure_names_the_record_and_the_problem(
    case: str, edit: Callable[[dict[str, Any]], dict[str, Any]], where: str, problem: str
) -> None:
    raw = edit(kinesis_record(make_record(), 1))
    with pytest.raises(RecordError) as caught:
        decode_record(raw)
    message = str(caught.value)
    assert message.startswith(where + ":"), message
    assert problem in message


def test_poison_records_fail_by_check() -> None:
    # Given the recorded poison samples (p2 holds type Q, p4 the number "12abc")
    records = load_event("poison_records")["Records"]
    for raw in records:
        # Then with the full check each one is refused, naming its record
        with pytest.raises(RecordError) as caught:
            decode_record(raw, full_check=True)
        assert raw["eventID"] in caught.value.where
    # and with the light check the two with bad attribute values are archived as they are
    accepted = []
    for raw in records:
        try:
            accepted.append(decode_record(raw))
        except RecordError as err:
            assert raw["eventID"] in err.where
    assert [r.event_id for r in accepted] == ["p2", "p4"]
    assert [orjson.loads(r.new_image or b"") for r in accepted] == [
        records[1]["dynamodb"]["NewImage"],
        records[3]["dynamodb"]["NewImage"],
    ]


# --- no item data in messages ---------------------------------------------------------------

SECRET_IMAGES = [
    {"x": {"N": SECRET}},
    {"x": {"B": SECRET}},
    {"x": {"BOOL": SECRET}},
    {"x": {"NULL": SECRET}},
    {"x": {"S": SECRET, "N": "1"}},
    {"x": {"SS": [SECRET, 1]}},
    {"x": {"NS": [SECRET]}},
    {"x": {"BS": [SECRET]}},
    {"x": {"M": {"y": {"L": [{"S": SECRET}, {"Q": SECRET}]}}}},
    {"x": {"L": [SECRET]}},
    {"x": SECRET},
    {"x": [SECRET]},
    {"x": {"M": [SECRET]}},
]


@pytest.mark.parametrize("image", SECRET_IMAGES)
@pytest.mark.parametrize("where", ["NewImage", "OldImage", "Keys"])
def test_messages_never_show_item_values(image: dict[str, Any], where: str) -> None:
    raw = make_record("MODIFY")
    raw["dynamodb"][where] = {"pk": {"S": SECRET}, **image}
    with pytest.raises(RecordError) as caught:
        decode_record(raw, full_check=True)
    for text in (str(caught.value), caught.value.reason, caught.value.where):
        assert SECRET not in text
    assert caught.value.where.startswith(f"orders/e1/{SEQ} {where}.x")


def test_kinesis_messages_never_show_item_values() -> None:
    raw = kinesis_record(make_record(new={"pk": {"S": "order#1"}, "card": {"N": SECRET}}), 1)
    with pytest.raises(RecordError) as caught:
        decode_record(raw, full_check=True)
    assert SECRET not in str(caught.value)
    assert caught.value.where == f"orders/e1/{KINESIS_SEQ} NewImage.card"


def test_keys_of_a_secret_type_name_no_value() -> None:
    raw = make_record()
    raw["dynamodb"]["Keys"] = {"pk": {"SS": [SECRET]}}
    with pytest.raises(RecordError) as caught:
        decode_record(raw)
    assert SECRET not in str(caught.value)
    assert str(caught.value) == f"orders/e1/{SEQ} Keys.pk: key attributes must be S, N or B, got SS"


# --- helpers for dead letters and batch item failures ----------------------------------------


def test_table_of_and_item_identifier() -> None:
    raw = make_record()
    for form in (raw, orjson.dumps(raw)):
        assert table_of(form) == "orders"
        assert item_identifier(form) == SEQ
    assert table_of({"eventSourceARN": "nonsense"}, "fallback") == "fallback"
    assert table_of(b"not json", "fallback") == "fallback"
    assert item_identifier({"dynamodb": {"SequenceNumber": 5}}) is None
    assert item_identifier(b'{"dynamodb":{"SequenceNumber":5}}') is None
    assert item_identifier("x") is None
    # what a Lambda event's Records may hold besides objects: no answer, and no crash
    for other in ([], 1, None):
        assert table_of(other, "fallback") == "fallback"
        assert item_identifier(other) is None


def test_decoded_record_is_frozen_and_untracked_by_the_cyclic_gc() -> None:
    decoded = decode_record(make_record())
    assert isinstance(decoded, ChangeRecord)
    with pytest.raises(AttributeError):
        decoded.table_name = "other"  # type: ignore[misc]
    assert not gc.is_tracked(decoded)


def test_typed_records_decodes_a_plain_event_at_once_and_declines_any_other() -> None:
    # Given an event of DynamoDB Streams records, one with a Kinesis record, one with a poison
    plain = [make_record(), {**make_record("INSERT", "NEW_IMAGE"), "eventID": "e2"}]
    kinesis = kinesis_record(plain[0], 1)
    poison = {**make_record(), "eventName": "UPSERT"}
    # When each is decoded as a whole
    typed = typed_records(orjson.dumps({"Records": plain}))
    # Then the plain one gives one typed record per record, which decode exactly as the
    # record texts do alone, and the others are left to each record's own decode
    assert typed is not None and len(typed) == 2
    texts = [orjson.dumps(r) for r in plain]
    assert [decode_record(t, typed=s) for t, s in zip(texts, typed, strict=True)] == [
        decode_record(t) for t in texts
    ]
    assert typed_records(orjson.dumps({"Records": [*plain, kinesis]})) is None
    assert typed_records(orjson.dumps({"Records": [*plain, poison]})) is None
    # and a body that is not UTF-8 throughout, whose records each check their own text
    # (the typed decode of a record does not check it again)
    body = orjson.dumps({"Records": [*plain, make_record()]})
    broken = body[: body.rindex(b'"new"') + 2] + b"\xff" + body[body.rindex(b'"new"') + 3 :]
    assert broken != body and typed_records(broken) is None
    good = orjson.dumps({"Records": [*plain, {**make_record(), "eventID": "é"}]})
    assert not good.isascii() and typed_records(good) is not None


def _decodes(data: bytes) -> bool:
    try:
        data.decode()
    except UnicodeDecodeError:
        return False
    return True


@PROPERTY
@given(
    st.binary(max_size=64)
    | st.text(max_size=32).map(lambda t: t.encode("utf-8", "surrogatepass"))
    | st.sampled_from([b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xc0\xaf", b"\xe0\x80\xaf"])
)
def test_the_whole_body_utf8_check_agrees_with_python(data: bytes) -> None:
    # typed_records checks an event's UTF-8 in one pass (Arrow's validator) and its records
    # then skip their own check (Python's strict decoding): the two must agree on any bytes,
    # encoded surrogates, overlong forms and code points past U+10FFFF included
    assert decode._utf8_buffer(data) == _decodes(data)
