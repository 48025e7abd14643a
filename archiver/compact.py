"""Compaction: many small files of a partition in, a few files of about the target size out.

For each hour partition with more files than its size needs, every row is
read, duplicates (by event id) dropped, rows put in archive order, and cut
into chunks of about ``target_bytes`` (estimated from the rows themselves, so
the same rows always give the same chunks and the same file names). Each
chunk is written first; only then are the input files that are not outputs
deleted. A crash at any point leaves files that replay to the same result;
a rerun reads the same rows, writes the same files again and finishes the
deletes, so compaction is idempotent.

A table that an Iceberg table tracks (its registration, ``_iceberg/{table}.json``,
written by ``archiver iceberg-sync``) is never compacted that way: the files
it would delete are the ones the table's snapshots reference. It is refused,
unless a :class:`Tracker` (``archiver compact --iceberg CATALOG``,
:class:`archiver.iceberg.IcebergTracker`) is given. Then the inputs of each
partition are the files the table's *current snapshot* references there (files
the sink wrote since the last sync wait for it; files an earlier compaction
replaced, still in the folder for older snapshots, are not inputs again); each
output carries, in its Parquet metadata, the names of the files it replaces
and of its sibling outputs (:class:`archiver.archive.lineage.Compaction`); an
output whose name is in the folder already is not written again (its name
says it holds the same events, and a file an older snapshot references is
never rewritten); and once every partition's outputs are written, ONE commit
per table swaps them for their inputs. No file is deleted: the inputs stay
for the snapshots that reference them, until ``iceberg-sync
--expire-snapshots-older-than`` expires those and removes them. A crash before
the commit leaves the table as it was (the next ``compact`` finds the outputs
written and commits them; the next ``iceberg-sync`` commits the swap itself);
after it, the table is compacted.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from itertools import islice
from typing import Protocol

import pyarrow as pa
import pyarrow.compute as pc

from archiver.archive.codec import order_rows, read_archive_file, table_name, write_parquet
from archiver.archive.errors import ArchiveError, FormatError, StoreError
from archiver.archive.fetch import Fetched, decoded_size, fetch_ahead
from archiver.archive.layout import Partition
from archiver.archive.lineage import (
    Compaction,
    Registration,
    registered_tables,
    registration_key,
)
from archiver.archive.reader import list_partitions, list_tables
from archiver.archive.record import KINESIS_SOURCE
from archiver.archive.schema import METADATA_PROMOTED, METADATA_SCHEMA_VERSION, SCHEMA_VERSION, Col
from archiver.archive.store import ArchiveStore, StoredObject

__all__ = ["CompactReport", "IcebergCommit", "Swap", "TrackedTable", "Tracker", "compact"]

log = logging.getLogger(__name__)

DEFAULT_TARGET = 128 * 1024 * 1024
# zstd shrinks the archive's JSON columns about fourfold; the estimate only sets chunk sizes.
_COMPRESSION_RATIO = 4.0
_SIZED_COLUMNS = (
    Col.KEYS,
    Col.NEW_IMAGE,
    Col.OLD_IMAGE,
    Col.ENVELOPE,
    Col.NEW_IMAGE_PLAIN,
    Col.OLD_IMAGE_PLAIN,
    Col.KEYS_PLAIN,
)


@dataclass(frozen=True, slots=True)
class Swap:
    """One partition's compaction under Iceberg: the files its outputs replace, and the outputs."""

    partition: Partition
    removed: tuple[str, ...]  # keys of the inputs that are no output
    added: tuple[str, ...]  # keys of the outputs that are no input


@dataclass(frozen=True, slots=True)
class IcebergCommit:
    """The one commit of a table's compaction to the Iceberg table that tracks it."""

    table: str  # the DynamoDB table
    identifier: str  # namespace.table
    snapshot_id: int | None  # the table's current snapshot after the commit
    partitions: int
    files_removed: int
    files_added: int


