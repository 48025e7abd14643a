"""The poller on a scripted Streams client: lineage, expiry, trimming, throttling, flushing.

No emulator produces shard rollover, iterator expiry, trimmed data or
throttling, so ``FakeStreams`` scripts them. It answers ``describe_stream``
(paginated with ``LastEvaluatedShardId``) and ``get_shard_iterator`` like the
real service, and ``read_page`` (GetRecords) with the response body as
DynamoDB Streams sends it (records without ``eventSourceARN``, binary as
base64, change times as epoch seconds); it raises botocore's ``ClientError``
with the real error codes, or serves a body that is not a GetRecords response.
Every call is logged with the fake clock's time, so tests assert the order of
reads per shard and that nothing busy-loops. The poller runs with an injected
clock and sleep; the archive is a local folder, read back with the archive's
own reader.
"""

from __future__ import annotations

import base64
import gc
import itertools
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from botocore.exceptions import ClientError

from archiver.archive.errors import StoreAccessDenied, StoreError, StoreUnavailable
from archiver.archive.reader import iter_events
from archiver.archive.store import LocalStore
from archiver.poller import (
    CHECKPOINT_PREFIX,
    FLUSH_BACKOFF_MAX,
    ArchiveUnwritable,
    FlushPolicy,
    Poller,
    ShardCheckpoints,
    checkpoint_key,
)
from archiver.streams import StreamEvent, StreamGone, StreamSource, ready_shards
from archiver.write import ArchiveReport
from tests.stores import Passthrough

TABLE = "orders"
ARN = f"arn:aws:dynamodb:ddblocal:000000000000:table/{TABLE}/stream/2026-11-27T10:00:00.000"
T0 = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
NS = uuid.UUID("6f1d3c52-6d2b-4a55-9a3e-1f6f5b0c7e11")


# -- the scripted streams client ---------------------------------------------------------------


def client_error(code: str, operation: str) -> ClientError:
    """The exception boto3 raises for an AWS error response with this code."""
    return ClientError(
        {
            "Error": {"Code": code, "Message": f"scripted {code}"},
            "ResponseMetadata": {"HTTPStatusCode": 400},
        },
        operation,
    )


class FakeClock:
    """Monotonic and wall time the test controls; ``sleep`` advances it and runs hooks."""

    def __init__(self, start: float = 1_000.0, max_sleeps: int = 500) -> None:
        self.now = start
        self.sleeps: list[float] = []
        self.max_sleeps = max_sleeps
        self.on_sleep: list[Callable[[], None]] = []

    def __call__(self) -> float:
        return self.now

    def wall(self) -> float:
        return 1_795_000_000.0 + self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if len(self.sleeps) > self.max_sleeps:
            raise AssertionError(f"the poller slept {len(self.sleeps)} times without ending")
        self.now += seconds
        for hook in self.on_sleep:
            hook()


@dataclass
class FakeShard:
    shard_id: str
    parent_id: str | None
    records: list[dict[str, Any]] = field(default_factory=list)
    closed: bool = False
    trimmed: int = 0  # records before this index are past the retention window


@dataclass(frozen=True, slots=True)
class Call:
    operation: str
    shard_id: str | None
    at: float  # the fake clock's time
    detail: dict[str, Any]


_OPERATIONS = {
    "describe_stream": "DescribeStream",
    "get_shard_iterator": "GetShardIterator",
    "read_page": "GetRecords",
}


