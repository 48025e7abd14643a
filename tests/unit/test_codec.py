"""The Parquet codec: a lossless, deterministic round trip; versions; ordering on read."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archiver.archive import codec
from archiver.archive.codec import (
    batch_name,
    encode_records,
    order_rows,
    read_archive_file,
    stream_records,
)
from archiver.archive.dynamojson import plain_json
from archiver.archive.errors import FormatError, SchemaVersionError
from archiver.archive.rebuild import record_texts
from archiver.archive.record import ChangeRecord, pad_sequence
from archiver.archive.schema import METADATA_SCHEMA_VERSION, Col, parse_promoted_columns
from archiver.decode import decode_record
from devkit.traffic import kinesis_record
from tests.strategies import dynamodb_records, kinesis_records, record_batches, stream_arn

ROUND_TRIP = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
PROMOTED = parse_promoted_columns(
    "status:string,amount=total:decimal(18,2),n:bigint,d:double,b:boolean"
)


def archive_order(record: ChangeRecord, kinesis: bool) -> tuple[int, str]:
    padded = pad_sequence(record.sequence_number, record.event_source)
    return (record.change_time_us if kinesis else 0, padded)


def sort_for_archive(raws: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[ChangeRecord]]:
    """The raw records and their decoded records, in archive order."""
    decoded = [decode_record(orjson.dumps(raw)) for raw in raws]
    kinesis = any(r.event_source == "aws:kinesis" for r in decoded)
    pairs = sorted(zip(raws, decoded, strict=True), key=lambda p: archive_order(p[1], kinesis))
    return [p[0] for p in pairs], [p[1] for p in pairs]


def read_back(data: bytes) -> list[dict[str, Any]]:
    table = order_rows(read_archive_file(io.BytesIO(data), "memory://batch.parquet"))
    return list(stream_records(table))


def read_texts(data: bytes) -> list[bytes]:
    """The records of an archive file as the JSON text replay gives out, in archive order."""
    table = order_rows(read_archive_file(io.BytesIO(data), "memory://batch.parquet"))
    return [text.encode() for text in record_texts(table).to_pylist()]


def assert_identical(rebuilt: list[dict[str, Any]], expected: list[dict[str, Any]]) -> None:
    assert rebuilt == expected
    for got, want in zip(rebuilt, expected, strict=True):
        assert list(got) == list(want)
        inner_got, inner_want = got, want
        if "kinesis" in want:
            inner_got = orjson.loads(base64.b64decode(got["kinesis"]["data"]))
            inner_want = orjson.loads(base64.b64decode(want["kinesis"]["data"]))
        assert list(inner_got["dynamodb"]) == list(inner_want["dynamodb"])
    # byte-equal JSON: key order at every level, and 1 vs 1.0 (ints stay ints, floats floats)
    assert orjson.dumps(rebuilt) == orjson.dumps(expected)


def round_trip_twice(raws: list[dict[str, Any]], **options: Any) -> None:
    expected, decoded = sort_for_archive(raws)
    # Given records decoded and encoded, When the file is read back,
    first = encode_records(decoded, **options)
    rebuilt = read_back(first)
    # Then every record is exactly the one that arrived, as dicts and as the very text
    assert_identical(rebuilt, expected)
    assert read_texts(first) == [orjson.dumps(raw) for raw in expected]
    # and doing it again from what was read gives the same bytes and the same records.
    again = encode_records([decode_record(raw) for raw in rebuilt], **options)
    assert again == first
    assert_identical(read_back(again), expected)


@ROUND_TRIP
@given(record_batches(dynamodb_records()))
def test_dynamodb_records_round_trip_exactly_twice(raws: list[dict[str, Any]]) -> None:
    round_trip_twice(raws)


@settings(ROUND_TRIP, max_examples=60)
@given(record_batches(dynamodb_records(), max_size=3), st.booleans())
def test_round_trip_with_promoted_columns_and_plain_images(
    raws: list[dict[str, Any]], plain_images: bool
) -> None:
    round_trip_twice(raws, promoted=PROMOTED, plain_images=plain_images)


@settings(ROUND_TRIP, max_examples=80)
@given(record_batches(kinesis_records(table="orders")))
def test_kinesis_records_round_trip_exactly_twice(raws: list[dict[str, Any]]) -> None:
    round_trip_twice(raws)


def test_recorded_event_round_trips() -> None:
    raws = orjson.loads(
        (Path(__file__).parents[1] / "events" / "dynamodb_event.json").read_bytes()
    )["Records"]
    round_trip_twice(raws)


# --- what the columns hold ----------------------------------------------------------------


def _record(
    seq: str, event_id: str, *, seconds: Any = 1_795_000_000, name: str = "MODIFY", **extra: Any
) -> dict[str, Any]:
    keys = {"pk": {"S": f"order#{event_id}"}}
    ddb: dict[str, Any] = {"ApproximateCreationDateTime": seconds, "Keys": keys}
    if name != "REMOVE":
        ddb["NewImage"] = {
            **keys,
            "status": {"S": "paid"},
            "total": {"N": "12.5"},
            "n": {"N": "7"},
            "d": {"N": "0.5"},
            "b": {"BOOL": True},
        }
    if name != "INSERT":
        ddb["OldImage"] = {**keys, "status": {"S": "new"}, "total": {"N": "1.005"}}
    ddb.update({"SequenceNumber": seq, "SizeBytes": 40, "StreamViewType": "NEW_AND_OLD_IMAGES"})
    return {
        "eventID": event_id,
        "eventName": name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": ddb,
        "eventSourceARN": stream_arn("orders"),
        **extra,
    }


def test_columns_hold_the_record() -> None:
    ttl = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
    raws = [
        _record("100000000000000000001", "a"),
        _record("100000000000000000002", "b", name="REMOVE", userIdentity=ttl),
    ]
    decoded = [decode_record(r) for r in raws]
    table = read_archive_file(io.BytesIO(encode_records(decoded, PROMOTED, plain_images=True)), "x")
    rows = table.to_pylist()
    first, second = rows
    assert first[Col.EVENT_ID] == "a"
    assert first[Col.EVENT_NAME] == "MODIFY"
    assert first[Col.SEQUENCE_NUMBER] == "0" * 19 + "100000000000000000001"
    assert len(first[Col.SEQUENCE_NUMBER]) == 40
    assert table.schema.field(Col.CHANGE_TIME).type == pa.timestamp("us", tz="UTC")
    assert table.column(Col.CHANGE_TIME).cast(pa.int64()).to_pylist() == [1_795_000_000_000_000] * 2
    assert first[Col.STREAM_ARN] == stream_arn("orders")
    assert first[Col.STREAM_VIEW_TYPE] == "NEW_AND_OLD_IMAGES"
    assert first[Col.SIZE_BYTES] == 40
    assert first[Col.AWS_REGION] == "us-east-1"
    assert orjson.loads(first[Col.KEYS]) == {"pk": {"S": "order#a"}}
    assert orjson.loads(first[Col.KEYS_PLAIN]) == {"pk": "order#a"}
    assert orjson.loads(first[Col.NEW_IMAGE]) == raws[0]["dynamodb"]["NewImage"]
    assert first[Col.NEW_IMAGE_PLAIN] == plain_json(raws[0]["dynamodb"]["NewImage"])
    assert first[Col.OLD_IMAGE_PLAIN] == plain_json(raws[0]["dynamodb"]["OldImage"])
    assert first[Col.USER_IDENTITY] is None
    assert (first[Col.TTL_DELETE], second[Col.TTL_DELETE]) == (False, True)
    assert orjson.loads(second[Col.USER_IDENTITY]) == ttl
    assert second[Col.NEW_IMAGE] is None and second[Col.NEW_IMAGE_PLAIN] is None
    # promoted columns: NewImage first, else OldImage; never rounded
    assert first["status"] == "paid" and second["status"] == "new"
    assert str(first["amount"]) == "12.50"
    assert second["amount"] is None  # 1.005 does not fit decimal(18,2)
    assert (first["n"], first["d"], first["b"]) == (7, 0.5, True)
    assert (second["n"], second["d"], second["b"]) == (None, None, None)


def test_plain_images_are_off_by_default() -> None:
    data = encode_records([decode_record(_record("100000000000000000001", "a"))])
    row = read_archive_file(io.BytesIO(data), "x").to_pylist()[0]
    assert row[Col.NEW_IMAGE_PLAIN] is None and row[Col.OLD_IMAGE_PLAIN] is None
    assert row[Col.NEW_IMAGE] is not None


def test_file_metadata_declares_version_sorting_and_zstd() -> None:
    decoded = [decode_record(_record(f"10000000000000000000{i}", str(i))) for i in range(1, 4)]
    parquet = pq.ParquetFile(io.BytesIO(encode_records(decoded)))
    schema = parquet.schema_arrow
    assert schema.metadata[METADATA_SCHEMA_VERSION] == b"1"
    group = parquet.metadata.row_group(0)
    assert group.sorting_columns == (pq.SortingColumn(schema.get_field_index(Col.SEQUENCE_NUMBER)),)
    for i in range(parquet.metadata.num_columns):
        assert group.column(i).compression == "ZSTD"
    stats = group.column(schema.get_field_index(Col.SEQUENCE_NUMBER)).statistics
    assert (stats.min, stats.max) == (
        pad_sequence("100000000000000000001"),
        pad_sequence("100000000000000000003"),
    )


def test_kinesis_files_sort_by_change_time_then_sequence() -> None:
    decoded = [decode_record(kinesis_record(_record("100000000000000000001", "a"), 1))]
    parquet = pq.ParquetFile(io.BytesIO(encode_records(decoded)))
    schema = parquet.schema_arrow
    assert parquet.metadata.row_group(0).sorting_columns == (
        pq.SortingColumn(schema.get_field_index(Col.CHANGE_TIME)),
        pq.SortingColumn(schema.get_field_index(Col.SEQUENCE_NUMBER)),
    )
    row = parquet.read().to_pylist()[0]
    assert len(row[Col.SEQUENCE_NUMBER]) == 128
    assert row[Col.EVENT_SOURCE] == "aws:kinesis"


def test_same_records_same_bytes_and_name() -> None:
    decoded = [decode_record(_record(f"10000000000000000000{i}", str(i))) for i in range(1, 4)]
    assert encode_records(decoded) == encode_records(list(decoded))
    assert encode_records(decoded, PROMOTED, True) == encode_records(decoded, PROMOTED, True)
    assert encode_records(decoded) != encode_records(decoded[:2])
    name = batch_name(decoded)
    assert name == batch_name(list(decoded))
    assert name.startswith("100000000000000000001_100000000000000000003_")
    assert name.endswith(".parquet")
    other = [decode_record(_record(f"10000000000000000000{i}", f"x{i}")) for i in range(1, 4)]
    assert batch_name(other) != name  # same sequence range, other events: another file


# --- order_rows ---------------------------------------------------------------------------


def _table(raws: list[dict[str, Any]]) -> pa.Table:
    """An archive file's table holding the records in the given (not archive) order."""
    data = encode_records([decode_record(raw) for raw in raws])
    return read_archive_file(io.BytesIO(data), "x")