class TrackedTable(Protocol):
    """An Iceberg table of one archived DynamoDB table, as compaction sees it."""

    identifier: str

    def partitions(
        self, since_us: int | None, until_us: int | None
    ) -> list[tuple[Partition, list[StoredObject]]]:
        """The archive files the current snapshot references, by partition, oldest first."""
        ...

    def commit(self, swaps: Sequence[Swap]) -> int | None:
        """Swap every partition's outputs for its inputs in one commit; the new snapshot's id.

        Raises ArchiveError when the catalog refuses or fails the commit.
        """
        ...


class Tracker(Protocol):
    """A catalog whose tables track the archive's tables (``archiver compact --iceberg``)."""

    def open(self, table: str, registration: Registration | None) -> TrackedTable | None:
        """The Iceberg table of ``table``, None when the catalog holds none.

        Raises ArchiveError when ``registration`` names another catalog or namespace than
        this tracker's, or the catalog fails.
        """
        ...


@dataclass
class CompactReport:
    partitions_seen: int = 0
    partitions_compacted: int = 0
    files_in: int = 0
    files_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    duplicates_dropped: int = 0
    errors: list[str] = field(default_factory=list)
    commits: list[IcebergCommit] = field(default_factory=list)

    def add(self, other: CompactReport) -> None:
        """Count ``other``'s partitions (a table's, once its commit is done) in this report."""
        self.partitions_compacted += other.partitions_compacted
        self.files_in += other.files_in
        self.files_out += other.files_out
        self.bytes_in += other.bytes_in
        self.bytes_out += other.bytes_out
        self.duplicates_dropped += other.duplicates_dropped


def _needs_compaction(files: list[StoredObject], target: int) -> bool:
    total = sum(f.size for f in files)
    return len(files) > max(1, math.ceil(total / target))


def _merged_schema(tables: list[pa.Table]) -> pa.Schema:
    """The union of the inputs' columns (promoted columns may differ between files)."""
    schema = pa.unify_schemas([t.schema.remove_metadata() for t in tables])
    specs: list[str] = []
    for table in tables:
        spec = (table.schema.metadata or {}).get(METADATA_PROMOTED, b"").decode()
        for part in filter(None, spec.split(",")) if spec else ():
            if part not in specs:
                specs.append(part)
    metadata = {
        METADATA_SCHEMA_VERSION: str(SCHEMA_VERSION).encode(),
        METADATA_PROMOTED: ",".join(specs).encode(),
    }
    return schema.with_metadata(metadata)


def _chunks(table: pa.Table, target: int) -> list[pa.Table]:
    sizes = None
    for name in _SIZED_COLUMNS:
        if name in table.column_names:
            lengths = pc.fill_null(pc.binary_length(table.column(name)), 0)
            sizes = lengths if sizes is None else pc.add(sizes, lengths)
    if sizes is None:
        return [table]
    budget = target * _COMPRESSION_RATIO
    chunks, start, running = [], 0, 0
    for i, size in enumerate(sizes.to_pylist()):
        if running and running + size > budget:
            chunks.append(table.slice(start, i - start))
            start, running = i, 0
        running += size
    chunks.append(table.slice(start))
    return chunks


def _fullest_first(table: pa.Table) -> pa.Table:
    """Rows with the fewest nulls first: the copy of an event that order_rows keeps is its fullest.

    Copies of one event differ only in the optional columns their writers filled (promoted
    columns, plain images). Choosing by content, not by which file came first, keeps those
    values and makes the output the same whichever inputs a crashed run already removed.
    """
    if pc.count_distinct(table.column(Col.EVENT_ID)).as_py() == table.num_rows:
        return table  # no copies to choose between
    nulls = None
    for column in table.columns:
        if column.null_count:
            count = pc.cast(pc.is_null(column), pa.int32())
            nulls = count if nulls is None else pc.add(nulls, count)
    if nulls is None:
        return table
    return table.take(pc.sort_indices(nulls))  # stable: ties keep their order


