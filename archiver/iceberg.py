"""Registering the archive in Apache Iceberg tables: an archive and a catalog in, one commit per table out.

Each archived DynamoDB table becomes the Iceberg table ``{namespace}.{table}``,
created on first use with the archive's columns (promoted columns included),
partitioned by ``hour(change_time)`` and sorted as the files are. A sync lists
the table's data files the archive's own way (so ``_errors/``, ``_checkpoints/``
and temporary files never come in), takes the files the table's current
snapshot already references from its manifests, and registers the others in
place, in one commit (pyiceberg's ``add_files``: no copy, no rewrite; the
statistics come from the footers). Nothing new, nothing committed. Every file
holds one hour of changes, so the partition of each file follows from its
``change_time`` statistics; a file whose statistics leave its own hour is refused
by name before anything is committed.

Only the ``archiver iceberg-sync`` command imports this module (pyiceberg is the
optional extra ``iceberg``; the Lambda sink never loads it).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pyarrow as pa
import pyarrow.parquet as pq
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NoSuchTableError
from pyiceberg.io.pyarrow import pyarrow_to_schema
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.table import Table, Transaction
from pyiceberg.table.sorting import (
    UNSORTED_SORT_ORDER,
    NullOrder,
    SortDirection,
    SortField,
    SortOrder,
)
from pyiceberg.transforms import HourTransform, IdentityTransform

from archiver.archive.codec import check_columns, check_schema_version
from archiver.archive.errors import ArchiveError, FormatError
from archiver.archive.fetch import fetch_ahead
from archiver.archive.layout import US_PER_HOUR, Partition
from archiver.archive.reader import list_partitions, list_tables
from archiver.archive.schema import COLUMNS, Col
from archiver.archive.store import ArchiveStore, StoredObject

__all__ = [
    "DEFAULT_NAMESPACE",
    "CatalogConfigError",
    "IcebergSyncError",
    "SyncReport",
    "TableSync",
    "load_catalog",
    "sync",
]

log = logging.getLogger(__name__)

DEFAULT_NAMESPACE = "dynamodb_archive"
PARTITION_FIELD = "change_time_hour"
# Iceberg keeps column metrics only for the columns the files carry statistics for: asking
# for more makes pyiceberg warn about every other column of every row group it reads.
_METRICS = "write.metadata.metrics."
_COLUMN_METRICS = "truncate(64)"  # whole sequence numbers (40 digits) as bounds
_DOCS = {name: doc for name, _, _, doc in COLUMNS}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class IcebergSyncError(ArchiveError):
    """The catalog refused or failed an operation, or pyiceberg could not register a file."""


class CatalogConfigError(IcebergSyncError):
    """No catalog of that name is configured, or its configuration cannot be loaded."""


@dataclass(frozen=True, slots=True)
class TableSync:
    """What one sync did to one Iceberg table."""

    table: str  # the DynamoDB table
    identifier: str  # namespace.table
    files_registered: int = 0
    snapshot_id: int | None = None  # the table's current snapshot after the sync
    created: bool = False
    columns_added: tuple[str, ...] = ()
    error: str | None = None


@dataclass
class SyncReport:
    tables: list[TableSync] = field(default_factory=list)

    @property
    def errors(self) -> list[str]:
        return [f"{t.identifier}: {t.error}" for t in self.tables if t.error]

    @property
    def files_registered(self) -> int:
        return sum(t.files_registered for t in self.tables)


def load_catalog(name: str) -> Catalog:
    """The catalog ``name`` as pyiceberg's own configuration defines it.

    The configuration is read afresh (``.pyiceberg.yaml`` in ``$PYICEBERG_HOME``, the
    home folder or the working folder, and ``PYICEBERG_CATALOG__<NAME>__*`` variables):
    pyiceberg reads it once per process, when ``pyiceberg.catalog`` is first imported.

    Raises
    ------
    CatalogConfigError
        When no catalog ``name`` is configured, or pyiceberg cannot load it (a missing
        ``uri``, an unknown type, a SQL database that cannot be opened).
    """
    from pyiceberg.catalog import load_catalog as load
    from pyiceberg.utils.config import Config

    config = Config().get_catalog_config(name)
    if config is None:
        raise CatalogConfigError(
            f"no catalog {name!r} is configured: define catalog.{name.lower()} in "
            f".pyiceberg.yaml or set PYICEBERG_CATALOG__{name.upper()}__TYPE and the rest"
        )
    try:
        return load(name, **cast(dict[str, str], config))
    except Exception as err:  # pyiceberg raises ValueError, ImportError, SQLAlchemy's errors...
        raise CatalogConfigError(f"catalog {name!r} cannot be loaded: {_one_line(err)}") from err


def sync(
    store: ArchiveStore,
    catalog: Catalog,
    *,
    namespace: str = DEFAULT_NAMESPACE,
    tables: Sequence[str] | None = None,
) -> SyncReport:
    """Register every data file of the archive not yet in its Iceberg table, one commit per table.

    ``tables`` limits the DynamoDB tables (default: every table the archive holds). A
    table that fails (a file that is not an archive file, a refused commit) is reported
    in its :class:`TableSync` and the others go on.
    """
    report = SyncReport()
    names = list(tables) if tables is not None else list_tables(store)
    if names:
        try:
            catalog.create_namespace_if_not_exists(namespace)
        except Exception as err:
            raise IcebergSyncError(
                f"cannot create namespace {namespace!r}: {_one_line(err)}"
            ) from err
    for name in names:
        identifier = f"{namespace}.{name}"
        try:
            report.tables.append(_sync_table(store, catalog, namespace, name))
        except (ArchiveError, FileNotFoundError) as err:
            report.tables.append(TableSync(name, identifier, error=str(err)))
            log.error("%s not synced: %s", identifier, err)
        except Exception as err:  # the catalog's and pyiceberg's own errors
            report.tables.append(TableSync(name, identifier, error=_one_line(err)))
            log.error("%s not synced: %s", identifier, _one_line(err))
    return report


def _sync_table(store: ArchiveStore, catalog: Catalog, namespace: str, name: str) -> TableSync:
    identifier = f"{namespace}.{name}"
    files = [(p, obj) for p, found in list_partitions(store, name) for obj in found]
    try:
        table: Table | None = catalog.load_table((namespace, name))
    except NoSuchTableError:
        table = None
    registered = registered_files(table) if table is not None else set()
    new = [(p, obj) for p, obj in files if location(store, obj) not in registered]
    if not new:
        snapshot = table.current_snapshot() if table is not None else None
        return TableSync(name, identifier, snapshot_id=snapshot.snapshot_id if snapshot else None)
    footers = _footers(store, new)
    arrow = pa.unify_schemas([meta.schema.to_arrow_schema().remove_metadata() for meta in footers])
    metrics = {
        f"{_METRICS}column.{column}": _COLUMN_METRICS for column in _with_statistics(footers)
    }
    added: tuple[str, ...] = ()
    transaction: Transaction
    if table is None:
        schema = _iceberg_schema(arrow)
        transaction = catalog.create_table_transaction(
            (namespace, name),
            schema=schema,
            partition_spec=_partition_spec(schema),
            sort_order=_sort_order(schema, footers[-1]),
            properties={f"{_METRICS}default": "none", **metrics},
        )
    else:
        transaction = table.transaction()
        known = set(table.schema().column_names)
        added = tuple(column for column in arrow.names if column not in known)
        if added:
            # promoted columns configured after the table was created
            with transaction.update_schema() as update:
                update.union_by_name(arrow)
        missing = {key: mode for key, mode in metrics.items() if key not in table.properties}
        if missing:
            transaction.set_properties(missing)
    paths = [location(store, obj) for _, obj in new]
    # Checked against the snapshot's manifests above, once; pyiceberg's own check would
    # read them all again.
    transaction.add_files(paths, check_duplicate_files=False)
    committed = transaction.commit_transaction()
    snapshot = committed.current_snapshot()
    extra: dict[str, Any] = {"table": identifier, "files": len(paths)}
    if added:
        extra["columns_added"] = ",".join(added)
    log.info("registered", extra=extra)
    return TableSync(
        name,
        identifier,
        files_registered=len(paths),
        snapshot_id=snapshot.snapshot_id if snapshot else None,
        created=table is None,
        columns_added=added,
    )


def location(store: ArchiveStore, obj: StoredObject) -> str:
    """Where a catalog's FileIO finds an archive file: ``s3://bucket/prefix/key`` or a path."""
    return f"{store.uri.rstrip('/')}/{obj.key}"