class FakeStreams:
    """An in-process ``dynamodbstreams`` client that scripts what no emulator does."""

    def __init__(
        self,
        clock: FakeClock,
        *,
        arn: str = ARN,
        shards_per_page: int = 100,
        records_per_page: int = 1000,
    ) -> None:
        self.clock = clock
        self.arn = arn
        self.status = "ENABLED"
        self.shards: dict[str, FakeShard] = {}
        self.shards_per_page = shards_per_page
        self.records_per_page = records_per_page
        self.faults: dict[tuple[str, str | None], list[str]] = {}
        self.calls: list[Call] = []
        self.deleted = False
        self._sequence = 0
        self._tokens: dict[str, tuple[str, int]] = {}
        self._expired: set[str] = set()
        self._versions: dict[str, int] = {}
        self.bodies: dict[str, list[bytes]] = {}

    # scripting

    def add_shard(
        self,
        shard_id: str,
        parent: str | None = None,
        *,
        records: int = 0,
        closed: bool = False,
        start: datetime = T0,
    ) -> list[dict[str, Any]]:
        self.shards[shard_id] = FakeShard(shard_id, parent)
        written = self.write(shard_id, records, start=start)
        self.shards[shard_id].closed = closed
        return written

    def write(
        self, shard_id: str, count: int, *, start: datetime = T0, keys: int = 4
    ) -> list[dict[str, Any]]:
        """``count`` changes to a few items: INSERT, then MODIFYs, every fifth a REMOVE."""
        shard = self.shards[shard_id]
        assert not shard.closed, f"{shard_id} is closed"
        out = []
        for _ in range(count):
            self._sequence += 1
            n = self._sequence
            out.append(self._record(n, f"item-{n % keys}", start + timedelta(seconds=n)))
        shard.records += out
        return out

    def _record(self, n: int, pk: str, when: datetime) -> dict[str, Any]:
        version = self._versions.get(pk)
        keys = {"pk": {"S": pk}}
        if version is not None and n % 5 == 0:
            name, images = "REMOVE", {"OldImage": self._image(keys, version)}
            self._versions.pop(pk)
        elif version is None:
            name, images = "INSERT", {"NewImage": self._image(keys, 1)}
            self._versions[pk] = 1
        else:
            name = "MODIFY"
            images = {
                "OldImage": self._image(keys, version),
                "NewImage": self._image(keys, version + 1),
            }
            self._versions[pk] = version + 1
        return {  # a record of a GetRecords response, as DynamoDB Local sends it
            "awsRegion": "ddblocal",
            "dynamodb": {
                "ApproximateCreationDateTime": int(when.timestamp()),
                "Keys": keys,
                **images,
                "SequenceNumber": f"{n:021d}",
                "SizeBytes": 100,
                "StreamViewType": "NEW_AND_OLD_IMAGES",
            },
            "eventID": str(uuid.uuid5(NS, str(n))),
            "eventName": name,
            "eventSource": "aws:dynamodb",
            "eventVersion": "1.1",
        }

    @staticmethod
    def _image(keys: dict[str, Any], version: int) -> dict[str, Any]:
        return {
            **keys,
            "version": {"N": str(version)},
            "price": {"N": "1.5"},
            "blob": {"B": base64.b64encode(bytes([0, version % 256, 255])).decode()},
            "tags": {"SS": ["a", "b"]},
            "sizes": {"NS": ["1", "2.25"]},
            "nested": {"M": {"ok": {"BOOL": True}, "none": {"NULL": True}}},
        }

    def close(self, shard_id: str) -> None:
        self.shards[shard_id].closed = True

    def trim(self, shard_id: str, before: int) -> None:
        """Records before index ``before`` fall out of the 24-hour window."""
        self.shards[shard_id].trimmed = before

    def expire_iterators(self) -> None:
        """Every iterator handed out so far is now older than 15 minutes."""
        self._expired |= set(self._tokens)

    def fail(self, operation: str, shard_id: str | None, *codes: str) -> None:
        """The next calls of ``operation`` (on ``shard_id``) raise these error codes, in order."""
        self.faults.setdefault((operation, shard_id), []).extend(codes)

    def garble(self, shard_id: str, *bodies: bytes) -> None:
        """The next GetRecords calls on ``shard_id`` succeed with these bodies, in order."""
        self.bodies.setdefault(shard_id, []).extend(bodies)

    def reads(self, shard_id: str) -> list[Call]:
        return [c for c in self.calls if c.operation == "read_page" and c.shard_id == shard_id]

    def iterator_requests(self, shard_id: str) -> list[tuple[str, str | None]]:
        return [
            (c.detail["type"], c.detail["after"])
            for c in self.calls
            if c.operation == "get_shard_iterator" and c.shard_id == shard_id
        ]

    def drained(self) -> bool:
        """Every record of every listed shard has been handed out."""
        served: dict[str, int] = {}
        for call in self.calls:
            if call.operation == "read_page" and "end" in call.detail:
                served[call.shard_id or ""] = max(
                    served.get(call.shard_id or "", 0), call.detail["end"]
                )
        return all(served.get(s.shard_id, 0) >= len(s.records) for s in self.shards.values())

    def _raise_fault(self, operation: str, shard_id: str | None) -> None:
        pending = self.faults.get((operation, shard_id))
        if pending:
            raise client_error(pending.pop(0), _OPERATIONS[operation])

    # DescribeStream and GetShardIterator with boto3's keyword arguments, GetRecords as bytes

    def describe_stream(
        self, *, StreamArn: str, ExclusiveStartShardId: str | None = None, Limit: int | None = None
    ) -> dict[str, Any]:
        self.calls.append(Call("describe_stream", ExclusiveStartShardId, self.clock.now, {}))
        self._raise_fault("describe_stream", None)
        if self.deleted or StreamArn != self.arn:
            raise client_error("ResourceNotFoundException", "DescribeStream")
        ids = list(self.shards)
        start = ids.index(ExclusiveStartShardId) + 1 if ExclusiveStartShardId else 0
        page = ids[start : start + (Limit or self.shards_per_page)]
        shards = []
        for shard_id in page:
            shard = self.shards[shard_id]
            span = {
                "StartingSequenceNumber": seq(shard.records[0])
                if shard.records
                else f"{self._sequence + 1:021d}"
            }
            if shard.closed:
                span["EndingSequenceNumber"] = (
                    seq(shard.records[-1]) if shard.records else span["StartingSequenceNumber"]
                )
            raw: dict[str, Any] = {"ShardId": shard_id, "SequenceNumberRange": span}
            if shard.parent_id:
                raw["ParentShardId"] = shard.parent_id
            shards.append(raw)
        description: dict[str, Any] = {
            "StreamArn": self.arn,
            "StreamStatus": self.status,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
            "TableName": TABLE,
            "Shards": shards,
        }
        if start + len(page) < len(ids):
            description["LastEvaluatedShardId"] = page[-1]
        return {"StreamDescription": description}

    def get_shard_iterator(
        self,
        *,
        StreamArn: str,
        ShardId: str,
        ShardIteratorType: str,
        SequenceNumber: str | None = None,
    ) -> dict[str, Any]:
        self.calls.append(
            Call(
                "get_shard_iterator",
                ShardId,
                self.clock.now,
                {"type": ShardIteratorType, "after": SequenceNumber},
            )
        )
        self._raise_fault("get_shard_iterator", ShardId)
        shard = self.shards.get(ShardId)
        if self.deleted or shard is None or StreamArn != self.arn:
            raise client_error("ResourceNotFoundException", "GetShardIterator")
        if ShardIteratorType == "TRIM_HORIZON":
            position = shard.trimmed
        elif ShardIteratorType == "AFTER_SEQUENCE_NUMBER":
            sequences = [seq(r) for r in shard.records]
            index = sequences.index(SequenceNumber) if SequenceNumber in sequences else -1
            if index < 0:
                raise client_error("ValidationException", "GetShardIterator")
            if index < shard.trimmed:
                raise client_error("TrimmedDataAccessException", "GetShardIterator")
            position = index + 1
        else:
            raise AssertionError(f"the poller asked for a {ShardIteratorType} iterator")
        return {"ShardIterator": self._token(ShardId, position)}

    def _token(self, shard_id: str, position: int) -> str:
        token = f"{self.arn}|{shard_id}|{position}|{len(self._tokens)}"
        self._tokens[token] = (shard_id, position)
        return token

    def read_page(self, iterator: str, limit: int) -> bytes:
        """GetRecords: the response body, as DynamoDB Streams sends it."""
        shard_id, position = self._tokens.get(iterator, ("?", -1))
        call = Call("read_page", shard_id, self.clock.now, {"position": position})
        self.calls.append(call)
        self._raise_fault("read_page", shard_id)
        if self.bodies.get(shard_id):
            return self.bodies[shard_id].pop(0)
        if self.deleted:
            raise client_error("ResourceNotFoundException", "GetRecords")
        if position < 0:
            raise client_error("ValidationException", "GetRecords")
        if iterator in self._expired:
            raise client_error("ExpiredIteratorException", "GetRecords")
        shard = self.shards[shard_id]
        if position < shard.trimmed:
            raise client_error("TrimmedDataAccessException", "GetRecords")
        end = min(len(shard.records), position + min(limit, self.records_per_page))
        call.detail["end"] = end
        response: dict[str, Any] = {"Records": shard.records[position:end]}
        if not (shard.closed and end == len(shard.records)):
            response["NextShardIterator"] = self._token(shard_id, end)
        else:
            call.detail["closed"] = True
        return orjson.dumps(response)


