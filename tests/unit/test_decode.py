"""Decoding raw Lambda records (DynamoDB Streams and Kinesis-wrapped) into ChangeRecords."""

from __future__ import annotations

import base64
import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings

from archiver.archive.errors import RecordError
from archiver.archive.record import ChangeRecord, EventName
from archiver.decode import decode_record, item_identifier, table_of
from devkit.traffic import kinesis_record
from tests.strategies import dynamodb_records, kinesis_records

PROPERTY = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
EVENTS = Path(__file__).parents[1] / "events"
ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/orders/stream/2026-11-27T00:00:00.000"
SEQ = "100000000000000000001"
KINESIS_SEQ = "49590338271490256608559692538361571095921575989136588899"  # devkit base + 1
SECRET = "s3cr3t-VALUE-4711"


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


# --- DynamoDB Streams records ----------------------------------------------------------


def test_decode_recorded_event() -> None:
    records = load_event("dynamodb_event")["Records"]
    decoded = [decode_record(raw) for raw in records]
    assert [d.event_name for d in decoded] == [EventName.INSERT, EventName.MODIFY, EventName.REMOVE]
    first = decoded[0]
    assert first.table_name == "ExampleTableWithStream"
    assert first.event_id == "c4ca4238a0b923820dcc509a6f75849b"
    assert first.event_source == "aws:dynamodb"
    assert first.sequence_number == "111000000000000000001"
    assert first.change_time_us == 1_795_000_000_000_000
    assert decoded[1].change_time_us == 1_795_000_001_000_000  # a float of seconds
    assert first.keys == {"Id": {"N": "101"}}
    assert first.new_image is records[0]["dynamodb"]["NewImage"]
    assert first.new_image["Price"] == {"N": "12345678901234567890.123456789012345678"}
    assert first.old_image is None
    assert first.stream_arn == records[0]["eventSourceARN"]
    assert first.view_type == "NEW_AND_OLD_IMAGES"
    assert first.size_bytes == 26
    assert first.aws_region == "us-east-1"
    assert (
        first.ref == "ExampleTableWithStream/c4ca4238a0b923820dcc509a6f75849b/111000000000000000001"
    )
    assert not first.is_ttl_delete
    ttl = decoded[2]
    assert ttl.is_ttl_delete
    assert ttl.user_identity == {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
    assert ttl.new_image is None and ttl.old_image is not None


def test_envelope_is_the_record_without_its_images() -> None:
    raw = make_record("MODIFY")
    decoded = decode_record(raw)
    assert list(decoded.envelope) == list(raw)
    assert list(decoded.envelope["dynamodb"]) == list(raw["dynamodb"])
    assert decoded.envelope["dynamodb"]["Keys"] is None
    assert decoded.envelope["dynamodb"]["NewImage"] is None
    assert decoded.envelope["dynamodb"]["OldImage"] is None
    assert decoded.envelope["dynamodb"]["SequenceNumber"] == SEQ
    assert decoded.envelope["eventSourceARN"] == ARN
    assert raw["dynamodb"]["Keys"] == {"pk": {"S": "order#1"}}  # the input is left alone


@PROPERTY
@given(dynamodb_records())
def test_decode_any_generated_record(raw: dict[str, Any]) -> None:
    decoded = decode_record(raw)
    ddb = raw["dynamodb"]
    table = raw["eventSourceARN"].split(":table/")[1].split("/stream/")[0]
    assert decoded.table_name == table
    assert decoded.event_id == raw["eventID"]
    assert decoded.event_name == raw["eventName"]
    assert decoded.sequence_number == ddb["SequenceNumber"]
    assert decoded.change_time_us == round(ddb["ApproximateCreationDateTime"] * 1_000_000)
    assert decoded.keys == ddb["Keys"]
    assert decoded.new_image == ddb.get("NewImage")
    assert decoded.old_image == ddb.get("OldImage")
    assert decoded.view_type == ddb["StreamViewType"]
    assert decoded.is_ttl_delete == ("userIdentity" in raw)
    assert list(decoded.envelope) == list(raw)


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


def test_ttl_delete_needs_remove_and_the_service_principal() -> None:
    identity = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
    assert decode_record({**make_record("REMOVE"), "userIdentity": identity}).is_ttl_delete
    assert not decode_record({**make_record("MODIFY"), "userIdentity": identity}).is_ttl_delete
    other = {"type": "Service", "principalId": "lambda.amazonaws.com"}
    assert not decode_record({**make_record("REMOVE"), "userIdentity": other}).is_ttl_delete
    assert not decode_record(make_record("REMOVE")).is_ttl_delete


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
    assert decoded.keys == change["dynamodb"]["Keys"]
    assert decoded.new_image == change["dynamodb"]["NewImage"]
    assert decoded.ref == f"orders/e1/{raw['kinesis']['sequenceNumber']}"
    # the envelope keeps the outer record and the change with its images emptied
    assert decoded.envelope["eventID"] == raw["eventID"]
    assert decoded.envelope["kinesis"]["data"]["dynamodb"]["NewImage"] is None
    assert item_identifier(raw) == raw["kinesis"]["sequenceNumber"]


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
    assert decoded.keys == data["dynamodb"]["Keys"]
    assert decoded.sequence_number == raw["kinesis"]["sequenceNumber"]


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


FAILURES: list[tuple[str, Callable[[dict[str, Any]], None], str, str]] = [
    ("missing dynamodb", _without("dynamodb"), "orders/e1/?", "missing 'dynamodb'"),
    ("dynamodb not an object", _setting("dynamodb", []), "orders/e1/?", "missing 'dynamodb'"),
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
        "SequenceNumber must be a string of digits",
    ),
    (
        "SequenceNumber as a number",
        _setting("dynamodb.SequenceNumber", 123),
        "orders/e1/123",
        "SequenceNumber must be a string of digits",
    ),
    (
        "missing SequenceNumber",
        _without("dynamodb.SequenceNumber"),
        "orders/e1/?",
        "SequenceNumber must be a string of digits",
    ),
    ("missing Keys", _without("dynamodb.Keys"), f"orders/e1/{SEQ}", "missing dynamodb.Keys"),
    (
        "Keys of a BOOL",
        _setting("dynamodb.Keys", {"pk": {"BOOL": True}}),
        f"orders/e1/{SEQ} Keys.pk",
        "must be S, N or B",
    ),
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
        "bad NewImage",
        _setting("dynamodb.NewImage", {"x": {"M": {"y": {"Q": "1"}}}}),
        f"orders/e1/{SEQ} NewImage.x.y",
        "unknown attribute type 'Q'",
    ),
    (
        "OldImage not a map",
        _setting("dynamodb.OldImage", []),
        f"orders/e1/{SEQ} OldImage",
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
        "SizeBytes must be an integer",
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
    (
        "time as text",
        _setting("dynamodb.ApproximateCreationDateTime", "1795000000"),
        f"orders/e1/{SEQ}",
        "ApproximateCreationDateTime must be epoch seconds",
    ),
    (
        "no time",
        _without("dynamodb.ApproximateCreationDateTime"),
        f"orders/e1/{SEQ}",
        "ApproximateCreationDateTime must be epoch seconds",
    ),
    (
        "time NaN",
        _setting("dynamodb.ApproximateCreationDateTime", float("nan")),
        f"orders/e1/{SEQ}",
        "ApproximateCreationDateTime must be epoch seconds",
    ),
    (
        "time in milliseconds",
        _setting("dynamodb.ApproximateCreationDateTime", 1_795_000_000_000),
        f"orders/e1/{SEQ}",
        "not a plausible change time",
    ),
    (
        "time as a boolean",
        _setting("dynamodb.ApproximateCreationDateTime", True),
        f"orders/e1/{SEQ}",
        "ApproximateCreationDateTime must be epoch seconds",
    ),
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
def test_each_failure_names_the_record_and_the_problem(
    case: str, edit: Callable[[dict[str, Any]], None], where: str, problem: str
) -> None:
    raw = make_record()
    edit(raw)
    with pytest.raises(RecordError) as caught:
        decode_record(raw)
    message = str(caught.value)
    assert message.startswith(where + ":"), message
    assert problem in message


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
        lambda r: {**r, "kinesis": {**r["kinesis"], "data": base64.b64encode(b"{nope").decode()}},
        f"?/shardId-000000000000:1/{KINESIS_SEQ}",
        "kinesis.data is not base64 of a JSON change record",
    ),
    (
        "data base64 of a list",
        lambda r: {**r, "kinesis": {**r["kinesis"], "data": base64.b64encode(b"[1]").decode()}},
        f"?/shardId-000000000000:1/{KINESIS_SEQ}",
        "does not hold a JSON object",
    ),
    (
        "no data",
        lambda r: {**r, "kinesis": {k: v for k, v in r["kinesis"].items() if k != "data"}},
        f"?/shardId-000000000000:1/{KINESIS_SEQ}",
        "kinesis.data",
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
        "kinesis.sequenceNumber must be a string of digits",
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
        "missing 'dynamodb' in kinesis.data",
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


def test_poison_records_each_raise_record_error() -> None:
    for raw in load_event("poison_records")["Records"]:
        with pytest.raises(RecordError) as caught:
            decode_record(raw)
        assert raw["eventID"] in caught.value.where


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
        decode_record(raw)
    for text in (str(caught.value), caught.value.reason, caught.value.where):
        assert SECRET not in text
    assert caught.value.where.startswith(f"orders/e1/{SEQ} {where}.x")


def test_kinesis_messages_never_show_item_values() -> None:
    raw = kinesis_record(make_record(new={"pk": {"S": "order#1"}, "card": {"N": SECRET}}), 1)
    with pytest.raises(RecordError) as caught:
        decode_record(raw)
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
    assert table_of(raw) == "orders"
    assert table_of({"eventSourceARN": "nonsense"}, "fallback") == "fallback"
    assert table_of([], "fallback") == "fallback"
    assert item_identifier(raw) == SEQ
    assert item_identifier({"dynamodb": {"SequenceNumber": 5}}) is None
    assert item_identifier("x") is None


def test_decoded_record_is_frozen() -> None:
    decoded = decode_record(make_record())
    assert isinstance(decoded, ChangeRecord)
    with pytest.raises(AttributeError):
        decoded.table_name = "other"  # type: ignore[misc]
