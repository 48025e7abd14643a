"""Parquet codec: sorted ChangeRecords in, archive file bytes out, and back.

Encoding is deterministic: the same records and options give the same bytes
(no clock, no random values, no writer-dependent metadata beyond the library
version). Decoding checks the schema version before it reads a row, and turns
rows back into the stream records exactly as they arrived.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterable, Iterator, Sequence
from itertools import accumulate, islice
from typing import IO, Any, cast

import msgspec
import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from .dynamojson import plain_json
from .errors import FormatError, SchemaVersionError
from .layout import object_name
from .record import KINESIS_SOURCE, SEQUENCE_WIDTH, ChangeRecord
from .schema import (
    BASE_COLUMN_NAMES,
    COLUMNS,
    METADATA_SCHEMA_VERSION,
    SCHEMA_VERSION,
    Col,
    PromotedColumn,
    arrow_schema,
)

__all__ = [
    "archive_order",
    "batch_name",
    "encode_records",
    "ids_name",
    "item_key",
    "order_rows",
    "read_archive_file",
    "read_columns",
    "records_table",
    "row_group_rows",
    "stream_records",
    "table_name",
    "text_length",
    "use_system_allocator",
    "write_parquet",
    "write_row_groups",
]

_DICTIONARY_COLUMNS = [
    Col.EVENT_NAME,
    Col.EVENT_SOURCE,
    Col.STREAM_ARN,
    Col.STREAM_VIEW_TYPE,
    Col.AWS_REGION,
    Col.SHARD_ID,
]
_STATISTICS_COLUMNS = [
    Col.EVENT_NAME,
    Col.SEQUENCE_NUMBER,
    Col.CHANGE_TIME,
    Col.SIZE_BYTES,
    Col.TTL_DELETE,
]
# Rows per row group: a poller's flush or a compaction encodes and writes one at a time.
ROW_GROUP_ROWS = 10_000
# The poller's flush (archiver.spool) also closes a row group at this much text: each row
# group's Arrow copy exists beside the buffer still held, so the group's size, not the
# flush's, sets the peak.
SPOOLED_ROW_GROUP_TEXT = 2 * 1024 * 1024
# A file of more than this much data (uncompressed) is decoded on Arrow's threads.
THREADED_READ_BYTES = 8 * 1024 * 1024


def use_system_allocator() -> None:
    """Arrow's memory from the C library's allocator, which gives back what a flush freed.

    Arrow's default allocator (mimalloc) keeps the pages of every freed buffer
    for reuse. In a process that writes large batches now and then, that is
    memory held for nothing: a poller's flush of 77 MB of records peaked 130 MB
    above its buffer with mimalloc and 107 MB with the C library's allocator;
    ``archiver ingest`` of a 107 MB file peaked at 354 MB and 292 MB, no slower
    (measured). The CLI and the poller call this; the Lambda sink keeps mimalloc,
    whose pages each invocation reuses at no cost.
    """
    pa.set_memory_pool(pa.system_memory_pool())


def batch_name(records: Sequence[ChangeRecord]) -> str:
    """The deterministic file name of a sorted batch: first, last, digest of its event ids."""
    event_ids = [record.event_id for record in records]
    return ids_name(event_ids, records[0].sequence_number, records[-1].sequence_number)


def ids_name(event_ids: Sequence[str], first: str, last: str) -> str:
    """A file's name from its event ids in order and its first and last sequence numbers."""
    # Each event id and a NUL, hashed in one call (the same bytes as one update per id).
    ids = "\x00".join(event_ids) + "\x00"
    digest = hashlib.blake2b(ids.encode(), digest_size=8)
    return object_name(first, last, digest.hexdigest())


def item_key(keys: dict[str, Any]) -> bytes:
    """An item's key as canonical typed JSON: the same bytes for every change of one item."""
    return orjson.dumps(keys, option=orjson.OPT_SORT_KEYS)


def encode_records(
    records: Sequence[ChangeRecord],
    promoted: tuple[PromotedColumn, ...] = (),
    plain_images: bool = False,
) -> bytes:
    """Encode records (already sorted and free of duplicates) as a zstd Parquet file.

    Parameters
    ----------
    records
        One partition's records in archive order (see :func:`order_rows`).
    promoted
        Extra typed columns to fill from each record's image.
    plain_images
        Also write ``new_image_plain``/``old_image_plain`` (a second pass over
        every image; off by default).

    Returns
    -------
    bytes
        The Parquet file.
    """
    kinesis = any(r.event_source == KINESIS_SOURCE for r in records)
    schema = arrow_schema(promoted)
    # A row group at a time: the Arrow copy of a large batch never exists whole beside the
    # records it comes from.
    groups = (
        records_table(records[start : start + ROW_GROUP_ROWS], schema, promoted, plain_images)
        for start in range(0, len(records), ROW_GROUP_ROWS)
    )
    return write_row_groups(groups, schema, kinesis=kinesis)


