"""Verifying an archive: its files in, a per-table report of what is there and what is wrong.

Per table: files, bytes, rows, distinct events, duplicates, time range,
schema versions, unreadable files. For poller-written data (rows with a
``shard_id``), per shard: sequence numbers strictly increasing inside each
file, one event per sequence number across files (overlapping files from a
restart hold the same records and are only duplicates), and, against the
poller's checkpoints, no position ahead of the archived data and no range
recorded as lost. Reads one hour partition at a time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from archiver.archive.codec import check_columns, check_schema_version
from archiver.archive.errors import FormatError
from archiver.archive.reader import list_partitions, list_tables
from archiver.archive.record import pad_sequence
from archiver.archive.schema import Col
from archiver.archive.store import ArchiveStore

__all__ = ["TableCheck", "VerifyReport", "verify"]

CHECKPOINT_PREFIX = "_checkpoints/"
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


def _check_partition(store: ArchiveStore, files: list[Any], check: TableCheck) -> None:
    seen: dict[str, str] = {}  # padded sequence of a shard row -> event id
    ids: set[str] = set()
    for obj in files:
        name = f"{store.uri}/{obj.key}"
        try:
            with store.open(obj.key) as handle:
                parquet = pq.ParquetFile(handle, page_checksum_verification=True)
                check.schema_versions.add(check_schema_version(parquet.schema_arrow, name))
                check_columns(parquet.schema_arrow, name)
                # Every column of every page is decoded (and its checksum checked): a file
                # that replay or compaction could not read does not pass.
                table = parquet.read()
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
    for obj in store.list(CHECKPOINT_PREFIX):
        where = f"{store.uri}/{obj.key}"
        try:
            data = orjson.loads(store.get(obj.key))
        except (orjson.JSONDecodeError, FileNotFoundError) as err:
            report.problems.append(f"{where}: unreadable checkpoint ({err})")
            continue
        if not isinstance(data, dict):
            report.problems.append(f"{where}: not a poller checkpoint (not a JSON object)")
            continue
        if table is not None and f":table/{table}/stream/" not in str(data.get("stream_arn", "")):
            continue
        for gap in data.get("gaps", []):
            report.problems.append(
                f"{where}: records of shard {gap.get('shard')} after sequence "
                f"{gap.get('after_sequence')} were lost ({gap.get('reason')})"
            )
        for shard, position in (data.get("positions") or {}).items():
            if pad_sequence(str(position)) > archived.get(shard, ""):
                report.problems.append(
                    f"{where}: shard {shard} is checkpointed at {position}, beyond the "
                    "archived data: records between them are missing"
                )


def verify(store: ArchiveStore, table: str | None = None) -> VerifyReport:
    """Check every table (or one) and the poller checkpoints of the archive."""
    report = VerifyReport()
    for name in [table] if table else list_tables(store):
        check = TableCheck(name)
        for _, files in list_partitions(store, name):
            _check_partition(store, files, check)
        report.tables.append(check)
    _check_checkpoints(store, report, table)
    return report
