"""Batching: decoded records in, one sorted, duplicate-free batch per partition out.

Each batch remembers the positions (in the incoming event) of every record it
covers, duplicates included, so a failed write can be mapped back to exactly
the records that were not stored.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from archiver.archive.layout import US_PER_HOUR, Partition
from archiver.archive.record import (
    DYNAMODB_SOURCE,
    KINESIS_SOURCE,
    SEQUENCE_WIDTH,
    ChangeRecord,
    pad_sequence,
)

__all__ = ["Batch", "make_batches"]

_DYNAMODB_WIDTH = SEQUENCE_WIDTH[DYNAMODB_SOURCE]


@dataclass(frozen=True, slots=True)
class Batch:
    partition: Partition
    records: tuple[ChangeRecord, ...]
    positions: tuple[int, ...]


def _by_sequence(record: ChangeRecord) -> str:
    return record.sequence_number.rjust(_DYNAMODB_WIDTH, "0")  # pad_sequence, inline


def _by_time_then_sequence(record: ChangeRecord) -> tuple[int, str]:
    return record.change_time_us, pad_sequence(record.sequence_number, record.event_source)


def make_batches(decoded: Iterable[tuple[int, ChangeRecord]]) -> list[Batch]:
    """Group (position, record) pairs by partition; sort each group and drop repeated event ids."""
    # Grouped by (table, hour) tuples, one Partition made per group: a dataclass per record
    # (made, hashed, compared) cost more than the rest of the batching.
    groups: dict[tuple[str, int], list[tuple[int, ChangeRecord]]] = {}
    for position, record in decoded:
        change_us = record.change_time_us
        groups.setdefault((record.table_name, change_us - change_us % US_PER_HOUR), []).append(
            (position, record)
        )
    batches = []
    for table, hour_start_us in sorted(groups):
        members = groups[table, hour_start_us]
        partition = Partition(table, hour_start_us)
        # Must agree with archiver.archive.codec.order_rows, which orders on read.
        kinesis = any(r.event_source == KINESIS_SOURCE for _, r in members)
        key = _by_time_then_sequence if kinesis else _by_sequence
        seen: set[str] = set()
        unique = []
        for record in sorted((r for _, r in members), key=key):
            if record.event_id not in seen:
                seen.add(record.event_id)
                unique.append(record)
        batches.append(Batch(partition, tuple(unique), tuple(p for p, _ in members)))
    return batches
