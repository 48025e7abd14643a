"""Compaction: many small files of a partition in, a few files of about the target size out.

For each hour partition with more files than its size needs, every row is
read, duplicates (by event id) dropped, rows put in archive order, and cut
into chunks of about ``target_bytes`` (estimated from the rows themselves, so
the same rows always give the same chunks and the same file names). Each
chunk is written first; only then are the input files that are not outputs
deleted. A crash at any point leaves files that replay to the same result;
a rerun reads the same rows, writes the same files again and finishes the
deletes, so compaction is idempotent.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from itertools import islice

import pyarrow as pa
import pyarrow.compute as pc

from archiver.archive.codec import order_rows, read_archive_file, table_name, write_parquet
from archiver.archive.errors import FormatError, StoreError
from archiver.archive.fetch import Fetched, decoded_size, fetch_ahead
from archiver.archive.layout import Partition
from archiver.archive.reader import list_partitions, list_tables
from archiver.archive.record import KINESIS_SOURCE
from archiver.archive.schema import METADATA_PROMOTED, METADATA_SCHEMA_VERSION, SCHEMA_VERSION, Col
from archiver.archive.store import ArchiveStore, StoredObject

__all__ = ["CompactReport", "compact"]

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
    if fetched is None:
        with closing(_read_files(store, files)) as own:
            fetched = list(own)
    tables = [item.result() for item in fetched]
    schema = _merged_schema(tables)
    merged = pa.concat_tables(
        [t.replace_schema_metadata(None) for t in tables], promote_options="permissive"
    )
    merged = merged.select(schema.names).cast(schema)
    rows = merged.num_rows
    ordered = order_rows(_fullest_first(merged))
    kinesis = bool(pc.any(pc.equal(ordered.column(Col.EVENT_SOURCE), KINESIS_SOURCE)).as_py())
    chunks = _chunks(ordered, target)
    outputs = [partition.key(table_name(chunk)) for chunk in chunks]
    if set(outputs) == {obj.key for obj in files}:
        # Already compacted: the size estimate can call for fewer files than the rows give
        # (data that compresses better than the estimate), but these are the files a run writes.
        return False
    for key, chunk in zip(outputs, chunks, strict=True):
        data = write_parquet(chunk.replace_schema_metadata(schema.metadata), kinesis=kinesis)
        store.put(key, data)  # written (durably) before any input goes
        report.bytes_out += len(data)
    keep = set(outputs)
    for obj in files:
        if obj.key not in keep:
            store.delete(obj.key)
    report.partitions_compacted += 1
    report.files_in += len(files)
    report.files_out += len(outputs)
    report.bytes_in += sum(f.size for f in files)
    report.duplicates_dropped += rows - ordered.num_rows
    log.info(
        "compacted",
        extra={
            "partition": partition.prefix,
            "files_in": len(files),
            "files_out": len(outputs),
            "rows": ordered.num_rows,
        },
    )
    return True


def compact(
    store: ArchiveStore,
    *,
    table: str | None = None,
    since_us: int | None = None,
    until_us: int | None = None,
    target_bytes: int = DEFAULT_TARGET,
    on_partition: Callable[[Partition], None] | None = None,
) -> CompactReport:
    """Compact every partition of ``table`` (or of every table) in the window.

    A partition that cannot be read (a foreign or newer file, or a file that
    went away between the listing and the read, as when two compactions race)
    is reported in ``errors`` and left as it is; the others go on.
    """
    report = CompactReport()
    for name in [table] if table else list_tables(store):
        partitions = list_partitions(store, name, since_us, until_us)
        todo = [files for _, files in partitions if _needs_compaction(files, target_bytes)]
        # The inputs of the partitions after the one being compacted are fetched meanwhile;
        # nothing is fetched before the first partition's turn (``on_partition``).
        with closing(_read_files(store, [obj for files in todo for obj in files])) as fetched:
            _compact_table(store, partitions, fetched, target_bytes, report, on_partition)
    return report


def _read_files(
    store: ArchiveStore, files: list[StoredObject]
) -> Generator[Fetched[pa.Table], None, None]:
    """Every file read whole, in order, fetched and decoded ahead on the fetch threads (Parquet
    decodes without the GIL)."""

    def read(obj: StoredObject) -> pa.Table:
        return read_archive_file(pa.BufferReader(store.get(obj.key)), f"{store.uri}/{obj.key}")

    return fetch_ahead(files, read, weight=decoded_size)


def _compact_table(
    store: ArchiveStore,
    partitions: list[tuple[Partition, list[StoredObject]]],
    fetched: Iterator[Fetched[pa.Table]],
    target_bytes: int,
    report: CompactReport,
    on_partition: Callable[[Partition], None] | None,
) -> None:
    """Compact one table's partitions that need it, their files taken in order from ``fetched``."""
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
            compact_partition(store, partition, files, target_bytes, report, inputs)
        except (FormatError, pa.ArrowInvalid, pa.ArrowTypeError) as err:
            report.errors.append(f"{partition.prefix}: {err}")
            log.error("partition left as it is: %s: %s", partition.prefix, err)
        except StoreError as err:
            # Merged files are written before any input is removed: a failure anywhere leaves
            # a partition that replays the same (duplicates are dropped on read), and a rerun
            # finishes it. The other partitions go on.
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
