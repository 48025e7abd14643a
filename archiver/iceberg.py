"""Registering the archive in Apache Iceberg tables: an archive and a catalog in, one commit per table out.

Each archived DynamoDB table becomes the Iceberg table ``{namespace}.{table}``,
created on first use with the archive's columns (promoted columns included),
partitioned by ``hour(change_time)`` and sorted as the files are. A sync lists
the table's data files the archive's own way (so ``_errors/``, ``_checkpoints/``,
``_iceberg/`` and temporary files never come in), takes the files that any of
the table's live snapshots references from its manifests (not only the current
one: a file a compaction replaced stays referenced by the snapshots before it,
and must not come back), and registers the others in place, in one commit
(no copy, no rewrite; each file's ``DataFile`` is made from the footer the sync
reads to check it, as pyiceberg's ``add_files`` would make it). Each commit
records the listing it saw (:mod:`archiver.iceberg_listing`), so that the next
sync looks only at the days whose files changed since, and reads only the
manifests that can hold them. Nothing new, nothing committed. Every file holds
one hour of changes, so the partition of each file follows from its
``change_time`` statistics; a file whose statistics leave its own hour is
refused by name before anything is committed.

Before the first commit to a table, its registration
(:class:`archiver.archive.lineage.Registration`, ``_iceberg/{table}.json``)
names the catalog and namespace, so that ``archiver compact`` knows the table's
snapshots reference the archive's files: it refuses to delete them, and with
``--iceberg`` commits its swap through :class:`IcebergTracker` instead (one
overwrite per table: the inputs out, the outputs in; the inputs stay in the
archive for the snapshots before it).

A new file that a compaction under Iceberg wrote (its metadata names the files
it replaces and its sibling outputs) is the trace of a compaction that crashed
before its commit. The sync commits that swap (the replaced files out, the
outputs in, in the same commit as the new files) when every output is there
and every replaced file is current; leaves the outputs out when some output is
missing (the compaction did not finish writing: the next ``compact`` does) or
none of the replaced files is current any more (another compaction replaced
them since); and refuses the table, naming the files, when only some are.

Snapshot expiry, and the removal of the files only expired snapshots reference,
is :mod:`archiver.expire`'s (``iceberg-sync --expire-snapshots-older-than``).

Only ``archiver iceberg-sync`` and ``archiver compact --iceberg`` import this
module (pyiceberg is the optional extra ``iceberg``; the Lambda sink never loads it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NoSuchTableError
from pyiceberg.io import FileIO

# What pyiceberg 0.12's parquet_file_to_data_file (add_files') does to each file, one step
# at a time (see _data_files); the schema check is private, the rest public.
from pyiceberg.io.pyarrow import (
    _check_pyarrow_schema_compatible,
    compute_statistics_plan,
    data_file_statistics_from_parquet_metadata,
    parquet_path_to_id_mapping,
    pyarrow_to_schema,
)
from pyiceberg.manifest import DataFile, DataFileContent, FileFormat, ManifestFile
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.table import Table, TableProperties, Transaction
from pyiceberg.table.metadata import TableMetadata
from pyiceberg.table.snapshots import Operation, Snapshot, ancestors_of
from pyiceberg.table.sorting import (
    UNSORTED_SORT_ORDER,
    NullOrder,
    SortDirection,
    SortField,
    SortOrder,
)
from pyiceberg.transforms import HourTransform, IdentityTransform
from pyiceberg.utils.concurrent import ExecutorFactory
from pyiceberg.utils.properties import property_as_bool

from archiver.archive.codec import check_columns, check_schema_version
from archiver.archive.errors import ArchiveError, FormatError
from archiver.archive.fetch import fetch_ahead
from archiver.archive.icebergfiles import CatalogConfigError, load_catalog
from archiver.archive.icebergfiles import one_line as _one_line
from archiver.archive.layout import US_PER_HOUR, Partition, parse_data_key
from archiver.archive.lineage import Compaction, Registration, registration_key
from archiver.archive.reader import list_partitions, list_tables, read_footer
from archiver.archive.schema import COLUMNS, Col
from archiver.archive.store import ArchiveStore, StoredObject
from archiver.compact import Swap
from archiver.iceberg_listing import Listing, day_of, manifests_of_days, recorded

__all__ = [
    "DEFAULT_NAMESPACE",
    "CatalogConfigError",
    "IcebergSyncError",
    "IcebergTracker",
    "SyncReport",
    "TableSync",
    "archive_key",
    "live_files",
    "load_catalog",
    "load_table",
    "location",
    "referenced_files",
    "registered_files",
    "sync",
]

log = logging.getLogger(__name__)

DEFAULT_NAMESPACE = "dynamodb_archive"
PARTITION_FIELD = "change_time_hour"
# Iceberg keeps column metrics only for the columns the files carry statistics for: asking
# for more makes pyiceberg warn about every other column of every row group it reads.
_METRICS = "write.metadata.metrics."
_COLUMN_METRICS = "truncate(64)"  # whole sequence numbers (40 digits) as bounds
# pyiceberg retries a commit that lost a race by applying it again to the table as the other
# writer left it; for an append of files that other writer may have registered too, that
# registers them twice. A sync that loses a race fails instead, and the next one catches up.
_NO_COMMIT_RETRIES = {"commit.retry.num-retries": "0"}
_DOCS = {name: doc for name, _, _, doc in COLUMNS}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class IcebergSyncError(ArchiveError):
    """The catalog refused or failed an operation, or pyiceberg could not register a file."""


@dataclass(frozen=True, slots=True)
class TableSync:
    """What one sync did to one Iceberg table."""

    table: str  # the DynamoDB table
    identifier: str  # namespace.table
    files_registered: int = 0  # new files, compactions' outputs included
    snapshot_id: int | None = None  # the table's current snapshot after the sync
    created: bool = False
    columns_added: tuple[str, ...] = ()
    compactions_committed: int = 0  # partitions whose crashed compaction's swap was committed
    files_replaced: int = 0  # the files those swaps took out of the current snapshot
    files_left_out: int = 0  # outputs of compactions that did not finish, or were superseded
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


def sync(
    store: ArchiveStore,
    catalog: Catalog,
    *,
    namespace: str = DEFAULT_NAMESPACE,
    tables: Sequence[str] | None = None,
) -> SyncReport:
    """Register every data file of the archive not yet in its Iceberg table, one commit per table.

    Parameters
    ----------
    store
        The archive; it must take writes (the registrations, ``_iceberg/``).
    catalog
        The pyiceberg catalog; its ``name`` is recorded in each table's registration.
    namespace
        The Iceberg namespace of the tables.
    tables
        The DynamoDB tables to sync (default: every table the archive holds).

    Returns
    -------
    SyncReport
        One :class:`TableSync` per table. A table that fails (a file that is not an
        archive file, a refused commit, a registration naming another catalog) is
        reported in its ``error`` and the others go on.
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


