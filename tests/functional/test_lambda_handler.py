"""The Lambda sink end to end: events into ``handler``, the archive read back with the reader.

The handler is configured as Lambda configures it (``ARCHIVER_*`` variables,
through the ``lambda_env`` fixture) and writes to a local folder or to S3 on
SeaweedFS; what it wrote is read back with ``iter_events``, the replayer's own
reader, so every test checks the round trip a user relies on.
"""

from __future__ import annotations

import base64
import functools
import json
import logging
import random
import re
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import msgspec
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from archiver.archive.reader import iter_events, iter_record_texts, list_tables
from archiver.archive.store import ArchiveStore, open_store
from archiver.lambda_handler import EventShapeError, handle_bytes, handler
from devkit.traffic import TableHistory, kinesis_record, lambda_events

EVENTS = Path(__file__).resolve().parents[1] / "events"
LambdaEnv = Callable[..., None]
NO_FAILURES: dict[str, list[Any]] = {"batchItemFailures": []}


@functools.cache
def _history_bytes(table: str, count: int, seed: int, seconds_per_change: float) -> bytes:
    key_names = ("pk", "sk") if table == "orders" else ("id",)
    history = TableHistory(
        table, seed=seed, key_names=key_names, seconds_per_change=seconds_per_change
    )
    return orjson.dumps(history.changes(count))


def history(
    table: str = "orders", count: int = 200, *, seed: int = 1, seconds_per_change: float = 20.0
) -> list[dict[str, Any]]:
    """A table's stream records (a fresh copy: nothing a test does leaks into another)."""
    records: list[dict[str, Any]] = orjson.loads(
        _history_bytes(table, count, seed, seconds_per_change)
    )
    return records


def replay(uri: str, table: str = "orders") -> list[dict[str, Any]]:
    return list(iter_events(open_store(uri), table))


def load_event(name: str) -> Any:
    """A recorded input from tests/events/."""
    return orjson.loads((EVENTS / f"{name}.json").read_bytes())


def data_files(store: ArchiveStore, table: str = "orders") -> list[str]:
    return [o.key for o in store.list(f"table_name={table}/") if o.key.endswith(".parquet")]


def read_files(store: ArchiveStore, table: str = "orders") -> pa.Table:
    tables = []
    for key in data_files(store, table):
        with store.open(key) as handle:
            tables.append(pq.read_table(handle))
    return pa.concat_tables(tables)


def snapshot(store: ArchiveStore) -> dict[str, bytes]:
    return {obj.key: store.get(obj.key) for obj in store.list("")}


def dead_lines(store: ArchiveStore) -> list[dict[str, Any]]:
    """Every dead letter in the archive (json, not orjson: integers beyond 64 bits stay exact)."""
    keys = [o.key for o in store.list("_errors/")]
    assert all(key.endswith(".jsonl") for key in keys)
    return [json.loads(line) for key in keys for line in store.get(key).splitlines()]


def sequence_of(record: dict[str, Any]) -> int:
    return int(record["dynamodb"]["SequenceNumber"])


def unwrap_kinesis(record: dict[str, Any]) -> dict[str, Any]:
    """A Kinesis-delivered record with ``kinesis.data`` decoded from base64 JSON."""
    decoded = dict(record)
    decoded["kinesis"] = dict(
        record["kinesis"], data=json.loads(base64.b64decode(record["kinesis"]["data"]))
    )
    return decoded


def plain(value: dict[str, Any]) -> Any:
    """DynamoDB JSON to plain JSON, written here independently of the product."""
    ((tag, v),) = value.items()
    if tag == "N":
        return Decimal(v)
    if tag == "NS":
        return [Decimal(x) for x in v]
    if tag == "M":
        return {name: plain(item) for name, item in v.items()}
    if tag == "L":
        return [plain(item) for item in v]
    if tag == "NULL":
        return None
    return v  # S, B (base64 text), BOOL, SS, BS