# -- a store that records, and fails on demand ----------------------------------------------


class RecordingStore(Passthrough):
    """ArchiveStore over a LocalStore: records every put, fails the ones ``failing`` picks."""

    def __init__(self, root: Path) -> None:
        super().__init__(LocalStore(root))
        self.puts: list[tuple[str, bytes]] = []
        self.failing: Callable[[str], bool] = lambda key: False
        self.refusal: type[StoreError] = StoreUnavailable  # what a failing put raises
        self.attempts = 0
        self.refused: list[tuple[str, bytes]] = []
        self.on_put: list[Callable[[str, bytes], None]] = []

    def put(self, key: str, data: bytes) -> None:
        self.attempts += 1
        if self.failing(key):
            self.refused.append((key, data))
            raise self.refusal(f"scripted refusal writing {key}")
        for hook in self.on_put:
            hook(key, data)
        self.inner.put(key, data)
        self.puts.append((key, data))

    def data_puts(self) -> list[str]:
        return [key for key, _ in self.puts if key.endswith(".parquet")]

    def checkpoint_puts(self) -> list[dict[str, Any]]:
        return [orjson.loads(data) for key, data in self.puts if key.startswith(CHECKPOINT_PREFIX)]


def data_only(key: str) -> bool:
    return not key.startswith(CHECKPOINT_PREFIX)


# -- helpers ------------------------------------------------------------------------------


@dataclass
class Rig:
    clock: FakeClock
    fake: FakeStreams
    store: RecordingStore
    flushes: list[tuple[int, float, bool]] = field(
        default_factory=list
    )  # (records, clock, stopped?)
    poller: Poller | None = None

    def make(self, policy: FlushPolicy | None = None, **kwargs: Any) -> Poller:
        checkpoints = ShardCheckpoints.load(self.store, checkpoint_key(ARN), ARN)

        def on_flush(report: ArchiveReport, seconds: float) -> None:
            assert self.poller is not None
            self.flushes.append((report.archived, self.clock.now, self.poller._stop.is_set()))

        arguments: dict[str, Any] = {
            "clock": self.clock,
            "wall": self.clock.wall,
            "sleep": self.clock.sleep,
            "poll_interval": 1.0,
            "discover_interval": 30.0,
            "on_flush": on_flush,
        }
        arguments.update(kwargs)
        self.poller = Poller(
            StreamSource(self.fake, ARN, read_page=self.fake.read_page),
            self.store,
            checkpoints,
            policy=policy or FlushPolicy(),
            **arguments,
        )
        return self.poller

    def stop_when_drained(self) -> None:
        """Stop the poller at its first idle sleep once every record has been handed out."""

        def hook() -> None:
            if self.fake.drained() and self.poller is not None:
                self.poller.stop()

        self.clock.on_sleep.append(hook)

    def archived(self) -> list[dict[str, Any]]:
        return list(iter_events(self.store, TABLE))

    def checkpoint(self) -> dict[str, Any]:
        return dict(orjson.loads(self.store.get(checkpoint_key(ARN))))


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    clock = FakeClock()
    return Rig(clock, FakeStreams(clock), RecordingStore(tmp_path / "archive"))