def registered_files(table: Table) -> set[str]:
    """The data files the table's current snapshot references (live manifest entries)."""
    snapshot = table.current_snapshot()
    if snapshot is None:
        return set()
    return {
        entry.data_file.file_path
        for manifest in snapshot.manifests(table.io)
        for entry in manifest.fetch_manifest_entry(table.io, discard_deleted=True)
    }


def _footers(
    store: ArchiveStore, files: list[tuple[Partition, StoredObject]]
) -> list[pq.FileMetaData]:
    """Each file's footer, checked: an archive file of a known version, holding its path's hour."""
    partitions = {obj.key: partition for partition, obj in files}

    def footer(obj: StoredObject) -> pq.FileMetaData:
        name = f"{store.uri}/{obj.key}"
        with store.open(obj.key) as handle:
            try:
                meta = pq.read_metadata(handle)
            except (pa.ArrowInvalid, OSError) as err:
                raise FormatError(f"{name}: not a readable Parquet file ({err})") from None
        schema = meta.schema.to_arrow_schema()
        check_schema_version(schema, name)
        check_columns(schema, name)
        _check_hour(meta, partitions[obj.key], name)
        return meta

    # A footer is a few KB, whatever the file's size: the bound on requests in flight counts.
    fetched = fetch_ahead([obj for _, obj in files], footer, weight=lambda obj: 0)
    with closing(fetched):
        return [item.result() for item in fetched]