class TestRoundTrip:
    def test_a_history_of_two_tables_replays_exactly_in_sequence_order(
        self, archive_uri: str, lambda_env: LambdaEnv
    ) -> None:
        # Given two tables' streams, 1,500 changes each over about two and a half hours
        lambda_env(archive_uri)
        orders = history("orders", 1500, seed=11, seconds_per_change=6.0)
        customers = history("customers", 1500, seed=12, seconds_per_change=6.0)
        # When Lambda delivers them in batches of 100, the two streams' invocations interleaved
        results = [
            handler(event, None)
            for pair in zip(lambda_events(orders, 100), lambda_events(customers, 100), strict=True)
            for event in pair
        ]
        # Then every invocation succeeds and each table replays exactly as it was delivered
        assert results == [NO_FAILURES] * 30
        store = open_store(archive_uri)
        assert list_tables(store) == ["customers", "orders"]
        assert replay(archive_uri, "orders") == orders
        assert replay(archive_uri, "customers") == customers
        assert [sequence_of(r) for r in orders] == sorted(sequence_of(r) for r in orders)
        hours = {key.rsplit("/", 1)[0] for key in data_files(store, "orders")}
        assert len(hours) >= 3

    def test_a_retried_batch_overwrites_itself_with_the_same_key_and_bytes(
        self, archive_uri: str, lambda_env: LambdaEnv
    ) -> None:
        # Given a batch that was archived once
        lambda_env(archive_uri)
        records = history(count=150)
        event = {"Records": records}
        assert handler(event, None) == NO_FAILURES
        store = open_store(archive_uri)
        first = snapshot(store)
        # When Lambda delivers the same batch again (a retry after a timeout)
        assert handler(orjson.loads(orjson.dumps(event)), None) == NO_FAILURES
        # Then the archive holds the very same objects, byte for byte, and replays each record once
        assert snapshot(store) == first
        assert replay(archive_uri) == records

    def test_overlapping_batches_replay_each_record_once(
        self, archive_uri: str, lambda_env: LambdaEnv
    ) -> None:
        # Given records 0-99 archived, then records 50-149 (a re-drive with other batch boundaries)
        lambda_env(archive_uri)
        records = history(count=150)
        assert handler({"Records": records[:100]}, None) == NO_FAILURES
        assert handler({"Records": records[50:150]}, None) == NO_FAILURES
        # Then the files hold the overlap twice, and replay still yields each change once
        assert read_files(open_store(archive_uri)).num_rows == 200
        assert replay(archive_uri) == records

    def test_batches_delivered_out_of_order_replay_in_sequence_order(
        self, archive_uri: str, lambda_env: LambdaEnv
    ) -> None:
        lambda_env(archive_uri)
        records = history(count=300)
        batches = list(lambda_events(records, 40))
        random.Random(5).shuffle(batches)
        first_ids = [batch["Records"][0]["eventID"] for batch in batches]
        assert first_ids != sorted(first_ids, key=[r["eventID"] for r in records].index)

        assert [handler(event, None) for event in batches] == [NO_FAILURES] * len(batches)

        assert replay(archive_uri) == records

    def test_kinesis_wrapped_changes_round_trip(
        self, archive_uri: str, lambda_env: LambdaEnv
    ) -> None:
        # Given a table's changes as Lambda receives them from a Kinesis data stream
        lambda_env(archive_uri)
        records = [kinesis_record(change, n) for n, change in enumerate(history(count=250))]
        # When they are delivered in batches
        results = [handler(event, None) for event in lambda_events(records, 50)]
        # Then they replay under the inner tableName, in order, equal once kinesis.data is decoded
        assert results == [NO_FAILURES] * 5
        replayed = replay(archive_uri)
        assert [unwrap_kinesis(r) for r in replayed] == [unwrap_kinesis(r) for r in records]