def _registration(store: ArchiveStore, catalog: Catalog, namespace: str, name: str) -> bool:
    """Check the table's registration against this sync's; True when there is none yet."""
    mine = Registration(name, catalog.name, namespace)
    found = Registration.load(store, name)
    if found is None:
        return True
    if not found.same_table(mine):
        raise IcebergSyncError(
            f"{registration_key(name)} registers {name} in {found.describe()}, not in "
            f"{mine.describe()}: an archive table is tracked by one Iceberg table (compaction "
            "and expiry would break any other); sync it there, or drop that table and "
            f"remove {registration_key(name)}"
        )
    return False


def load_table(catalog: Catalog, namespace: str, name: str) -> Table | None:
    """The Iceberg table ``namespace.name``, None when the catalog holds none."""
    try:
        return catalog.load_table((namespace, name))
    except NoSuchTableError:
        return None


def _sync_table(store: ArchiveStore, catalog: Catalog, namespace: str, name: str) -> TableSync:
    identifier = f"{namespace}.{name}"
    unregistered = _registration(store, catalog, namespace, name)

    def register() -> None:
        # Before any commit: compaction must know that the table references these files.
        if unregistered:
            Registration(name, catalog.name, namespace).save(store)

    listed = list_partitions(store, name)
    files = [(p, obj) for p, found in listed for obj in found]
    listing = Listing.of(files)
    table = load_table(catalog, namespace, name)
    current, new = _new_files(store, table, files, listing)
    plan = _Plan()
    footers: list[_Footer] = []
    if new:
        footers = _footers(store, new)
        plan = _plan(store, new, footers, current, {obj.key for _, obj in files})
    if not plan.added and not plan.removed:
        if table is not None:
            register()  # a table synced before registrations were written
        return _unchanged(name, identifier, table, files_left_out=plan.left_out)
    register()
    adding = set(plan.added)
    added_footers = [footer for footer in footers if footer.path in adding]
    # (a swap may add no new file: its outputs were registered once already)
    arrow = (
        pa.unify_schemas([footer.arrow.remove_metadata() for footer in added_footers])
        if added_footers
        else pa.schema([])
    )
    metrics = {
        f"{_METRICS}column.{column}": _COLUMN_METRICS for column in _with_statistics(added_footers)
    }
    # What this commit saw of the archive, so that the next sync reads only what may be new.
    seen, summary = listing.properties()
    added: tuple[str, ...] = ()
    transaction: Transaction
    if table is None:
        schema = _iceberg_schema(arrow)
        transaction = catalog.create_table_transaction(
            (namespace, name),
            schema=schema,
            partition_spec=_partition_spec(schema),
            sort_order=_sort_order(schema, added_footers[-1]),
            properties={f"{_METRICS}default": "none", **_NO_COMMIT_RETRIES, **metrics, **seen},
        )
    else:
        transaction = table.transaction()
        known_columns = set(table.schema().column_names)
        added = tuple(column for column in arrow.names if column not in known_columns)
        if added:
            # promoted columns configured after the table was created
            with transaction.update_schema() as update:
                update.union_by_name(arrow)
        wanted = {**_NO_COMMIT_RETRIES, **metrics, **seen}
        missing = {key: mode for key, mode in wanted.items() if table.properties.get(key) != mode}
        if missing:
            transaction.set_properties(missing)
    read = {footer.path: footer for footer in footers}
    unread = [path for path in plan.added if path not in read]
    if unread and table is not None:  # registered once already: not read as new
        read.update((footer.path, footer) for footer in _read_footers(table.io, unread))
    data_files = _data_files(_with_name_mapping(transaction), [read[path] for path in plan.added])
    if plan.removed and table is not None:  # swaps need a current snapshot
        _overwrite(transaction, plan.removed, data_files, summary)
    else:  # (no file twice: plan.added is what no snapshot references, and no retry re-applies)
        _append(transaction, data_files, summary)
    committed = transaction.commit_transaction()
    snapshot = committed.current_snapshot()
    extra: dict[str, Any] = {"table": identifier, "files": len(plan.added)}
    if added:
        extra["columns_added"] = ",".join(added)
    if plan.removed:
        extra["compactions"] = plan.compactions
        extra["files_replaced"] = len(plan.removed)
    log.info("registered", extra=extra)
    return TableSync(
        name,
        identifier,
        files_registered=len(plan.added),
        snapshot_id=snapshot.snapshot_id if snapshot else None,
        created=table is None,
        columns_added=added,
        compactions_committed=plan.compactions,
        files_replaced=len(plan.removed),
        files_left_out=plan.left_out,
    )


