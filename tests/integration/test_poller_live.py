"""The poller against DynamoDB Local's Streams API, archiving to a folder and to S3 on SeaweedFS.

Each test writes a history to a fresh table (puts, overwrites, updates,
deletes, no-op writes; binary, sets, nested values, numbers DynamoDB
normalises), lets the poller archive it, and compares the archive, read back
with the archive's own reader, with what the table's stream holds: the
records DynamoDB Local's GetRecords returns, with the ``eventSourceARN``
Lambda adds. Same eventIDs, same order, same images; and in the Parquet
files, each image is the very text DynamoDB Local sent. A proxy in front of
the Streams endpoint fails GetRecords on demand, to show botocore's retries
and the errors that outlast them work as they always did.

``archiver run`` runs as the real console script in a subprocess. A recording
proxy in front of the Streams endpoint tells the test what that process has
read, so no test waits on a guess.
"""

from __future__ import annotations

import base64
import logging
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import msgspec
import orjson
import pyarrow.parquet as pq
import pytest
from botocore.exceptions import ClientError

from archiver.archive.reader import iter_events
from archiver.archive.schema import Col
from archiver.archive.store import open_store
from archiver.poller import FlushPolicy, Poller, ShardCheckpoints, checkpoint_key
from archiver.service import streams_client
from archiver.streams import Page, StreamEvent, StreamSource

ARCHIVER = Path(sys.executable).parent / "archiver"


def seq(record: dict[str, Any]) -> str:
    return str(record["dynamodb"]["SequenceNumber"])


