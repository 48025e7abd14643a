"""Walking a selection of the archive partition by partition, in lanes, resumably.

Shared by ``redrive`` and ``restore --mode events``: for each hour partition
in order (skipping those the checkpoint says are finished), read the selected
changes in archive order, turn each row into a work item, deal the items into
lanes by key hash, run the lanes, then mark the partition finished.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import pyarrow as pa

from archiver.archive.layout import Partition
from archiver.archive.reader import EventFilter, list_partitions, read_partitions
from archiver.archive.schema import Col
from archiver.archive.store import ArchiveStore, StoredObject
from replayer.checkpoint import Checkpoint
from replayer.lanes import lane_of, run_lanes

__all__ = ["Item", "Selection", "partition_digest", "walk"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Item(Generic[T]):
    """One unit of work: its index in the partition's ordered selection, and its payload."""

    index: int
    value: T


@dataclass(frozen=True, slots=True)
class Selection:
    store: ArchiveStore
    table: str
    flt: EventFilter
    columns: tuple[str, ...]


def partition_digest(files: Iterable[StoredObject]) -> str:
    digest = hashlib.blake2b(digest_size=8)
    for obj in sorted(files, key=lambda o: o.key):
        digest.update(f"{obj.key}\0{obj.size}\0".encode())
    return digest.hexdigest()


def walk(
    selection: Selection,
    checkpoint: Checkpoint,
    items_of: Callable[[pa.Table], list[T]],
    work: Callable[[Partition, int, Sequence[Item[T]], threading.Event], None],
    *,
    lanes: int,
    slices: int = 1,
) -> None:
    """Run ``work(partition, lane, items, stop)`` over every selected partition not yet finished.

    ``items`` holds only what the checkpoint has not acknowledged for that lane.
    """
    flt = selection.flt
    todo = [
        (partition, files)
        for partition, files in list_partitions(
            selection.store, selection.table, flt.since_us, flt.until_us
        )
        if not checkpoint.is_done(partition.hour_start_us)
    ]
    # The files of the partitions after the one being worked on are fetched meanwhile.
    for partition, files, table in read_partitions(selection.store, todo, flt, selection.columns):
        start = partition.hour_start_us
        values = items_of(table)
        checkpoint.begin(start, partition_digest(files))
        done = [checkpoint.acknowledged(start, lane) for lane in range(lanes)]
        dealt: list[list[Item[T]]]
        if lanes == 1:  # one lane takes every item: no key to hash
            dealt = [[Item(index, value) for index, value in enumerate(values) if index > done[0]]]
        else:
            keys = table.column(Col.ITEM_KEY).to_pylist() if table.num_rows else []
            dealt = [[] for _ in range(lanes)]
            for index, (key, value) in enumerate(zip(keys, values, strict=True)):
                lane = lane_of(key, lanes, slices)
                if index > done[lane]:
                    dealt[lane].append(Item(index, value))

        def lane_work(
            lane: int,
            items: Sequence[Item[T]],
            stop: threading.Event,
            partition: Partition = partition,
        ) -> None:
            work(partition, lane, items, stop)

        run_lanes(dealt, lane_work, lanes)
        checkpoint.finish_partition(start)