def _unchanged(
    name: str, identifier: str, table: Table | None, files_left_out: int = 0
) -> TableSync:
    snapshot = table.current_snapshot() if table is not None else None
    return TableSync(
        name,
        identifier,
        snapshot_id=snapshot.snapshot_id if snapshot else None,
        files_left_out=files_left_out,
    )


@dataclass
class _Plan:
    added: list[str] = field(default_factory=list)  # locations, in listing order
    removed: list[DataFile] = field(default_factory=list)
    compactions: int = 0
    left_out: int = 0


def _plan(
    store: ArchiveStore,
    new: list[tuple[Partition, StoredObject]],
    footers: list[_Footer],
    current: dict[str, DataFile],
    present: set[str],
) -> _Plan:
    """What to commit for the new files: plain ones added, crashed compactions' swaps made.

    Raises
    ------
    IcebergSyncError
        When a compaction's replaced files are only partly in the current snapshot.
    """
    plan = _Plan()
    plain: list[str] = []
    groups: dict[tuple[Partition, Compaction], list[StoredObject]] = {}
    for (partition, obj), footer in zip(new, footers, strict=True):
        where = f"{store.uri}/{obj.key}"
        lineage = Compaction.of(footer.meta.metadata, where)
        if lineage is None:
            plain.append(location(store, obj))
            continue
        if obj.key.rsplit("/", 1)[1] not in lineage.outputs:
            raise FormatError(f"{where}: its compaction metadata does not name it as an output")
        groups.setdefault((partition, lineage), []).append(obj)
    taken: set[str] = set()
    swapped: set[str] = set()
    # Sorted, so that of two compactions of the same files (another --target-bytes after a
    # crash) every sync takes the same one.
    for (partition, lineage), objs in sorted(
        groups.items(), key=lambda g: (g[0][0], g[0][1].outputs)
    ):
        outputs = [partition.key(n) for n in lineage.outputs]
        replaced = {partition.key(n) for n in lineage.replaces} - set(outputs)
        missing = [key for key in outputs if key not in present]
        live = {key for key in replaced if _at(store, key) in current}
        names = ", ".join(f"{store.uri}/{obj.key}" for obj in objs)
        if missing:
            log.warning(
                "left out %s: its compaction did not write %s; the next archiver compact "
                "finishes it",
                names,
                missing[0],
            )
            continue
        if not live or live & taken:
            log.info("left out %s: another compaction replaced its inputs", names)
            continue
        if live != replaced:
            gone = sorted(replaced - live)[0]
            raise IcebergSyncError(
                f"{names}: replace(s) {store.uri}/{gone}, which the current snapshot no "
                "longer references, with files it still references: the table was changed "
                "outside archiver; remove the files named (no snapshot references them) to go on"
            )
        taken |= live
        plan.compactions += 1
        plan.removed += [current[_at(store, key)] for key in sorted(replaced)]
        swapped.update(_at(store, key) for key in outputs)
    plan.added = list(dict.fromkeys([*plain, *sorted(swapped - set(current))]))
    # new files that no commit takes: outputs of unfinished or superseded compactions
    taken_paths = set(plan.added)
    plan.left_out = sum(1 for _, obj in new if location(store, obj) not in taken_paths)
    return plan