def wait_for(
    condition: Callable[[], bool],
    what: str,
    *,
    timeout: float = 30.0,
    proc: subprocess.Popen[bytes] | None = None,
) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` (a bound, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"archiver run exited with {proc.returncode} before {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout:.0f} s")
        time.sleep(0.05)


class Run:
    """``archiver run`` in a subprocess; stdout (EMF lines) and stderr (logs) go to files."""

    def __init__(self, args: list[str], folder: Path, name: str = "run") -> None:
        self.stdout_path = folder / f"{name}.stdout"
        self.stderr_path = folder / f"{name}.stderr"
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                [str(ARCHIVER), "run", *args], stdout=out, stderr=err, env=dict(os.environ)
            )

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, then the exit status; fails if it does not exit within ``timeout``."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError(f"archiver run ignored SIGTERM for {timeout:.0f} s") from None

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def emf_lines(self) -> list[dict[str, Any]]:
        return [orjson.loads(line) for line in self.stdout_path.read_bytes().splitlines()]


def to_plain(value: Any) -> Any:
    """A scanned item in the stream's JSON form: binary as base64, set members sorted."""
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, dict):
        return {
            k: sorted(to_plain(v)) if k in ("SS", "NS", "BS") else to_plain(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [to_plain(v) for v in value]
    return value


def final_state(events: list[dict[str, Any]]) -> dict[str, Any]:
    """Each key's item after the last change (absent after a REMOVE), sets sorted."""
    state: dict[str, Any] = {}
    for event in events:
        key = orjson.dumps(event["dynamodb"]["Keys"], option=orjson.OPT_SORT_KEYS)
        if event["eventName"] == "REMOVE":
            state.pop(key, None)
        else:
            state[key] = to_plain(event["dynamodb"]["NewImage"])
    return state


def type_keys(events: list[dict[str, Any]]) -> set[str]:
    """The attribute types found anywhere in the events' images."""
    found: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for name, inner in value.items():
                if name in ("S", "N", "B", "BOOL", "NULL", "M", "L", "SS", "NS", "BS"):
                    found.add(name)
                    walk(inner if name in ("M", "L") else None)
                else:
                    walk(inner)
        elif isinstance(value, list):
            for inner in value:
                walk(inner)

    for event in events:
        walk([event["dynamodb"].get("NewImage"), event["dynamodb"].get("OldImage")])
    return found


def shard_ids_in_files(store: Any, table: str) -> set[str]:
    found: set[str] = set()
    for obj in store.list(f"table_name={table}/"):
        with store.open(obj.key) as handle:
            found |= set(pq.read_table(handle, columns=["shard_id"]).column("shard_id").to_pylist())
    return found


# -- in-process --------------------------------------------------------------------------------


def test_poller_archives_the_table_history(archive_uri: str, stream_tables: Any) -> None:
    # Given a table with a history, and more written while the poller runs
    table, arn = stream_tables.create()
    rng = random.Random(11)
    stream_tables.write(table, rng, 60)
    store = open_store(archive_uri, s3="boto3")
    poller = Poller(
        StreamSource(boto3.client("dynamodbstreams"), arn),
        store,
        ShardCheckpoints.load(store, checkpoint_key(arn), arn),
        policy=FlushPolicy(max_age=0.2),
        poll_interval=0.05,
    )
    thread = threading.Thread(target=poller.run, name="poller")
    thread.start()
    try:
        stream_tables.write(table, rng, 60)
        expected = stream_tables.history(arn)
        wait_for(
            lambda: seq(expected[-1]) in poller.checkpoints.positions.values(),
            "checkpoint of the last change",
        )
    finally:
        poller.stop()
        thread.join(30)
    assert not thread.is_alive()

    # Then the archive replays exactly the stream's history
    events = list(iter_events(store, table))
    assert [e["eventID"] for e in events] == [e["eventID"] for e in expected]
    assert events == expected
    # which is the history the test meant to produce: every event and attribute type, numbers
    # as DynamoDB returned them (a put's 1.50 is 1.5 in the stream)
    assert {e["eventName"] for e in expected} == {"INSERT", "MODIFY", "REMOVE"}
    assert type_keys(expected) == {"S", "N", "B", "BOOL", "NULL", "M", "L", "SS", "NS", "BS"}
    assert '{"N":"1.5"}' in orjson.dumps(expected).decode()
    # and folds to the table as it is now
    scanned = {
        orjson.dumps({k: item[k] for k in ("pk", "sk")}, option=orjson.OPT_SORT_KEYS): to_plain(
            item
        )
        for item in stream_tables.scan(table)
    }
    assert final_state(events) == scanned
    # every file records the shard it was read from
    shards = {
        s["ShardId"]
        for s in stream_tables.streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
    }
    assert shard_ids_in_files(store, table) <= shards


def run_until_checkpointed(poller: Poller, sequence: str) -> None:
    """Run ``poller`` in a thread until its checkpoint holds ``sequence``, then stop it."""
    thread = threading.Thread(target=poller.run, name="poller")
    thread.start()
    try:
        wait_for(
            lambda: sequence in poller.checkpoints.positions.values(), f"checkpoint of {sequence}"
        )
    finally:
        poller.stop()
        thread.join(30)
    assert not thread.is_alive()


class WireImages(msgspec.Struct):
    NewImage: msgspec.Raw = msgspec.Raw(b"")
    OldImage: msgspec.Raw = msgspec.Raw(b"")


class WireRecord(msgspec.Struct):
    eventID: str
    dynamodb: WireImages


class WirePage(msgspec.Struct):
    Records: list[WireRecord]


BIG = "12345678901234567890.123456789012345678"  # 38 digits: no float holds it


def test_the_archive_holds_each_image_as_the_text_dynamodb_local_sent(
    local_archive: str, stream_tables: Any
) -> None:
    # Given a history with numbers no float holds, binary, sets, nesting and unicode
    table, arn = stream_tables.create()
    stream_tables.write(table, random.Random(21), 50)
    key = {"pk": {"S": "big"}, "sk": {"N": "1"}}
    stream_tables.client.put_item(
        TableName=table, Item={**key, "big": {"N": BIG}, "small": {"N": "-0.000000000000000001"}}
    )
    stream_tables.client.put_item(TableName=table, Item={**key, "big": {"N": f"-{BIG}"}})
    pages = stream_tables.pages(arn)
    served = {
        record.eventID: (bytes(record.dynamodb.NewImage), bytes(record.dynamodb.OldImage))
        for page in pages
        for record in msgspec.json.decode(page, type=WirePage).Records
    }
    last = seq(stream_tables.history(arn)[-1])

    # When the poller archives the stream
    store = open_store(local_archive, s3="boto3")
    run_until_checkpointed(
        Poller(
            StreamSource(streams_client(), arn),
            store,
            ShardCheckpoints.load(store, checkpoint_key(arn), arn),
            policy=FlushPolicy(max_age=0.2),
            poll_interval=0.05,
        ),
        last,
    )

    # Then every record's images in the files are the text DynamoDB Local sent, byte for byte
    stored: dict[str, tuple[bytes, bytes]] = {}
    columns = [Col.EVENT_ID, Col.NEW_IMAGE, Col.OLD_IMAGE]
    for obj in store.list(f"table_name={table}/"):
        with store.open(obj.key) as handle:
            for row in pq.read_table(handle, columns=columns).to_pylist():
                new, old = (row[name] or "" for name in (Col.NEW_IMAGE, Col.OLD_IMAGE))
                stored[row[Col.EVENT_ID]] = (new.encode(), old.encode())
    assert stored == served
    # and the 38-digit numbers are there digit for digit, in the new and in the old image
    assert sum(f'{{"N":"{BIG}"}}'.encode() in new for new, _ in stored.values()) == 1
    assert sum(f'{{"N":"{BIG}"}}'.encode() in old for _, old in stored.values()) == 1
    assert sum(f'{{"N":"-{BIG}"}}'.encode() in new for new, _ in stored.values()) == 1


def test_an_invalid_iterator_is_the_stream_event_it_always_was(
    stream_tables: Any,
) -> None:
    # Given a source reading GetRecords as bytes, and a client botocore parses as usual
    table, arn = stream_tables.create()
    stream_tables.write(table, random.Random(22), 3)
    expected = stream_tables.history(arn)
    client = streams_client()
    source = StreamSource(client, arn)
    _, shards = source.describe()
    iterator = source.iterator(shards[0].shard_id, None)
    assert iterator is not None

    # When GetRecords gets an iterator DynamoDB Local refuses (400 ValidationException)
    page = source.read("arn:aws:dynamodb:ddblocal:000000000000:table/nope|001|bm9wZQ==")

    # Then it is the event it was when botocore parsed every page: reopen the iterator
    assert page.event is StreamEvent.EXPIRED
    assert page.records == [] and "ValidationException" in page.detail
    with pytest.raises(ClientError) as raised:
        client.get_records(
            ShardIterator="arn:aws:dynamodb:ddblocal:000000000000:table/nope|001|bm9wZQ=="
        )
    assert raised.value.response["Error"]["Code"] == "ValidationException"
    # and the same client's own get_records, outside the source, is parsed by botocore as ever
    parsed = client.get_records(ShardIterator=iterator)
    assert [r["eventID"] for r in parsed["Records"]] == [r["eventID"] for r in expected]
    assert "NextShardIterator" in parsed
    # while the source reads those records as their text
    read = source.read(iterator)
    assert read.event is None and [orjson.loads(r)["eventID"] for r in read.records] == [
        r["eventID"] for r in parsed["Records"]
    ]


RETRIED = [
    pytest.param(
        500,
        b'{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError",'
        b'"message":"scripted outage"}',
        StreamEvent.UNAVAILABLE,
        id="500 InternalServerError",
    ),
    pytest.param(
        400,
        b'{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException",'
        b'"message":"scripted throttling"}',
        StreamEvent.THROTTLED,
        id="400 ThrottlingException",
    ),
]


@pytest.mark.parametrize(("status", "body", "event"), RETRIED)
def test_a_failed_get_records_is_retried_by_botocore_and_loses_nothing(
    stream_tables: Any,
    streams_proxy: Any,
    local_archive: str,
    status: int,
    body: bytes,
    event: StreamEvent,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given a poller reading through a proxy that fails the first GetRecords
    table, arn = stream_tables.create()
    stream_tables.write(table, random.Random(23), 40)
    expected = stream_tables.history(arn)
    store = open_store(local_archive, s3="boto3")
    poller = Poller(
        StreamSource(streams_client(), arn),  # AWS_ENDPOINT_URL_DYNAMODB_STREAMS: the proxy
        store,
        ShardCheckpoints.load(store, checkpoint_key(arn), arn),
        policy=FlushPolicy(max_age=0.2),
        poll_interval=0.05,
    )
    streams_proxy.fail_get_records(status, body)

    # When it archives the stream
    with caplog.at_level(logging.DEBUG, logger="archiver.poller"):
        run_until_checkpointed(poller, seq(expected[-1]))

    # Then botocore sent the same request again at once: the poller never saw the failure
    (failed_iterator, first_status), (retried_iterator, second_status) = streams_proxy.get_records[
        :2
    ]
    assert (first_status, second_status) == (status, 200)
    assert retried_iterator == failed_iterator
    assert "backing off" not in caplog.text
    # and everything was archived, once
    assert list(iter_events(store, table)) == expected


@pytest.mark.parametrize(("status", "body", "event"), RETRIED)
def test_a_get_records_failure_that_outlasts_the_retries_is_the_event_it_always_was(
    stream_tables: Any,
    streams_proxy: Any,
    monkeypatch: pytest.MonkeyPatch,
    status: int,
    body: bytes,
    event: StreamEvent,
) -> None:
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "3")
    table, arn = stream_tables.create()
    stream_tables.write(table, random.Random(24), 5)
    expected = stream_tables.history(arn)
    source = StreamSource(streams_client(), arn)
    _, shards = source.describe()
    iterator = source.iterator(shards[0].shard_id, None)
    assert iterator is not None

    # When every one of the three attempts fails
    streams_proxy.fail_get_records(status, body, times=3)
    page = source.read(iterator)

    # Then botocore made them all, and the error is the event the poller always got for it
    assert streams_proxy.get_records == [(iterator, status)] * 3
    assert page == Page([], iterator, event, page.detail)
    # and the next read, answered, has the records
    after = source.read(iterator)
    assert after.event is None and len(after.records) == len(expected) > 0


# -- archiver run in a subprocess ----------------------------------------------------------


def test_archiver_run_flushes_on_sigterm_and_exits_0(
    archive_uri: str, stream_tables: Any, streams_proxy: Any, tmp_path: Path
) -> None:
    # Given a history, and a poller that would not flush for an hour
    table, arn = stream_tables.create()
    stream_tables.write(table, random.Random(12), 80)
    expected = stream_tables.history(arn)
    run = Run(
        [
            "--archive",
            archive_uri,
            "--table",
            table,
            "--flush-interval",
            "3600",
            "--poll-interval",
            "0.05",
        ],
        tmp_path,
    )
    wait_for(
        lambda: streams_proxy.has_delivered(seq(expected[-1])),
        "GetRecords of the last change",
        proc=run.proc,
    )
    store = open_store(archive_uri, s3="boto3")
    assert list(store.list("")) == []  # read, buffered, nothing written yet

    # When it is sent SIGTERM
    status = run.stop()

    # Then it flushed everything it read, checkpointed it, and exited 0
    assert status == 0, run.stderr
    assert "Traceback" not in run.stderr
    assert list(iter_events(store, table)) == expected
    checkpoint = orjson.loads(store.get(checkpoint_key(arn)))
    assert set(checkpoint["positions"].values()) == {seq(expected[-1])}
    # with one EMF metrics line for its one flush
    (emf,) = run.emf_lines()
    directive = emf["_aws"]["CloudWatchMetrics"][0]
    assert isinstance(emf["_aws"]["Timestamp"], int)
    assert {"RecordsArchived", "BytesWritten", "FilesWritten"} <= {
        m["Name"] for m in directive["Metrics"]
    }
    assert emf["RecordsArchived"] == len(expected)
    assert emf["Stream"] == table and directive["Dimensions"] == [["Stream"]]


def test_archiver_run_drains_a_disabled_stream_and_exits_0_on_its_own(
    local_archive: str, stream_tables: Any, streams_proxy: Any, tmp_path: Path
) -> None:
    # Given a poller that flushes every 10 records, fed in three rounds
    table, arn = stream_tables.create()
    rng = random.Random(13)
    run = Run(
        [
            "--archive",
            local_archive,
            "--stream-arn",
            arn,
            "--flush-records",
            "10",
            "--flush-interval",
            "3600",
            "--poll-interval",
            "0.05",
        ],
        tmp_path,
    )
    for _ in range(3):
        stream_tables.write(table, rng, 25)
        last = seq(stream_tables.history(arn)[-1])
        wait_for(
            lambda last=last: streams_proxy.has_delivered(last),
            "GetRecords of the round",
            proc=run.proc,
        )

    # When the table's stream is disabled, its shard closes
    stream_tables.client.update_table(TableName=table, StreamSpecification={"StreamEnabled": False})
    try:
        status = run.proc.wait(60)
    except subprocess.TimeoutExpired:
        run.proc.kill()
        raise AssertionError("archiver run kept running on a disabled, drained stream") from None

    # Then the poller archived all of it, retired the shard, and ended by itself
    assert status == 0, run.stderr
    expected = stream_tables.history(arn)
    store = open_store(local_archive, s3="boto3")
    assert list(iter_events(store, table)) == expected
    checkpoint = orjson.loads(store.get(checkpoint_key(arn)))
    assert checkpoint["positions"] == {} and len(checkpoint["finished"]) == 1
    # one EMF line per flush, each a JSON document with the _aws block
    lines = run.emf_lines()
    assert len(lines) >= 3
    assert all(line["_aws"]["CloudWatchMetrics"][0]["Metrics"] for line in lines)
    assert sum(line["RecordsArchived"] for line in lines) == len(expected)


@pytest.mark.parametrize("failure", ["refused", "outage"])
def test_archiver_run_exits_1_when_its_last_flush_fails(
    stream_tables: Any,
    streams_proxy: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    failure: str,
) -> None:
    # Given an archive that cannot be written, and a separate checkpoint: a folder that is a
    # file (refused for good), or a bucket behind an endpoint that refuses every connection (an
    # outage, worth retrying: the flush keeps its files instead of stopping the poller)
    if failure == "refused":
        blocked = tmp_path / "archive"
        blocked.write_text("a file where the archive folder should be")
        archive = str(blocked)
    else:
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9")
        monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
        archive = "s3://archive/down"
    checkpoint = tmp_path / "positions" / "stream.json"
    table, arn = stream_tables.create()
    stream_tables.write(table, random.Random(14), 20)
    expected = stream_tables.history(arn)
    run = Run(
        [
            "--archive",
            archive,
            "--table",
            table,
            "--checkpoint",
            str(checkpoint),
            "--flush-interval",
            "3600",
            "--poll-interval",
            "0.05",
        ],
        tmp_path,
    )
    wait_for(
        lambda: streams_proxy.has_delivered(seq(expected[-1])),
        "GetRecords of the last change",
        proc=run.proc,
    )

    # When it is stopped, its last flush failing
    status = run.stop()

    # Then it says what it could not archive, exits 1, and checkpoints nothing
    assert status == 1, run.stderr
    assert f"stopped with {len(expected)} records read but not archived" in run.stderr
    assert "Traceback" not in run.stderr
    assert not checkpoint.exists()


def test_archiver_run_stops_with_exit_1_when_the_bucket_refuses_writes_for_good(
    stream_tables: Any, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Given a stream with changes and an archive bucket that does not exist (on moto's S3:
    # SeaweedFS makes a bucket on the first write to it)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_endpoint)
    checkpoint = tmp_path / "positions" / "stream.json"
    table, _ = stream_tables.create()
    stream_tables.write(table, random.Random(15), 12)
    bucket = f"no-such-bucket-{uuid.uuid4().hex[:12]}"
    run = Run(
        [
            "--archive",
            f"s3://{bucket}/archive",
            "--table",
            table,
            "--checkpoint",
            str(checkpoint),
            "--flush-records",
            "5",
            "--poll-interval",
            "0.05",
        ],
        tmp_path,
    )
    # When its first flush is refused, Then it stops on its own with exit 1, naming the bucket
    # and what it was doing, in one line, and checkpoints nothing
    try:
        status = run.proc.wait(60)
    except subprocess.TimeoutExpired:
        run.proc.kill()
        raise AssertionError("archiver run kept going against a missing bucket") from None
    assert status == 1, run.stderr
    [line] = [line for line in run.stderr.splitlines() if "cannot archive" in line]
    assert f"write s3://{bucket}/" in line and "NoSuchBucket" in line
    assert "records read but not archived" in line
    assert "Traceback" not in run.stderr
    assert not checkpoint.exists()


# -- bad usage ----------------------------------------------------------------------------------


def run_once(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ARCHIVER), "run", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ),
    )


@pytest.mark.parametrize(
    ("args", "status", "message"),
    [
        (["--table", "orders"], 2, "--archive"),
        (
            ["--archive", "{archive}", "--table", "orders", "--stream-arn", "arn:x"],
            2,
            "not allowed with argument",
        ),
        (["--archive", "{archive}"], 1, "give --stream-arn or --table"),
        (
            ["--archive", "{archive}", "--table", "orders", "--flush-records", "0"],
            2,
            "--flush-records",
        ),
        (
            ["--archive", "{archive}", "--table", "orders", "--flush-interval", "soon"],
            2,
            "--flush-interval",
        ),
    ],
)
def test_bad_usage_is_named_without_a_traceback(
    args: list[str], status: int, message: str, local_archive: str
) -> None:
    result = run_once([a.format(archive=local_archive) for a in args])
    assert result.returncode == status, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_a_table_without_a_stream_is_named(stream_tables: Any, local_archive: str) -> None:
    table, _ = stream_tables.create(stream=False)
    result = run_once(["--archive", local_archive, "--table", table])
    assert result.returncode == 1
    assert f"table {table} has no enabled stream" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_missing_table_is_named(stream_tables: Any, local_archive: str) -> None:
    result = run_once(["--archive", local_archive, "--table", "no-such-table"])
    assert result.returncode == 1
    assert "cannot describe table no-such-table: ResourceNotFoundException" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_missing_stream_is_named_and_fails(stream_tables: Any, local_archive: str) -> None:
    table, arn = stream_tables.create()
    gone = arn.replace(table, "no-such-table")
    result = run_once(["--archive", local_archive, "--stream-arn", gone])
    assert result.returncode == 1, result.stderr
    assert f"stream {gone} does not exist" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_checkpoint_of_another_stream_is_refused(stream_tables: Any, tmp_path: Path) -> None:
    _, first = stream_tables.create()
    table, _ = stream_tables.create()
    checkpoint = tmp_path / "positions.json"
    checkpoint.write_bytes(
        orjson.dumps({"stream_arn": first, "positions": {}, "finished": [], "gaps": []})
    )
    result = run_once(
        ["--archive", str(tmp_path / "archive"), "--table", table, "--checkpoint", str(checkpoint)]
    )
    assert result.returncode == 1, result.stderr
    assert f"belongs to stream {first}" in result.stderr and str(checkpoint) in result.stderr
    assert "Traceback" not in result.stderr