def lambda_shape(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The expected archive content: the records as Lambda would have delivered them."""
    return [{**r, "eventSourceARN": ARN} for r in records]


def wire(record: dict[str, Any]) -> bytes:
    """A record's text as it stands in the fake's GetRecords body."""
    return orjson.dumps(record)


def seq(record: dict[str, Any]) -> str:
    return str(record["dynamodb"]["SequenceNumber"])


def event_ids(records: list[dict[str, Any]]) -> list[str]:
    return [r["eventID"] for r in records]


def assert_read_after(fake: FakeStreams, parent: str, child: str) -> None:
    """Every GetRecords on ``child`` follows the call that found ``parent`` closed and drained."""
    reads = [i for i, c in enumerate(fake.calls) if c.operation == "read_page"]
    parent_end = [
        i for i in reads if fake.calls[i].shard_id == parent and fake.calls[i].detail.get("closed")
    ]
    child_reads = [i for i in reads if fake.calls[i].shard_id == child]
    assert parent_end, f"{parent} was never drained"
    assert child_reads, f"{child} was never read"
    assert min(child_reads) > parent_end[0], (
        f"{child} was read before its parent {parent} was drained"
    )


# -- the bytes of GetRecords ----------------------------------------------------------------


def test_the_buffer_holds_each_record_decoded_from_the_text_get_records_returned(
    rig: Rig,
) -> None:
    fake = rig.fake
    fake.records_per_page = 4
    records = fake.add_shard("shard-1", records=6)
    poller = rig.make(FlushPolicy(max_age=3600))

    # When two pages are read
    poller.discover()
    poller.poll_once()
    poller.poll_once()

    # Then the buffer holds the six records as the archive's columns (compressed, nothing the GC
    # tracks), counted by the length of the text they came in
    spool = poller.buffer
    assert (spool.count, spool.rows, spool.dead) == (6, 6, [])
    assert not any(gc.is_tracked(page) for page in spool._pages)
    assert poller.buffer_bytes == sum(len(wire(r)) for r in records)
    # and the position and the stream's lag come from the last record read
    assert poller.shards["shard-1"].read_through == seq(records[-1])
    assert poller.newest_change == {
        "shard-1": records[-1]["dynamodb"]["ApproximateCreationDateTime"]
    }
    # The flush archives them as Lambda would have delivered them (with eventSourceARN), each
    # image the text as it stood in the page, with the shard it came from
    poller.flush()
    assert rig.archived() == lambda_shape(records)
    assert rig.checkpoint()["positions"] == {"shard-1": seq(records[-1])}
    ((_, data),) = [put for put in rig.store.puts if not put[0].startswith(CHECKPOINT_PREFIX)]
    table = pq.read_table(pa.BufferReader(data))
    assert table["new_image"].to_pylist() == [
        wire(r["dynamodb"]["NewImage"]).decode() if "NewImage" in r["dynamodb"] else None
        for r in records
    ]
    assert table["shard_id"].to_pylist() == ["shard-1"] * 6


def test_a_last_record_without_a_usable_sequence_number_is_dead_lettered_and_not_the_position(
    rig: Rig,
) -> None:
    # Given a page whose last record is broken (its sequence number is not one)
    fake = rig.fake
    records = fake.add_shard("shard-1", records=3)
    broken = fake.write("shard-1", 1)[0]
    broken["dynamodb"]["SequenceNumber"] = "not-a-sequence-number"
    broken["dynamodb"]["ApproximateCreationDateTime"] = 4_000_000_000
    poller = rig.make(FlushPolicy(max_age=3600))

    poller.discover()
    poller.poll_once()
    poller.flush()

    # Then the others are archived, it is dead-lettered, and the position is the last good one
    assert rig.archived() == lambda_shape(records)
    (letter,) = [data for key, data in rig.store.puts if key.endswith(".jsonl")]
    assert broken["eventID"].encode() in letter
    assert rig.checkpoint()["positions"] == {"shard-1": seq(records[-1])}
    assert poller.newest_change == {
        "shard-1": records[-1]["dynamodb"]["ApproximateCreationDateTime"]
    }


@pytest.mark.parametrize(
    "body",
    [
        b"<html><body>502 Bad Gateway</body></html>",
        b'{"message": "not what GetRecords returns"}',
        b'{"Records": {"not": "a list"}, "NextShardIterator": "x"}',
        b"",
    ],
)
def test_a_page_that_is_not_a_get_records_response_backs_off_and_loses_nothing(
    rig: Rig, body: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    fake = rig.fake
    records = fake.add_shard("shard-1", records=5)
    fake.garble("shard-1", body)
    poller = rig.make(FlushPolicy(max_age=30), poll_interval=0.1)

    # When the first read answers with something that is not a GetRecords response
    poller.discover()
    with caplog.at_level(logging.WARNING, logger="archiver.streams"):
        assert not poller.poll_once()

    # Then it is logged, the shard rests, and the same position is read again after the pause
    assert "GetRecords on " + ARN in caplog.text
    assert poller.shards["shard-1"].idle_until > rig.clock.now
    assert poller.buffered == 0
    rig.stop_when_drained()
    poller.run()
    reads = fake.reads("shard-1")
    assert [c.detail["position"] for c in reads[:2]] == [0, 0]
    assert reads[1].at - reads[0].at >= 0.5
    assert rig.archived() == lambda_shape(records)


def test_stream_source_turns_get_records_errors_into_events() -> None:
    clock = FakeClock()
    fake = FakeStreams(clock)
    fake.add_shard("shard-1", records=1)
    source = StreamSource(fake, ARN, read_page=fake.read_page)
    iterator = fake.get_shard_iterator(
        StreamArn=ARN, ShardId="shard-1", ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    fake.fail(
        "read_page",
        "shard-1",
        "ExpiredIteratorException",
        "TrimmedDataAccessException",
        "LimitExceededException",
        "InternalServerError",
    )
    events = [source.read(iterator).event for _ in range(4)]
    assert events == [
        StreamEvent.EXPIRED,
        StreamEvent.TRIMMED,
        StreamEvent.THROTTLED,
        StreamEvent.UNAVAILABLE,
    ]
    assert source.read("an iterator the service never gave").event is StreamEvent.EXPIRED
    page = source.read(iterator)
    assert page.event is None and len(page.records) == 1
    fake.deleted = True
    with pytest.raises(StreamGone):
        source.read(iterator)


# -- shard lineage --------------------------------------------------------------------------


def test_a_child_shard_is_read_only_after_its_parent_is_drained(rig: Rig) -> None:
    # Given a closed parent with more records than one page, its open child, a grandchild,
    # and an unrelated shard, listed children first
    fake = rig.fake
    fake.records_per_page = 3
    fake.shards_per_page = 2
    parent = fake.add_shard("shard-parent", records=7)
    fake.close("shard-parent")
    child = fake.add_shard("shard-child", "shard-parent", records=4, closed=True)
    grandchild = fake.add_shard("shard-grandchild", "shard-child", records=2)
    other = fake.add_shard("shard-other", records=2)
    fake.shards = {
        k: fake.shards[k]
        for k in ["shard-grandchild", "shard-child", "shard-other", "shard-parent"]
    }
    poller = rig.make(FlushPolicy(max_age=5))
    rig.stop_when_drained()

    # When the poller runs until everything has been handed out
    poller.run()

    # Then reads follow the lineage, and the unrelated shard did not wait
    assert_read_after(fake, "shard-parent", "shard-child")
    assert_read_after(fake, "shard-child", "shard-grandchild")
    reads = [c.shard_id for c in fake.calls if c.operation == "read_page"]
    assert reads.index("shard-other") < reads.index("shard-child")
    # and every record is archived once, each item's changes in order
    assert sorted(event_ids(rig.archived())) == sorted(
        event_ids(parent + child + grandchild + other)
    )
    assert rig.archived() == lambda_shape(sorted(parent + child + grandchild + other, key=seq))
    # the closed shards are retired after the flush; the open ones keep a position
    checkpoint = rig.checkpoint()
    assert checkpoint["finished"] == ["shard-child", "shard-parent"]
    assert checkpoint["positions"] == {
        "shard-grandchild": seq(grandchild[-1]),
        "shard-other": seq(other[-1]),
    }


def test_a_parent_no_longer_listed_lets_its_child_be_read(rig: Rig) -> None:
    # Given a child whose parent has aged out of DescribeStream
    records = rig.fake.add_shard("shard-child", "shard-gone", records=3)
    poller = rig.make(FlushPolicy(max_age=5))
    rig.stop_when_drained()

    poller.run()

    assert rig.fake.reads("shard-child")
    assert rig.archived() == lambda_shape(records)


def test_ready_shards_waits_for_parents_listed_and_unfinished() -> None:
    from archiver.streams import Shard

    shards = [
        Shard("c", "p", "2", None),
        Shard("p", None, "1", "1"),
        Shard("orphan", "gone", "3", None),
    ]
    assert [s.shard_id for s in ready_shards(shards, set())] == ["p", "orphan"]
    assert [s.shard_id for s in ready_shards(shards, {"p"})] == ["c", "orphan"]
    assert [s.shard_id for s in ready_shards(shards, {"p", "c", "orphan"})] == []


def test_describe_stream_pagination_is_followed(rig: Rig) -> None:
    fake = rig.fake
    fake.shards_per_page = 2
    written = []
    for n in range(5):
        written += fake.add_shard(f"shard-{n}", records=2, closed=True)
    fake.status = "DISABLED"
    poller = rig.make()

    poller.run()  # ends on its own: the stream is disabled and every shard drained

    starts = [c.shard_id for c in fake.calls if c.operation == "describe_stream"]
    assert starts[:3] == [None, "shard-1", "shard-3"]
    assert sorted(event_ids(rig.archived())) == sorted(event_ids(written))
    assert rig.checkpoint()["finished"] == [f"shard-{n}" for n in range(5)]
    assert rig.checkpoint()["positions"] == {}


def test_a_closed_shard_is_retired_in_the_checkpoint_only_after_its_data_is_written(
    rig: Rig,
) -> None:
    fake = rig.fake
    records = fake.add_shard("shard-a", records=3, closed=True)
    child = fake.add_shard("shard-b", "shard-a", records=2)
    rig.store.failing = data_only
    poller = rig.make(FlushPolicy(max_age=5))

    # When the closed shard is drained but the data cannot be written
    poller.discover()
    poller.poll_once()
    poller.poll_once()
    assert "shard-a" in poller.pending_finished
    poller.flush()

    # Then the shard is not retired, nothing is checkpointed, the buffer is kept
    assert rig.store.checkpoint_puts() == []
    assert "shard-a" not in poller.checkpoints.finished
    assert poller.buffered == 3

    # and once the store is back, data first, then the checkpoint retiring the shard
    rig.store.failing = lambda key: False
    poller.flush()
    assert [key.startswith(CHECKPOINT_PREFIX) for key, _ in rig.store.puts] == [False, True]
    assert rig.checkpoint()["finished"] == ["shard-a"]
    assert rig.archived() == lambda_shape(records)
    rig.stop_when_drained()
    poller.run()
    assert rig.archived() == lambda_shape(records + child)


def test_a_disabled_stream_with_every_shard_finished_ends_run_on_its_own(rig: Rig) -> None:
    fake = rig.fake
    fake.add_shard("shard-1", records=2, closed=True)
    fake.add_shard("shard-2", "shard-1", records=2, closed=True)
    fake.status = "DISABLED"
    ShardCheckpoints(rig.store, checkpoint_key(ARN), ARN, finished={"shard-1", "shard-2"}).save()
    rig.store.puts.clear()
    poller = rig.make()

    poller.run()

    assert [c.operation for c in fake.calls] == ["describe_stream"]
    assert rig.clock.sleeps == []
    assert rig.store.puts == []


def test_a_disabled_stream_is_drained_then_run_ends(rig: Rig) -> None:
    fake = rig.fake
    fake.records_per_page = 2
    first = fake.add_shard("shard-1", records=5, closed=True)
    second = fake.add_shard("shard-2", "shard-1", records=3, closed=True)
    fake.status = "DISABLED"
    poller = rig.make()

    poller.run()

    assert rig.archived() == lambda_shape(first + second)
    assert rig.checkpoint() == {
        "kind": "stream",
        "version": 1,
        "stream_arn": ARN,
        "positions": {},
        "finished": ["shard-1", "shard-2"],
        "gaps": [],
    }


def test_an_empty_shard_is_polled_with_pauses_and_writes_nothing(rig: Rig) -> None:
    rig.fake.add_shard("shard-empty")
    poller = rig.make(FlushPolicy(max_age=1))
    rig.clock.on_sleep.append(lambda: len(rig.clock.sleeps) >= 5 and poller.stop())

    poller.run()

    reads = rig.fake.reads("shard-empty")
    assert 5 <= len(reads) <= 6  # one GetRecords per pause, no busy loop
    assert rig.clock.sleeps == [1.0] * 5
    assert rig.store.puts == []  # nothing to write, nothing to checkpoint


def test_a_closed_empty_shard_is_retired_and_its_child_read(rig: Rig) -> None:
    fake = rig.fake
    fake.add_shard("shard-empty", closed=True)
    child = fake.add_shard("shard-child", "shard-empty", records=2)
    poller = rig.make(FlushPolicy(max_age=5))
    rig.stop_when_drained()

    poller.run()

    assert_read_after(fake, "shard-empty", "shard-child")
    assert rig.archived() == lambda_shape(child)
    assert rig.checkpoint()["finished"] == ["shard-empty"]


# -- iterator expiry, trimmed data, throttling ----------------------------------------------


def test_an_expired_iterator_reopens_after_the_last_read_sequence(rig: Rig) -> None:
    fake = rig.fake
    fake.records_per_page = 3
    records = fake.add_shard("shard-1", records=10)
    poller = rig.make(FlushPolicy(max_age=60))
    poller.discover()
    assert poller.poll_once()  # records 0-2 buffered, not yet archived

    # When every iterator the poller holds expires
    fake.expire_iterators()
    rig.stop_when_drained()
    poller.run()

    # Then it reopens right after record 2, from its buffer's position, not the checkpoint's
    assert fake.iterator_requests("shard-1") == [
        ("TRIM_HORIZON", None),
        ("AFTER_SEQUENCE_NUMBER", seq(records[2])),
    ]
    assert [c.detail["position"] for c in fake.reads("shard-1")][:3] == [0, 3, 3]
    assert rig.archived() == lambda_shape(records)  # nothing skipped, nothing twice


def test_an_expired_iterator_after_a_restart_reopens_after_the_checkpoint(rig: Rig) -> None:
    fake = rig.fake
    records = fake.add_shard("shard-1", records=6)
    after = seq(records[2])
    ShardCheckpoints(rig.store, checkpoint_key(ARN), ARN, positions={"shard-1": after}).save()
    fake.fail("read_page", "shard-1", "ExpiredIteratorException")
    poller = rig.make(FlushPolicy(max_age=5))
    rig.stop_when_drained()

    poller.run()

    assert fake.iterator_requests("shard-1") == [("AFTER_SEQUENCE_NUMBER", after)] * 2
    assert rig.archived() == lambda_shape(records[3:])


def test_trimmed_data_is_reported_as_a_gap_and_reading_resumes_at_trim_horizon(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    fake = rig.fake
    fake.records_per_page = 3
    records = fake.add_shard("shard-1", records=10)
    poller = rig.make(FlushPolicy(max_age=60))
    poller.discover()
    poller.poll_once()  # records 0-2

    # When records 3-5 fall out of the retention window before the poller gets to them
    fake.trim("shard-1", 6)
    rig.stop_when_drained()
    with caplog.at_level(logging.ERROR, logger="archiver.poller"):
        poller.run()

    # Then the loss is logged at ERROR naming the shard and the position after which data is gone
    last_read = seq(records[2])
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "shard-1" in errors[0].getMessage() and last_read in errors[0].getMessage()
    # recorded in the checkpoint for verify, and reading went on from the oldest record left
    gaps = rig.checkpoint()["gaps"]
    assert [(g["shard"], g["after_sequence"]) for g in gaps] == [("shard-1", last_read)]
    assert gaps[0]["resumed_at_sequence"] == seq(records[6])
    assert fake.iterator_requests("shard-1") == [("TRIM_HORIZON", None), ("TRIM_HORIZON", None)]
    assert rig.archived() == lambda_shape(records[:3] + records[6:])


def test_a_trimmed_checkpoint_position_on_restart_is_a_reported_gap(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    fake = rig.fake
    records = fake.add_shard("shard-1", records=10)
    after = seq(records[2])
    ShardCheckpoints(rig.store, checkpoint_key(ARN), ARN, positions={"shard-1": after}).save()
    fake.trim("shard-1", 6)  # the poller was down for more than 24 hours
    poller = rig.make(FlushPolicy(max_age=5))
    rig.stop_when_drained()

    with caplog.at_level(logging.ERROR, logger="archiver.poller"):
        poller.run()

    assert fake.iterator_requests("shard-1") == [
        ("AFTER_SEQUENCE_NUMBER", after),
        ("TRIM_HORIZON", None),
    ]
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "shard-1" in errors[0] and after in errors[0]
    checkpoint = rig.checkpoint()
    assert [(g["shard"], g["after_sequence"]) for g in checkpoint["gaps"]] == [("shard-1", after)]
    assert checkpoint["positions"] == {"shard-1": seq(records[-1])}
    assert rig.archived() == lambda_shape(records[6:])


@pytest.mark.parametrize(
    "codes",
    [
        ["LimitExceededException"] * 3,
        ["ProvisionedThroughputExceededException", "LimitExceededException"],
        ["InternalServerError"],
    ],
)
def test_throttling_backs_off_then_continues_with_nothing_lost(rig: Rig, codes: list[str]) -> None:
    fake = rig.fake
    records = fake.add_shard("shard-1", records=5)
    fake.fail("read_page", "shard-1", *codes)
    poller = rig.make(FlushPolicy(max_age=30), poll_interval=0.1)  # pauses are the backoff's

    # When the first read is throttled, the shard rests: polling again at once calls nothing
    poller.discover()
    poller.poll_once()
    state = poller.shards["shard-1"]
    assert state.idle_until > rig.clock.now
    calls = len(fake.calls)
    assert not poller.poll_once()
    assert len(fake.calls) == calls

    rig.stop_when_drained()
    poller.run()

    # Then every throttled call was followed by a pause before the next, each longer or equal
    reads = fake.reads("shard-1")
    waits = [b.at - a.at for a, b in itertools.pairwise(reads)][: len(codes)]
    assert all(w >= 0.5 for w in waits), waits
    assert waits == sorted(waits) and (len(waits) < 2 or waits[-1] > waits[0]), waits
    assert rig.archived() == lambda_shape(records)


def test_a_deleted_stream_stops_the_poller_after_flushing_what_it_read(rig: Rig) -> None:
    fake = rig.fake
    records = fake.add_shard("shard-1", records=3)
    poller = rig.make(FlushPolicy(max_age=60))
    poller.discover()
    poller.poll_once()

    fake.deleted = True  # the table was deleted
    with pytest.raises(StreamGone):
        poller.run()

    assert rig.archived() == lambda_shape(records)
    assert rig.checkpoint()["positions"] == {"shard-1": seq(records[-1])}


# -- flush policy -------------------------------------------------------------------------


def test_flushes_on_record_count(rig: Rig) -> None:
    fake = rig.fake
    fake.records_per_page = 3
    records = fake.add_shard("shard-1", records=8)
    poller = rig.make(FlushPolicy(max_records=5, max_age=3600))
    rig.stop_when_drained()

    poller.run()

    # 3 + 3 records reach the count: one flush while running, the rest on stop
    assert [(n, stopped) for n, _, stopped in rig.flushes] == [(6, False), (2, True)]
    assert rig.archived() == lambda_shape(records)


def test_flushes_on_byte_size(rig: Rig) -> None:
    fake = rig.fake
    fake.records_per_page = 3
    records = fake.add_shard("shard-1", records=8)
    # each record counts the length of its text in the page: the second page passes four records'
    four = sum(len(wire(r)) for r in records[:4])
    poller = rig.make(FlushPolicy(max_bytes=four, max_records=1000, max_age=3600))
    rig.stop_when_drained()

    poller.run()

    assert [(n, stopped) for n, _, stopped in rig.flushes] == [(6, False), (2, True)]
    assert rig.archived() == lambda_shape(records)


def test_flushes_on_age_when_the_stream_goes_idle(rig: Rig) -> None:
    records = rig.fake.add_shard("shard-1", records=3)
    poller = rig.make(FlushPolicy(max_age=10))
    started = rig.clock.now
    rig.clock.on_sleep.append(lambda: rig.clock.now >= started + 15 and poller.stop())

    poller.run()

    # three records arrive at once, the stream goes idle; ten (fake) seconds later they are written
    assert rig.flushes == [(3, started + 10, False)]
    assert rig.archived() == lambda_shape(records)
    assert rig.checkpoint()["positions"] == {"shard-1": seq(records[-1])}


def test_flushes_on_stop(rig: Rig) -> None:
    records = rig.fake.add_shard("shard-1", records=4)
    poller = rig.make(FlushPolicy(max_age=3600))
    rig.stop_when_drained()

    poller.run()

    assert [(n, stopped) for n, _, stopped in rig.flushes] == [(4, True)]
    assert rig.archived() == lambda_shape(records)
    assert rig.checkpoint()["positions"] == {"shard-1": seq(records[-1])}


def test_a_failed_write_keeps_the_buffer_and_does_not_advance_the_checkpoint(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    fake = rig.fake
    first = fake.add_shard("shard-1", records=3)
    poller = rig.make(FlushPolicy(max_age=3600))
    poller.discover()
    poller.poll_once()
    poller.flush()
    assert rig.checkpoint()["positions"] == {"shard-1": seq(first[-1])}

    # Given more records in the buffer, spanning two hours, and a store that fails the second hour
    later = fake.write("shard-1", 4, start=T0 + timedelta(minutes=59, seconds=55))
    hours = {
        datetime.fromtimestamp(r["dynamodb"]["ApproximateCreationDateTime"], UTC).hour
        for r in later
    }
    assert len(hours) == 2
    rig.store.failing = lambda key: "/hour=11/" in key
    poller.poll_once()
    puts_before = len(rig.store.puts)
    with caplog.at_level(logging.ERROR, logger="archiver.poller"):
        poller.flush()

    # Then the buffer is kept and neither the saved nor the in-memory checkpoint moves
    assert "flush failed" in caplog.text
    assert poller.buffered == 4
    (written_hour_10,) = rig.store.puts[puts_before:]
    assert "/hour=10/" in written_hour_10[0]
    assert rig.checkpoint()["positions"] == {"shard-1": seq(first[-1])}
    assert poller.checkpoints.positions == {"shard-1": seq(first[-1])}

    # and what failed is kept as it was encoded, the records let go
    assert not poller.buffer.rows
    assert [(file.key, file.data) for file in poller.unwritten] == rig.store.refused
    assert "/hour=11/" in rig.store.refused[0][0]

    # When the store recovers, the retry writes hour 11 alone (hour 10 is stored), then the
    # checkpoint
    rig.store.failing = lambda key: False
    poller.flush()
    retry = rig.store.puts[puts_before + 1 :]
    assert written_hour_10 not in retry
    assert ["/hour=11/" in key for key, _ in retry] == [True, False]
    assert [key.startswith(CHECKPOINT_PREFIX) for key, _ in retry] == [False, True]
    assert not poller.unwritten
    assert poller.buffered == 0
    assert rig.checkpoint()["positions"] == {"shard-1": seq(later[-1])}
    assert rig.archived() == lambda_shape(first + later)


def test_records_read_after_a_failed_flush_are_written_with_what_it_kept(rig: Rig) -> None:
    # Given a flush the store refuses, its records kept as the files they were encoded into
    fake = rig.fake
    fake.records_per_page = 3
    records = fake.add_shard("shard-1", records=6)
    rig.store.failing = data_only
    poller = rig.make(FlushPolicy(max_records=100, max_age=3600))
    poller.discover()
    poller.poll_once()
    poller.flush()
    (kept,) = poller.unwritten
    assert poller.buffered == 3 and not poller.buffer.rows
    # When the poller reads on (the buffer is not at its bound) and the next flush goes through
    poller.poll_once()
    assert poller.buffered == 6 and poller.buffer.count == 3
    rig.store.failing = lambda key: False
    poller.flush()
    # Then the kept file is stored as it was encoded, then the new records, then the checkpoint
    data = [(key, body) for key, body in rig.store.puts if not key.startswith(CHECKPOINT_PREFIX)]
    assert data[0] == (kept.key, kept.data) and len(data) == 2
    assert rig.store.puts[-1][0].startswith(CHECKPOINT_PREFIX)
    assert rig.checkpoint()["positions"] == {"shard-1": seq(records[-1])}
    assert rig.archived() == lambda_shape(records)
    assert not poller.unwritten and poller.buffered == 0


def test_an_unexpected_error_in_a_flush_stops_the_poller_with_nothing_checkpointed(
    rig: Rig,
) -> None:
    # Given a store whose data writes fail with something that is no store error
    fake = rig.fake
    fake.add_shard("shard-1", records=4)
    rig.store.failing = data_only
    rig.store.refusal = RuntimeError  # type: ignore[assignment]
    poller = rig.make(FlushPolicy(max_records=2, max_age=3600))
    rig.stop_when_drained()
    # When the poller runs, Then the error ends the run
    with pytest.raises(RuntimeError, match="scripted refusal"):
        poller.run()
    # and the final flush on the way out checkpoints nothing: the records it let go are not
    # archived, and a restart must read them again
    assert rig.store.checkpoint_puts() == []
    assert rig.store.data_puts() == []


def test_run_keeps_retrying_a_failed_flush_and_loses_nothing(rig: Rig) -> None:
    fake = rig.fake
    records = fake.add_shard("shard-1", records=4)
    rig.store.failing = data_only
    poller = rig.make(FlushPolicy(max_age=2))

    def recover() -> None:  # the store comes back after five idle pauses
        if len(rig.clock.sleeps) == 5:
            rig.store.failing = lambda key: False
        if len(rig.clock.sleeps) == 8:
            poller.stop()

    rig.clock.on_sleep.append(recover)
    poller.run()

    assert rig.store.checkpoint_puts()[0]["positions"] == {"shard-1": seq(records[-1])}
    assert [n for n, _, _ in rig.flushes] == [4]
    assert rig.archived() == lambda_shape(records)


def test_a_store_that_fails_every_write_pauses_reading_with_the_buffer_at_its_bound(
    rig: Rig,
) -> None:
    # Given a stream with far more records than the buffer holds, and a store in an outage
    fake = rig.fake
    fake.records_per_page = 4
    fake.add_shard("shard-1", records=400)
    rig.store.failing = lambda key: True
    poller = rig.make(FlushPolicy(max_records=10, max_age=3600))
    buffered: list[int] = []

    def watch() -> None:
        buffered.append(poller.buffered)
        if len(rig.clock.sleeps) == 40:
            poller.stop()

    rig.clock.on_sleep.append(watch)
    # When it runs through the outage
    poller.run()
    # Then the buffer never grows past its bound and one page, and reading pauses meanwhile
    assert max(buffered) == 12
    reads = [c for c in fake.calls if c.operation == "read_page"]
    assert len(reads) == 3
    # and the flush is tried again after jittered, doubling pauses, capped
    pauses = [p for p in rig.clock.sleeps if p != 1.0]
    assert len(pauses) >= 10 and max(pauses) <= FLUSH_BACKOFF_MAX
    assert pauses[6] > pauses[0] * 2 and max(pauses) > FLUSH_BACKOFF_MAX / 2
    # and nothing is checkpointed
    assert rig.store.checkpoint_puts() == []
    assert poller.buffered == 12


def test_access_denied_stops_the_poller_at_once_with_nothing_checkpointed(rig: Rig) -> None:
    # Given a store that refuses every write for good (revoked permissions)
    fake = rig.fake
    fake.records_per_page = 4
    fake.add_shard("shard-1", records=40)
    rig.store.failing = lambda key: True
    rig.store.refusal = StoreAccessDenied
    poller = rig.make(FlushPolicy(max_records=10, max_age=3600))
    # When the buffer is first flushed, Then the poller stops, naming what was refused
    with pytest.raises(ArchiveUnwritable, match=r"scripted refusal writing .*\.parquet") as caught:
        poller.run()
    assert caught.value.records == 12
    assert "stopped with 12 records read but not archived" in str(caught.value)
    # after one try (no retry, no last flush on the way out) and with nothing checkpointed
    assert rig.store.attempts == 1
    assert rig.store.checkpoint_puts() == []
    assert len([c for c in fake.calls if c.operation == "read_page"]) == 3


def test_checkpoints_are_written_only_after_the_data_they_cover(rig: Rig) -> None:
    fake = rig.fake
    fake.records_per_page = 4
    records = fake.add_shard("shard-1", records=12, closed=True)
    child = fake.add_shard("shard-2", "shard-1", records=9)
    every = {seq(r): r["eventID"] for r in records + child}
    checked = []

    def covered(key: str, data: bytes) -> None:
        # At every checkpoint write, each record up to each position is already in the archive
        if not key.startswith(CHECKPOINT_PREFIX):
            return
        state = orjson.loads(data)
        archived = set(event_ids(list(iter_events(rig.store, TABLE))))
        for shard_id, position in state["positions"].items():
            upto = [r for r in fake.shards[shard_id].records if seq(r) <= position]
            assert {r["eventID"] for r in upto} <= archived
        for shard_id in state["finished"]:
            assert {r["eventID"] for r in fake.shards[shard_id].records} <= archived
        checked.append(state)

    rig.store.on_put.append(covered)
    poller = rig.make(FlushPolicy(max_records=5, max_age=3600))
    rig.stop_when_drained()

    poller.run()

    assert len(checked) >= 3
    assert checked[-1]["finished"] == ["shard-1"]
    assert sorted(event_ids(rig.archived())) == sorted(every.values())


def test_a_checkpoint_of_another_stream_is_refused(rig: Rig) -> None:
    ShardCheckpoints(rig.store, checkpoint_key(ARN), ARN.replace(TABLE, "other")).save()
    with pytest.raises(ValueError, match="belongs to stream"):
        ShardCheckpoints.load(rig.store, checkpoint_key(ARN), ARN)