def test_order_rows_sorts_by_numeric_sequence_across_lengths() -> None:
    raws = [
        _record("1000000000000000000000", "ten"),  # 22 digits
        _record("999999999999999999999", "nine"),  # 21 digits: numerically smaller
        _record("1000000000000000000001", "eleven"),
        _record("100000000000000000000", "one"),
        _record("9" * 40, "max"),
    ]
    ordered = order_rows(_table(raws))
    assert ordered.column(Col.EVENT_ID).to_pylist() == ["one", "nine", "ten", "eleven", "max"]
    assert [r["dynamodb"]["SequenceNumber"] for r in stream_records(ordered)] == [
        "100000000000000000000",
        "999999999999999999999",
        "1000000000000000000000",
        "1000000000000000000001",
        "9" * 40,
    ]


def test_order_rows_drops_duplicate_event_ids() -> None:
    a, b = _record("100000000000000000002", "a"), _record("100000000000000000001", "b")
    ordered = order_rows(pa.concat_tables([_table([a, b]), _table([b, a]), _table([a])]))
    assert ordered.column(Col.EVENT_ID).to_pylist() == ["b", "a"]
    assert [r["eventID"] for r in stream_records(ordered)] == ["b", "a"]


def test_order_rows_kinesis_by_change_time_then_sequence() -> None:
    raws = [
        kinesis_record(_record("100000000000000000001", "late", seconds=1_795_000_010), 1),
        kinesis_record(_record("100000000000000000002", "early-second", seconds=1_795_000_000), 3),
        kinesis_record(_record("100000000000000000003", "early-first", seconds=1_795_000_000), 2),
    ]
    ordered = order_rows(_table(raws))
    assert ordered.column(Col.EVENT_ID).to_pylist() == ["early-first", "early-second", "late"]


