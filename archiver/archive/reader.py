"""Reading an archive: a store and a table in, partitions and ordered records out.

Reads go one hour partition at a time, so memory stays bounded by the largest
partition however large the archive is. A window (``since_us``/``until_us``,
inclusive) prunes partitions by their path before any file is opened.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar, cast

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .codec import (
    archive_order,
    check_schema_version,
    order_rows,
    read_archive_file,
    stream_records,
)
from .errors import FormatError
from .keymatch import key_mask
from .layout import Partition, day_prefix, parse_data_key, table_prefix
from .rebuild import REBUILD_COLUMNS, record_texts
from .schema import PARTITION_COLUMNS, Col
from .store import ArchiveStore, StoredObject

__all__ = [
    "ORDER_COLUMNS",
    "REPLAY_COLUMNS",
    "EventFilter",
    "TableSummary",
    "in_slice",
    "iter_events",
    "iter_record_texts",
    "key_hash",
    "list_partitions",
    "list_tables",
    "read_partition",
    "summarize_table",
]

# What ordering and filtering need, whatever else a reader asks for.
ORDER_COLUMNS = [
    Col.EVENT_ID,
    Col.EVENT_NAME,
    Col.EVENT_SOURCE,
    Col.SEQUENCE_NUMBER,
    Col.CHANGE_TIME,
    Col.ITEM_KEY,
]
REPLAY_COLUMNS = [*ORDER_COLUMNS, Col.KEYS, Col.NEW_IMAGE, Col.OLD_IMAGE, Col.ENVELOPE]
# What iter_record_texts keeps of a partition once it is selected: ordering and the rebuild.
_TEXT_COLUMNS = list(
    dict.fromkeys(
        [Col.EVENT_ID, Col.EVENT_SOURCE, Col.SEQUENCE_NUMBER, Col.CHANGE_TIME, *REBUILD_COLUMNS]
    )
)
_PIECE_ROWS = 8192
T = TypeVar("T")


def key_hash(item_key: str) -> int:
    """A stable hash of an item's canonical key: slices and lanes split work by it."""
    return zlib.crc32(item_key.encode())


def in_slice(item_key: str, index: int, count: int) -> bool:
    """Whether an item belongs to slice ``index`` (0-based) of ``count``."""
    return key_hash(item_key) % count == index


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Which changes to read. Times are epoch microseconds, both ends inclusive."""

    since_us: int | None = None
    until_us: int | None = None
    event_names: frozenset[str] | None = None
    # plain JSON, numbers as Decimal (keymatch.parse_key); every attribute given must match
    key: dict[str, str | Decimal] | None = None
    slice: tuple[int, int] | None = None  # (index, count): only items whose key hash falls in it


def list_tables(store: ArchiveStore) -> list[str]:
    """The tables an archive holds data for."""
    prefix = PARTITION_COLUMNS[0] + "="
    return [d[len(prefix) :] for d in store.list_dirs("") if d.startswith(prefix)]


def _day(us: int) -> str:
    return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)).strftime("%Y-%m-%d")


def list_partitions(
    store: ArchiveStore, table: str, since_us: int | None = None, until_us: int | None = None
) -> list[tuple[Partition, list[StoredObject]]]:
    """The table's partitions that can hold changes in the window, oldest first, with their files."""
    # One listing of the table's days, filtered by the window: cheap however wide it is.
    days = [d[3:] for d in store.list_dirs(table_prefix(table)) if d.startswith("dt=")]
    if since_us is not None:
        days = [d for d in days if d >= _day(since_us)]
    if until_us is not None:
        days = [d for d in days if d <= _day(until_us)]
    grouped: dict[Partition, list[StoredObject]] = {}
    for day in days:
        for obj in store.list(day_prefix(table, day)):
            parsed = parse_data_key(obj.key)
            if parsed is None:
                continue
            partition = parsed[0]
            end_us = partition.hour_start_us + 3_600_000_000 - 1
            if since_us is not None and end_us < since_us:
                continue
            if until_us is not None and partition.hour_start_us > until_us:
                continue
            grouped.setdefault(partition, []).append(obj)
    return sorted(grouped.items())


def read_partition(
    store: ArchiveStore,
    files: Iterable[StoredObject],
    flt: EventFilter = EventFilter(),
    columns: Iterable[str] = REPLAY_COLUMNS,
) -> pa.Table:
    """One partition's changes that pass ``flt``: ordered, each event id once.

    ``columns`` names what to read besides the columns ordering needs.
    """
    return order_rows(_selected(store, files, flt, columns))


