"""The poller service: a DynamoDB stream in, archive files and shard checkpoints out.

Reads every shard of one stream with GetRecords, the way the Kinesis Client
Library does for DynamoDB: shards are discovered continuously, a child shard
is read only once its parent is finished, closed shards are drained and
retired. Each page's records are decoded as they arrive, from the JSON text
GetRecords returned, into the archive's columns (images stay that text), and
buffered; the buffer is flushed (batch per partition, Parquet, store.put) when
it reaches ``flush_bytes`` (of record text) or ``flush_records`` or its oldest
record is ``flush_interval`` seconds old.
Only after a flush is durable are the shards' positions checkpointed, so a
crash re-reads at most the unflushed tail, into files the reader dedupes.

A flush the store refuses for good (access denied, no such bucket, a read-only
disk) stops the poller with ``ArchiveUnwritable``, nothing of the buffer
checkpointed; one that may pass (an outage, throttling, a full disk) is retried
with a jittered, capped backoff, and no new pages are read while the buffer is
at its bound, so memory stays bounded however long the outage lasts.

Iterator expiry re-opens after the last read position; throttling backs off;
data trimmed away (older than 24 hours) is reported as a gap, loudly, with the
shard and the range lost, and recorded in the checkpoint for ``verify``.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from archiver.archive.aws import doubled, jittered
from archiver.archive.checkpoints import (
    CHECKPOINT_PREFIX,
    CheckpointFormatError,
    StreamCheckpoint,
    checkpoint_key,
)
from archiver.archive.errors import StoreError
from archiver.archive.store import ArchiveStore
from archiver.spool import Spool
from archiver.streams import (
    Page,
    Shard,
    StreamBusy,
    StreamEvent,
    StreamSource,
    first_sequence,
    last_position,
    ready_shards,
)
from archiver.write import ArchiveOptions, ArchiveReport, EncodedFile, store_files

__all__ = [
    "CHECKPOINT_PREFIX",
    "ArchiveUnwritable",
    "FlushPolicy",
    "Poller",
    "ShardCheckpoints",
    "checkpoint_key",
]

log = logging.getLogger(__name__)

FLUSH_BACKOFF_MAX = 60.0  # seconds between tries of a failing flush, at most
SHARD_BACKOFF_MAX = 30.0  # seconds a throttled or busy shard is left alone, at most
# A shard's pause doubles without jitter (archiver.archive.aws.doubled): one poller reads each
# stream, so no crowd retries in step with it; a failing flush's pause is jittered (S3 outages
# hit many pollers at once).


class ArchiveUnwritable(Exception):
    """The store refused a flush for good: the poller stops, nothing of its buffer checkpointed."""

    def __init__(self, error: StoreError, records: int) -> None:
        self.error = error
        self.records = records
        super().__init__(
            f"cannot archive: {error}; stopped with {records} records read but not archived "
            "(not checkpointed: a restart reads them again)"
        )


@dataclass
class ShardCheckpoints:
    """The stream's checkpoint (see :mod:`archiver.archive.checkpoints`) and where it is kept."""

    store: ArchiveStore
    key: str
    stream_arn: str
    positions: dict[str, str] = field(default_factory=dict)
    finished: set[str] = field(default_factory=set)
    gaps: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def load(cls, store: ArchiveStore, key: str, stream_arn: str) -> ShardCheckpoints:
        """The checkpoint at ``key``, or a new one.

        Raises
        ------
        ValueError
            (CheckpointFormatError) When it is not a stream checkpoint, or another stream's.
        """
        found = StreamCheckpoint.load(store, key)
        if found is None:
            return cls(store, key, stream_arn)
        if found.stream_arn != stream_arn:
            raise CheckpointFormatError(
                f"checkpoint {key} belongs to stream {found.stream_arn}, not {stream_arn}"
            )
        return cls(store, key, stream_arn, found.positions, found.finished, found.gaps)

    def save(self) -> None:
        checkpoint = StreamCheckpoint(self.stream_arn, self.positions, self.finished, self.gaps)
        checkpoint.save(self.store, self.key)


@dataclass(frozen=True, slots=True)
class FlushPolicy:
    """Firehose-like buffering hints: whichever comes first."""

    max_bytes: int = 64 * 1024 * 1024
    max_records: int = 100_000
    max_age: float = 300.0