def test_order_rows_of_nothing() -> None:
    empty = _table([_record("100000000000000000001", "a")]).slice(0, 0)
    assert order_rows(empty).num_rows == 0
    assert list(stream_records(order_rows(empty))) == []


# --- files that are not ours, or are newer --------------------------------------------------


def _with_version(version: bytes) -> bytes:
    table = pq.read_table(
        io.BytesIO(encode_records([decode_record(_record("100000000000000000001", "a"))]))
    )
    metadata = dict(table.schema.metadata)
    metadata[METADATA_SCHEMA_VERSION] = version
    sink = io.BytesIO()
    pq.write_table(table.replace_schema_metadata(metadata), sink)
    return sink.getvalue()


def test_newer_schema_version_names_file_and_version(tmp_path: Path) -> None:
    name = "s3://bucket/archive/table_name=orders/dt=2026-11-27/hour=14/a.parquet"
    with pytest.raises(SchemaVersionError) as caught:
        read_archive_file(io.BytesIO(_with_version(b"2")), name)
    message = str(caught.value)
    assert name in message
    assert "version 2" in message
    assert isinstance(caught.value, FormatError)
    path = tmp_path / "v2.parquet"
    path.write_bytes(_with_version(b"2"))
    with pytest.raises(SchemaVersionError, match=r"v2\.parquet.*version 2"):
        read_archive_file(str(path), str(path))