def write_row_groups(tables: Iterable[pa.Table], schema: pa.Schema, *, kinesis: bool) -> bytes:
    """Archive tables (rows in archive order), each one row group, as one zstd Parquet file."""
    # Arrow's allocator keeps what a row group freed unless asked: without a release between
    # row groups, a flush held twice the memory it needs. (Not after the last: a Lambda
    # invocation, one row group, would pay ~30 ms of page faults on the next one to get the
    # memory back.)
    pool = pa.default_memory_pool()
    out = io.BytesIO()
    with _writer(pa.PythonFile(out, mode="w"), schema, kinesis=kinesis) as writer:
        for index, table in enumerate(tables):
            if index:
                pool.release_unused()
            writer.write_table(table)
    return _written(out)


def _written(out: io.BytesIO) -> bytes:
    """The bytes a Parquet writer wrote into ``out``, without a copy.

    Arrow's own output stream would hand them over as a buffer that Python copies into
    bytes: the file twice over in memory for a moment (a poller's flush writes one file of
    everything it buffered for a partition; a compaction, 128 MiB). A BytesIO gives its
    bytes as they are.
    """
    data: bytes = out.getvalue()
    return data


def row_group_rows(text_lengths: Iterable[int]) -> int:
    """How many of the next rows (by their text's length) make a row group of a spooled flush.

    ROW_GROUP_ROWS, or fewer once they hold SPOOLED_ROW_GROUP_TEXT bytes of text.
    """
    total = rows = 0
    for length in islice(text_lengths, ROW_GROUP_ROWS):
        rows += 1
        total += length
        if total >= SPOOLED_ROW_GROUP_TEXT:
            break
    return rows


def text_length(record: ChangeRecord) -> int:
    """The JSON text a record carries into the archive, as row groups are sized by it."""
    return len(record.envelope) + len(record.new_image or b"") + len(record.old_image or b"")


def records_table(
    records: Sequence[ChangeRecord],
    schema: pa.Schema,
    promoted: tuple[PromotedColumn, ...],
    plain_images: bool,
) -> pa.Table:
    """The archive's columns of ``records``, in their order, as one Arrow table of ``schema``."""
    # One pass per column: a comprehension costs a fraction of an append per field.
    sources = [r.event_source for r in records]
    widths = {source: SEQUENCE_WIDTH[source] for source in set(sources)}
    if plain_images:
        new_plain = [_plain(r.new_image) for r in records]
        old_plain = [_plain(r.old_image) for r in records]
    else:
        new_plain = old_plain = [None] * len(records)
    columns: dict[str, list[Any]] = {
        Col.EVENT_ID: [r.event_id for r in records],
        Col.EVENT_NAME: [r.event_name for r in records],  # a StrEnum: its value is itself
        Col.EVENT_SOURCE: sources,
        Col.SEQUENCE_NUMBER: [
            r.sequence_number.rjust(widths[r.event_source], "0") for r in records
        ],
        Col.CHANGE_TIME: [r.change_time_us for r in records],
        Col.STREAM_ARN: [r.stream_arn for r in records],
        Col.STREAM_VIEW_TYPE: [r.view_type for r in records],
        Col.SIZE_BYTES: [r.size_bytes for r in records],
        Col.AWS_REGION: [r.aws_region for r in records],
        Col.USER_IDENTITY: [r.user_identity for r in records],
        Col.TTL_DELETE: [r.ttl_delete for r in records],
        Col.SHARD_ID: [r.shard_id for r in records],
        Col.KEYS: [r.keys for r in records],
        Col.KEYS_PLAIN: [r.keys_plain for r in records],
        Col.ITEM_KEY: [r.item_key for r in records],
        Col.NEW_IMAGE: [r.new_image for r in records],
        Col.OLD_IMAGE: [r.old_image for r in records],
        Col.NEW_IMAGE_PLAIN: new_plain,
        Col.OLD_IMAGE_PLAIN: old_plain,
        Col.ENVELOPE: [r.envelope for r in records],
    }
    if promoted:
        # Images stay text on the hot path; promoted columns (opt-in) parse each record's once.
        promoted_values: list[list[Any]] = [[] for _ in promoted]
        for r in records:
            images = [orjson.loads(t) for t in (r.new_image, r.old_image, r.keys) if t is not None]
            for col, out in zip(promoted, promoted_values, strict=True):
                found = next((i[col.attribute] for i in images if col.attribute in i), None)
                out.append(col.value(found))
        for col, out in zip(promoted, promoted_values, strict=True):
            columns[col.column] = out
    return pa.Table.from_arrays(
        [
            _text_array(columns[field.name])
            if field.name in _JSON_TEXT_COLUMNS
            else pa.array(columns[field.name], type=field.type)
            for field in schema
        ],
        schema=schema,
    )