@dataclass
class _ShardState:
    shard: Shard
    iterator: str | None = None
    read_through: str | None = None  # last sequence number read into the buffer
    open_gap: dict[str, Any] | None = (
        None  # a gap whose end (where reading resumed) is not known yet
    )
    idle_until: float = 0.0
    backoff: float = 0.0


class Poller:
    """Archives one stream until stopped (SIGTERM/SIGINT or ``stop()``)."""

    def __init__(
        self,
        source: StreamSource,
        store: ArchiveStore,
        checkpoints: ShardCheckpoints,
        options: ArchiveOptions = ArchiveOptions(),
        policy: FlushPolicy = FlushPolicy(),
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        sleep: Callable[[float], None] | None = None,
        poll_interval: float = 1.0,
        discover_interval: float = 60.0,
        status_interval: float = 60.0,
        on_flush: Callable[[ArchiveReport, float], None] | None = None,
    ) -> None:
        self.source = source
        self.store = store
        self.checkpoints = checkpoints
        self.options = options
        self.policy = policy
        self.clock = clock
        self.wall = wall
        self._stop = threading.Event()
        self.sleep = sleep or (lambda seconds: self._stop.wait(seconds))
        self.poll_interval = poll_interval
        self.discover_interval = discover_interval
        self.status_interval = status_interval
        self.on_flush = on_flush
        self.shards: dict[str, _ShardState] = {}
        # Each page GetRecords returned is decoded at once into the archive's columns, kept
        # compressed: a record costs about a third of its text (see archiver.spool).
        self.buffer = Spool(options)
        # Files a failed flush encoded and could not store: kept, compressed, until they are.
        self.unwritten: list[EncodedFile] = []
        self.unwritten_oldest_us: int | None = None  # the oldest change time among them
        self.buffered = 0  # records read and not yet durably written, buffered or unwritten
        self.buffer_bytes = 0  # the text of those records
        self.buffer_since: float | None = None
        self.flush_backoff = 0.0
        self.flush_retry_at = float("-inf")  # a failed flush is tried again from then on
        self._halted = False
        self.pending_finished: set[str] = set()
        self.archived = 0
        self.newest_change: dict[str, float] = {}
        self._last_discover = float("-inf")
        self._last_status = clock()
        self._status_count = 0

    # -- control ------------------------------------------------------------------------

    def stop(self) -> None:
        self._stop.set()

    def install_signal_handlers(self) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: self.stop())

    def run(self) -> None:
        """Poll until stopped or the stream ends; always flush and checkpoint on the way out.

        Raises
        ------
        StreamGone
            The stream (or a shard) no longer exists; raised after the final flush.
        StreamDenied
            The stream refused a call for good (credentials, permissions); raised after the
            final flush.
        """
        try:
            while not self._stop.is_set():
                if self.buffer_full():
                    # The last flush failed with the buffer at its bound: read nothing more
                    # until a flush goes through.
                    if self.clock() >= self.flush_retry_at:
                        self.flush()
                    if self.buffer_full():
                        self.sleep(max(self.flush_retry_at - self.clock(), 0.0))
                        continue
                if self.clock() - self._last_discover >= self.discover_interval:
                    try:
                        if not self.discover():
                            log.info("stream finished: every shard is closed and archived")
                            break
                    except StreamBusy as err:
                        log.warning("cannot list shards yet, retrying: %s", err)
                        self._last_discover = self.clock() - self.discover_interval + 5.0
                read_any = self.poll_once()
                if self.should_flush():
                    self.flush()
                self.status()
                if not read_any and not self._stop.is_set():
                    self.sleep(self.poll_interval)
        finally:
            if not self._halted:
                self.flush()

    # -- shards --------------------------------------------------------------------------

    def discover(self) -> bool:
        """Refresh the shard list; False when nothing is left to read, ever."""
        self._last_discover = self.clock()
        status, shards = self.source.describe()
        done = self.checkpoints.finished | self.pending_finished
        for shard in ready_shards(shards, done):
            if shard.shard_id not in self.shards:
                self.shards[shard.shard_id] = _ShardState(shard)
                log.info(
                    "reading shard",
                    extra={
                        "shard": shard.shard_id,
                        "parent": shard.parent_id,
                        "closed": shard.closed,
                    },
                )
        for state in self.shards.values():  # a shard may have closed since we saw it
            for shard in shards:
                if shard.shard_id == state.shard.shard_id:
                    state.shard = shard
        listed = {s.shard_id for s in shards}
        for shard_id, position in list(self.checkpoints.positions.items()):
            if shard_id not in listed and shard_id not in done and shard_id not in self.shards:
                # Aged out of the stream before we finished it: whatever followed is gone.
                orphan = _ShardState(Shard(shard_id, None, None, None))
                self._gap(
                    orphan, position, "the shard aged out of the stream before it was finished"
                )
                orphan.open_gap = None
                self.pending_finished.add(shard_id)
        unfinished = [s for s in shards if s.shard_id not in done]
        return not (status == "DISABLED" and not unfinished and not self.shards)

    def _open(self, state: _ShardState) -> None:
        shard_id = state.shard.shard_id
        after = state.read_through or self.checkpoints.positions.get(shard_id)
        iterator = self.source.iterator(shard_id, after)
        if iterator is None and after is not None:
            self._gap(state, after, "the position after the last archived record was trimmed")
            iterator = self.source.iterator(shard_id, None)
        state.iterator = iterator

    def _gap(self, state: _ShardState, after: str | None, reason: str) -> None:
        gap: dict[str, Any] = {
            "shard": state.shard.shard_id,
            "after_sequence": after,
            "reason": reason,
            "detected_at": round(self.wall(), 3),
            "resumed_at_sequence": None,
        }
        self.checkpoints.gaps.append(gap)
        state.open_gap = gap  # the first record read after it says where the loss ends
        log.error(
            "DATA LOST: records of shard %s after sequence %s are older than the stream's "
            "retention and cannot be archived (%s)",
            state.shard.shard_id,
            after,
            reason,
            extra=gap,
        )

    def poll_once(self) -> bool:
        """One GetRecords call on every readable shard; True if any records arrived."""
        now = self.clock()
        got = False
        for shard_id, state in list(self.shards.items()):
            if self._stop.is_set():
                break
            if state.idle_until > now:
                continue
            if state.iterator is None:
                try:
                    self._open(state)
                except StreamBusy as err:
                    state.backoff = doubled(state.backoff, 0.5, SHARD_BACKOFF_MAX)
                    state.idle_until = now + state.backoff
                    log.debug("cannot open %s yet: %s", shard_id, err)
                    continue
                if state.iterator is None:
                    continue
            page = self.source.read(state.iterator)
            if page.event is not None:
                self._handle(state, page)
                continue
            state.backoff = 0.0
            if page.records:
                got = True
                if state.open_gap is not None:
                    state.open_gap["resumed_at_sequence"] = first_sequence(page.records)
                    state.open_gap = None
                self._buffer(shard_id, page.records)
                # The page's last record that has a position (a bad one is dead-lettered).
                sequence, change = last_position(page.records)
                if sequence is not None:
                    state.read_through = sequence
                if change is not None:
                    self.newest_change[shard_id] = max(
                        self.newest_change.get(shard_id, 0.0), change
                    )
            state.iterator = page.next_iterator
            if page.next_iterator is None:
                del self.shards[shard_id]
                self.pending_finished.add(shard_id)
                log.info("shard drained", extra={"shard": shard_id})
                self._last_discover = float("-inf")  # its children may be readable now
        return got

    def _handle(self, state: _ShardState, page: Page) -> None:
        shard_id = state.shard.shard_id
        if page.event is StreamEvent.EXPIRED:
            log.info("iterator expired, reopening", extra={"shard": shard_id})
            state.iterator = None
        elif page.event is StreamEvent.TRIMMED:
            self._gap(
                state, state.read_through or self.checkpoints.positions.get(shard_id), page.detail
            )
            state.iterator = self.source.iterator(shard_id, None)
        else:
            state.backoff = doubled(state.backoff, 0.5, SHARD_BACKOFF_MAX)
            state.idle_until = self.clock() + state.backoff
            log.debug("backing off %.1fs on %s: %s", state.backoff, shard_id, page.detail)

    # -- buffering -----------------------------------------------------------------------

    def _buffer(self, shard_id: str, records: list[bytes]) -> None:
        if self.buffer_since is None:
            self.buffer_since = self.clock()
        self.buffer.add(records, [shard_id] * len(records), stream_arn=self.source.stream_arn)
        self.buffered += len(records)
        self.buffer_bytes += sum(map(len, records))

    def buffer_full(self) -> bool:
        return (
            self.buffered >= self.policy.max_records or self.buffer_bytes >= self.policy.max_bytes
        )

    def should_flush(self) -> bool:
        if self.clock() < self.flush_retry_at:
            return False
        if not self.buffered:
            return bool(self.pending_finished)
        return self.buffer_full() or (
            self.buffer_since is not None
            and self.clock() - self.buffer_since >= self.policy.max_age
        )

    def flush(self) -> None:
        """Write the buffer, then checkpoint what it covered. What failed is kept to try again.

        The buffer is written a row group at a time, each page let go once its rows are
        written, so a flush never holds the records twice over. A file the store does not take
        is kept as it was encoded, a quarter of its records' size, and the next flush stores
        it before the checkpoint moves; the files that went through are not written again.

        Raises
        ------
        ArchiveUnwritable
            The store refused the write for good (see the module's docstring).
        """
        positions = {sid: s.read_through for sid, s in self.shards.items() if s.read_through}
        finished = set(self.pending_finished)
        count = self.buffered
        if count:
            started = self.clock()
            report = ArchiveReport(received=count)
            times = (self.unwritten_oldest_us, self.buffer.oldest_change_us)
            oldest = min((t for t in times if t is not None), default=None)
            report.oldest_change_us = self.unwritten_oldest_us = oldest
            try:
                unwritten = store_files(self.unwritten, self.store, report)
                if self.buffer.count:
                    unwritten += store_files(self.buffer.drain(), self.store, report)
            except BaseException:
                # Records let go for a file that was never made are gone from memory: nothing
                # more may be checkpointed (a restart reads them again).
                self._halted = True
                raise
            self.unwritten = unwritten
            if unwritten:
                self._failed(report, count)
                return
            self.flush_backoff, self.flush_retry_at = 0.0, float("-inf")
            elapsed = self.clock() - started
            self.archived += count
            log.info(
                "flushed",
                extra={
                    "records": count,
                    "buffered_bytes": self.buffer_bytes,
                    "files": len(report.files),
                    "bytes": report.bytes_written,
                    "dead_lettered": report.dead_lettered,
                    "seconds": round(elapsed, 3),
                },
            )
            if self.on_flush is not None:
                self.on_flush(report, elapsed)
        if not count and not finished:
            return
        self.checkpoints.positions.update(positions)
        self.checkpoints.finished |= finished
        for shard_id in finished:
            self.checkpoints.positions.pop(shard_id, None)
        try:
            self.checkpoints.save()
        except StoreError as err:
            log.error(
                "checkpoint write failed (the data is archived; a restart re-reads it): %s", err
            )
        self.pending_finished -= finished
        self.buffered, self.buffer_bytes, self.buffer_since = 0, 0, None
        self.unwritten_oldest_us = None

    def _failed(self, report: ArchiveReport, count: int) -> None:
        terminal = next((err for err in report.failures if not err.transient), None)
        if terminal is not None:
            self._halted = True
            raise ArchiveUnwritable(terminal, count)
        # Jittered and capped, so that many pollers do not retry an S3 outage in step.
        self.flush_backoff = doubled(self.flush_backoff, 1.0, FLUSH_BACKOFF_MAX)
        delay = jittered(self.flush_backoff)
        self.flush_retry_at = self.clock() + delay
        log.error(
            "flush failed; keeping %d records buffered, trying again in %.1f s%s: %s",
            count,
            delay,
            " (reading paused: the buffer is full)" if self.buffer_full() else "",
            "; ".join(report.errors[:3]),
        )

    def status(self) -> None:
        now = self.clock()
        if now - self._last_status < self.status_interval:
            return
        rate = (self.archived - self._status_count) / max(now - self._last_status, 1e-9)
        lag = {sid: round(self.wall() - t, 1) for sid, t in self.newest_change.items()}
        log.info(
            "status",
            extra={
                "records_per_s": round(rate, 1),
                "shards": len(self.shards),
                "buffered": self.buffered,
                "lag_s": lag,
            },
        )
        self._last_status = now
        self._status_count = self.archived
