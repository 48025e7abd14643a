"""Parquet codec: sorted ChangeRecords in, archive file bytes out, and back.

Encoding is deterministic: the same records and options give the same bytes
(no clock, no random values, no writer-dependent metadata beyond the library
version). Decoding checks the schema version before it reads a row, and turns
rows back into the stream records exactly as they arrived.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator, Sequence
from typing import IO, Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from .dynamojson import plain_json
from .errors import FormatError, SchemaVersionError
from .layout import object_name
from .record import KINESIS_SOURCE, ChangeRecord, pad_sequence
from .schema import (
    BASE_COLUMN_NAMES,
    METADATA_SCHEMA_VERSION,
    SCHEMA_VERSION,
    Col,
    PromotedColumn,
    arrow_schema,
)

__all__ = [
    "batch_name",
    "encode_records",
    "item_key",
    "order_rows",
    "read_archive_file",
    "stream_records",
    "table_name",
    "write_parquet",
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
_IMAGE_KEYS = ("Keys", "NewImage", "OldImage")


def batch_name(records: Sequence[ChangeRecord]) -> str:
    """The deterministic file name of a sorted batch: first, last, digest of its event ids."""
    digest = hashlib.blake2b(digest_size=8)
    for record in records:
        digest.update(record.event_id.encode())
        digest.update(b"\x00")
    return object_name(records[0].sequence_number, records[-1].sequence_number, digest.hexdigest())


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
    dumps = orjson.dumps
    sort_keys = orjson.OPT_SORT_KEYS
    event_ids, names, sources, sequences, times = [], [], [], [], []
    arns, views, sizes, regions, ttl, shards = [], [], [], [], [], []
    identities: list[str | None] = []
    keys, keys_plain, item_keys, new_images, old_images, envelopes = [], [], [], [], [], []
    for r in records:
        event_ids.append(r.event_id)
        names.append(r.event_name.value)
        sources.append(r.event_source)
        sequences.append(pad_sequence(r.sequence_number, r.event_source))
        times.append(r.change_time_us)
        arns.append(r.stream_arn)
        views.append(r.view_type)
        sizes.append(r.size_bytes)
        regions.append(r.aws_region)
        shards.append(r.shard_id)
        if r.user_identity is None:
            identities.append(None)
            ttl.append(False)
        else:
            identities.append(dumps(r.user_identity).decode())
            ttl.append(r.is_ttl_delete)
        # str, not bytes: orjson's bytes keep their whole (4 KB or larger) buffer alive until
        # Arrow copies them, which multiplies a batch's memory and page faults.
        keys.append(dumps(r.keys).decode())
        keys_plain.append(plain_json(r.keys))
        item_keys.append(dumps(r.keys, option=sort_keys).decode())
        new_images.append(None if r.new_image is None else dumps(r.new_image).decode())
        old_images.append(None if r.old_image is None else dumps(r.old_image).decode())
        envelopes.append(dumps(r.envelope).decode())
    if plain_images:
        new_plain = [None if r.new_image is None else plain_json(r.new_image) for r in records]
        old_plain = [None if r.old_image is None else plain_json(r.old_image) for r in records]
    else:
        new_plain = old_plain = [None] * len(records)
    columns: dict[str, list[Any]] = {
        Col.EVENT_ID: event_ids,
        Col.EVENT_NAME: names,
        Col.EVENT_SOURCE: sources,
        Col.SEQUENCE_NUMBER: sequences,
        Col.CHANGE_TIME: times,
        Col.STREAM_ARN: arns,
        Col.STREAM_VIEW_TYPE: views,
        Col.SIZE_BYTES: sizes,
        Col.AWS_REGION: regions,
        Col.USER_IDENTITY: identities,
        Col.TTL_DELETE: ttl,
        Col.SHARD_ID: shards,
        Col.KEYS: keys,
        Col.KEYS_PLAIN: keys_plain,
        Col.ITEM_KEY: item_keys,
        Col.NEW_IMAGE: new_images,
        Col.OLD_IMAGE: old_images,
        Col.NEW_IMAGE_PLAIN: new_plain,
        Col.OLD_IMAGE_PLAIN: old_plain,
        Col.ENVELOPE: envelopes,
    }
    for col in promoted:
        columns[col.column] = [col.value(_attribute(r, col.attribute)) for r in records]
    schema = arrow_schema(promoted)
    table = pa.Table.from_arrays(
        [pa.array(columns[field.name], type=field.type) for field in schema], schema=schema
    )
    return write_parquet(table, kinesis=any(source == KINESIS_SOURCE for source in sources))


def write_parquet(table: pa.Table, *, kinesis: bool) -> bytes:
    """An archive table (schema and metadata already set, rows in archive order) as Parquet bytes."""
    sorting = [Col.CHANGE_TIME, Col.SEQUENCE_NUMBER] if kinesis else [Col.SEQUENCE_NUMBER]
    base = set(BASE_COLUMN_NAMES)
    sink = pa.BufferOutputStream()
    pq.write_table(
        table,
        sink,
        compression="zstd",
        use_dictionary=_DICTIONARY_COLUMNS,
        write_statistics=_STATISTICS_COLUMNS + [n for n in table.column_names if n not in base],
        sorting_columns=[pq.SortingColumn(table.schema.get_field_index(name)) for name in sorting],
    )
    data: bytes = sink.getvalue().to_pybytes()
    return data


def table_name(table: pa.Table) -> str:
    """The deterministic file name of an ordered archive table (as batch_name for records)."""
    digest = hashlib.blake2b(digest_size=8)
    for event_id in table.column(Col.EVENT_ID).to_pylist():
        digest.update(event_id.encode())
        digest.update(b"\x00")
    sequences = table.column(Col.SEQUENCE_NUMBER)
    first, last = sequences[0].as_py().lstrip("0") or "0", sequences[-1].as_py().lstrip("0") or "0"
    return object_name(first, last, digest.hexdigest())


def _attribute(record: ChangeRecord, name: str) -> dict[str, Any] | None:
    for image in (record.new_image, record.old_image, record.keys):
        if image is not None and name in image:
            value: dict[str, Any] = image[name]
            return value
    return None


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
        parquet = pq.ParquetFile(source)
    except (pa.ArrowInvalid, OSError) as err:
        raise FormatError(f"{name}: not a readable Parquet file ({err})") from None
    check_schema_version(parquet.schema_arrow, name)
    try:
        return parquet.read(columns=columns)
    except (pa.ArrowInvalid, OSError) as err:
        raise FormatError(f"{name}: unreadable ({err})") from None


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
    import pyarrow.compute as pc  # here, not at import: the Lambda sink never reads (cold starts)

    kinesis = pc.any(pc.equal(table.column(Col.EVENT_SOURCE), KINESIS_SOURCE)).as_py()
    keys = [(Col.CHANGE_TIME, "ascending")] if kinesis else []
    keys.append((Col.SEQUENCE_NUMBER, "ascending"))
    table = table.take(pc.sort_indices(table, sort_keys=keys))
    ids = table.column(Col.EVENT_ID).to_pylist()
    if len(set(ids)) == len(ids):
        return table
    seen: set[str] = set()
    keep = []
    for event_id in ids:
        keep.append(event_id not in seen)
        seen.add(event_id)
    return table.filter(pa.array(keep))


def stream_records(table: pa.Table) -> Iterator[dict[str, Any]]:
    """Rebuild each row's stream record exactly as it arrived."""
    loads = orjson.loads
    envelopes = table.column(Col.ENVELOPE).to_pylist()
    images = [table.column(name).to_pylist() for name in (Col.KEYS, Col.NEW_IMAGE, Col.OLD_IMAGE)]
    sources = table.column(Col.EVENT_SOURCE).to_pylist()
    for i, envelope in enumerate(envelopes):
        record = loads(envelope)
        if sources[i] == KINESIS_SOURCE:
            change = record["kinesis"]["data"]
            _fill_images(change, [column[i] for column in images])
            record["kinesis"]["data"] = base64.b64encode(orjson.dumps(change)).decode()
        else:
            _fill_images(record, [column[i] for column in images])
        yield record


def _fill_images(record: dict[str, Any], values: list[str | None]) -> None:
    dynamodb = record["dynamodb"]
    for key, value in zip(_IMAGE_KEYS, values, strict=True):
        if key in dynamodb:
            dynamodb[key] = orjson.loads(value) if value is not None else None