@pytest.mark.parametrize("version", [b"0", b"abc", b"-1"])
def test_unknown_schema_version_is_a_format_error(version: bytes) -> None:
    with pytest.raises(FormatError) as caught:
        read_archive_file(io.BytesIO(_with_version(version)), "odd.parquet")
    assert not isinstance(caught.value, SchemaVersionError)
    assert "odd.parquet" in str(caught.value)
    assert "schema version" in str(caught.value)


def test_foreign_parquet_file_is_a_format_error() -> None:
    sink = io.BytesIO()
    pq.write_table(pa.table({"event_id": ["a"], "x": [1]}), sink)
    with pytest.raises(FormatError) as caught:
        read_archive_file(io.BytesIO(sink.getvalue()), "foreign.parquet")
    assert not isinstance(caught.value, SchemaVersionError)
    assert "foreign.parquet" in str(caught.value)
    assert "not an archive file" in str(caught.value)


@pytest.mark.parametrize(
    "data",
    [b"", b"garbage bytes, not parquet", b"PAR1" + b"\x00" * 64, b"PAR1"],
    ids=["empty", "text", "magic-and-zeros", "magic-only"],
)
def test_garbage_bytes_are_a_format_error(data: bytes) -> None:
    with pytest.raises(FormatError) as caught:
        read_archive_file(io.BytesIO(data), "garbage.parquet")
    assert str(caught.value).startswith("garbage.parquet: ")


