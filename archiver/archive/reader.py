"""Reading an archive: a store and a table in, partitions and ordered records out.

Reads go one hour partition at a time, so memory stays bounded by the largest
partition however large the archive is. A window (``since_us``/``until_us``,
inclusive) prunes partitions by their path before any file is opened. The
days are listed several at a time, and the files of every selected partition,
in the order they are read, are fetched ahead with bounded concurrency
(:mod:`.fetch`), so many small files, and many small partitions, do not each
wait for the store in turn.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Generator, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import islice
from typing import Any, TypeVar, cast

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from . import fetch
from .codec import (
    archive_order,
    check_schema_version,
    order_rows,
    read_archive_file,
    stream_records,
)
from .errors import FormatError, InvalidNameError
from .fetch import Fetched, decoded_size, fetch_ahead
from .keymatch import key_mask
from .layout import Partition, day_prefix, parse_data_key, table_prefix, validate_table_name
from .rebuild import REBUILD_COLUMNS, record_texts
from .schema import PARTITION_COLUMNS, Col
from .store import ArchiveStore, LocalStore, StoredObject

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
    "read_footer",
    "read_partition",
    "read_partitions",
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
_JOINED_ROWS = 2048  # small partitions joined for the rebuild (see iter_record_texts)
T = TypeVar("T")
log = logging.getLogger(__name__)


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
    """The tables an archive holds data for.

    A ``table_name=`` folder whose name is no DynamoDB table name (nothing the
    archiver writes) is skipped with a warning, so that it does not stop
    readers from reading the tables beside it.
    """
    prefix = PARTITION_COLUMNS[0] + "="
    tables = []
    for folder in store.list_dirs(""):
        if not folder.startswith(prefix):
            continue
        try:
            tables.append(validate_table_name(folder[len(prefix) :]))
        except InvalidNameError:
            log.warning("skipping %s/%s: not a valid table name", store.uri, folder)
    return tables


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
    for listing in _listings(store, [day_prefix(table, day) for day in days]):
        for obj in listing:
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


def _listings(store: ArchiveStore, prefixes: list[str]) -> Iterator[list[StoredObject]]:
    """``store.list`` of each prefix, in order, up to :data:`.fetch.IN_FLIGHT` at once (a year
    of days is 365 listings)."""
    if len(prefixes) <= 1 or isinstance(store, LocalStore):
        # A local folder has no latency to hide: listing threads would only take turns at the
        # GIL (3.5 times slower over 10,000 files in 28 days).
        yield from (list(store.list(prefix)) for prefix in prefixes)
        return
    with ThreadPoolExecutor(min(fetch.IN_FLIGHT, len(prefixes)), thread_name_prefix="list") as pool:
        yield from pool.map(lambda prefix: list(store.list(prefix)), prefixes)


def read_partition(
    store: ArchiveStore,
    files: Iterable[StoredObject],
    flt: EventFilter = EventFilter(),
    columns: Iterable[str] = REPLAY_COLUMNS,
) -> pa.Table:
    """One partition's changes that pass ``flt``: ordered, each event id once.

    ``columns`` names what to read besides the columns ordering needs. The
    partition's files are fetched ahead of one another; to overlap several
    partitions, use :func:`read_partitions`.
    """
    return order_rows(_selected(store, files, flt, columns))


def read_partitions(
    store: ArchiveStore,
    partitions: Sequence[tuple[Partition, list[StoredObject]]],
    flt: EventFilter = EventFilter(),
    columns: Iterable[str] = REPLAY_COLUMNS,
) -> Iterator[tuple[Partition, list[StoredObject], pa.Table]]:
    """Each partition with its files and :func:`read_partition` of them, in the given order.

    The files of the partitions after the one being used are fetched meanwhile
    (see :mod:`.fetch` for the bounds); an error reading a file is raised when
    its partition is reached, after every partition before it was yielded.
    """
    columns = list(columns)
    for partition, files, fetched in _fetched_partitions(store, partitions, columns):
        yield partition, files, order_rows(_selected(store, files, flt, columns, fetched))


def _wanted(columns: Iterable[str]) -> list[str]:
    return list(dict.fromkeys([*ORDER_COLUMNS, *columns]))


def _fetch_files(
    store: ArchiveStore, files: Iterable[StoredObject], columns: Iterable[str]
) -> Generator[Fetched[pa.Table], None, None]:
    """Each file's columns (with those ordering needs), fetched and decoded ahead, in order.

    Decoding happens on the fetch threads too: Parquet decodes without the GIL, and the
    caller's thread is left to filter and order. A decoded file weighs, against the bound
    on what is held ahead, about what its columns take in memory.
    """
    wanted = _wanted(columns)

    def read(obj: StoredObject) -> pa.Table:
        name = f"{store.uri}/{obj.key}"
        return read_archive_file(pa.BufferReader(store.get(obj.key)), name, wanted)

    return fetch_ahead(files, read, weight=decoded_size)


def _fetched_partitions(
    store: ArchiveStore,
    partitions: Sequence[tuple[Partition, list[StoredObject]]],
    columns: Iterable[str],
) -> Iterator[tuple[Partition, list[StoredObject], Iterator[Fetched[pa.Table]]]]:
    """Each partition with the fetches of its files; every file of every partition is fetched
    ahead, in order. Each partition's fetches must be used up before the next is taken."""
    flat = [obj for _, files in partitions for obj in files]
    with closing(_fetch_files(store, flat, columns)) as fetched:
        for partition, files in partitions:
            yield partition, files, islice(fetched, len(files))


