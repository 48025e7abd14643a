"""Re-driving a Lambda consumer: archived stream records in, synchronous invocations out.

Records go to the function as ``{"Records": [...]}``, exactly as the stream
delivered them, in batches of at most ``batch_size`` records and
``max_payload_bytes``. Per lane (key hash), batches are sent in order and
acknowledged in the checkpoint once the function returned without error.

A function error is retried with backoff; then ``stop`` halts the run (a
rerun resumes after the last delivered batch), ``skip`` bisects the batch to
find the failing record(s), sends the rest and reports them, and
``dead-letter`` does the same and keeps the failing records in the archive's
``_errors/redrive/`` area. A consumer that answers with ``batchItemFailures``
(ReportBatchItemFailures) gets the records from the first failed one again,
as Lambda would.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

import orjson
import pyarrow as pa

from archiver.archive.aws import Failure, backoff, classify, describe
from archiver.archive.layout import Partition, redrive_dead_letter_key
from archiver.archive.rebuild import item_identifiers, record_texts
from archiver.archive.schema import Col
from archiver.archive.store import ArchiveStore
from replayer.checkpoint import Checkpoint
from replayer.lanes import RateLimiter, StopRun
from replayer.progress import Progress
from replayer.runner import Item, Selection, walk

__all__ = [
    "Delivery",
    "LambdaInvoker",
    "RedriveError",
    "RedriveOptions",
    "RedriveSummary",
    "redrive",
]

log = logging.getLogger(__name__)

LAMBDA_PAYLOAD_LIMIT = 6_291_456  # synchronous invocation request payload, bytes
BACKOFF_MAX = 60.0  # seconds between tries of a failing batch, at most, before jitter
_ENVELOPE = len(b'{"Records":[]}')


class RedriveError(Exception):
    """An expected failure that ends the run with a message (unknown function, no permission)."""


class Record(NamedTuple):
    """One archived stream record, encoded once.

    A tuple rather than a frozen dataclass: one is made per record re-driven,
    and a tuple is made in half the time.
    """

    data: bytes
    identifier: str | None
    ref: str


@dataclass(frozen=True, slots=True)
class Delivery:
    """What one invocation said: ``failed_from`` is None on success, else the first failed position."""

    failed_from: int | None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class RedriveOptions:
    function: str
    batch_size: int = 100
    max_payload_bytes: int = LAMBDA_PAYLOAD_LIMIT
    rate: float | None = None
    concurrency: int = 1
    on_error: Literal["stop", "skip", "dead-letter"] = "stop"
    retries: int = 3
    backoff: float = 0.5
    dry_run: bool = False


@dataclass
class RedriveSummary:
    batches: int = 0
    invocations: int = 0
    records: int = 0
    delivered: int = 0
    retries: int = 0
    failed: list[dict[str, str]] = field(default_factory=list)
    dead_lettered: int = 0
    stopped: str | None = None
    elapsed: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def ok(self) -> bool:
        return not self.failed and self.stopped is None

    def as_dict(self) -> dict[str, Any]:
        return {
            "batches": self.batches,
            "invocations": self.invocations,
            "records": self.records,
            "delivered": self.delivered,
            "retries": self.retries,
            "failed": self.failed,
            "dead_lettered": self.dead_lettered,
            "stopped": self.stopped,
            "elapsed_s": round(self.elapsed, 3),
            "ok": self.ok,
        }


class LambdaInvoker:
    """Invokes a function synchronously (RequestResponse) through boto3."""

    def __init__(self, function: str, client: Any = None) -> None:
        self.function = function
        if client is None:
            from botocore.config import Config

            from archiver.archive.aws import client as aws_client

            client = aws_client(
                "lambda", config=Config(retries={"mode": "standard"}, read_timeout=900)
            )
        self.client = client

    def __call__(self, payload: bytes, identifiers: Sequence[str | None]) -> Delivery:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            response = self.client.invoke(
                FunctionName=self.function, InvocationType="RequestResponse", Payload=payload
            )
        except (ClientError, BotoCoreError) as err:
            kind = classify(err)
            # No function, or one this caller may never invoke (credentials, permissions, a KMS
            # key the function cannot use): no batch can be delivered, the run ends.
            if kind is Failure.DENIED or kind is Failure.NOT_FOUND:
                raise RedriveError(f"cannot invoke {self.function}: {describe(err)}") from err
            # Throttled, unavailable, or this batch refused (too large, not JSON): the batch
            # failed, to be tried again and then bisected like a function error.
            return Delivery(0, f"invoke failed: {describe(err)}")
        body = response["Payload"].read()
        if response.get("FunctionError"):
            return Delivery(
                0, f"function error ({response['FunctionError']}): {_error_message(body)}"
            )
        return _partial_failures(body, identifiers)


def _error_message(body: bytes) -> str:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body[:200].decode(errors="replace")
    if isinstance(data, dict):
        return f"{data.get('errorType', 'Error')}: {data.get('errorMessage', '')}"[:300]
    return str(data)[:300]


def _partial_failures(body: bytes, identifiers: Sequence[str | None]) -> Delivery:
    """Read a ReportBatchItemFailures response the way Lambda does."""
    try:
        data = orjson.loads(body) if body.strip() else None
    except orjson.JSONDecodeError:
        return Delivery(None)  # any other response means success
    if not isinstance(data, dict) or not data.get("batchItemFailures"):
        return Delivery(None)
    failures = data["batchItemFailures"]
    positions = {
        identifier: i for i, identifier in enumerate(identifiers) if identifier is not None
    }
    first = len(identifiers)
    for failure in failures if isinstance(failures, list) else [None]:
        identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if identifier not in positions:
            return Delivery(
                0, f"batchItemFailures names {identifier!r}, not in the batch: whole batch failed"
            )
        first = min(first, positions[identifier])
    return Delivery(first, "batchItemFailures")


def batches(
    items: Sequence[Item[Record]], size: int, max_bytes: int
) -> Iterator[list[Item[Record]]]:
    """Consecutive batches of at most ``size`` records and ``max_bytes`` of payload."""
    batch: list[Item[Record]] = []
    total = _ENVELOPE
    for item in items:
        length = len(item.value.data) + (1 if batch else 0)
        if batch and (len(batch) >= size or total + length > max_bytes):
            yield batch
            batch, total, length = [], _ENVELOPE, len(item.value.data)
        batch.append(item)
        total += length
    if batch:
        yield batch


def payload_of(records: Sequence[Item[Record]]) -> bytes:
    return b'{"Records":[' + b",".join(item.value.data for item in records) + b"]}"


def records_of(table: pa.Table) -> list[Record]:
    """Each row's record as the JSON text that arrived, with its itemIdentifier and reference.

    The text is assembled from the stored text (never parsed); the event id
    and the sequence number come from the columns (a sequence number with
    leading zeros from the envelope: see ``item_identifiers``); the reference
    names the record in reports as ``eventID/sequence``.
    """
    if table.num_rows == 0:
        return []
    texts = record_texts(table).cast(pa.binary()).to_pylist()
    identifiers = item_identifiers(table)
    event_ids = table.column(Col.EVENT_ID).to_pylist()
    return [
        Record(data, identifier, f"{event_id}/{identifier}")
        for data, identifier, event_id in zip(texts, identifiers, event_ids, strict=True)
    ]


class _Driver:
    """The per-run state shared by the lanes."""

    def __init__(
        self,
        selection: Selection,
        options: RedriveOptions,
        checkpoint: Checkpoint,
        invoke: Callable[[bytes, Sequence[str | None]], Delivery],
        dead_letters: ArchiveStore | None,
        progress: Progress,
        sleep: Callable[[float], None],
    ) -> None:
        self.selection = selection
        self.options = options
        self.checkpoint = checkpoint
        self.invoke = invoke
        self.dead_letters = dead_letters
        self.progress = progress
        self.sleep = sleep
        self.limiter = RateLimiter(options.rate)
        self.summary = RedriveSummary()

    def lane(
        self, partition: Partition, lane: int, items: Sequence[Item[Record]], stop: threading.Event
    ) -> None:
        opts = self.options
        for batch in batches(items, opts.batch_size, opts.max_payload_bytes):
            if stop.is_set():
                return
            with self.summary._lock:
                self.summary.batches += 1
                self.summary.records += len(batch)
            # A record larger than the payload limit can never be sent: it fails, by name
            # and size, also in a dry run.
            too_big = [i for i in batch if len(i.value.data) + _ENVELOPE > opts.max_payload_bytes]
            if opts.dry_run:
                self.progress.add(len(batch))
                with self.summary._lock:
                    self.summary.failed += [self._too_big(item) for item in too_big]
                continue
            for item in too_big:
                self._failed(partition, lane, [item], self._too_big(item)["reason"])
            self._deliver(partition, lane, [i for i in batch if i not in too_big])
            self.checkpoint.ack(partition.hour_start_us, lane, batch[-1].index)

    def _too_big(self, item: Item[Record]) -> dict[str, str]:
        size = len(item.value.data) + _ENVELOPE
        limit = self.options.max_payload_bytes
        reason = f"the record alone is a payload of {size} bytes, over the limit of {limit} bytes"
        return {"record": item.value.ref, "reason": reason}

    def _send(self, records: list[Item[Record]]) -> tuple[int, str | None]:
        """Invoke with retries. Returns how many leading records were delivered, and why it stopped."""
        done = 0
        attempt = 0
        while True:
            pending = records[done:]
            self.limiter.acquire(len(pending))
            outcome = self.invoke(payload_of(pending), [r.value.identifier for r in pending])
            delivered = len(pending) if outcome.failed_from is None else outcome.failed_from
            done += delivered
            with self.summary._lock:
                self.summary.invocations += 1
                self.summary.delivered += delivered
            self.progress.add(delivered)
            if outcome.failed_from is None:
                return done, None
            attempt += 1
            if attempt > self.options.retries:
                return done, outcome.reason
            with self.summary._lock:
                self.summary.retries += 1
            log.debug("retrying %d records after: %s", len(records) - done, outcome.reason)
            self.sleep(backoff(attempt, self.options.backoff, BACKOFF_MAX))

    def _deliver(self, partition: Partition, lane: int, records: list[Item[Record]]) -> None:
        if not records:
            return
        done, reason = self._send(records)
        if reason is None:
            return
        if self.options.on_error == "stop":
            if done:
                self.checkpoint.ack(partition.hour_start_us, lane, records[done - 1].index)
            self.summary.stopped = (
                f"{len(records) - done} records not delivered after "
                f"{self.options.retries} retries: {reason}"
            )
            raise StopRun(self.summary.stopped)
        self._bisect(partition, lane, records[done:], reason)

    def _bisect(
        self, partition: Partition, lane: int, records: list[Item[Record]], reason: str
    ) -> None:
        """Split until the failing records are isolated; deliver all the others, in order."""
        if len(records) == 1:
            self._failed(partition, lane, records, reason)
            return
        middle = len(records) // 2
        for half in (records[:middle], records[middle:]):
            done, why = self._send(half)
            if why is not None:
                self._bisect(partition, lane, half[done:], why)

    def _failed(
        self, partition: Partition, lane: int, records: list[Item[Record]], reason: str
    ) -> None:
        with self.summary._lock:
            for item in records:
                self.summary.failed.append({"record": item.value.ref, "reason": reason})
        if self.options.on_error == "dead-letter" and self.dead_letters is not None:
            lines = [
                orjson.dumps(
                    {
                        "reason": reason,
                        "function": self.options.function,
                        "record": orjson.Fragment(item.value.data),
                    }
                )
                for item in records
            ]
            data = b"\n".join(lines) + b"\n"
            key = redrive_dead_letter_key(
                self.selection.table, hashlib.blake2b(data, digest_size=8).hexdigest()
            )
            self.dead_letters.put(key, data)
            with self.summary._lock:
                self.summary.dead_lettered += len(records)
        elif self.options.on_error == "stop":
            raise StopRun(reason)


def redrive(
    selection: Selection,
    options: RedriveOptions,
    checkpoint: Checkpoint,
    invoke: Callable[[bytes, Sequence[str | None]], Delivery],
    *,
    dead_letters: ArchiveStore | None = None,
    progress: Progress | None = None,
    slices: int = 1,
    sleep: Callable[[float], None] = time.sleep,
) -> RedriveSummary:
    """Send the selection's records to the consumer; return what happened.

    Raises nothing for consumer failures (they are in the summary); RedriveError
    for failures that end the run (unknown function, no credentials).
    """
    progress = progress or Progress("redrive", "records", enabled=False)
    driver = _Driver(selection, options, checkpoint, invoke, dead_letters, progress, sleep)
    started = time.monotonic()
    try:
        walk(
            selection, checkpoint, records_of, driver.lane, lanes=options.concurrency, slices=slices
        )
        if not options.dry_run:
            checkpoint.finish()
    except StopRun as err:
        driver.summary.stopped = driver.summary.stopped or str(err)
    finally:
        driver.summary.elapsed = time.monotonic() - started
        progress.close()
    return driver.summary
