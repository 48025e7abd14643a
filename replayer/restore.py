"""Restoring a table: archived changes (and optionally an export) in, a DynamoDB table out.

``state`` mode folds the changes up to T column-wise (replayer.state) and
writes only each item's final image, deleting items whose last change is a
REMOVE. ``events`` mode applies every change in order. Both check the target
before writing anything (it exists, its key matches the archive's, it is
empty unless allowed, the archive holds new images), split the writes into
lanes by key hash (one item's writes stay in order), and checkpoint each lane.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from archiver.archive.codec import item_key
from archiver.archive.reader import EventFilter, list_partitions, read_partitions
from archiver.archive.schema import Col
from replayer.checkpoint import Checkpoint
from replayer.dynamo import Op, RestoreError, TableWriter, write_units
from replayer.export import Export
from replayer.lanes import lane_of, run_lanes
from replayer.progress import Progress
from replayer.runner import Item, Selection, walk
from replayer.state import STATE_COLUMNS, fold_all, state_schema

__all__ = ["RestoreOptions", "RestoreSummary", "restore"]

# A change this close before the export time may or may not be in the export;
# applying it again is harmless (the last change of each item wins).
EXPORT_OVERLAP_US = 60_000_000
_NO_NEW_IMAGES = {"KEYS_ONLY", "OLD_IMAGE"}
_STATE_PARTITION = -1
_EXPORT_PARTITION = -2
OPS_PER_ROUND = 50_000


@dataclass(frozen=True, slots=True)
class RestoreOptions:
    into: str
    mode: Literal["state", "events"] = "state"
    allow_non_empty: bool = False
    condition_attribute: str | None = None
    concurrency: int = 4
    max_wcu: float | None = None
    dry_run: bool = False


@dataclass
class RestoreSummary:
    mode: str = "state"
    changes_read: int = 0
    items: int = 0  # state mode: items in the final state
    puts: int = 0
    deletes: int = 0
    skipped_newer: int = 0
    base_items: int = 0
    first_key: str | None = None
    last_key: str | None = None
    elapsed: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, ops: Sequence[Op]) -> None:
        with self._lock:
            for op in ops:
                if op.kind == "put":
                    self.puts += 1
                else:
                    self.deletes += 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "changes_read": self.changes_read,
            "final_items": self.items,
            "puts": self.puts,
            "deletes": self.deletes,
            "skipped_newer": self.skipped_newer,
            "base_items": self.base_items,
            "elapsed_s": round(self.elapsed, 3),
            "ok": True,
        }


def _op(
    event_name: str,
    keys: str,
    image: str | None,
    attribute: str | None,
    old_image: str | None = None,
) -> Op:
    key = orjson.loads(keys)
    if event_name == "REMOVE":
        # A conditional delete compares with the removed item's version (from its OldImage).
        version = orjson.loads(old_image).get(attribute) if attribute and old_image else None
        return Op("delete", key, version=version)
    item = orjson.loads(image) if image is not None else None
    if item is None:
        raise RestoreError(
            f"an {event_name} change has no NewImage: the stream's view type holds no new images"
        )
    version = item.get(attribute) if attribute else None
    return Op("put", key, item, version, write_units(len(image or "")))


def _check_view_types(table: pa.Table, source: str) -> None:
    if Col.STREAM_VIEW_TYPE not in table.column_names or table.num_rows == 0:
        return
    kinds = set(pc.unique(table.column(Col.STREAM_VIEW_TYPE)).to_pylist()) & _NO_NEW_IMAGES
    if kinds:
        raise RestoreError(
            f"{source} was archived from a stream with view type {sorted(kinds)[0]}: it holds no new "
            "images, so no item can be rebuilt; restoring needs NEW_IMAGE or NEW_AND_OLD_IMAGES"
        )


def _check_keys(keys_json: str | None, target_keys: dict[str, str], table: str, into: str) -> None:
    """The archived key attributes and their types (S, N, B) must be the target's."""
    if keys_json is None:
        return
    keys = sorted(orjson.loads(keys_json).items())
    archived = {name: next(iter(value), "?") for name, value in keys}
    if archived != target_keys:

        def describe(schema: dict[str, str]) -> str:
            return ", ".join(f"{name} {kind}" for name, kind in schema.items())

        raise RestoreError(
            f"the key of {into} ({describe(target_keys)}) does not match the archived key of "
            f"{table} ({describe(archived)})"
        )


