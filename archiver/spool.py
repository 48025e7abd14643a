"""The poller's buffer: records held as compressed Arrow columns until a flush writes them.

Each page GetRecords returns is decoded as it arrives, and its good records become the
archive's columns at once (an Arrow table, as a file's row group holds them), kept
compressed with zstd in Arrow's IPC format. Beside them, uncompressed, stay only the few
fields that order the archive. A buffer of JSON text then costs about a third of that
text (records decoded one by one cost one and a half times it), and the Arrow columns a
flush needs are made once, page by page, as the stream is read.

A flush orders the buffer as :func:`archiver.batch.make_batches` orders records (by
partition, then by sequence number, repeated event ids dropped), and writes each
partition's file a row group at a time. A page is decompressed when its first row is
needed and let go after its last; the pages of one shard come in sequence order, so only
a few are open at once. The files are the ones :func:`archiver.write.encode_decoded` would
make of the same records, row groups apart (cut at :data:`SPOOLED_ROW_GROUP_TEXT`).
"""

from __future__ import annotations

from array import array
from bisect import bisect_right
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any

import pyarrow as pa

from archiver.archive.codec import (
    ROW_GROUP_ROWS,
    ids_name,
    records_table,
    row_group_rows,
    text_length,
    write_row_groups,
)
from archiver.archive.errors import RecordError
from archiver.archive.layout import US_PER_HOUR, Partition
from archiver.archive.record import DYNAMODB_SOURCE, KINESIS_SOURCE, SEQUENCE_WIDTH, pad_sequence
from archiver.archive.schema import arrow_schema
from archiver.write import ArchiveOptions, Decoded, EncodedFile, dead_letter_files, paused_gc

__all__ = ["Spool"]

_DYNAMODB_WIDTH = SEQUENCE_WIDTH[DYNAMODB_SOURCE]
# A row group of at most this many runs of consecutive rows is made of slices; more (pages of
# several shards interleaving) take a gather. With a slice per run, a flush of 40,000 rows of
# two shards' interleaved pages took 1.0 s, against 0.17 s for one shard's and 0.3 s gathered.
_SLICED_RUNS = 64

# Arrow's IPC stream with each buffer compressed, on the calling thread (a page is small).
_WRITE = pa.ipc.IpcWriteOptions(compression=pa.Codec("zstd", 1), use_threads=False)
_READ = pa.ipc.IpcReadOptions(use_threads=False)
# What orders a page's rows, kept beside its compressed columns (about 90 bytes a row).
_KEYS = pa.schema(
    [
        ("partition", pa.int32()),  # the spool's number for the row's (table, hour)
        ("change_time", pa.int64()),
        ("sequence", pa.string()),  # as it arrived, unpadded
        ("kinesis", pa.bool_()),  # delivered through Kinesis (its sequence is Kinesis's)
        ("event_id", pa.string()),
        ("text", pa.int32()),  # the JSON text the row carries (row groups are cut by it)
        ("position", pa.int64()),
    ]
)


