"""Archiving one batch of raw stream records: decode -> batch -> encode -> store.put.

``archive_records`` never raises for bad records or a failing store: it
returns an :class:`ArchiveReport` saying which positions of the input were
durably stored (as data or as dead letters) and which were not, so the edge
(Lambda handler, CLI) can report exactly those.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from archiver.archive.codec import batch_name, encode_records
from archiver.archive.errors import RecordError, StoreError
from archiver.archive.layout import dead_letter_key
from archiver.archive.schema import PromotedColumn
from archiver.archive.store import ArchiveStore
from archiver.batch import make_batches
from archiver.decode import decode_record, table_of

__all__ = ["ArchiveOptions", "ArchiveReport", "archive_records"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ArchiveOptions:
    promoted: tuple[PromotedColumn, ...] = ()
    plain_images: bool = False
    default_table: str | None = None


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
    oldest_change_us: int | None = None  # earliest change time among the decoded records

    @property
    def ok(self) -> bool:
        return not self.failed_positions


def archive_records(
    raw_records: Sequence[Any],
    store: ArchiveStore,
    options: ArchiveOptions = ArchiveOptions(),
    shard_ids: Sequence[str | None] | None = None,
) -> ArchiveReport:
    """Archive ``raw_records`` into ``store``; report what was stored and what was not.

    Parameters
    ----------
    raw_records
        Records of a Lambda event (DynamoDB Streams or Kinesis), in delivery order.
    store
        The archive.
    options
        Promoted columns, plain images, the default table.
    shard_ids
        The shard each record was read from, when known (the poller), recorded in ``shard_id``.

    Returns
    -------
    ArchiveReport
        ``failed_positions`` holds the index of every record that is not durably
        stored; nothing in it may be acknowledged.
    """
    report = ArchiveReport(received=len(raw_records))
    decoded = []
    dead: list[tuple[int, Any, RecordError]] = []
    for position, raw in enumerate(raw_records):
        try:
            shard = shard_ids[position] if shard_ids is not None else None
            decoded.append((position, decode_record(raw, options.default_table, shard)))
        except RecordError as err:
            dead.append((position, raw, err))
    report.oldest_change_us = min((record.change_time_us for _, record in decoded), default=None)
    for batch in make_batches(decoded):
        key = batch.partition.key(batch_name(batch.records))
        try:
            data = encode_records(batch.records, options.promoted, options.plain_images)
            store.put(key, data)
        except StoreError as err:
            report.failed_positions.update(batch.positions)
            report.errors.append(f"{key}: {err}")
            log.error(
                "write failed",
                extra={"key": key, "records": len(batch.positions), "error": str(err)},
            )
            continue
        report.archived += len(batch.positions)
        report.files.append(key)
        report.bytes_written += len(data)
        log.info(
            "wrote object", extra={"key": key, "records": len(batch.records), "bytes": len(data)}
        )
    if dead:
        _write_dead_letters(dead, store, options, report)
    return report


def _write_dead_letters(
    dead: list[tuple[int, Any, RecordError]],
    store: ArchiveStore,
    options: ArchiveOptions,
    report: ArchiveReport,
) -> None:
    groups: dict[tuple[str | None, str | None], list[tuple[int, Any, RecordError]]] = {}
    for item in dead:
        groups.setdefault((table_of(item[1], options.default_table), _day_of(item[1])), []).append(
            item
        )
    for (table, day), items in sorted(groups.items(), key=lambda g: (g[0][0] or "", g[0][1] or "")):
        lines = [
            orjson.dumps(
                {"reason": err.reason, "where": err.where, "position": position, "record": raw},
                default=repr,
            )
            for position, raw, err in items
        ]
        data = b"\n".join(lines) + b"\n"
        key = dead_letter_key(table, day, hashlib.blake2b(data, digest_size=8).hexdigest())
        try:
            store.put(key, data)
        except StoreError as err:
            report.failed_positions.update(p for p, _, _ in items)
            report.errors.append(f"{key}: {err}")
            log.error(
                "dead-letter write failed",
                extra={"key": key, "records": len(items), "error": str(err)},
            )
            continue
        for position, _, problem in items:
            log.warning(
                "dead-lettered record",
                extra={
                    "position": position,
                    "where": problem.where,
                    "reason": problem.reason,
                    "key": key,
                },
            )
        log.info("wrote object", extra={"key": key, "records": len(items), "bytes": len(data)})
        report.dead_lettered += len(items)
        report.files.append(key)
        report.bytes_written += len(data)


def _day_of(raw: Any) -> str | None:
    """The UTC day of a raw DynamoDB Streams record's change time, if it has a usable one."""
    try:
        seconds = raw["dynamodb"]["ApproximateCreationDateTime"]
        return datetime.fromtimestamp(float(seconds), UTC).strftime("%Y-%m-%d")
    except (KeyError, TypeError, ValueError, OverflowError, OSError):
        return None