class _Restore:
    def __init__(
        self,
        selection: Selection,
        options: RestoreOptions,
        checkpoint: Checkpoint,
        writer: TableWriter,
        progress: Progress,
        slices: int,
    ) -> None:
        self.selection = selection
        self.options = options
        self.checkpoint = checkpoint
        self.writer = writer
        self.progress = progress
        self.slices = slices
        self.summary = RestoreSummary(mode=options.mode)
        self.key_types: dict[str, str] = {}

    # -- preparation -----------------------------------------------------------------------

    def check_target(self) -> tuple[list[str], bool]:
        self.key_types = self.writer.key_schema()
        key_names = list(self.key_types)
        empty = self.writer.is_empty()
        # A checkpoint names its partition before the first write, so a run that died between a
        # write and its first acknowledgement still counts as resumed.
        checkpoint = self.checkpoint
        resumed = (
            checkpoint.done_through_us is not None
            or checkpoint.partition_us is not None
            or bool(checkpoint.lanes)
        )
        if not empty and not self.options.allow_non_empty and not resumed:
            raise RestoreError(
                f"table {self.options.into} is not empty; restore into an empty table, or "
                "pass --allow-non-empty to write over what is there"
            )
        return key_names, empty

    def base_table(self, export: Export, key_names: list[str]) -> pa.Table:
        keys_, item_keys, images = [], [], []
        for item in export.items():
            try:
                key = {name: item[name] for name in key_names}
            except KeyError:
                raise RestoreError(
                    f"an item of the export {export.store.uri} lacks a key attribute "
                    f"({', '.join(key_names)})"
                ) from None
            keys_.append(orjson.dumps(key).decode())
            item_keys.append(item_key(key).decode())
            images.append(orjson.dumps(item).decode())
        n = len(images)
        self.summary.base_items = n
        return pa.table(
            {
                Col.ITEM_KEY: item_keys,
                Col.EVENT_NAME: ["INSERT"] * n,
                Col.KEYS: keys_,
                Col.NEW_IMAGE: images,
                Col.CHANGE_TIME: pa.array(
                    [export.export_time_us] * n, pa.timestamp("us", tz="UTC")
                ),
                Col.OLD_IMAGE: pa.nulls(n, pa.string()),
            },
            schema=state_schema(),
        )

    # -- lanes -------------------------------------------------------------------------------

    def write_lane(
        self, partition_us: int, lane: int, items: Sequence[Item[Op]], stop: threading.Event
    ) -> None:
        """Write a lane's ops in order: batches of distinct keys, acknowledged one by one."""
        batch: list[Item[Op]] = []
        keys: set[bytes] = set()
        for entry in items:
            ident = item_key(entry.value.key)
            if len(batch) == 25 or ident in keys:
                self._flush(partition_us, lane, batch, stop)
                batch, keys = [], set()
            batch.append(entry)
            keys.add(ident)
        self._flush(partition_us, lane, batch, stop)

    def _flush(
        self, partition_us: int, lane: int, batch: list[Item[Op]], stop: threading.Event
    ) -> None:
        if not batch or stop.is_set():
            return
        ops = [entry.value for entry in batch]
        if not self.options.dry_run:
            skipped = self.writer.write(ops)
            with self.summary._lock:
                self.summary.skipped_newer += skipped
            self.checkpoint.ack(partition_us, lane, batch[-1].index)
        self.summary.count(ops)
        self.progress.add(len(ops))

    def run_table(self, partition_us: int, table: pa.Table, deletes: bool) -> None:
        """Write a whole state (or export) table as one pseudo-partition, in lanes."""
        if self.checkpoint.is_done(partition_us):
            return
        digest = hashlib.blake2b(digest_size=8)
        keys = table.column(Col.ITEM_KEY)
        for offset in range(0, len(keys), OPS_PER_ROUND):  # every key, a slice at a time
            digest.update("\0".join(keys.slice(offset, OPS_PER_ROUND).to_pylist()).encode())
        self.checkpoint.begin(partition_us, digest.hexdigest())
        attribute = self.options.condition_attribute
        # Ops are built a slice of rows at a time: a Python object per item of a large state
        # would need many times the memory of the Arrow state itself.
        for offset in range(0, table.num_rows, OPS_PER_ROUND):
            part = table.slice(offset, OPS_PER_ROUND)
            lanes: list[list[Item[Op]]] = [[] for _ in range(self.options.concurrency)]
            rows = zip(
                part.column(Col.ITEM_KEY).to_pylist(),
                part.column(Col.EVENT_NAME).to_pylist(),
                part.column(Col.KEYS).to_pylist(),
                part.column(Col.NEW_IMAGE).to_pylist(),
                part.column(Col.OLD_IMAGE).to_pylist(),
                strict=True,
            )
            for index, (ident, name, keys, image, old) in enumerate(rows, offset):
                if name == "REMOVE" and not deletes:
                    continue
                lane = lane_of(ident, self.options.concurrency, self.slices)
                if index > self.checkpoint.acknowledged(partition_us, lane):
                    lanes[lane].append(Item(index, _op(name, keys, image, attribute, old)))
            run_lanes(
                lanes,
                lambda lane, items, stop: self.write_lane(partition_us, lane, items, stop),
                self.options.concurrency,
            )
        if not self.options.dry_run:
            self.checkpoint.finish_partition(partition_us)

    # -- modes -------------------------------------------------------------------------------

    def changes(
        self, since_us: int | None, columns: Sequence[str] = (*STATE_COLUMNS, Col.STREAM_VIEW_TYPE)
    ) -> Iterator[pa.Table]:
        sel = self.selection
        flt = EventFilter(since_us, sel.flt.until_us, None, None, sel.flt.slice)
        partitions = list_partitions(sel.store, sel.table, since_us, sel.flt.until_us)
        for _, _, table in read_partitions(sel.store, partitions, flt, columns):
            _check_view_types(table, f"table {sel.table}")
            self.summary.changes_read += table.num_rows
            yield table

    def state(
        self, base: pa.Table | None, since_us: int | None, key_names: list[str], deletes: bool
    ) -> None:
        state = fold_all(
            self.changes(since_us, self._columns((*STATE_COLUMNS, Col.STREAM_VIEW_TYPE))), base
        )
        if state.num_rows:
            _check_keys(
                state.column(Col.KEYS)[0].as_py(),
                self.key_types,
                self.selection.table,
                self.options.into,
            )
            self.summary.first_key = state.column(Col.ITEM_KEY)[0].as_py()
            self.summary.last_key = state.column(Col.ITEM_KEY)[-1].as_py()
        removed = pc.sum(pc.equal(state.column(Col.EVENT_NAME), "REMOVE")).as_py() or 0
        self.summary.items = state.num_rows - removed
        self.run_table(_STATE_PARTITION, state, deletes)

    def events(self, base: pa.Table | None, since_us: int | None, key_names: list[str]) -> None:
        sel = self.selection
        # Refuse before writing: every partition's view types, and the key of the first change.
        first_keys = None
        for table in self.changes(since_us, (Col.KEYS, Col.STREAM_VIEW_TYPE)):
            if first_keys is None and table.num_rows:
                first_keys = table.column(Col.KEYS)[0].as_py()
        _check_keys(first_keys, self.key_types, sel.table, self.options.into)
        self.summary.changes_read = 0
        if base is not None:
            self.run_table(_EXPORT_PARTITION, base, deletes=False)
        attribute = self.options.condition_attribute
        flt = EventFilter(since_us, sel.flt.until_us, None, None, sel.flt.slice)
        walk(
            Selection(sel.store, sel.table, flt, self._columns((Col.KEYS, Col.NEW_IMAGE))),
            self.checkpoint,
            lambda t: self._ops_of(t, attribute),
            lambda p, lane, items, stop: self.write_lane(p.hour_start_us, lane, items, stop),
            lanes=self.options.concurrency,
            slices=self.slices,
        )

    def _columns(self, columns: tuple[str, ...]) -> tuple[str, ...]:
        """Conditional writes also read OldImage, for the removed item's version."""
        return (*columns, Col.OLD_IMAGE) if self.options.condition_attribute else columns

    def _ops_of(self, table: pa.Table, attribute: str | None) -> list[Op]:
        self.summary.changes_read += table.num_rows
        olds = (
            table.column(Col.OLD_IMAGE).to_pylist()
            if Col.OLD_IMAGE in table.column_names
            else [None] * table.num_rows
        )
        return [
            _op(name, keys, image, attribute, old)
            for name, keys, image, old in zip(
                table.column(Col.EVENT_NAME).to_pylist(),
                table.column(Col.KEYS).to_pylist(),
                table.column(Col.NEW_IMAGE).to_pylist(),
                olds,
                strict=True,
            )
        ]


def restore(
    selection: Selection,
    options: RestoreOptions,
    checkpoint: Checkpoint,
    writer: TableWriter,
    *,
    export: Export | None = None,
    progress: Progress | None = None,
    slices: int = 1,
) -> RestoreSummary:
    """Restore ``selection`` (its window's ``until_us`` is the moment T) into ``options.into``.

    Raises
    ------
    RestoreError
        Before any write when the target or the archive cannot give a correct
        restore; during writing when DynamoDB keeps refusing (a rerun with the
        same checkpoint resumes).
    """
    progress = progress or Progress("restore", "writes", enabled=False)
    run = _Restore(selection, options, checkpoint, writer, progress, slices)
    started = time.monotonic()
    try:
        key_names, empty = run.check_target()
        base = run.base_table(export, key_names) if export is not None else None
        since_us = None if export is None else export.export_time_us - EXPORT_OVERLAP_US
        if options.mode == "state":
            run.state(base, since_us, key_names, deletes=not empty or base is not None)
        else:
            run.events(base, since_us, key_names)
        if not options.dry_run:
            checkpoint.finish()
    finally:
        run.summary.elapsed = time.monotonic() - started
        progress.close()
    return run.summary