@dataclass(slots=True)
class Spool:
    """Decoded records, each page's columns compressed, and the records that failed to decode.

    Positions count from 0 over everything added, dead records included, as in
    :class:`archiver.write.Decoded`.
    """

    options: ArchiveOptions = field(default_factory=ArchiveOptions)
    count: int = 0  # records added, dead ones included
    rows: int = 0  # records held as columns
    dead: list[tuple[int, Any, RecordError]] = field(default_factory=list)
    oldest_change_us: int | None = None  # the earliest change time among the rows
    held_bytes: int = 0  # the compressed pages and their ordering fields
    _pages: list[bytes] = field(default_factory=list)
    _keys: list[pa.RecordBatch] = field(default_factory=list)
    _partitions: dict[tuple[str, int], int] = field(default_factory=dict)  # (table, hour): number

    def add(
        self,
        raw_records: Sequence[Any],
        shard_ids: Sequence[str | None] | None = None,
        *,
        stream_arn: str | None = None,
    ) -> None:
        """Decode ``raw_records`` (one page, JSON text) after the ones already added.

        All or nothing: if the page cannot be held (an error in Arrow, memory), the spool is
        as it was.
        """
        decoded = Decoded()
        decoded.add(raw_records, self.options, shard_ids, stream_arn=stream_arn)
        records = decoded.records
        if records:
            options = self.options
            with paused_gc():
                schema = arrow_schema(options.promoted)
                page = _compressed(
                    records_table(records, schema, options.promoted, options.plain_images)
                )
                times = [r.change_time_us for r in records]
                partitions = dict(self._partitions)  # kept only once the page is
                numbers = [
                    partitions.setdefault((r.table_name, t - t % US_PER_HOUR), len(partitions))
                    for r, t in zip(records, times, strict=True)
                ]
                keys = pa.RecordBatch.from_pydict(
                    {
                        "partition": numbers,
                        "change_time": times,
                        "sequence": [r.sequence_number for r in records],
                        "kinesis": [r.event_source == KINESIS_SOURCE for r in records],
                        "event_id": [r.event_id for r in records],
                        "text": [text_length(r) for r in records],
                        "position": [self.count + p for p in decoded.positions],
                    },
                    schema=_KEYS,
                )
            self._pages.append(page)  # nothing below can fail
            self._keys.append(keys)
            self._partitions = partitions
            self.rows += len(records)
            self.held_bytes += len(page) + keys.nbytes
            oldest = min(times)
            if self.oldest_change_us is None or oldest < self.oldest_change_us:
                self.oldest_change_us = oldest
        self.dead.extend((self.count + p, raw, err) for p, raw, err in decoded.dead)
        self.count += decoded.count

    def drain(self, origins: Sequence[str] | None = None) -> Iterator[EncodedFile]:
        """Empty the spool at once, and give its files one at a time.

        A Parquet file per partition, then the dead letters. Each page is let go once its
        last row is encoded.
        """
        pages, keys, dead, partitions = self._pages, self._keys, self.dead, self._partitions
        options = self.options
        self._pages, self._keys, self.dead, self._partitions = [], [], [], {}
        self.count = self.rows = self.held_bytes = 0
        self.oldest_change_us = None
        return _files(pages, keys, list(partitions), dead, options, origins)


def _runs(rows: Sequence[int], starts: Sequence[int]) -> list[tuple[int, int, int]]:
    """Rows (numbered across pages) as runs of consecutive rows of one page: (page, first, rows).

    ``starts`` holds each page's first row, and the row after the last page's.
    """
    runs = []
    index = 0
    while index < len(rows):
        row = rows[index]
        page = bisect_right(starts, row) - 1
        end, last = index + 1, starts[page + 1]
        while end < len(rows) and rows[end] == rows[end - 1] + 1 and rows[end] < last:
            end += 1
        runs.append((page, row - starts[page], end - index))
        index = end
    return runs


def _taken(tables: dict[int, pa.Table], runs: list[tuple[int, int, int]]) -> pa.Table:
    """The runs' rows of ``tables``, in their order, as one contiguous table.

    Arrow's take, and so its compute module, loaded here only: once loaded it stays in the
    process (about 9 MB), and a poller of one shard never needs it.
    """
    import pyarrow.compute  # noqa: F401  (Table.take uses it)

    offsets, total = {}, 0
    for page, table in tables.items():
        offsets[page] = total
        total += table.num_rows
    indices = pa.array(
        [offsets[page] + first + k for page, first, rows in runs for k in range(rows)], pa.int64()
    )
    taken: pa.Table = pa.concat_tables(tables.values()).take(indices)
    return taken.combine_chunks()


def _compressed(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema, options=_WRITE) as writer:
        writer.write_table(table)
    data: bytes = sink.getvalue().to_pybytes()
    return data


def _opened(page: bytes) -> pa.Table:
    return pa.ipc.open_stream(pa.py_buffer(page), options=_READ).read_all()


@dataclass(frozen=True, slots=True)
class _Batch:
    """One partition's file to be: its rows in archive order (numbered across pages)."""

    partition: Partition
    name: str
    rows: array[int]
    texts: array[int]  # each row's text
    positions: array[int]  # of every record it covers, repeats included
    kinesis: bool