class TestBadInput:
    def test_poison_records_are_dead_lettered_and_the_rest_archived(
        self, archive_uri: str, lambda_env: LambdaEnv
    ) -> None:
        # Given a batch of good records with the poison samples among them
        lambda_env(archive_uri)
        good = history(count=8)
        poison = load_event("poison_records")["Records"]
        event = {"Records": good[:3] + poison + good[3:]}
        # When it is delivered (the light image check: DynamoDB has checked its images)
        result = handler(event, None)
        # Then the batch is acknowledged whole: the records that cannot be archived are
        # dead-lettered, the others archived, the two with odd attribute values as they came
        assert result == NO_FAILURES
        p2, p4 = poison[1], poison[3]
        replayed = replay(archive_uri)
        assert sorted(replayed, key=str) == sorted([*good, p2, p4], key=str)
        assert {r["eventID"]: r for r in replayed}["p4"]["dynamodb"]["NewImage"]["n"] == {
            "N": "12abc"
        }
        store = open_store(archive_uri)
        by_position = {line["position"]: line for line in dead_lines(store)}
        assert sorted(by_position) == [3, 5, 7]
        for position in (3, 5, 7):
            assert by_position[position]["record"] == event["Records"][position]
        reasons = {p: f"{line['where']} {line['reason']}" for p, line in by_position.items()}
        assert "missing 'dynamodb'" in reasons[3] and "p1" in reasons[3]
        assert "unknown eventName 'UPSERT'" in reasons[5]
        assert "kinesis.data is not base64" in reasons[7]
        # and the dead-letter area is not mistaken for a table
        assert list_tables(store) == ["orders"]

    def test_with_the_full_image_check_bad_attribute_values_are_dead_lettered_with_their_path(
        self, archive_uri: str, lambda_env: LambdaEnv
    ) -> None:
        # Given ARCHIVER_IMAGE_CHECK=full and the poison samples among good records
        lambda_env(archive_uri, image_check="full")
        good = history(count=8)
        poison = load_event("poison_records")["Records"]
        event = {"Records": good[:3] + poison + good[3:]}
        # When the batch is delivered
        assert handler(event, None) == NO_FAILURES
        # Then every poison record is dead-lettered, the two bad values with their attribute path
        assert replay(archive_uri) == good
        store = open_store(archive_uri)
        lines = dead_lines(store)
        assert sorted(line["position"] for line in lines) == [3, 4, 5, 6, 7]
        by_position = {line["position"]: line for line in lines}
        for offset, raw in enumerate(poison):
            assert by_position[3 + offset]["record"] == raw
        reasons = {p: f"{line['where']} {line['reason']}" for p, line in by_position.items()}
        assert "missing 'dynamodb'" in reasons[3] and "p1" in reasons[3]
        assert "unknown attribute type 'Q'" in reasons[4] and "NewImage.x.*" in reasons[4]
        assert "unknown eventName 'UPSERT'" in reasons[5]
        assert "N must hold a number" in reasons[6] and "NewImage.n" in reasons[6]
        assert "kinesis.data is not base64" in reasons[7]
        assert list_tables(store) == ["orders"]

    def test_an_unreachable_store_reports_the_first_record_and_every_one_after_it(
        self,
        seaweed: Any,
        s3_archive: str,
        closed_endpoint: str,
        lambda_env: LambdaEnv,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        # Given a handler whose S3 endpoint refuses connections
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", closed_endpoint)
        monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
        lambda_env(s3_archive)
        records = history(count=120)
        # When a batch arrives
        result = handler({"Records": records}, None)
        # Then nothing is acknowledged: every record is reported, in delivery order
        assert result == {
            "batchItemFailures": [
                {"itemIdentifier": r["dynamodb"]["SequenceNumber"]} for r in records
            ]
        }
        # and when S3 is back, the re-delivered batch is archived whole
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", seaweed.endpoint)
        lambda_env(s3_archive)
        assert list(open_store(s3_archive).list("")) == []
        assert handler({"Records": records}, None) == NO_FAILURES
        assert replay(s3_archive) == records

    @pytest.mark.parametrize(
        ("event", "expected"),
        [
            ({"foo": 1}, r"'Records' list, got an object with keys \['foo'\]"),
            ({"Records": "many"}, r"'Records' list, got an object with keys \['Records'\]"),
            ([{"eventID": "1"}], r"an object with 'Records'\), got list"),
            (None, r"an object with 'Records'\), got NoneType"),
        ],
    )
    def test_an_event_of_the_wrong_shape_is_refused_clearly(
        self, local_archive: str, lambda_env: LambdaEnv, event: Any, expected: str
    ) -> None:
        lambda_env(local_archive)

        with pytest.raises(
            EventShapeError, match=f"expected a DynamoDB Streams or Kinesis event.*{expected}"
        ):
            handler(event, None)

        assert list(open_store(local_archive).list("")) == []

    def test_a_handler_without_an_archive_uri_names_the_setting(
        self, lambda_env: LambdaEnv, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from archiver import lambda_handler

        monkeypatch.delenv("ARCHIVER_ARCHIVE_URI", raising=False)
        lambda_handler.reset()

        with pytest.raises(RuntimeError, match="ARCHIVER_ARCHIVE_URI"):
            handler({"Records": history(count=1)}, None)

    def test_an_invalid_setting_is_named(self, lambda_env: LambdaEnv, local_archive: str) -> None:
        lambda_env(local_archive, promoted_columns="amount:money")

        with pytest.raises(RuntimeError, match=r"ARCHIVER_PROMOTED_COLUMNS.*amount:money"):
            handler({"Records": history(count=1)}, None)


class TestColumns:
    def test_promoted_columns_are_typed_columns_of_the_parquet_files(
        self, archive_uri: str, lambda_env: LambdaEnv
    ) -> None:
        # Given a handler that promotes two attributes people filter on
        lambda_env(archive_uri, promoted_columns="customer_id:string,amount:decimal(18,2)")
        records = history(count=200)
        # When records are archived
        assert handler({"Records": records}, None) == NO_FAILURES
        # Then every file has them as typed top-level columns, filled from the images
        store = open_store(archive_uri)
        for key in data_files(store):
            with store.open(key) as handle:
                schema = pq.read_schema(handle)
            assert schema.field("customer_id").type == pa.string()
            assert schema.field("amount").type == pa.decimal128(18, 2)
        rows = read_files(store).select(["event_id", "customer_id", "amount"]).to_pylist()
        assert len(rows) == len(records)
        by_id = {
            r["eventID"]: r["dynamodb"].get("NewImage") or r["dynamodb"]["OldImage"]
            for r in records
        }
        for row in rows:
            image = by_id[row["event_id"]]
            assert row["customer_id"] == image["customer_id"]["S"]
            assert row["amount"] == Decimal(image["amount"]["N"])

    def test_plain_images_are_written_only_when_asked_for(
        self, local_archive: str, tmp_path: Any, lambda_env: LambdaEnv
    ) -> None:
        records = history(count=150)
        by_id = {r["eventID"]: r["dynamodb"] for r in records}
        columns = ["event_id", "event_name", "new_image_plain", "old_image_plain"]
        # Given the default settings, Then the plain-image columns stay empty
        lambda_env(str(tmp_path / "typed-only"))
        assert handler({"Records": records}, None) == NO_FAILURES
        typed_only = (
            read_files(open_store(str(tmp_path / "typed-only"))).select(columns).to_pylist()
        )
        assert {(r["new_image_plain"], r["old_image_plain"]) for r in typed_only} == {(None, None)}
        # Given ARCHIVER_PLAIN_IMAGES=true, Then they hold each image as plain JSON, digit for digit
        lambda_env(local_archive, plain_images="true")
        assert handler({"Records": records}, None) == NO_FAILURES
        rows = read_files(open_store(local_archive)).select(columns).to_pylist()
        assert len(rows) == len(records)
        assert {r["event_name"] for r in rows} == {"INSERT", "MODIFY", "REMOVE"}
        for row in rows:
            change = by_id[row["event_id"]]
            for column, image in (("new_image_plain", "NewImage"), ("old_image_plain", "OldImage")):
                if image in change:
                    assert json.loads(row[column], parse_float=Decimal) == plain(
                        {"M": change[image]}
                    )
                else:
                    assert row[column] is None


class TestLogging:
    def test_logs_are_json_lines_one_per_object_and_one_summary_without_item_data(
        self, local_archive: str, lambda_env: LambdaEnv, caplog: pytest.LogCaptureFixture
    ) -> None:
        # Given a handler on its first invocation (it configures JSON logging itself)
        lambda_env(local_archive)
        records = history(count=300)
        poison = load_event("poison_records")["Records"]
        caplog.clear()
        # When it archives a batch spanning several hours, with poison records in it
        assert handler({"Records": records + poison}, None) == NO_FAILURES
        # Then every log line is a JSON object
        lines = [json.loads(line) for line in caplog.text.splitlines()]
        assert lines and all(isinstance(line, dict) for line in lines)
        assert {line["level"] for line in lines} <= {"INFO", "WARNING"}
        # with one "wrote object" line per object (data and dead letters), naming its key
        store = open_store(local_archive)
        wrote = sorted(line["key"] for line in lines if line["message"] == "wrote object")
        dead_letters = [o.key for o in store.list("_errors/")]
        assert dead_letters
        assert wrote == sorted(data_files(store) + dead_letters)
        assert len(wrote) >= 2
        # and one summary
        summaries = [line for line in lines if line["message"] == "invocation summary"]
        assert len(summaries) == 1
        assert summaries[0]["received"] == len(records) + len(poison)
        assert summaries[0]["archived"] == len(records) + 2  # p2 and p4: the light check
        assert summaries[0]["dead_lettered"] == len(poison) - 2
        assert summaries[0]["reported_failures"] == 0
        # and no item data: no key value, no attribute value, not even of the poison records
        text = caplog.text
        for record in records:
            ddb = record["dynamodb"]
            assert ddb["Keys"]["pk"]["S"] not in text
            for image in (ddb.get("NewImage"), ddb.get("OldImage")):
                if image is not None:
                    assert image["email"]["S"] not in text
                    assert image["customer_id"]["S"] not in text
        assert "12abc" not in text
        assert "@example.com" not in text

    def test_the_handler_logs_nothing_below_info_by_default(
        self, local_archive: str, lambda_env: LambdaEnv, caplog: pytest.LogCaptureFixture
    ) -> None:
        lambda_env(local_archive)
        caplog.clear()

        assert handler({"Records": history(count=20)}, None) == NO_FAILURES

        assert caplog.records
        assert min(r.levelno for r in caplog.records) >= logging.INFO


class TestBytesAndDicts:
    def test_the_bytes_path_and_the_dict_path_write_the_same_archive(
        self, tmp_path: Path, lambda_env: LambdaEnv
    ) -> None:
        # Given one event of DynamoDB and Kinesis-delivered changes, with the poison samples
        changes = history(count=300, seed=3)
        kinesis = [kinesis_record(c, n) for n, c in enumerate(history("users", 60, seed=4))]
        event = {"Records": changes + kinesis + load_event("poison_records")["Records"]}
        # When our runtime hands the handler its bytes, and Python's runtime hands it the dict
        lambda_env(str(tmp_path / "bytes"))
        assert handle_bytes(orjson.dumps(event), None) == NO_FAILURES
        lambda_env(str(tmp_path / "dicts"))
        assert handler(event, None) == NO_FAILURES
        # Then both archives hold the same objects under the same keys, byte for byte
        by_bytes = snapshot(open_store(str(tmp_path / "bytes")))
        by_dicts = snapshot(open_store(str(tmp_path / "dicts")))
        assert sorted(by_bytes) == sorted(by_dicts)
        assert by_bytes == by_dicts
        assert any(key.startswith("_errors/") for key in by_bytes)
        assert replay(str(tmp_path / "bytes")) == replay(str(tmp_path / "dicts"))


# --- poison: every kind of record that cannot be archived, one at a time ----------------------

POISON = "@@poison@@"
TIME = "ApproximateCreationDateTime must be epoch seconds between 2000 and 2200"
SIZE = r"SizeBytes must be an integer from 0 to 2\^63-1"
SEQUENCE = "SequenceNumber must be a string of 1 to 40 ASCII digits"


def bad_record() -> dict[str, Any]:
    """A record that would be archived, but for the one value a case puts into it."""
    keys = {"pk": {"S": "order#bad"}, "sk": {"N": "1"}}
    return {
        "eventID": "bad",
        "eventName": "INSERT",
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": {
            "ApproximateCreationDateTime": 1_795_000_000,
            "Keys": keys,
            "NewImage": {**keys, "v": {"S": "x"}},
            "SequenceNumber": "100000000000000000077",
            "SizeBytes": 42,
            "StreamViewType": "NEW_IMAGE",
        },
        "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/orders/stream/2026-11-27T00:00:00.000",
    }


def _at(record: dict[str, Any], path: str) -> tuple[dict[str, Any], str]:
    *parents, last = path.split(".")
    for step in parents:
        record = record[step]
    return record, last


def with_value(path: str, value: Any) -> dict[str, Any]:
    """The bad record with ``value`` (a Python object) at ``path``."""
    record = bad_record()
    parent, name = _at(record, path)
    parent[name] = value
    return record


def with_text(path: str, text: bytes) -> bytes:
    """The bad record's compact JSON with ``text`` written as it is for the value at ``path``."""
    compact = orjson.dumps(with_value(path, POISON))
    assert compact.count(orjson.dumps(POISON)) == 1
    return compact.replace(orjson.dumps(POISON), text)


def with_name(text: bytes) -> bytes:
    """The bad record's compact JSON with an image attribute named by ``text`` as written."""
    record = bad_record()
    record["dynamodb"]["NewImage"][POISON] = {"S": "x"}
    return orjson.dumps(record).replace(orjson.dumps(POISON), text)


def nested(depth: int) -> Any:
    value: Any = []
    for _ in range(depth - 1):
        value = [value]
    return value


ARABIC_INDIC = "\u0661" + "\u0660" * 19 + "\u0661"
FULLWIDTH = "\uff11" * 21
BYTES_ONLY = object()
INT = {"2^63": 2**63, "2^64": 2**64, "2^70": 2**70}

# (case, the record's text for the bytes path, the record for the dict path, what the dead
# letter's reason must say on the bytes path, and on the dict path)
PoisonCase = tuple[str, bytes, Any, str, str]
POISON_CASES: list[PoisonCase] = [
    (
        "Arabic-Indic digits in the sequence number",
        with_text("dynamodb.SequenceNumber", orjson.dumps(ARABIC_INDIC)),
        with_value("dynamodb.SequenceNumber", ARABIC_INDIC),
        SEQUENCE,
        SEQUENCE,
    ),
    (
        "fullwidth digits in the sequence number",
        with_text("dynamodb.SequenceNumber", orjson.dumps(FULLWIDTH)),
        with_value("dynamodb.SequenceNumber", FULLWIDTH),
        SEQUENCE,
        SEQUENCE,
    ),
    (
        "41-digit sequence number",
        with_text("dynamodb.SequenceNumber", orjson.dumps("1" * 41)),
        with_value("dynamodb.SequenceNumber", "1" * 41),
        SEQUENCE,
        SEQUENCE,
    ),
    (
        "128-digit DynamoDB sequence number",
        with_text("dynamodb.SequenceNumber", orjson.dumps("1" * 128)),
        with_value("dynamodb.SequenceNumber", "1" * 128),
        SEQUENCE,
        SEQUENCE,
    ),
    (
        "lone surrogate in a string value",
        with_text("dynamodb.NewImage.v", b'{"S":"\\ud800"}'),
        with_value("dynamodb.NewImage.v", {"S": "\ud800"}),
        "not valid JSON",
        "surrogate",
    ),
    (
        "lone surrogate in an attribute name",
        with_name(b'"\\ud800"'),
        with_value("dynamodb.NewImage.\ud800", {"S": "x"}),
        "not valid JSON",
        "surrogate",
    ),
    (
        "lone surrogate in the eventID",
        with_text("eventID", b'"\\ud800"'),
        with_value("eventID", "\ud800"),
        "not valid JSON",
        "surrogate",
    ),
    *[
        (
            f"SizeBytes of {label}",
            with_text("dynamodb.SizeBytes", str(value).encode()),
            with_value("dynamodb.SizeBytes", value),
            SIZE,
            f"{SIZE}|64-bit",
        )
        for label, value in INT.items()
    ],
    *[
        (
            f"ApproximateCreationDateTime of {label}",
            with_text("dynamodb.ApproximateCreationDateTime", str(value).encode()),
            with_value("dynamodb.ApproximateCreationDateTime", value),
            TIME,
            f"{TIME}|64-bit",
        )
        for label, value in INT.items()
    ],
    (
        "5,000 levels of [ inside an image",
        with_text("dynamodb.NewImage.v", b'{"L":' + b"[" * 5000 + b"]" * 5000 + b"}"),
        with_value("dynamodb.NewImage.v", {"L": nested(5000)}),
        "nested deeper than the parser allows",
        "cannot be written as JSON",
    ),
    (
        "ApproximateCreationDateTime of 1e308",
        with_text("dynamodb.ApproximateCreationDateTime", b"1e308"),
        with_value("dynamodb.ApproximateCreationDateTime", 1e308),
        TIME,
        TIME,
    ),
    (
        "ApproximateCreationDateTime of 10^30",
        with_text("dynamodb.ApproximateCreationDateTime", b"1" + b"0" * 30),
        with_value("dynamodb.ApproximateCreationDateTime", 10**30),
        TIME,
        f"{TIME}|64-bit",
    ),
    (
        "ApproximateCreationDateTime of 1e400, beyond a double",
        with_text("dynamodb.ApproximateCreationDateTime", b"1e400"),
        with_value("dynamodb.ApproximateCreationDateTime", float("inf")),  # what 1e400 parses to
        TIME,
        TIME,
    ),
    (
        "a record that is an array",
        b"[1,2]",
        [1, 2],
        "must be a JSON object",
        "must be a JSON object",
    ),
    ("a record that is a number", b"7", 7, "must be a JSON object", "must be a JSON object"),
    ("a record that is null", b"null", None, "must be a JSON object", "must be a JSON object"),
    (
        "invalid UTF-8 inside an image string",
        with_text("dynamodb.NewImage.v", b'{"S":"caf\xe9 \xff\xfe"}'),
        BYTES_ONLY,  # Python's runtime cannot parse such an event into a dict
        "UTF-8",
        "",
    ),
]


def _assert_only_the_bad_one_is_dead_lettered(
    uri: str, good: list[dict[str, Any]], problem: str
) -> dict[str, Any]:
    store = open_store(uri)
    # the good records are archived, exactly, and nothing but them
    assert replay(uri) == good
    assert [t.encode() for a in iter_record_texts(store, "orders") for t in a.to_pylist()] == [
        orjson.dumps(r) for r in good
    ]
    # and the bad one is the only dead letter, with a reason naming the problem
    [line] = dead_lines(store)
    assert line["position"] == 1
    assert re.search(problem, line["reason"]), line["reason"]
    assert "record" in line or "record_text" in line
    # and nothing else is in the archive
    data = [o.key for o in store.list("") if not o.key.startswith("_errors/")]
    assert sorted(data) == sorted(data_files(store))
    assert list_tables(store) == ["orders"]
    return line


DICT_CASES = [c for c in POISON_CASES if c[2] is not BYTES_ONLY]


class TestPoisonKinds:
    @pytest.mark.parametrize(
        ("case", "text", "record", "bytes_problem", "dict_problem"),
        POISON_CASES,
        ids=[c[0] for c in POISON_CASES],
    )
    def test_through_the_bytes_path(
        self,
        local_archive: str,
        lambda_env: LambdaEnv,
        case: str,
        text: bytes,
        record: Any,
        bytes_problem: str,
        dict_problem: str,
    ) -> None:
        # Given an invocation body, written by hand, with the bad record between two good ones
        lambda_env(local_archive)
        good = history(count=2, seed=9)
        first, second = (orjson.dumps(r) for r in good)
        body = b'{"Records":[' + first + b"," + text + b"," + second + b"]}"
        # When our runtime hands the handler the bytes
        result = handle_bytes(body, None)
        # Then the batch is acknowledged, the good records archived, the bad one dead-lettered
        assert result == NO_FAILURES
        line = _assert_only_the_bad_one_is_dead_lettered(local_archive, good, bytes_problem)
        # keeping the record as the text it was, when that text is JSON
        if "record" in line:
            store = open_store(local_archive)
            [letters] = [store.get(o.key) for o in store.list("_errors/")]
            assert text in letters
        else:
            assert line["record_text"] == text.decode("utf-8", "backslashreplace")

    @pytest.mark.parametrize(
        ("case", "text", "record", "bytes_problem", "dict_problem"),
        DICT_CASES,
        ids=[c[0] for c in DICT_CASES],
    )
    def test_through_the_dict_path(
        self,
        local_archive: str,
        lambda_env: LambdaEnv,
        case: str,
        text: bytes,
        record: Any,
        bytes_problem: str,
        dict_problem: str,
    ) -> None:
        # Given an event, as Python's runtime parses it, with the bad record between two good ones
        lambda_env(local_archive)
        good = history(count=2, seed=9)
        event = {"Records": [good[0], record, good[1]]}
        # When it is delivered
        result = handler(event, None)
        # Then the batch is acknowledged, the good records archived, the bad one dead-lettered
        assert result == NO_FAILURES
        _assert_only_the_bad_one_is_dead_lettered(local_archive, good, dict_problem)


class TestNotPoison:
    """What DynamoDB accepts is never refused: archived and replayed exactly, by both checks."""

    EDGE_IMAGE: ClassVar[dict[str, Any]] = {
        "pk": {"S": "order#edge"},
        "sk": {"N": "1"},
        "n38": {"N": "12345678901234567890123456789012345600"},
        "tiny": {"N": "1E-130"},
        "huge": {"N": "9.9999999999999999999999999999999999999E+125"},
        "negative": {"N": "-0.000000000000000000000000000000000000001"},
        "empty_b": {"B": ""},
        "": {"S": "an empty attribute name"},
        "empty_s": {"S": ""},
        "empty_m": {"M": {}},
        "empty_l": {"L": []},
        "unicode \u00e9\u4e16\U0001f600": {"S": '\u00e9\u4e16\U0001f600 \u2028\u0000\t"\\'},
        "nested": {"M": {"": {"L": [{"M": {}}, {"S": ""}, {"NS": ["1E-130", "-0"]}]}}},
    }

    def edge_record(self) -> dict[str, Any]:
        record = bad_record()
        record["eventID"] = "edge"
        record["dynamodb"]["Keys"] = {"pk": {"S": "order#edge"}, "sk": {"N": "1"}}
        record["dynamodb"]["NewImage"] = self.EDGE_IMAGE
        return record

    @pytest.mark.parametrize("image_check", [None, "full"], ids=["light", "full"])
    @pytest.mark.parametrize("path", ["bytes", "dicts"])
    def test_edge_values_are_archived_and_replayed_exactly(
        self, local_archive: str, lambda_env: LambdaEnv, image_check: str | None, path: str
    ) -> None:
        # Given the image check Lambda uses by default, or ARCHIVER_IMAGE_CHECK=full
        lambda_env(local_archive, **({"image_check": image_check} if image_check else {}))
        good = history(count=2, seed=9)
        records = [good[0], self.edge_record(), good[1]]
        event = {"Records": records}
        # When a record of values that are easy to get wrong is delivered
        result = handle_bytes(orjson.dumps(event)) if path == "bytes" else handler(event)
        # Then nothing is dead-lettered and every record replays exactly, as dicts and as text
        assert result == NO_FAILURES
        store = open_store(local_archive)
        assert list(store.list("_errors/")) == []
        expected = sorted(records, key=lambda r: int(r["dynamodb"]["SequenceNumber"]))
        assert replay(local_archive) == expected
        texts = [t.encode() for a in iter_record_texts(store, "orders") for t in a.to_pylist()]
        assert texts == [orjson.dumps(r) for r in expected]

    @pytest.mark.parametrize("value", [2**63, 2**64, 2**70], ids=["2^63", "2^64", "2^70"])
    @pytest.mark.parametrize("path", ["bytes", "dicts"])
    def test_big_integers_are_archived_by_the_light_check_exactly_and_refused_by_the_full(
        self, tmp_path: Path, lambda_env: LambdaEnv, value: int, path: str
    ) -> None:
        # Given a bare big integer inside an image and as an unknown field: not DynamoDB JSON
        # (its numbers are text), but JSON, of any size
        inside = with_value("dynamodb.NewImage.v", {"N": value})
        outside = {**bad_record(), "eventID": "outside", "unknownField": value}
        outside["dynamodb"] = {**outside["dynamodb"], "SequenceNumber": "100000000000000000078"}
        event = {"Records": [inside, outside]}
        text = b'{"Records":[' + msgspec.json.encode(inside) + b"," + msgspec.json.encode(outside)
        text += b"]}"

        def deliver() -> Any:
            return handle_bytes(text) if path == "bytes" else handler(event)

        # When it is delivered with the light check, Then both are archived, digit for digit:
        # as text, and as dicts (never through a float)
        lambda_env(str(tmp_path / "light"))
        assert deliver() == NO_FAILURES
        replayed = replay(str(tmp_path / "light"))
        assert repr(replayed) == repr([inside, outside])
        store = open_store(str(tmp_path / "light"))
        texts = [t.encode() for a in iter_record_texts(store, "orders") for t in a.to_pylist()]
        assert str(value).encode() in texts[0] and str(value).encode() in texts[1]
        # and with the full check, the image's is dead-lettered with its attribute path
        lambda_env(str(tmp_path / "full"), image_check="full")
        assert deliver() == NO_FAILURES
        assert repr(replay(str(tmp_path / "full"))) == repr([outside])
        [line] = dead_lines(open_store(str(tmp_path / "full")))
        assert line["where"].endswith("NewImage.v")
        assert str(value) in json.dumps(line)
