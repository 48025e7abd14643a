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
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from archiver.archive.reader import iter_events, list_tables
from archiver.archive.store import ArchiveStore, open_store
from archiver.lambda_handler import EventShapeError, handler
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
        # When it is delivered
        result = handler(event, None)
        # Then the batch is acknowledged whole: good records archived, the others dead-lettered
        assert result == NO_FAILURES
        assert replay(archive_uri) == good
        store = open_store(archive_uri)
        dead_keys = [o.key for o in store.list("_errors/")]
        assert dead_keys and all(key.endswith(".jsonl") for key in dead_keys)
        lines = [json.loads(line) for key in dead_keys for line in store.get(key).splitlines()]
        assert sorted(line["position"] for line in lines) == [3, 4, 5, 6, 7]
        by_position = {line["position"]: line for line in lines}
        for offset, raw in enumerate(poison):
            assert by_position[3 + offset]["record"] == raw
        reasons = {p: f"{line['where']} {line['reason']}" for p, line in by_position.items()}
        assert "missing 'dynamodb'" in reasons[3] and "p1" in reasons[3]
        assert "unknown attribute type 'Q'" in reasons[4] and "NewImage.x.y" in reasons[4]
        assert "unknown eventName 'UPSERT'" in reasons[5]
        assert "N must hold a number" in reasons[6] and "NewImage.n" in reasons[6]
        assert "kinesis.data is not base64" in reasons[7]
        # and the dead-letter area is not mistaken for a table
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
        assert summaries[0]["archived"] == len(records)
        assert summaries[0]["dead_lettered"] == len(poison)
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
