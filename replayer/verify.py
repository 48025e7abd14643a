"""Verifying an archive: its files in, a per-table report of what is there and what is wrong.

Per table: files, bytes, rows, distinct events, duplicates, time range,
schema versions, unreadable files. For poller-written data (rows with a
``shard_id``), per shard: sequence numbers strictly increasing inside each
file, one event per sequence number across files (overlapping files from a
restart hold the same records and are only duplicates), and, against the
poller's checkpoints, no position ahead of the archived data and no range
recorded as lost. Checks one hour partition at a time, the files after it
fetched ahead (``archiver.archive.fetch``).
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import closing
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from archiver.archive.checkpoints import CheckpointFormatError, stream_checkpoints
from archiver.archive.codec import check_columns, check_schema_version, read_columns
from archiver.archive.errors import FormatError
from archiver.archive.fetch import Fetched, decoded_size, fetch_ahead
from archiver.archive.reader import list_partitions, list_tables
from archiver.archive.record import pad_sequence
from archiver.archive.schema import Col
from archiver.archive.store import ArchiveStore, StoredObject

__all__ = ["TableCheck", "VerifyReport", "verify"]

_COLUMNS = [Col.EVENT_ID, Col.SEQUENCE_NUMBER, Col.CHANGE_TIME, Col.SHARD_ID]


@dataclass
class TableCheck:
    table: str
    files: int = 0
    bytes: int = 0
    rows: int = 0
    events: int = 0
    duplicates: int = 0
    first_change_us: int | None = None
    last_change_us: int | None = None
    schema_versions: set[int] = field(default_factory=set)
    shards: dict[str, str] = field(
        default_factory=dict
    )  # shard -> highest archived sequence (padded)
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "files": self.files,
            "bytes": self.bytes,
            "rows": self.rows,
            "events": self.events,
            "duplicates": self.duplicates,
            "first_change_us": self.first_change_us,
            "last_change_us": self.last_change_us,
            "schema_versions": sorted(self.schema_versions),
            "shards": len(self.shards),
            "problems": self.problems,
        }


@dataclass
class VerifyReport:
    tables: list[TableCheck] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # archive-wide (checkpoints)

    @property
    def ok(self) -> bool:
        return not self.problems and not any(t.problems for t in self.tables)


def _read_file(store: ArchiveStore, obj: StoredObject) -> tuple[int, pa.Table | Exception]:
    """One file's schema version, and every column of every page decoded (and its checksum
    checked), or what stopped that: a file that replay or compaction could not read does not
    pass. Runs on a fetch thread (Parquet decodes without the GIL)."""
    name = f"{store.uri}/{obj.key}"
    parquet = pq.ParquetFile(pa.BufferReader(store.get(obj.key)), page_checksum_verification=True)
    schema = parquet.schema_arrow
    version = check_schema_version(schema, name)
    try:
        check_columns(schema, name)
        return version, read_columns(parquet)
    except (FormatError, pa.ArrowInvalid, OSError) as err:
        return version, err  # the version counts even so


def _check_partition(
    store: ArchiveStore,
    fetched: Iterable[Fetched[tuple[int, pa.Table | Exception]]],
    check: TableCheck,
) -> None:
    """Check one partition's files, from their reads (every one is used, whatever fails)."""
    seen: dict[str, str] = {}  # padded sequence of a shard row -> event id
    ids: set[str] = set()
    for item in fetched:
        obj = item.obj
        name = f"{store.uri}/{obj.key}"
        try:
            version, table = item.result()
            check.schema_versions.add(version)
            if isinstance(table, Exception):
                raise table
        except FormatError as err:  # its message names the file
            check.problems.append(f"unreadable: {err}")
            continue
        except (pa.ArrowInvalid, OSError) as err:
            check.problems.append(f"unreadable: {name}: not a readable Parquet file ({err})")
            continue
        check.files += 1
        check.bytes += obj.size
        check.rows += table.num_rows
        events = table.column(Col.EVENT_ID).to_pylist()
        check.duplicates += sum(1 for e in events if e in ids)
        ids.update(events)
        times = table.column(Col.CHANGE_TIME).cast(pa.int64()).to_pylist()
        if times:
            low, high = min(times), max(times)
            check.first_change_us = (
                low if check.first_change_us is None else min(check.first_change_us, low)
            )
            check.last_change_us = (
                high if check.last_change_us is None else max(check.last_change_us, high)
            )
        shards = table.column(Col.SHARD_ID).to_pylist()
        sequences = table.column(Col.SEQUENCE_NUMBER).to_pylist()
        last_in_file: dict[str, str] = {}
        for shard, sequence, event in zip(shards, sequences, events, strict=True):
            if shard is None:
                continue
            previous = last_in_file.get(shard)
            if previous is not None and sequence <= previous:
                check.problems.append(
                    f"{name}: shard {shard}: sequence {sequence.lstrip('0')} does not "
                    f"follow {previous.lstrip('0')}"
                )
            last_in_file[shard] = sequence
            other = seen.setdefault(f"{shard}/{sequence}", event)
            if other != event:
                check.problems.append(
                    f"{name}: shard {shard}: sequence {sequence.lstrip('0')} holds two "
                    f"different events ({other}, {event})"
                )
            if sequence > check.shards.get(shard, ""):
                check.shards[shard] = sequence
    check.events += len(ids)


def _check_checkpoints(store: ArchiveStore, report: VerifyReport, table: str | None) -> None:
    archived: dict[str, str] = {}
    for check in report.tables:
        for shard, sequence in check.shards.items():
            archived[shard] = max(archived.get(shard, ""), sequence)
    for key, found in stream_checkpoints(store):
        where = f"{store.uri}/{key}"
        if isinstance(found, CheckpointFormatError):
            report.problems.append(str(found))
            continue
        if table is not None and f":table/{table}/stream/" not in found.stream_arn:
            continue
        for gap in found.gaps:
            report.problems.append(
                f"{where}: records of shard {gap.get('shard')} after sequence "
                f"{gap.get('after_sequence')} were lost ({gap.get('reason')})"
            )
        for shard, position in found.positions.items():
            if pad_sequence(position) > archived.get(shard, ""):
                report.problems.append(
                    f"{where}: shard {shard} is checkpointed at {position}, beyond the "
                    "archived data: records between them are missing"
                )


def verify(store: ArchiveStore, table: str | None = None) -> VerifyReport:
    """Check every table (or one) and the poller checkpoints of the archive."""
    report = VerifyReport()
    for name in [table] if table else list_tables(store):
        check = TableCheck(name)
        partitions = list_partitions(store, name)
        # Every file of the table, in order, fetched and decoded ahead of the partition being
        # checked.
        fetched = fetch_ahead(
            [obj for _, files in partitions for obj in files],
            lambda obj: _read_file(store, obj),
            weight=decoded_size,
        )
        with closing(fetched):
            for _, files in partitions:
                _check_partition(store, islice(fetched, len(files)), check)
        report.tables.append(check)
    _check_checkpoints(store, report, table)
    return report