# Columns that hold the JSON text that arrived (or was made from it), as UTF-8 bytes.
_JSON_TEXT_COLUMNS = frozenset(
    {Col.KEYS, Col.KEYS_PLAIN, Col.ITEM_KEY, Col.NEW_IMAGE, Col.OLD_IMAGE, Col.ENVELOPE}
)


def _text_array(values: list[bytes | None]) -> pa.Array | pa.ChunkedArray:
    """UTF-8 bytes as a string array: joined into one buffer, then checked as UTF-8 in one pass.

    Arrow converts bytes to a string array a value at a time, and its builder grows by
    doubling; the values joined once, with their offsets, make the same array in a third of
    the time, at its exact size (a buffer the array shares, not a copy). Text that is not
    UTF-8 is refused all the same (ArrowInvalid).
    """
    nulls = values.count(None)
    present = [v for v in values if v is not None] if nulls else cast(list[bytes], values)
    data = b"".join(present)
    if len(data) > _MAX_OFFSET:  # past 2 GiB: Arrow's own conversion, which chunks the array
        return _as_text(pa.array(values, type=pa.binary()))
    lengths = [0 if v is None else len(v) for v in values] if nulls else list(map(len, present))
    offsets = pa.array([0, *accumulate(lengths)], pa.int32()).buffers()[1]
    validity = pa.array([v is not None for v in values]).buffers()[1] if nulls else None
    binary = pa.Array.from_buffers(
        pa.binary(), len(values), [validity, offsets, pa.py_buffer(data)], null_count=nulls
    )
    return _as_text(binary)


_MAX_OFFSET = 2**31 - 1