def _at(store: ArchiveStore, key: str) -> str:
    return f"{store.uri.rstrip('/')}/{key}"


def _append(transaction: Transaction, data_files: list[DataFile], summary: dict[str, str]) -> None:
    """One snapshot that adds the files, made as ``add_files`` makes it."""
    # As pyiceberg's Transaction._append_snapshot_producer chooses for add_files: a fast
    # append, unless the table merges manifests.
    merge = property_as_bool(
        transaction.table_metadata.properties,
        TableProperties.MANIFEST_MERGE_ENABLED,
        TableProperties.MANIFEST_MERGE_ENABLED_DEFAULT,
    )
    update = transaction.update_snapshot(snapshot_properties=summary)
    with update.merge_append() if merge else update.fast_append() as append:
        for data_file in data_files:
            append.append_data_file(data_file)


def _overwrite(
    transaction: Transaction,
    removed: list[DataFile],
    added: list[DataFile],
    summary: dict[str, str] | None = None,
) -> None:
    """One snapshot that takes ``removed`` out and puts ``added`` in."""
    with transaction.update_snapshot(snapshot_properties=summary or {}).overwrite() as overwrite:
        for data_file in removed:
            overwrite.delete_data_file(data_file)
        for data_file in added:
            overwrite.append_data_file(data_file)