def _selected(
    store: ArchiveStore, files: Iterable[StoredObject], flt: EventFilter, columns: Iterable[str]
) -> pa.Table:
    """One partition's changes that pass ``flt``, in file order (not yet ordered)."""
    wanted = list(dict.fromkeys([*ORDER_COLUMNS, *columns]))
    tables = []
    for obj in files:
        with store.open(obj.key) as handle:
            tables.append(read_archive_file(handle, f"{store.uri}/{obj.key}", wanted))
    if not tables:
        return pa.table({})
    table = pa.concat_tables(tables)
    mask = None
    times = table.column(Col.CHANGE_TIME)
    if flt.since_us is not None:
        mask = _and(mask, pc.greater_equal(times, pa.scalar(flt.since_us, times.type)))
    if flt.until_us is not None:
        mask = _and(mask, pc.less_equal(times, pa.scalar(flt.until_us, times.type)))
    if flt.event_names is not None:
        mask = _and(mask, pc.is_in(table.column(Col.EVENT_NAME), pa.array(sorted(flt.event_names))))
    if mask is not None:
        table = table.filter(mask)
    if flt.key is not None:
        table = table.filter(key_mask(table.column(Col.ITEM_KEY), flt.key))
    if flt.slice is not None:
        index, count = flt.slice
        keys = table.column(Col.ITEM_KEY).to_pylist()
        table = table.filter(pa.array([in_slice(k, index, count) for k in keys], pa.bool_()))
    return table


def _and(mask: Any, other: Any) -> Any:
    return other if mask is None else pc.and_(mask, other)


def iter_events(
    store: ArchiveStore, table: str, flt: EventFilter = EventFilter()
) -> Iterator[dict[str, Any]]:
    """The table's stream records in archive order, each exactly as it arrived."""
    for _, files in list_partitions(store, table, flt.since_us, flt.until_us):
        yield from stream_records(read_partition(store, files, flt))


def iter_record_texts(
    store: ArchiveStore, table: str, flt: EventFilter = EventFilter(), suffix: str = ""
) -> Iterator[pa.ChunkedArray]:
    """The table's stream records as JSON text, in archive order, a few thousand at a time.

    The records of :func:`iter_events` as the text that arrived, assembled from
    the stored text without parsing it (see :func:`~.rebuild.record_texts`,
    which ends each with ``suffix``). Only the columns the rebuild needs are
    kept once a partition is selected, each piece's text can be written and
    freed before the next is made, and the next partition is read on a thread
    of its own meanwhile (Arrow and Parquet release the GIL): at most two
    partitions are in memory.
    """
    for rows in _read_ahead(_ordered_partitions(store, table, flt)):
        for start in range(0, rows.num_rows, _PIECE_ROWS):
            yield record_texts(rows.slice(start, _PIECE_ROWS), suffix)


def _ordered_partitions(store: ArchiveStore, table: str, flt: EventFilter) -> Iterator[pa.Table]:
    """Each partition's selected rows in archive order, with the columns the rebuild needs."""
    for _, files in list_partitions(store, table, flt.since_us, flt.until_us):
        rows = _selected(store, files, flt, REBUILD_COLUMNS).select(_TEXT_COLUMNS)
        if rows.num_rows:
            # One take of the whole partition: taking pieces of a chunked table would
            # concatenate its chunks again for every piece.
            yield rows.take(archive_order(rows))


_END = object()


def _read_ahead(items: Iterator[T]) -> Iterator[T]:
    """``items`` in order, each next one made on a thread while the caller uses this one.

    An error making an item is raised when the caller reaches that item.
    """
    with ThreadPoolExecutor(1, thread_name_prefix="read-ahead") as pool:
        pending = pool.submit(next, items, _END)
        while (item := pending.result()) is not _END:
            pending = pool.submit(next, items, _END)
            yield cast(T, item)


@dataclass(frozen=True, slots=True)
class TableSummary:
    table: str
    rows: int
    files: int
    bytes: int
    first_change_us: int | None
    last_change_us: int | None


def summarize_table(store: ArchiveStore, table: str) -> TableSummary:
    """Counts and time range of one table, from file footers only (no data pages read)."""
    rows = files = size = 0
    first: int | None = None
    last: int | None = None
    for _, objects in list_partitions(store, table):
        for obj in objects:
            name = f"{store.uri}/{obj.key}"
            with store.open(obj.key) as handle:
                try:
                    meta = pq.read_metadata(handle)
                except (pa.ArrowInvalid, OSError) as err:
                    raise FormatError(f"{name}: not a readable Parquet file ({err})") from None
            check_schema_version(meta.schema.to_arrow_schema(), name)
            files += 1
            size += obj.size
            rows += meta.num_rows
            index = meta.schema.to_arrow_schema().get_field_index(Col.CHANGE_TIME)
            for i in range(meta.num_row_groups):
                stats = meta.row_group(i).column(index).statistics
                if stats is None or not stats.has_min_max:
                    continue
                low, high = _as_us(stats.min), _as_us(stats.max)
                first = low if first is None else min(first, low)
                last = high if last is None else max(last, high)
    return TableSummary(table, rows, files, size, first, last)


def _as_us(value: Any) -> int:
    if isinstance(value, datetime):
        delta = value.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
        return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    return int(value)