@dataclass(frozen=True, slots=True)
class _Merged:
    """A partition's rows as compaction writes them: its output keys and their chunks."""

    schema: pa.Schema
    chunks: list[pa.Table]
    outputs: list[str]
    kinesis: bool
    rows_in: int

    @property
    def rows_out(self) -> int:
        return sum(chunk.num_rows for chunk in self.chunks)


def _merge(
    store: ArchiveStore,
    files: list[StoredObject],
    partition: Partition,
    target: int,
    fetched: Sequence[Fetched[pa.Table]] | None,
) -> _Merged:
    if fetched is None:
        with closing(_read_files(store, files)) as own:
            fetched = list(own)
    tables = [item.result() for item in fetched]
    schema = _merged_schema(tables)
    merged = pa.concat_tables(
        [t.replace_schema_metadata(None) for t in tables], promote_options="permissive"
    )
    merged = merged.select(schema.names).cast(schema)
    ordered = order_rows(_fullest_first(merged))
    kinesis = bool(pc.any(pc.equal(ordered.column(Col.EVENT_SOURCE), KINESIS_SOURCE)).as_py())
    chunks = _chunks(ordered, target)
    outputs = [partition.key(table_name(chunk)) for chunk in chunks]
    return _Merged(schema, chunks, outputs, kinesis, merged.num_rows)


def _count(
    report: CompactReport, partition: Partition, files: list[StoredObject], merged: _Merged
) -> None:
    report.partitions_compacted += 1
    report.files_in += len(files)
    report.files_out += len(merged.outputs)
    report.bytes_in += sum(f.size for f in files)
    report.duplicates_dropped += merged.rows_in - merged.rows_out
    log.info(
        "compacted",
        extra={
            "partition": partition.prefix,
            "files_in": len(files),
            "files_out": len(merged.outputs),
            "rows": merged.rows_out,
        },
    )


def compact_partition(
    store: ArchiveStore,
    partition: Partition,
    files: list[StoredObject],
    target: int,
    report: CompactReport,
    fetched: Sequence[Fetched[pa.Table]] | None = None,
) -> bool:
    """Compact one partition; False when its files already are what compaction would write.

    The files come from ``fetched`` (their finished reads, in the order of
    ``files``), else are read here.
    """
    merged = _merge(store, files, partition, target, fetched)
    if set(merged.outputs) == {obj.key for obj in files}:
        # Already compacted: the size estimate can call for fewer files than the rows give
        # (data that compresses better than the estimate), but these are the files a run writes.
        return False
    for key, chunk in zip(merged.outputs, merged.chunks, strict=True):
        data = write_parquet(
            chunk.replace_schema_metadata(merged.schema.metadata), kinesis=merged.kinesis
        )
        store.put(key, data)  # written (durably) before any input goes
        report.bytes_out += len(data)
    keep = set(merged.outputs)
    store.delete_many([obj.key for obj in files if obj.key not in keep])
    _count(report, partition, files, merged)
    return True


def write_swap(
    store: ArchiveStore,
    partition: Partition,
    files: list[StoredObject],
    present: set[str],
    target: int,
    report: CompactReport,
    fetched: Sequence[Fetched[pa.Table]] | None = None,
) -> Swap | None:
    """Write one partition's outputs for an Iceberg swap; None when its files already are them.

    ``files`` are the inputs (the current snapshot's files of the partition); ``present``
    the keys the partition's folder holds. Nothing is deleted. An output already present
    is not written again: its name says it holds the events it would (an input kept as it
    is, a file a crashed run wrote, or one an older snapshot references and must keep).
    """
    merged = _merge(store, files, partition, target, fetched)
    inputs = {obj.key for obj in files}
    if set(merged.outputs) == inputs:
        return None
    lineage = Compaction(
        replaces=tuple(key.rsplit("/", 1)[1] for key in sorted(inputs)),
        outputs=tuple(key.rsplit("/", 1)[1] for key in merged.outputs),
    )
    metadata = {**(merged.schema.metadata or {}), **lineage.metadata()}
    for key, chunk in zip(merged.outputs, merged.chunks, strict=True):
        if key in present or key in inputs:
            continue
        data = write_parquet(chunk.replace_schema_metadata(metadata), kinesis=merged.kinesis)
        store.put(key, data)  # every output written (durably) before the commit
        report.bytes_out += len(data)
    _count(report, partition, files, merged)
    outputs = set(merged.outputs)
    return Swap(
        partition,
        removed=tuple(sorted(inputs - outputs)),
        added=tuple(key for key in merged.outputs if key not in inputs),
    )