def _selected(
    store: ArchiveStore,
    files: Iterable[StoredObject],
    flt: EventFilter,
    columns: Iterable[str],
    fetched: Iterable[Fetched[pa.Table]] | None = None,
) -> pa.Table:
    """One partition's changes that pass ``flt``, in file order (not yet ordered).

    The files come from ``fetched`` (their fetches, in the order of ``files``,
    with ``columns``), else are fetched here. The first file that cannot be
    read stops it, with an error naming the file.
    """
    if fetched is None:
        with closing(_fetch_files(store, files, columns)) as own:
            tables = [item.result() for item in own]
    else:
        tables = [item.result() for item in fetched]
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
    partitions = list_partitions(store, table, flt.since_us, flt.until_us)
    for _, _, rows in read_partitions(store, partitions, flt):
        yield from stream_records(rows)


def iter_record_texts(
    store: ArchiveStore, table: str, flt: EventFilter = EventFilter(), suffix: str = ""
) -> Iterator[pa.ChunkedArray]:
    """The table's stream records as JSON text, in archive order, a few thousand at a time.

    The records of :func:`iter_events` as the text that arrived, assembled from
    the stored text without parsing it (see :func:`~.rebuild.record_texts`,
    which ends each with ``suffix``). Only the columns the rebuild needs are
    kept once a partition is selected, each piece's text can be written and
    freed before the next is made, and the next partition is read on a thread
    of its own meanwhile (Arrow and Parquet release the GIL), its files and
    those of the partitions after it fetched ahead (:mod:`.fetch`): at most
    two partitions are in memory (or small ones, joined until they hold
    2,048 rows), and the bytes fetched ahead.
    """
    # Partitions of a few hundred rows (the sink's, before compaction) are joined until they
    # hold _JOINED_ROWS: the rebuild costs some thirty Arrow calls a piece, whatever its rows,
    # and 800 files in 52 partitions spent a quarter of their replay in them.
    held: list[pa.Table] = []
    rows_held = 0
    with closing(_read_ahead(_ordered_partitions(store, table, flt))) as partitions:
        while True:
            try:
                rows = next(partitions, None)
            except BaseException:
                # A partition that cannot be read stops the replay after every record before it.
                if held:
                    yield from _pieces(pa.concat_tables(held), suffix)
                raise
            if rows is None:
                break
            held.append(rows)
            rows_held += rows.num_rows
            if rows_held >= _JOINED_ROWS:
                yield from _pieces(pa.concat_tables(held), suffix)
                held, rows_held = [], 0
    if held:
        yield from _pieces(pa.concat_tables(held), suffix)


def _pieces(rows: pa.Table, suffix: str) -> Iterator[pa.ChunkedArray]:
    for start in range(0, rows.num_rows, _PIECE_ROWS):
        yield record_texts(rows.slice(start, _PIECE_ROWS), suffix)


def _ordered_partitions(store: ArchiveStore, table: str, flt: EventFilter) -> Iterator[pa.Table]:
    """Each partition's selected rows in archive order, with the columns the rebuild needs."""
    partitions = list_partitions(store, table, flt.since_us, flt.until_us)
    for _, files, fetched in _fetched_partitions(store, partitions, REBUILD_COLUMNS):
        rows = _selected(store, files, flt, REBUILD_COLUMNS, fetched).select(_TEXT_COLUMNS)
        if rows.num_rows:
            # One take of the whole partition: taking pieces of a chunked table would
            # concatenate its chunks again for every piece.
            yield rows.take(archive_order(rows))


_END = object()


def _read_ahead(items: Iterator[T]) -> Generator[T, None, None]:
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
    """Counts and time range of one table, from file footers only (no data pages read).

    The footers are fetched ahead of one another (:mod:`.fetch`).
    """
    rows = files = size = 0
    first: int | None = None
    last: int | None = None
    objects = [obj for _, found in list_partitions(store, table) for obj in found]
    # A footer is a few KB, whatever the file's size: the bound on requests in flight is the one
    # that counts.
    footers = fetch_ahead(objects, lambda obj: read_footer(store, obj)[0], weight=lambda obj: 0)
    with closing(footers):
        for item in footers:
            obj, meta = item.obj, item.result()
            name = f"{store.uri}/{obj.key}"
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


# A file up to this size is fetched whole for its footer: one GET, where opening it asks for
# its size first (a second round trip) and then reads the end.
WHOLE_FILE_FOOTER_BYTES = 1024 * 1024


def read_footer(store: ArchiveStore, obj: StoredObject) -> tuple[pq.FileMetaData, int]:
    """The Parquet footer of ``obj`` and the file's size; FormatError naming it when it is none.

    A small file (every file the sink writes) takes one request; a large one (compacted)
    is opened and only its end is read.
    """
    if obj.size <= WHOLE_FILE_FOOTER_BYTES:
        data = store.get(obj.key)
        return _metadata(pa.BufferReader(data), store, obj), len(data)
    with store.open(obj.key) as handle:
        return _metadata(handle, store, obj), handle.seek(0, 2)


def _metadata(source: Any, store: ArchiveStore, obj: StoredObject) -> pq.FileMetaData:
    try:
        return pq.read_metadata(source)
    except (pa.ArrowInvalid, OSError) as err:
        name = f"{store.uri}/{obj.key}"
        raise FormatError(f"{name}: not a readable Parquet file ({err})") from None


def _as_us(value: Any) -> int:
    if isinstance(value, datetime):
        delta = value.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
        return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    return int(value)