def test_truncated_archive_file_is_a_format_error() -> None:
    data = encode_records([decode_record(_record("100000000000000000001", "a"))])
    with pytest.raises(FormatError, match=r"^cut\.parquet: "):
        read_archive_file(io.BytesIO(data[: len(data) // 2]), "cut.parquet")


def test_read_archive_file_reads_chosen_columns() -> None:
    data = encode_records([decode_record(_record("100000000000000000001", "a"))])
    table = read_archive_file(io.BytesIO(data), "x", columns=[Col.EVENT_ID, Col.SEQUENCE_NUMBER])
    assert table.column_names == [Col.EVENT_ID, Col.SEQUENCE_NUMBER]


def test_deepest_and_largest_items_round_trip() -> None:
    # 32 levels of nesting (DynamoDB's limit), alternating maps and lists, around 38-digit numbers
    value: dict[str, Any] = {
        "NS": ["12345678901234567890123456789012345678", "-1E-130", "9.9E+125"]
    }
    for level in range(32):
        value = {"M": {f"level{level}": value}} if level % 2 else {"L": [{"NULL": True}, value]}
    big = {"S": "\u00e9" * 200_000}  # 400 KB of UTF-8
    deep = _record("100000000000000000001", "deep")
    deep["dynamodb"]["NewImage"].update(
        {"deep": value, "big": big, "empty": {"M": {}}, "blank": {"S": ""}}
    )
    round_trip_twice([deep])


# --- text the archive keeps as it arrived -----------------------------------------------------


def _noncanonical_base64(data: bytes) -> str:
    """Base64 of ``data`` with the unused low bits of its last character set: it decodes the same."""
    while len(data) % 3 != 1:
        data += b" "  # whitespace after the JSON: one byte left over, so "==" padding
    text = base64.b64encode(data).decode()
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    changed = text[:-3] + alphabet[alphabet.index(text[-3]) ^ 1] + "=="
    assert base64.b64decode(changed, validate=True) == data and changed != text
    return changed


@pytest.mark.parametrize(
    "encode_inner",
    [
        lambda inner: base64.b64encode(json.dumps(inner).encode()).decode(),
        lambda inner: base64.b64encode(json.dumps(inner, indent=2).encode()).decode(),
        lambda inner: _noncanonical_base64(orjson.dumps(inner)),
    ],
    ids=["spaces after colons", "indented inner record", "non-canonical base64"],
)
def test_kinesis_data_not_written_as_the_archive_writes_it_replays_exactly(
    encode_inner: Any,
) -> None:
    # Given Kinesis records whose data is valid base64 of a change, but not canonical
    # base64 of compact JSON (so it cannot be rebuilt from the change's parts)
    raws = []
    for n in range(1, 4):
        raw = kinesis_record(
            _record(f"10000000000000000000{n}", f"k{n}", seconds=1_795_000_000 + n), n
        )
        inner = orjson.loads(base64.b64decode(raw["kinesis"]["data"]))
        raws.append({**raw, "kinesis": {**raw["kinesis"], "data": encode_inner(inner)}})
    decoded = [decode_record(orjson.dumps(raw)) for raw in raws]
    # When they are archived and read back
    data = encode_records(decoded)
    # Then each envelope kept the record's text, and replay gives back the exact data
    table = read_archive_file(io.BytesIO(data), "x")
    assert [e.encode() for e in table.column(Col.ENVELOPE).to_pylist()] == [
        orjson.dumps(raw) for raw in raws
    ]
    rebuilt = read_back(data)
    assert [r["kinesis"]["data"] for r in rebuilt] == [r["kinesis"]["data"] for r in raws]
    assert rebuilt == raws
    assert read_texts(data) == [orjson.dumps(raw) for raw in raws]
    # and the images are still columns of their own, decoded from inside the data
    assert [orjson.loads(k) for k in table.column(Col.KEYS).to_pylist()] == [
        {"pk": {"S": f"order#k{n}"}} for n in range(1, 4)
    ]


def test_values_dynamodb_accepts_round_trip_exactly_and_pass_the_full_check() -> None:
    # Given an image of the values DynamoDB accepts that are easy to get wrong
    image = {
        "pk": {"S": "order#edge"},
        "n38": {"N": "12345678901234567890123456789012345600"},
        "tiny": {"N": "1E-130"},
        "huge": {"N": "9.9999999999999999999999999999999999999E+125"},
        "empty_b": {"B": ""},
        "": {"S": "an empty attribute name"},
        "empty_s": {"S": ""},
        "empty_m": {"M": {}},
        "empty_l": {"L": []},
        "unicode \u00e9\u4e16": {"S": "\u00e9\u4e16\U0001f600\u0000\u2028"},
        "nested": {"M": {"": {"L": [{"M": {}}, {"S": ""}, {"NS": ["1E-130", "-0"]}]}}},
    }
    raw = _record("100000000000000000001", "edge")
    raw["dynamodb"]["NewImage"] = image
    text = orjson.dumps(raw)
    # When it is decoded with either check and archived
    for full_check in (False, True):
        decoded = decode_record(text, full_check=full_check)
        data = encode_records([decoded], PROMOTED, plain_images=True)
        # Then the image is stored as the text that arrived and replays exactly
        row = read_archive_file(io.BytesIO(data), "x").to_pylist()[0]
        assert row[Col.NEW_IMAGE].encode() == orjson.dumps(image)
        assert read_texts(data) == [text]
        assert read_back(data) == [raw]


def test_pretty_printed_records_round_trip_as_the_same_json() -> None:
    raws = [_record(f"10000000000000000000{i}", str(i)) for i in range(1, 4)]
    decoded = [decode_record(json.dumps(raw, indent=2).encode()) for raw in raws]
    data = encode_records(decoded)
    assert read_back(data) == raws
    assert [orjson.loads(text) for text in read_texts(data)] == raws


def test_a_large_batch_is_written_a_row_group_at_a_time_and_reads_back_whole() -> None:
    # Given more records than one row group holds (a poller's flush)
    from archiver.archive.codec import ROW_GROUP_ROWS
    from devkit.traffic import TableHistory

    count = 2 * ROW_GROUP_ROWS + 17
    history = TableHistory("orders", seed=5, items=300, seconds_per_change=0.001)
    raws, records = sort_for_archive(history.changes(count))
    # When they are encoded as one file
    data = encode_records(records)
    # Then it holds one row group per ROW_GROUP_ROWS records, each declaring the sort order,
    # and reads back as every record exactly, in order
    meta = pq.ParquetFile(io.BytesIO(data)).metadata
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [
        ROW_GROUP_ROWS,
        ROW_GROUP_ROWS,
        17,
    ]
    assert all(meta.row_group(i).sorting_columns for i in range(meta.num_row_groups))
    assert read_texts(data) == [orjson.dumps(r) for r in raws]


def test_json_text_columns_are_checked_as_utf8_whole_or_in_chunks() -> None:
    # Given UTF-8 text as binary, whole and in chunks (as Arrow gives a column past 2 GiB)
    whole = pa.array([b'{"a":"\xc3\xa9"}', None, b"{}"], pa.binary())
    chunked = pa.chunked_array([whole.slice(0, 1), whole.slice(1)])
    # When they become the archive's string columns
    # Then they are the same text, as strings, chunks kept
    assert codec._as_text(whole).to_pylist() == ['{"a":"é"}', None, "{}"]
    as_chunks = codec._as_text(chunked)
    assert isinstance(as_chunks, pa.ChunkedArray) and as_chunks.type == pa.string()
    assert as_chunks.to_pylist() == ['{"a":"é"}', None, "{}"]
    # and text that is not UTF-8 is refused, in any chunk
    bad = pa.chunked_array([whole.slice(0, 1), pa.array([b"\xff"], pa.binary())])
    with pytest.raises(pa.ArrowInvalid):
        codec._as_text(bad)


@given(
    st.lists(st.one_of(st.none(), st.text().map(str.encode), st.binary(max_size=8)), max_size=30)
)
@settings(max_examples=300, deadline=None)
def test_a_text_column_is_the_array_arrow_would_make(values: list[bytes | None]) -> None:
    # Given any values: UTF-8 text, null, or any bytes (often not UTF-8)
    try:
        expected = pa.array(values, pa.string())
    except (pa.ArrowInvalid, UnicodeDecodeError):
        expected = None
    # When the codec makes its column of them
    # Then it is the same array Arrow makes value by value, or refused as Arrow refuses it
    if expected is None:
        with pytest.raises(pa.ArrowInvalid):
            codec._text_array(values)
    else:
        made = codec._text_array(values)
        made.validate(full=True)
        assert made.equals(expected) and made.null_count == expected.null_count


def test_a_text_column_past_the_offsets_range_is_made_in_chunks_by_arrow(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(codec, "_MAX_OFFSET", 4)
    made = codec._text_array([b'"abc"', None, b"{}"])
    assert made.type == pa.string() and made.to_pylist() == ['"abc"', None, "{}"]