def compact(
    store: ArchiveStore,
    *,
    table: str | None = None,
    since_us: int | None = None,
    until_us: int | None = None,
    target_bytes: int = DEFAULT_TARGET,
    on_partition: Callable[[Partition], None] | None = None,
    tracker: Tracker | None = None,
) -> CompactReport:
    """Compact every partition of ``table`` (or of every table) in the window.

    A partition that cannot be read (a foreign or newer file, or a file that
    went away between the listing and the read, as when two compactions race)
    is reported in ``errors`` and left as it is; the others go on. A table that
    an Iceberg table tracks is compacted through ``tracker`` (one commit per
    table, no file deleted), and refused, in ``errors``, without one.
    """
    report = CompactReport()
    registered = registered_tables(store)  # one listing; a read only for a registered table
    for name in [table] if table else list_tables(store):
        try:
            registration = Registration.load(store, name) if name in registered else None
            if registration is not None and tracker is None:
                raise _tracked_error(registration)
            tracked = tracker.open(name, registration) if tracker is not None else None
        except (ArchiveError, FileNotFoundError) as err:
            report.errors.append(f"{name}: {err}")
            log.error("table not compacted: %s: %s", name, err)
            continue
        if tracked is not None:
            _compact_tracked(
                store, name, tracked, since_us, until_us, target_bytes, report, on_partition
            )
            continue
        if registration is not None:
            # Registered by a sync that has not committed yet: the files are not the table's
            # yet, and that sync may be about to commit them.
            log.info("%s: its Iceberg table holds no file yet; nothing compacted", name)
            continue
        partitions = list_partitions(store, name, since_us, until_us)
        todo = [files for _, files in partitions if _needs_compaction(files, target_bytes)]
        # The inputs of the partitions after the one being compacted are fetched meanwhile;
        # nothing is fetched before the first partition's turn (``on_partition``).
        with closing(_read_files(store, [obj for files in todo for obj in files])) as fetched:

            def merge(
                partition: Partition, files: list[StoredObject], inputs: list[Fetched[pa.Table]]
            ) -> None:
                compact_partition(store, partition, files, target_bytes, report, inputs)

            _compact_table(partitions, fetched, target_bytes, report, on_partition, merge)
    return report


def _tracked_error(registration: Registration) -> ArchiveError:
    return ArchiveError(
        f"tracked by the Iceberg table {registration.describe()} "
        f"({registration_key(registration.table)}): compacting it here would delete files "
        f"its snapshots reference; run archiver compact --iceberg {registration.catalog}, "
        "which commits the swap to the table and leaves the files for snapshot expiry"
    )