def _as_text(array: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """Binary as string, checked as UTF-8 (ArrowInvalid if it is not).

    Past 2 GiB in one column (10,000 rows of large items), Arrow gives the binary in
    chunks, and a chunked array has no view: each chunk is viewed on its own.
    """
    if isinstance(array, pa.ChunkedArray):
        return pa.chunked_array([_as_text(chunk) for chunk in array.chunks], pa.string())
    text = array.view(pa.string())
    text.validate(full=True)
    return text


def _writer(sink: Any, schema: pa.Schema, *, kinesis: bool) -> pq.ParquetWriter:
    sorting = [Col.CHANGE_TIME, Col.SEQUENCE_NUMBER] if kinesis else [Col.SEQUENCE_NUMBER]
    base = set(BASE_COLUMN_NAMES)
    return pq.ParquetWriter(
        sink,
        schema,
        compression="zstd",
        use_dictionary=_DICTIONARY_COLUMNS,
        write_statistics=_STATISTICS_COLUMNS + [n for n in schema.names if n not in base],
        sorting_columns=[pq.SortingColumn(schema.get_field_index(name)) for name in sorting],
        # A CRC32 on every page: a flipped bit is a read error naming the file, not other data.
        write_page_checksum=True,
    )


def write_parquet(table: pa.Table, *, kinesis: bool) -> bytes:
    """An archive table (schema and metadata already set, rows in archive order) as Parquet bytes."""
    groups = (
        table.slice(start, ROW_GROUP_ROWS) for start in range(0, table.num_rows, ROW_GROUP_ROWS)
    )
    return write_row_groups(groups, table.schema, kinesis=kinesis)


def table_name(table: pa.Table) -> str:
    """The deterministic file name of an ordered archive table (as batch_name for records)."""
    sequences = table.column(Col.SEQUENCE_NUMBER)
    first, last = sequences[0].as_py().lstrip("0") or "0", sequences[-1].as_py().lstrip("0") or "0"
    return ids_name(table.column(Col.EVENT_ID).to_pylist(), first, last)


def _plain(image: bytes | None) -> str | None:
    return None if image is None else plain_json(orjson.loads(image))


def read_archive_file(
    source: str | IO[bytes], name: str, columns: list[str] | None = None
) -> pa.Table:
    """Read one archive file after checking that it is one, of a version we know.

    Raises
    ------
    FormatError
        When ``name`` is not a Parquet file or not an archive file.
    SchemaVersionError
        When ``name`` was written by a newer schema version.
    """
    try:
        # Pages written with a checksum are checked as they are read (older files have none).
        parquet = pq.ParquetFile(source, page_checksum_verification=True)
    except (pa.ArrowInvalid, OSError) as err:
        raise FormatError(f"{name}: not a readable Parquet file ({err})") from None
    schema = parquet.schema_arrow
    check_schema_version(schema, name)
    check_columns(schema, name)
    try:
        return read_columns(parquet, columns)
    except (pa.ArrowInvalid, OSError) as err:
        raise FormatError(f"{name}: unreadable ({err})") from None


def read_columns(parquet: pq.ParquetFile, columns: list[str] | None = None) -> pa.Table:
    """``columns`` (all by default) of an open Parquet file, on Arrow's threads if it is large.

    A small file (a Lambda batch) decodes faster on the calling thread: Arrow's pool costs
    more to dispatch its few pages than they take (0.65 ms against 0.85 ms a file of 8
    records), and the replayer decodes files on many fetch threads at once.
    """
    meta = parquet.metadata
    size = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    return parquet.read(columns=columns, use_threads=size > THREADED_READ_BYTES)


_BASE_TYPES = {name: kind for name, kind, _, _ in COLUMNS}


def check_columns(schema: pa.Schema, name: str) -> None:
    """FormatError naming the file unless it holds every column of the schema, of its type.

    The footer (where column names and types live) carries no checksum: a
    damaged one must not make a column quietly disappear or change its type.
    """
    types = dict(zip(schema.names, schema.types, strict=True))
    missing = [column for column in _BASE_TYPES if column not in types]
    if missing:
        raise FormatError(f"{name}: not an archive file of its version: no {', '.join(missing)}")
    for column, kind in _BASE_TYPES.items():
        if types[column] != kind:
            raise FormatError(f"{name}: column {column} is {types[column]}, expected {kind}")


def check_schema_version(schema: pa.Schema, name: str) -> int:
    """The file's schema version, or FormatError/SchemaVersionError naming the file."""
    raw = (schema.metadata or {}).get(METADATA_SCHEMA_VERSION)
    if raw is None:
        raise FormatError(
            f"{name}: not an archive file (no {METADATA_SCHEMA_VERSION.decode()} metadata)"
        )
    try:
        version = int(raw)
    except ValueError:
        raise FormatError(
            f"{name}: unknown schema version {raw.decode(errors='replace')!r}"
        ) from None
    if version > SCHEMA_VERSION:
        raise SchemaVersionError(
            f"{name}: written with archive schema version {version}; this version reads up to "
            f"{SCHEMA_VERSION}. Upgrade dynamodb-stream-archive to read it."
        )
    if version < 1:
        raise FormatError(f"{name}: unknown schema version {version}")
    return version


def order_rows(table: pa.Table) -> pa.Table:
    """One partition's rows in archive order, each event id once.

    DynamoDB Streams changes sort by sequence number; Kinesis-delivered changes
    carry no DynamoDB sequence number and sort by change time, then the Kinesis
    sequence number.
    """
    if table.num_rows == 0:
        return table
    return table.take(archive_order(table))


def archive_order(table: pa.Table) -> pa.Array:
    """Which rows :func:`order_rows` keeps, in its order: indices into ``table``.

    A reader can then take the rows a few thousand at a time, instead of
    copying the whole partition in order first.
    """
    import pyarrow.compute as pc  # here, not at import: the Lambda sink never reads (cold starts)

    kinesis = pc.any(pc.equal(table.column(Col.EVENT_SOURCE), KINESIS_SOURCE)).as_py()
    keys = [(Col.CHANGE_TIME, "ascending")] if kinesis else []
    keys.append((Col.SEQUENCE_NUMBER, "ascending"))
    order = pc.sort_indices(table, sort_keys=keys)
    ids = table.column(Col.EVENT_ID)
    if pc.count_distinct(ids).as_py() == len(ids):
        return order
    seen: set[str] = set()
    keep = []
    for event_id in pc.take(ids, order).to_pylist():
        keep.append(event_id not in seen)
        seen.add(event_id)
    return pc.filter(order, pa.array(keep))


def stream_records(table: pa.Table) -> Iterator[dict[str, Any]]:
    """Rebuild each row's stream record exactly as it arrived, as a dict.

    The records are parsed from :func:`archiver.archive.rebuild.record_texts`:
    one rebuild rule for the text and the dicts.
    """
    from .rebuild import record_texts  # rebuild reads the columns this module writes

    # msgspec, not orjson: an integer of any size comes back as exactly that integer
    # (images archived under the light check may hold one where DynamoDB JSON has text).
    loads = msgspec.json.decode
    for text in record_texts(table).to_pylist():
        yield loads(text)