def _with_name_mapping(transaction: Transaction) -> TableMetadata:
    """The transaction's table metadata, with the name mapping ``add_files`` sets first (the
    archive's files carry no field ids: their columns are found by name)."""
    if transaction.table_metadata.name_mapping() is None:
        mapping = transaction.table_metadata.schema().name_mapping.model_dump_json()
        transaction.set_properties({TableProperties.DEFAULT_NAME_MAPPING: mapping})
    return transaction.table_metadata


@dataclass(frozen=True, slots=True)
class _Footer:
    """A data file's footer, read once: all its DataFile is made of."""

    path: str  # where the table's FileIO finds the file
    meta: pq.FileMetaData
    size: int  # the file's bytes
    arrow: pa.Schema  # the footer's schema as Arrow's (made once: tens of µs each time)

    @classmethod
    def of(cls, path: str, meta: pq.FileMetaData, size: int) -> _Footer:
        return cls(path, meta, size, meta.schema.to_arrow_schema())


def _read_footers(io: FileIO, paths: Sequence[str]) -> list[_Footer]:
    """The footers of the files at ``paths``, read through ``io`` as ``add_files`` reads them."""

    def read(path: str) -> _Footer:
        input_file = io.new_input(path)
        with input_file.open() as stream:
            meta = pq.read_metadata(stream)
        return _Footer.of(path, meta, len(input_file))

    return list(ExecutorFactory.get_or_create().map(read, paths))


def _data_files(metadata: TableMetadata, footers: Sequence[_Footer]) -> list[DataFile]:
    """Each file's DataFile, exactly as ``add_files`` makes it, from its footer already read.

    pyiceberg's ``parquet_file_to_data_file`` (0.12) reads the footer again and then redoes
    for every file what depends only on the table: the schema check, the statistics plan and
    the mapping of Parquet columns to field ids. Here the check runs once per distinct file
    schema and the plan and mapping once; the rest is that function's own per-file work,
    step for step (``data_file_statistics_from_parquet_metadata``, ``DataFile.from_args``).

    Raises
    ------
    ValueError
        (pyiceberg's) A file whose columns the table's schema does not take.
    """
    schema = metadata.schema()
    spec = metadata.spec()
    stats_columns = compute_statistics_plan(schema, metadata.properties)
    field_ids = parquet_path_to_id_mapping(schema)
    checked: set[bytes] = set()
    data_files = []
    for footer in footers:
        # The check reads the fields (names, types, field metadata), never the file's own
        # key-value metadata, which differs from file to file.
        shape = footer.arrow.remove_metadata().serialize().to_pybytes()
        if shape not in checked:
            _check_pyarrow_schema_compatible(
                schema, footer.arrow, format_version=metadata.format_version
            )
            checked.add(shape)
        statistics = data_file_statistics_from_parquet_metadata(
            parquet_metadata=footer.meta,
            stats_columns=stats_columns,
            parquet_column_mapping=field_ids,
        )
        data_files.append(
            DataFile.from_args(
                content=DataFileContent.DATA,
                file_path=footer.path,
                file_format=FileFormat.PARQUET,
                partition=statistics.partition(spec, schema),
                file_size_in_bytes=footer.size,
                sort_order_id=None,
                spec_id=metadata.default_spec_id,
                equality_ids=None,
                key_metadata=None,
                **statistics.to_serialized_dict(),
            )
        )
    return data_files


# --- snapshots and their files ---------------------------------------------------------------


def live_files(
    table: Table,
    snapshots: Iterable[Snapshot | None],
    where: Callable[[ManifestFile], bool] | None = None,
) -> dict[str, DataFile]:
    """The data files the snapshots reference (their manifests' live entries), by path; with
    ``where``, only those of the manifests it is true for."""
    manifests = {
        manifest.manifest_path: manifest
        for snapshot in snapshots
        if snapshot is not None
        for manifest in snapshot.manifests(table.io)
        if where is None or where(manifest)
    }
    executor = ExecutorFactory.get_or_create()
    entries = executor.map(
        lambda manifest: manifest.fetch_manifest_entry(table.io, discard_deleted=True),
        manifests.values(),
    )
    return {entry.data_file.file_path: entry.data_file for found in entries for entry in found}