def _compact_tracked(
    store: ArchiveStore,
    name: str,
    tracked: TrackedTable,
    since_us: int | None,
    until_us: int | None,
    target_bytes: int,
    report: CompactReport,
    on_partition: Callable[[Partition], None] | None,
) -> None:
    """Compact a table's current files under Iceberg: outputs written, then one commit."""
    try:
        partitions = tracked.partitions(since_us, until_us)
    except ArchiveError as err:
        report.errors.append(f"{tracked.identifier}: {err}")
        log.error("table not compacted: %s: %s", tracked.identifier, err)
        return
    present = {
        partition: {obj.key for obj in found}
        for partition, found in list_partitions(store, name, since_us, until_us)
    }
    todo = [files for _, files in partitions if _needs_compaction(files, target_bytes)]
    swaps: list[Swap] = []
    pending = CompactReport()  # counted once the commit is done
    with closing(_read_files(store, [obj for files in todo for obj in files])) as fetched:

        def write(
            partition: Partition, files: list[StoredObject], inputs: list[Fetched[pa.Table]]
        ) -> None:
            here = present.get(partition, set())
            swap = write_swap(store, partition, files, here, target_bytes, pending, inputs)
            if swap is not None:
                swaps.append(swap)

        _compact_table(partitions, fetched, target_bytes, report, on_partition, write)
    if not swaps:
        return
    try:
        snapshot_id = tracked.commit(swaps)
    except ArchiveError as err:
        report.errors.append(
            f"{tracked.identifier}: commit failed: {err}; the files written wait for the "
            "next archiver compact (or iceberg-sync) to commit them"
        )
        log.error("compaction not committed: %s: %s", tracked.identifier, err)
        return
    report.add(pending)
    commit = IcebergCommit(
        name,
        tracked.identifier,
        snapshot_id,
        partitions=len(swaps),
        files_removed=sum(len(swap.removed) for swap in swaps),
        files_added=sum(len(swap.added) for swap in swaps),
    )
    report.commits.append(commit)
    log.info(
        "committed",
        extra={
            "table": tracked.identifier,
            "snapshot_id": snapshot_id,
            "partitions": commit.partitions,
            "files_removed": commit.files_removed,
            "files_added": commit.files_added,
        },
    )


def _read_files(
    store: ArchiveStore, files: list[StoredObject]
) -> Generator[Fetched[pa.Table], None, None]:
    """Every file read whole, in order, fetched and decoded ahead on the fetch threads (Parquet
    decodes without the GIL)."""

    def read(obj: StoredObject) -> pa.Table:
        return read_archive_file(pa.BufferReader(store.get(obj.key)), f"{store.uri}/{obj.key}")

    return fetch_ahead(files, read, weight=decoded_size)


def _compact_table(
    partitions: list[tuple[Partition, list[StoredObject]]],
    fetched: Iterator[Fetched[pa.Table]],
    target_bytes: int,
    report: CompactReport,
    on_partition: Callable[[Partition], None] | None,
    action: Callable[[Partition, list[StoredObject], list[Fetched[pa.Table]]], None],
) -> None:
    """``action`` on each of a table's partitions that need it, their files taken in order from
    ``fetched``; a partition that fails is reported and the others go on."""
    for partition, files in partitions:
        report.partitions_seen += 1
        if on_partition is not None:
            on_partition(partition)
        if not _needs_compaction(files, target_bytes):
            continue
        # Every fetch of the partition is taken, finished, before any is used: a partition
        # that fails leaves none of its own for the next one.
        inputs = list(islice(fetched, len(files)))
        try:
            action(partition, files, inputs)
        except (FormatError, pa.ArrowInvalid, pa.ArrowTypeError) as err:
            report.errors.append(f"{partition.prefix}: {err}")
            log.error("partition left as it is: %s: %s", partition.prefix, err)
        except StoreError as err:
            # Merged files are written before any input is removed (or the commit): a failure
            # anywhere leaves a partition that replays the same (duplicates are dropped on
            # read), and a rerun finishes it. The other partitions go on.
            report.errors.append(f"{partition.prefix}: {err}; a rerun finishes it")
            log.error("partition not compacted: %s: %s", partition.prefix, err)
        except FileNotFoundError as err:
            # Only reads come before the writes: nothing of this partition was changed.
            reason = (
                f"{err.filename or err} went away while it was read (is another "
                "compaction running?); left as it is, a rerun finishes it"
            )
            report.errors.append(f"{partition.prefix}: {reason}")
            log.error("partition left as it is: %s: %s", partition.prefix, reason)