def _files(
    pages: list[bytes],
    keys: list[pa.RecordBatch],
    partitions: list[tuple[str, int]],
    dead: list[tuple[int, Any, RecordError]],
    options: ArchiveOptions,
    origins: Sequence[str] | None,
) -> Iterator[EncodedFile]:
    with paused_gc():
        starts = [0, *accumulate(batch.num_rows for batch in keys)]
        batches = _batches(pa.Table.from_batches(keys, _KEYS), partitions)
        del keys
        left = [0] * len(pages)  # rows still to encode, per page
        for batch in batches:
            for page, _, rows in _runs(batch.rows, starts):
                left[page] += rows
        for page, rows in enumerate(left):
            if not rows:  # every row of it a repeat of a row of another page
                pages[page] = b""
        schema = arrow_schema(options.promoted)
        opened: dict[int, pa.Table] = {}

        def row_group(rows: Sequence[int]) -> pa.Table:
            runs = _runs(rows, starts)
            for page, _, _ in runs:
                if page not in opened:
                    opened[page] = _opened(pages[page])
                    pages[page] = b""
            if len(runs) <= _SLICED_RUNS:
                # Runs of consecutive rows of one page (one shard's, in order): a slice each,
                # made contiguous once.
                pieces = [opened[page].slice(first, count) for page, first, count in runs]
                table = pa.concat_tables(pieces).combine_chunks()
            else:
                # Rows of pages that interleave (several shards' at once): one take over them.
                table = _taken({page: opened[page] for page, _, _ in runs}, runs)
            for page, _, count in runs:
                left[page] -= count
                if not left[page]:
                    del opened[page]
            return table

        def row_groups(batch: _Batch) -> Iterator[pa.Table]:
            start = 0
            while start < len(batch.rows):
                stop = start + row_group_rows(batch.texts[start : start + ROW_GROUP_ROWS])
                yield row_group(batch.rows[start:stop])
                start = stop

        batches.reverse()  # popped from the end: each batch is let go once encoded
        while batches:
            batch = batches.pop()
            data = write_row_groups(row_groups(batch), schema, kinesis=batch.kinesis)
            key = batch.partition.key(batch.name)
            yield EncodedFile(key, data, batch.positions, len(batch.rows))
            del batch
    if dead:
        yield from dead_letter_files(dead, options, origins)


def _batches(keys: pa.Table, partitions: list[tuple[str, int]]) -> list[_Batch]:
    """Each partition's rows in archive order, as make_batches orders records.

    Grouped by table and hour; each group sorted stably, in the order its rows arrived, by
    sequence number padded to its source's width (text order is numeric order), and, in a
    partition that holds Kinesis records, by change time before that
    (archiver.archive.codec.order_rows orders so on read). Of rows with the same event id,
    the first in that order is kept. In Python, not Arrow's compute functions: their
    module and kernels would stay in the poller's memory for good, some 9 MB (see _taken).
    """
    column = keys.column
    groups: list[list[int]] = [[] for _ in partitions]
    for index, number in enumerate(column("partition").to_pylist()):
        groups[number].append(index)
    sequences, event_ids = column("sequence").to_pylist(), column("event_id").to_pylist()
    kinesis_rows = column("kinesis").to_pylist()
    texts, positions = column("text").to_pylist(), column("position").to_pylist()
    times: list[int] = []  # change times, read only for a partition that holds Kinesis rows
    batches = []
    for number in sorted(range(len(partitions)), key=partitions.__getitem__):
        members = groups[number]
        kinesis = any(kinesis_rows[i] for i in members)
        if kinesis:
            times = times or column("change_time").to_pylist()
            order = sorted(
                members,
                key=lambda i: (
                    times[i],
                    pad_sequence(
                        sequences[i], KINESIS_SOURCE if kinesis_rows[i] else DYNAMODB_SOURCE
                    ),
                ),
            )
        else:
            order = sorted(members, key=lambda i: sequences[i].rjust(_DYNAMODB_WIDTH, "0"))
        seen: set[str] = set()
        kept = array("i")
        for i in order:
            if event_ids[i] not in seen:
                seen.add(event_ids[i])
                kept.append(i)
        del seen, order
        name = ids_name([event_ids[i] for i in kept], sequences[kept[0]], sequences[kept[-1]])
        batches.append(
            _Batch(
                Partition(*partitions[number]),
                name,
                kept,
                array("i", [texts[i] for i in kept]),
                array("q", [positions[i] for i in members]),
                kinesis,
            )
        )
    return batches