def _new_files(
    store: ArchiveStore,
    table: Table | None,
    files: list[tuple[Partition, StoredObject]],
    listing: Listing,
) -> tuple[dict[str, DataFile], list[tuple[Partition, StoredObject]]]:
    """The listed files no snapshot of the table references, and the current snapshot's files
    of their hours (by path): what the sync plans its commit with.

    Only the files of the days whose listing is not the one the table records can be new
    (:mod:`archiver.iceberg_listing`), and only the manifests that reach those days are read;
    all of them are when the table records no listing this lineage made.
    """
    if table is None:
        return {}, files
    before = recorded(table)
    where = None
    candidates = files
    if before is not None:
        days = listing.changed(before)
        candidates = [(p, obj) for p, obj in files if day_of(p) in days]
        if not candidates:
            return {}, []
        where = manifests_of_days(table.schema(), table.specs(), days)
    current = live_files(table, [table.current_snapshot()], where)
    known = referenced_files(table, current, where)
    return current, [(p, obj) for p, obj in candidates if location(store, obj) not in known]


def registered_files(table: Table) -> set[str]:
    """The data files the table's current snapshot references (live manifest entries)."""
    return set(live_files(table, [table.current_snapshot()]))


def referenced_files(
    table: Table,
    current: dict[str, DataFile] | None = None,
    where: Callable[[ManifestFile], bool] | None = None,
) -> set[str]:
    """The data files any of the table's snapshots references (``current``: the current one's,
    from the same manifests); with ``where``, only in the manifests it is true for."""
    snapshots = table.snapshots()
    head = table.current_snapshot()
    if current is None:
        current = live_files(table, [head], where)
    ancestors = {s.snapshot_id for s in ancestors_of(head, table.metadata)}
    if all(
        s.snapshot_id in ancestors
        and s.summary is not None
        and s.summary.operation == Operation.APPEND
        for s in snapshots
    ):
        # Appends only, in one line: each snapshot references its parent's files and more.
        return set(current)
    return set(live_files(table, snapshots, where))


def location(store: ArchiveStore, obj: StoredObject) -> str:
    """Where a catalog's FileIO finds an archive file: ``s3://bucket/prefix/key`` or a path."""
    return _at(store, obj.key)


def archive_key(store: ArchiveStore, path: str, table: str) -> str | None:
    """The archive key of a data file of ``table`` registered at ``path``; None for any other."""
    root = f"{store.uri.rstrip('/')}/"
    if not path.startswith(root):
        return None
    key = path[len(root) :]
    parsed = parse_data_key(key)
    return key if parsed is not None and parsed[0].table == table else None


# --- compaction under Iceberg -------------------------------------------------------------------


class IcebergTracker:
    """``archiver compact --iceberg``: the catalog whose tables track the archive's tables.

    ``namespace`` is the one to compact in (default: each table's registration's, else
    :data:`DEFAULT_NAMESPACE`).
    """

    def __init__(self, store: ArchiveStore, catalog: Catalog, namespace: str | None = None) -> None:
        self.store = store
        self.catalog = catalog
        self.namespace = namespace

    def open(self, table: str, registration: Registration | None) -> _TrackedTable | None:
        namespace = self.namespace or (
            registration.namespace if registration else DEFAULT_NAMESPACE
        )
        mine = Registration(table, self.catalog.name, namespace)
        if registration is not None and not registration.same_table(mine):
            raise IcebergSyncError(
                f"tracked by the Iceberg table {registration.describe()} "
                f"({registration_key(table)}), not by {mine.describe()}: compact it with "
                f"--iceberg {registration.catalog} --namespace {registration.namespace}"
            )
        try:
            found = load_table(self.catalog, namespace, table)
        except Exception as err:
            raise IcebergSyncError(f"cannot load {mine.identifier}: {_one_line(err)}") from err
        return None if found is None else _TrackedTable(self.store, table, mine.identifier, found)