def _check_hour(meta: pq.FileMetaData, partition: Partition, name: str) -> None:
    """FormatError unless the file's change_time statistics lie inside its path's hour."""
    index = meta.schema.to_arrow_schema().get_field_index(Col.CHANGE_TIME)
    start = partition.start
    end = start + timedelta(microseconds=US_PER_HOUR)
    for group in range(meta.num_row_groups):
        stats = meta.row_group(group).column(index).statistics
        if stats is None or not stats.has_min_max:
            raise FormatError(
                f"{name}: no change_time statistics; the Iceberg partition cannot be derived"
            )
        if not (start <= _utc(stats.min) and _utc(stats.max) < end):
            raise FormatError(
                f"{name}: changes from {_utc(stats.min)} to {_utc(stats.max)} do not belong "
                f"in the hour of its path ({partition.prefix})"
            )


def _utc(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    return _EPOCH + timedelta(microseconds=int(value))


def _with_statistics(footers: list[pq.FileMetaData]) -> list[str]:
    """The columns any of the files keeps statistics for (the archive writes them for a few)."""
    found: dict[str, None] = {}
    for meta in footers:
        names = meta.schema.to_arrow_schema().names
        for group in range(meta.num_row_groups):
            row_group = meta.row_group(group)
            for i in range(row_group.num_columns):
                if row_group.column(i).is_stats_set:
                    found.setdefault(names[i], None)
    return list(found)


def _iceberg_schema(arrow: pa.Schema) -> Schema:
    """The Iceberg schema of archive files: field ids in column order, the columns' docs."""
    fields = []
    for field_id, column in enumerate(arrow, start=1):
        metadata = {b"PARQUET:field_id": str(field_id).encode()}
        if column.name in _DOCS:
            metadata[b"doc"] = _DOCS[column.name].encode()
        fields.append(column.with_metadata(metadata))
    return pyarrow_to_schema(pa.schema(fields))


def _partition_spec(schema: Schema) -> PartitionSpec:
    source = schema.find_field(Col.CHANGE_TIME).field_id
    return PartitionSpec(
        PartitionField(
            source_id=source, field_id=1000, transform=HourTransform(), name=PARTITION_FIELD
        )
    )


def _sort_order(schema: Schema, meta: pq.FileMetaData) -> SortOrder:
    """The order the file declares (``sorting_columns``): sequence number, or change time first."""
    names = meta.schema.to_arrow_schema().names
    declared = meta.row_group(0).sorting_columns if meta.num_row_groups else ()
    fields = [
        SortField(
            source_id=schema.find_field(names[column.column_index]).field_id,
            transform=IdentityTransform(),
            direction=SortDirection.DESC if column.descending else SortDirection.ASC,
            null_order=NullOrder.NULLS_FIRST if column.nulls_first else NullOrder.NULLS_LAST,
        )
        for column in declared or ()
    ]
    return SortOrder(*fields) if fields else UNSORTED_SORT_ORDER


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= 500 else text[:500] + "..."
