"""The replayer's pure parts: checkpoint, lanes and slices, rate limit, batching, partial failures,
the JSON Lines sink and the read-ahead.

No server and no wall clock: the rate limiter gets a fake clock and sleep,
the checkpoint a temporary folder.
"""

from __future__ import annotations

import io
import itertools
import os
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archiver.archive.reader import _read_ahead, in_slice, key_hash
from replayer.checkpoint import Checkpoint, CheckpointError
from replayer.jsonl import LineWriter
from replayer.lanes import RateLimiter, lane_of, parse_slice, run_lanes
from replayer.redrive import _ENVELOPE, Delivery, Record, _partial_failures, batches, payload_of
from replayer.runner import Item

ROOT = Path(__file__).resolve().parents[2]
FINGERPRINT = {
    "command": "restore",
    "archive": "/data/archive",
    "table": "orders",
    "until": "1795000000",
    "into": "orders-restored",
    "mode": "events",
    "concurrency": 4,
}
HOUR = 3_600_000_000
P1 = 1_795_000_000 // 3600 * HOUR
P2 = P1 + HOUR


# -- checkpoint ------------------------------------------------------------------------------------


def saved(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = orjson.loads(path.read_bytes())
    return data


def test_a_checkpoint_remembers_what_each_lane_acknowledged(tmp_path: Path) -> None:
    # Given a run that acknowledged work in two lanes of one partition
    path = tmp_path / "run.checkpoint"
    checkpoint = Checkpoint.open(str(path), FINGERPRINT)
    checkpoint.begin(P1, "files-1")
    checkpoint.ack(P1, 0, 4)
    checkpoint.ack(P1, 1, 9)
    checkpoint.ack(P1, 0, 2)  # an older acknowledgement never moves a lane back

    # When the checkpoint is opened again by the same run
    again = Checkpoint.open(str(path), dict(FINGERPRINT))

    # Then it knows each lane's last acknowledged index, in that partition only
    assert (again.acknowledged(P1, 0), again.acknowledged(P1, 1), again.acknowledged(P1, 2)) == (
        4,
        9,
        -1,
    )
    assert again.acknowledged(P2, 0) == -1
    assert not again.is_done(P1) and not again.finished

    # When the partition is finished, then the run
    again.finish_partition(P1)
    again.finish()
    last = Checkpoint.open(str(path), FINGERPRINT)

    # Then that partition (and those before it) are done, the next is not, and lanes start over
    assert last.is_done(P1) and last.is_done(P1 - HOUR) and not last.is_done(P2)
    assert last.acknowledged(P1, 0) == -1 and last.finished


def test_a_checkpoint_is_replaced_atomically(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a checkpoint on disk after some acknowledgements
    path = tmp_path / "run.checkpoint"
    checkpoint = Checkpoint.open(str(path), FINGERPRINT)
    checkpoint.begin(P1, "files-1")
    for index in range(50):
        checkpoint.ack(P1, index % 3, index)
    before = path.read_bytes()
    assert saved(path)["lanes"] == {"0": 48, "1": 49, "2": 47}

    # When the next save fails before the new file is durable (the disk refuses the fsync)
    def refuse(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr("archiver.archive.store.os.fsync", refuse)
    with pytest.raises(CheckpointError, match=r"cannot write .*Input/output error"):
        checkpoint.ack(P1, 0, 50)

    # Then the previous checkpoint is intact and no temporary file is left behind
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["run.checkpoint"]


def test_no_path_keeps_the_checkpoint_in_memory(tmp_path: Path) -> None:
    # Given a run without --checkpoint; When it acknowledges work; Then nothing is written
    checkpoint = Checkpoint.open(None, FINGERPRINT)
    checkpoint.begin(P1, "files-1")
    checkpoint.ack(P1, 0, 3)
    checkpoint.finish()
    assert checkpoint.acknowledged(P1, 0) == 3
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "change", [{"until": "1795003600"}, {"mode": "state"}, {"concurrency": 8}, {"slice": "1/2"}]
)
def test_another_runs_checkpoint_is_refused(tmp_path: Path, change: dict[str, Any]) -> None:
    # Given a checkpoint written by one run
    path = tmp_path / "run.checkpoint"
    Checkpoint.open(str(path), FINGERPRINT).begin(P1, "files-1")

    # When a run with other arguments opens it
    with pytest.raises(CheckpointError) as error:
        Checkpoint.open(str(path), FINGERPRINT | change)

    # Then it is refused, naming the file and what differs
    message = str(error.value)
    assert str(path) in message and "another run" in message
    assert f"different {next(iter(change))}" in message


def test_a_partition_whose_files_changed_is_not_resumed(tmp_path: Path) -> None:
    # Given a checkpoint in the middle of a partition
    path = tmp_path / "run.checkpoint"
    checkpoint = Checkpoint.open(str(path), FINGERPRINT)
    checkpoint.begin(P1, "files-1")
    checkpoint.ack(P1, 0, 7)

    # When the rerun finds the same files, it resumes where it was
    same = Checkpoint.open(str(path), FINGERPRINT)
    same.begin(P1, "files-1")
    assert same.acknowledged(P1, 0) == 7

    # When it finds other files in that hour (a late file arrived), it refuses
    changed = Checkpoint.open(str(path), FINGERPRINT)
    with pytest.raises(CheckpointError, match="files for this hour changed"):
        changed.begin(P1, "files-2")

    # and a new partition starts with no lane acknowledged
    changed.begin(P2, "files-3")
    assert changed.acknowledged(P2, 0) == -1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{not json", "not JSON"),
        (orjson.dumps({"version": 99, "fingerprint": FINGERPRINT}), "newer version"),
        (orjson.dumps([1, 2]), "not a JSON object"),
        (orjson.dumps({"kind": "stream", "version": 1}), "a 'stream' checkpoint"),
        (orjson.dumps({"version": 1, "fingerprint": FINGERPRINT, "lanes": [1]}), "lanes"),
    ],
    ids=["not-json", "newer", "not-an-object", "the-pollers", "bad-lanes"],
)
def test_an_unusable_checkpoint_is_refused(tmp_path: Path, content: bytes, message: str) -> None:
    # Given a file that is not a checkpoint of this version; When opened; Then refused, named
    path = tmp_path / "run.checkpoint"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=message) as error:
        Checkpoint.open(str(path), FINGERPRINT)
    assert str(path) in str(error.value)