class _TrackedTable:
    """One Iceberg table as compaction sees it (the :class:`archiver.compact.TrackedTable`)."""

    def __init__(self, store: ArchiveStore, name: str, identifier: str, table: Table) -> None:
        self.store = store
        self.name = name
        self.identifier = identifier
        self.table = table
        self.current: dict[str, DataFile] = {}

    def partitions(
        self, since_us: int | None, until_us: int | None
    ) -> list[tuple[Partition, list[StoredObject]]]:
        try:
            self.current = live_files(self.table, [self.table.current_snapshot()])
        except Exception as err:
            raise IcebergSyncError(f"cannot read the current snapshot: {_one_line(err)}") from err
        grouped: dict[Partition, list[StoredObject]] = {}
        for path, data_file in self.current.items():
            key = archive_key(self.store, path, self.name)
            parsed = parse_data_key(key) if key is not None else None
            if key is None or parsed is None:
                continue  # not an archive file: never compaction's input
            partition = parsed[0]
            end_us = partition.hour_start_us + US_PER_HOUR - 1
            if since_us is not None and end_us < since_us:
                continue
            if until_us is not None and partition.hour_start_us > until_us:
                continue
            grouped.setdefault(partition, []).append(
                StoredObject(key, data_file.file_size_in_bytes)
            )
        return [(p, sorted(files, key=lambda o: o.key)) for p, files in sorted(grouped.items())]

    def commit(self, swaps: Sequence[Swap]) -> int | None:
        removed = [self.current[_at(self.store, key)] for swap in swaps for key in swap.removed]
        added = [_at(self.store, key) for swap in swaps for key in swap.added]
        try:
            transaction = self.table.transaction()
            metadata = _with_name_mapping(transaction)
            data_files = _data_files(metadata, _read_footers(self.table.io, added))
            _overwrite(transaction, removed, data_files)
            snapshot = transaction.commit_transaction().current_snapshot()
        except Exception as err:  # the catalog's and pyiceberg's own errors
            raise IcebergSyncError(_one_line(err)) from err
        return snapshot.snapshot_id if snapshot is not None else None


# --- the files' footers, and the table's shape --------------------------------------------------


def _footers(store: ArchiveStore, files: list[tuple[Partition, StoredObject]]) -> list[_Footer]:
    """Each file's footer, checked: an archive file of a known version, holding its path's hour."""
    partitions = {obj.key: partition for partition, obj in files}

    def footer(obj: StoredObject) -> _Footer:
        name = f"{store.uri}/{obj.key}"
        meta, size = read_footer(store, obj)  # its size as read, as the catalog's FileIO gives it
        read = _Footer.of(location(store, obj), meta, size)
        check_schema_version(read.arrow, name)
        check_columns(read.arrow, name)
        _check_hour(read, partitions[obj.key], name)
        return read

    # A footer is a few KB, whatever the file's size: the bound on requests in flight counts.
    fetched = fetch_ahead([obj for _, obj in files], footer, weight=lambda obj: 0)
    with closing(fetched):
        return [item.result() for item in fetched]


def _check_hour(footer: _Footer, partition: Partition, name: str) -> None:
    """FormatError unless the file's change_time statistics lie inside its path's hour."""
    meta = footer.meta
    index = footer.arrow.get_field_index(Col.CHANGE_TIME)
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


def _with_statistics(footers: list[_Footer]) -> list[str]:
    """The columns any of the files keeps statistics for (the archive writes them for a few)."""
    found: dict[str, None] = {}
    for footer in footers:
        meta, names = footer.meta, footer.arrow.names
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


def _sort_order(schema: Schema, footer: _Footer) -> SortOrder:
    """The order the file declares (``sorting_columns``): sequence number, or change time first."""
    meta, names = footer.meta, footer.arrow.names
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
