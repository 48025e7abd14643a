"""Archiving one batch of raw stream records: decode -> batch -> encode -> store.put.

``archive_records`` never raises for bad records or a failing store: it
returns an :class:`ArchiveReport` saying which positions of the input were
durably stored (as data or as dead letters) and which were not, so the edge
(Lambda handler, CLI) can report exactly those.
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from archiver.archive.codec import batch_name, encode_records
from archiver.archive.errors import RecordError, StoreError
from archiver.archive.layout import dead_letter_key
from archiver.archive.record import ChangeRecord
from archiver.archive.schema import PromotedColumn
from archiver.archive.store import ArchiveStore
from archiver.batch import make_batches
from archiver.decode import as_text, decode_record, table_of
from archiver.jsontext import JsonTextError, decode_members

__all__ = [
    "ArchiveOptions",
    "ArchiveReport",
    "Decoded",
    "EncodedFile",
    "archive_records",
    "dead_letter_files",
    "encode_decoded",
    "oldest_change_us",
    "paused_gc",
    "store_files",
    "write_decoded",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ArchiveOptions:
    promoted: tuple[PromotedColumn, ...] = ()
    plain_images: bool = False
    default_table: str | None = None
    full_check: bool = False  # check every attribute value of every image (see decode)


@dataclass(slots=True)
class ArchiveReport:
    """What happened to one batch of raw records."""

    received: int = 0
    archived: int = 0  # stored as data (duplicates within the batch counted once per position)
    dead_lettered: int = 0
    files: list[str] = field(default_factory=list)
    bytes_written: int = 0
    failed_positions: set[int] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)
    failures: list[StoreError] = field(default_factory=list)  # what each error was
    oldest_change_us: int | None = None  # earliest change time among the decoded records

    @property
    def ok(self) -> bool:
        return not self.failed_positions


@contextmanager
def paused_gc() -> Iterator[None]:
    """No cyclic collection inside the block (and as before after it).

    Decoding and writing a batch make many small objects and no cycles: the
    cyclic GC would only walk them again and again (37-40% of the poller's
    time, measured before records became untracked structs).
    """
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


@dataclass(slots=True)
class Decoded:
    """Records decoded and ready to batch, each with its position; the others with their reason.

    Positions count from 0 over everything added, dead records included. The
    records hold the archive's columns (images as JSON text), not the text
    they were decoded from: a buffer of them costs about the records' size.
    """

    positions: list[int] = field(default_factory=list)
    records: list[ChangeRecord] = field(default_factory=list)
    dead: list[tuple[int, Any, RecordError]] = field(default_factory=list)
    count: int = 0

    def add(
        self,
        raw_records: Sequence[Any],
        options: ArchiveOptions,
        shard_ids: Sequence[str | None] | None = None,
        *,
        stream_arn: str | None = None,
        typed: Sequence[Any] | None = None,
    ) -> None:
        """Decode ``raw_records`` (JSON text, or dicts) after the ones already added.

        ``typed``, when given, is :func:`archiver.decode.typed_records` of the event the
        records were cut from, one per record.
        """
        positions, records, dead = self.positions, self.records, self.dead
        default_table, full_check = options.default_table, options.full_check
        with paused_gc():
            for index, raw in enumerate(raw_records):
                try:
                    shard = shard_ids[index] if shard_ids is not None else None
                    record = decode_record(
                        raw,
                        default_table,
                        shard,
                        stream_arn=stream_arn,
                        full_check=full_check,
                        typed=typed[index] if typed is not None else None,
                    )
                except RecordError as err:
                    dead.append((self.count + index, raw, err))
                    continue
                positions.append(self.count + index)
                records.append(record)
        self.count += len(raw_records)


def archive_records(
    raw_records: Sequence[Any],
    store: ArchiveStore,
    options: ArchiveOptions = ArchiveOptions(),
    shard_ids: Sequence[str | None] | None = None,
    *,
    stream_arn: str | None = None,
    origins: Sequence[str] | None = None,
    typed: Sequence[Any] | None = None,
) -> ArchiveReport:
    """Archive ``raw_records`` into ``store``; report what was stored and what was not.

    Parameters
    ----------
    raw_records
        Records in delivery order, each its JSON text (bytes) or, for callers
        holding a parsed Lambda event, a dict: DynamoDB Streams, Kinesis, or
        GetRecords records.
    store
        The archive.
    options
        Promoted columns, plain images, the default table, the image check.
    shard_ids
        The shard each record was read from, when known (the poller), recorded in ``shard_id``.
    stream_arn
        The stream GetRecords records were read from (they carry no ``eventSourceARN``).
    origins
        Where each record came from (``file:line``), written into its dead letter if it has one.
    typed
        The records' typed decode, made for a whole event at once
        (:func:`archiver.decode.typed_records`), if the caller has it.

    Returns
    -------
    ArchiveReport
        ``failed_positions`` holds the index of every record that is not durably
        stored; nothing in it may be acknowledged. A record that cannot be
        archived, whatever it holds, is dead-lettered with its reason.
    """
    decoded = Decoded()
    decoded.add(raw_records, options, shard_ids, stream_arn=stream_arn, typed=typed)
    return write_decoded(decoded, store, options, origins=origins)


def write_decoded(
    decoded: Decoded,
    store: ArchiveStore,
    options: ArchiveOptions = ArchiveOptions(),
    *,
    origins: Sequence[str] | None = None,
) -> ArchiveReport:
    """Batch, encode and store decoded records, then dead-letter the others; the report.

    ``decoded`` is left as it was, so a caller can write it again after a failure.
    """
    report = ArchiveReport(received=decoded.count)
    report.oldest_change_us = oldest_change_us(decoded)
    store_files(encode_decoded(decoded, options, origins=origins), store, report)
    return report


@dataclass(slots=True)
class EncodedFile:
    """One file of a batch, encoded and not yet stored, with the positions it covers.

    A dead-letter file also carries each record's problem, logged once the file is stored.
    """

    key: str
    data: bytes
    positions: Sequence[int]
    rows: int
    problems: Sequence[tuple[int, RecordError]] = ()
    origins: Sequence[str] | None = None

    @property
    def dead_letters(self) -> bool:
        return bool(self.problems)


def oldest_change_us(decoded: Decoded) -> int | None:
    """The earliest change time among the decoded records (the stream's iterator age)."""
    return min((r.change_time_us for r in decoded.records), default=None)


def encode_decoded(
    decoded: Decoded,
    options: ArchiveOptions = ArchiveOptions(),
    *,
    origins: Sequence[str] | None = None,
) -> Iterator[EncodedFile]:
    """The files of ``decoded``, one at a time: a Parquet file per partition, then dead letters.

    ``decoded`` is left as it was. (The poller, which holds far more records, buffers them
    in an :class:`archiver.spool.Spool` instead.)
    """
    with paused_gc():
        for batch in make_batches(zip(decoded.positions, decoded.records, strict=True)):
            key = batch.partition.key(batch_name(batch.records))
            data = encode_records(batch.records, options.promoted, options.plain_images)
            yield EncodedFile(key, data, batch.positions, len(batch.records))
        if decoded.dead:
            yield from dead_letter_files(decoded.dead, options, origins)


def store_files(
    files: Iterable[EncodedFile], store: ArchiveStore, report: ArchiveReport
) -> list[EncodedFile]:
    """Put each file into ``store`` and count it in ``report``; the files that failed."""
    failed = []
    for file in files:
        kind = "dead-letter write failed" if file.dead_letters else "write failed"
        try:
            store.put(file.key, file.data)
        except StoreError as err:
            failed.append(file)
            report.failed_positions.update(file.positions)
            report.errors.append(f"{file.key}: {err}")
            report.failures.append(err)
            log.error(
                kind,
                extra={"key": file.key, "records": len(file.positions), "error": str(err)},
            )
            continue
        report.files.append(file.key)
        report.bytes_written += len(file.data)
        if file.dead_letters:
            for position, problem in file.problems:
                log.warning(
                    "dead-lettered record",
                    extra={
                        "position": position,
                        **({"origin": file.origins[position]} if file.origins is not None else {}),
                        "where": problem.where,
                        "reason": problem.reason,
                        "key": file.key,
                    },
                )
            report.dead_lettered += len(file.positions)
        else:
            report.archived += len(file.positions)
        log.info(
            "wrote object", extra={"key": file.key, "records": file.rows, "bytes": len(file.data)}
        )
    return failed


def dead_letter_files(
    dead: list[tuple[int, Any, RecordError]],
    options: ArchiveOptions,
    origins: Sequence[str] | None,
) -> Iterator[EncodedFile]:
    """The dead-letter files of records that failed to decode: one per table and day."""
    groups: dict[tuple[str | None, str | None], list[tuple[int, Any, RecordError]]] = {}
    for item in dead:
        text = _text_of(item[1])
        table = table_of(text, options.default_table) if text is not None else options.default_table
        groups.setdefault((table, _day_of(text)), []).append(item)
    for (table, day), items in sorted(groups.items(), key=lambda g: (g[0][0] or "", g[0][1] or "")):
        lines = [
            orjson.dumps(
                {
                    "reason": err.reason,
                    "where": err.where,
                    "position": position,
                    **({"origin": origins[position]} if origins is not None else {}),
                    **_as_kept(raw),
                }
            )
            for position, raw, err in items
        ]
        data = b"\n".join(lines) + b"\n"
        key = dead_letter_key(table, day, hashlib.blake2b(data, digest_size=8).hexdigest())
        yield EncodedFile(
            key,
            data,
            [position for position, _, _ in items],
            len(items),
            [(position, err) for position, _, err in items],
            origins,
        )


def _text_of(raw: Any) -> bytes | None:
    try:
        return as_text(raw)
    except RecordError:
        return None


def _as_kept(raw: Any) -> dict[str, Any]:
    """A dead record as its dead letter keeps it: the JSON as it arrived, else its text."""
    text = _text_of(raw)
    if text is not None:
        try:
            orjson.loads(text)
        except orjson.JSONDecodeError:
            return {"record_text": text.decode("utf-8", "backslashreplace")}
        return {"record": orjson.Fragment(text)}
    try:  # a Python object JSON cannot carry as it is (lone surrogates, ...): escaped text
        return {"record_text": json.dumps(raw, default=repr)}
    except (ValueError, TypeError, RecursionError):
        pass
    try:
        return {"record_text": repr(raw)[:100_000]}
    except RecursionError:
        return {"record_text": f"<a {type(raw).__name__} nested too deep to be written>"}


def _day_of(text: bytes | None) -> str | None:
    """The UTC day of a raw DynamoDB Streams record's change time, if it has a usable one."""
    if text is None:
        return None
    try:
        ddb = decode_members(decode_members(text)["dynamodb"])
        seconds = orjson.loads(bytes(ddb["ApproximateCreationDateTime"]))
        return datetime.fromtimestamp(float(seconds), UTC).strftime("%Y-%m-%d")
    except (KeyError, TypeError, ValueError, OverflowError, OSError, JsonTextError):
        return None