# -- lanes and slices ------------------------------------------------------------------------------

KEYS = [
    orjson.dumps(
        {"pk": {"S": f"order#{i:05d}"}, "sk": {"N": str(i % 7)}}, option=orjson.OPT_SORT_KEYS
    ).decode()
    for i in range(2_000)
]


def test_lane_of_is_stable_across_processes() -> None:
    # Given the lanes of many keys computed here
    here = [lane_of(key, 4) for key in KEYS[:200]]

    # When another interpreter (another hash seed) computes them
    code = (
        "import json, sys; from replayer.lanes import lane_of; "
        "print(json.dumps([lane_of(k, 4) for k in json.load(sys.stdin)]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        input=orjson.dumps(KEYS[:200]),
        cwd=ROOT,
        env=dict(os.environ, PYTHONHASHSEED="12345"),
        capture_output=True,
        check=True,
    )

    # Then they are the same: one item's changes go to the same lane on every run and machine
    assert orjson.loads(done.stdout) == here
    assert set(here) == {0, 1, 2, 3}


@pytest.mark.parametrize(("lanes", "slices"), [(1, 1), (4, 1), (4, 2), (3, 3), (8, 4)])
def test_lanes_and_slices_split_independently(lanes: int, slices: int) -> None:
    # Given many keys split into slices (machines), then lanes (threads)
    for index in range(slices):
        mine = [key for key in KEYS if in_slice(key, index, slices)]
        # Then every slice gets keys, every lane of a slice gets some, and lanes are in range
        used = {lane_of(key, lanes, slices) for key in mine}
        assert mine and used == set(range(lanes))
    # and each key is in exactly one slice, its lane a function of its key alone
    for key in KEYS[:100]:
        assert sum(in_slice(key, i, slices) for i in range(slices)) == 1
        assert lane_of(key, lanes, slices) == (key_hash(key) // slices) % lanes


@pytest.mark.parametrize(
    ("text", "expected"), [("1/1", (0, 1)), ("2/8", (1, 8)), ("8/8", (7, 8)), (" 3/4", (2, 4))]
)
def test_parse_slice(text: str, expected: tuple[int, int]) -> None:
    assert parse_slice(text) == expected


@pytest.mark.parametrize("text", ["0/2", "3/2", "1/0", "-1/2", "2", "1/2/3", "a/b", "", "1.5/2"])
def test_parse_slice_rejects(text: str) -> None:
    with pytest.raises(ValueError, match=r"K/N|between 1 and N") as error:
        parse_slice(text)
    assert repr(text) in str(error.value)


def test_run_lanes_stops_the_others_when_one_fails() -> None:
    # Given three lanes, the second of which fails, run one at a time
    ran: list[int] = []

    def work(lane: int, items: Sequence[str], stop: threading.Event) -> None:
        ran.append(lane)
        if lane == 1:
            raise RuntimeError("lane 1 failed")

    # When they run; Then the failure is raised and the third lane never starts
    with pytest.raises(RuntimeError, match="lane 1 failed"):
        run_lanes([["a"], ["b"], ["c"]], work, concurrency=1)
    assert ran == [0, 1]


def test_run_lanes_skips_empty_lanes_and_runs_the_rest_in_parallel() -> None:
    # Given four lanes, one empty; When they run two at a time; Then each non-empty lane runs once
    ran: list[tuple[int, list[int]]] = []
    lock = threading.Lock()

    def work(lane: int, items: Sequence[int], stop: threading.Event) -> None:
        with lock:
            ran.append((lane, list(items)))

    run_lanes([[1, 2], [], [3], [4, 5]], work, concurrency=2)
    assert sorted(ran) == [(0, [1, 2]), (2, [3]), (3, [4, 5])]


# -- rate limit ------------------------------------------------------------------------------------


class FakeClock:
    """Time that moves only when someone sleeps (or the test says so)."""

    def __init__(self) -> None:
        self.now = 1_000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_no_rate_never_waits() -> None:
    clock = FakeClock()
    limiter = RateLimiter(None, clock, clock.sleep)
    for _ in range(1_000):
        limiter.acquire(1_000)
    assert clock.sleeps == []


def test_a_steady_stream_goes_at_the_rate() -> None:
    # Given a limit of 100 records/s
    clock = FakeClock()
    limiter = RateLimiter(100, clock, clock.sleep)

    # When 20 batches of 10 records are acquired back to back
    for _ in range(20):
        limiter.acquire(10)

    # Then the first goes at once and each next one waits for the one before: 190 records' time
    assert clock.sleeps[0] == pytest.approx(0.1) and len(clock.sleeps) == 19
    assert sum(clock.sleeps) == pytest.approx(1.9)


@pytest.mark.parametrize("idle", [2.0, 3_600.0])
def test_an_idle_limiter_allows_at_most_one_seconds_burst(idle: float) -> None:
    # Given a limiter (50 units/s) that has been idle, however long
    clock = FakeClock()
    limiter = RateLimiter(50, clock, clock.sleep)
    limiter.acquire(50)
    clock.now += idle

    # When 150 units are acquired, 5 at a time
    start = clock.now
    for _ in range(30):
        limiter.acquire(5)

    # Then one second's worth (and the request in hand) went at once, the rest at the rate
    assert clock.now - start == pytest.approx((150 - 50 - 5) / 50)


def test_lanes_share_one_rate() -> None:
    # Given one limiter (10 units/s) used by several threads with a common fake clock
    clock = FakeClock()
    lock = threading.Lock()

    def sleep(seconds: float) -> None:
        with lock:
            clock.sleeps.append(seconds)

    limiter = RateLimiter(10, clock, sleep)

    # When 4 threads acquire 5 units each, at the same instant
    threads = [threading.Thread(target=limiter.acquire, args=(5,)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # Then their waits are staggered as if one caller had asked four times
    assert sorted(clock.sleeps) == pytest.approx([0.5, 1.0, 1.5])


# -- batches ---------------------------------------------------------------------------------------


def items(sizes: Sequence[int]) -> list[Item[Record]]:
    return [Item(i, Record(b"r" * size, str(i), f"e{i}/{i}")) for i, size in enumerate(sizes)]


def test_a_payload_of_exactly_max_bytes_is_allowed() -> None:
    # Given records of 10 bytes: three make {"Records":[r,r,r]} = 14 + 30 + 2 = 46 bytes
    records = items([10] * 7)
    assert len(payload_of(records[:3])) == 46

    # When batched with a 46-byte limit, then a 45-byte one
    exact = list(batches(records, 100, 46))
    under = list(batches(records, 100, 45))

    # Then the limit itself is allowed and one byte less is not
    assert [len(b) for b in exact] == [3, 3, 1]
    assert [len(b) for b in under] == [2, 2, 2, 1]


@given(
    st.lists(st.integers(1, 300), max_size=60),
    st.integers(1, 12),
    st.integers(_ENVELOPE + 1, 2_000),
)
@settings(max_examples=300, deadline=None)
def test_batches_respect_count_and_bytes_and_are_as_large_as_allowed(
    sizes: list[int], size: int, max_bytes: int
) -> None:
    # Given records of any sizes; When batched
    records = items(sizes)
    out = list(batches(records, size, max_bytes))

    # Then every record is in one batch, in order
    assert [item.index for batch in out for item in batch] == list(range(len(sizes)))
    for batch in out:
        # no batch exceeds the count, nor the bytes (a record too big alone goes alone, reported)
        assert 1 <= len(batch) <= size
        assert len(payload_of(batch)) <= max_bytes or len(batch) == 1
    # and no batch was cut early: the next record would have broken a limit
    for batch, following in itertools.pairwise(out):
        assert len(batch) == size or len(payload_of([*batch, following[0]])) > max_bytes


# -- partial batch responses -----------------------------------------------------------------------

IDENTIFIERS = ["100", "200", "300", "400"]


def failures(*identifiers: Any) -> bytes:
    return orjson.dumps({"batchItemFailures": [{"itemIdentifier": i} for i in identifiers]})


@pytest.mark.parametrize(
    ("body", "failed_from"),
    [
        (b"", None),  # an empty response
        (b"null", None),  # a null response
        (b'"done"', None),  # any other value
        (b"not json", None),
        (orjson.dumps({"batchItemFailures": []}), None),  # an empty list
        (orjson.dumps({"batchItemFailures": None}), None),  # a null list
        (orjson.dumps({"statusCode": 200}), None),
        (failures("300"), 2),  # resume from the failed record
        (failures("400", "200"), 1),  # several: from the lowest
        (failures("100"), 0),
        (failures(""), 0),  # an empty identifier fails the whole batch
        (failures(None), 0),  # a null identifier too
        (orjson.dumps({"batchItemFailures": [{"itemId": "200"}]}), 0),  # a bad key name too
        (failures("999"), 0),  # an identifier not in the batch: the whole batch
        (orjson.dumps({"batchItemFailures": "200"}), 0),  # not a list
    ],
)
def test_partial_failures_read_like_lambda(body: bytes, failed_from: int | None) -> None:
    # Given a consumer's response to a batch; When read; Then the retry starts where Lambda's would
    delivery = _partial_failures(body, IDENTIFIERS)
    assert delivery.failed_from == failed_from
    assert (delivery.reason == "") == (failed_from is None)


def test_a_whole_batch_failure_says_which_identifier_was_wrong() -> None:
    delivery = _partial_failures(failures("999"), IDENTIFIERS)
    assert delivery == Delivery(
        0, "batchItemFailures names '999', not in the batch: whole batch failed"
    )


# -- the JSON Lines sink and the read-ahead --------------------------------------------------------


class ClosingPipe(io.BytesIO):
    """A pipe whose reader goes away after ``limit`` bytes (like ``replayer events | head``)."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def write(self, data: Any) -> int:
        if self.tell() + len(data) > self.limit:
            raise BrokenPipeError("the reader went away")
        return super().write(data)


def pieces(*texts: list[str]) -> list[pa.ChunkedArray]:
    # sliced arrays too: a piece's texts need not start at its buffers' start
    return [pa.chunked_array([pa.array(["x", *t], pa.string()).slice(1)]) for t in texts]


def test_line_writer_writes_every_piece_in_order() -> None:
    out = io.BytesIO()
    with LineWriter(out) as writer:
        for piece in pieces(["a\n", "bb\n"], [], ["é\n"] * 3, ["{}\n"]):
            writer.put(piece)
    assert out.getvalue() == "a\nbb\né\né\né\n{}\n".encode()


def test_line_writer_raises_what_writing_raised_and_never_blocks() -> None:
    # Given an output that fails after a few bytes
    writer = LineWriter(ClosingPipe(limit=4), depth=1)

    # When many more pieces come than the writer holds; Then the error reaches the caller
    with pytest.raises(BrokenPipeError), writer:
        for piece in pieces(*[["abc\n"]] * 1_000):
            writer.put(piece)
    assert isinstance(writer.error, BrokenPipeError)


def test_read_ahead_keeps_order_and_raises_each_error_in_its_turn() -> None:
    made: list[int] = []

    def items() -> Iterator[int]:
        for i in range(5):
            made.append(i)
            if i == 3:
                raise ValueError("item 3 is unreadable")
            yield i

    seen = []
    with pytest.raises(ValueError, match="item 3"):
        for item in _read_ahead(items()):
            seen.append(item)
    assert seen == [0, 1, 2]
    # and a caller that stops early leaves at most one item made ahead
    made.clear()
    for item in _read_ahead(items()):
        if item == 1:
            break
    assert made == [0, 1, 2]


# --- server-side encryption of what the replayer writes ---------------------------------


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, {"ServerSideEncryption": "AES256"}),
        (
            {"ARCHIVER_SSE": "aws:kms", "ARCHIVER_SSE_KMS_KEY_ID": "alias/archive"},
            {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": "alias/archive"},
        ),
        ({"ARCHIVER_SSE": "aws:kms", "REPLAYER_SSE": "none"}, {}),
    ],
    ids=["default", "the-archivers-variables", "the-replayers-own-wins"],
)
def test_dead_letters_are_encrypted_as_the_archiver_encrypts_the_archive(
    env: dict[str, str], expected: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from archiver.settings import ArchiverSettings
    from replayer.settings import ReplayerSettings

    for name in ("ARCHIVER_SSE", "ARCHIVER_SSE_KMS_KEY_ID", "REPLAYER_SSE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert ReplayerSettings().sse_arguments == expected
    if "REPLAYER_SSE" not in env:  # one configuration: the same arguments as the archiver's
        assert ArchiverSettings(archive_uri="s3://archive").sse_arguments == expected


def test_a_checkpoint_can_live_on_s3(s3_archive: str) -> None:
    # Given a run whose --checkpoint is an object in a bucket
    location = s3_archive.replace("/archive", "/runs/restore.checkpoint")
    checkpoint = Checkpoint.open(location, FINGERPRINT)
    checkpoint.begin(P1, "files-1")
    checkpoint.ack(P1, 0, 11)
    # When the rerun opens it, Then it goes on where the first run was
    again = Checkpoint.open(location, FINGERPRINT)
    assert again.acknowledged(P1, 0) == 11
    # and another run's arguments are refused as with a local file
    with pytest.raises(CheckpointError, match="another run"):
        Checkpoint.open(location, FINGERPRINT | {"mode": "state"})
