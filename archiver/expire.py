"""Snapshot expiry: Iceberg tables and an age in; old snapshots, and the files only they reference, out.

``archiver iceberg-sync --expire-snapshots-older-than DURATION`` runs this after
the sync. For each table it expires the snapshots older than ``now - DURATION``
(never the current one, nor the head of a branch or a tag), and deletes from
the archive the files that only those snapshots reference: the inputs that a
compaction under Iceberg replaced and left behind for time travel. A file that a
kept snapshot references stays; a file that no snapshot ever referenced (the
sink's files not synced yet, the outputs of a compaction that never committed)
is not even looked at; a file registered outside the archive is never deleted.

The order makes a crash harmless: the files are deleted first, then the expiry
is committed. A crash between the two leaves snapshots that are about to expire
referencing missing files (time travel to them fails), and a current snapshot,
and every kept one, whose files are all there; the rerun finds the same
snapshots (and, as time went on, perhaps more), deletes what is left, and
commits. Expiring first would leave files that no snapshot references any more:
nothing would know to delete them, and the next sync would take them for new
files and register them again, so the table would count their events twice.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from pyiceberg.catalog import Catalog

from archiver.archive.errors import ArchiveError
from archiver.archive.reader import list_partitions
from archiver.archive.store import ArchiveStore
from archiver.iceberg import archive_key, live_files, load_table

__all__ = ["ExpireReport", "TableExpiry", "expire"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TableExpiry:
    """What one expiry did to one Iceberg table and its archive files."""

    table: str  # the DynamoDB table
    identifier: str  # namespace.table
    snapshots_expired: int = 0
    files_deleted: int = 0
    error: str | None = None


@dataclass
class ExpireReport:
    tables: list[TableExpiry] = field(default_factory=list)

    @property
    def errors(self) -> list[str]:
        return [f"{t.identifier}: {t.error}" for t in self.tables if t.error]

    @property
    def snapshots_expired(self) -> int:
        return sum(t.snapshots_expired for t in self.tables)

    @property
    def files_deleted(self) -> int:
        return sum(t.files_deleted for t in self.tables)


def expire(
    store: ArchiveStore,
    catalog: Catalog,
    *,
    namespace: str,
    tables: Sequence[str],
    before: datetime,
) -> ExpireReport:
    """Expire each table's snapshots older than ``before``; delete the files only they reference.

    Parameters
    ----------
    store
        The archive; it must take deletes.
    catalog, namespace
        Where the tables are (``{namespace}.{table}``).
    tables
        The DynamoDB tables; one without an Iceberg table is skipped.
    before
        Snapshots committed before this moment (timezone-aware) expire.

    Returns
    -------
    ExpireReport
        One :class:`TableExpiry` per table with an Iceberg table. A table that fails (a
        delete the store refuses, a refused commit) is reported in its ``error``, its
        expiry not committed (some of the files only expiring snapshots reference may be
        gone already): a rerun finishes it. The others go on.
    """
    report = ExpireReport()
    for name in tables:
        identifier = f"{namespace}.{name}"
        try:
            done = _expire_table(store, catalog, namespace, name, before)
        except (ArchiveError, FileNotFoundError) as err:
            done = TableExpiry(name, identifier, error=f"{err}; a rerun finishes the expiry")
            log.error("%s not expired: %s", identifier, err)
        except Exception as err:  # the catalog's and pyiceberg's own errors
            reason = " ".join(str(err).split()) or type(err).__name__
            done = TableExpiry(name, identifier, error=f"{reason}; a rerun finishes the expiry")
            log.error("%s not expired: %s", identifier, reason)
        if done is not None:
            report.tables.append(done)
    return report


def _expire_table(
    store: ArchiveStore, catalog: Catalog, namespace: str, name: str, before: datetime
) -> TableExpiry | None:
    identifier = f"{namespace}.{name}"
    table = load_table(catalog, namespace, name)
    if table is None:
        return None
    protected = {ref.snapshot_id for ref in table.metadata.refs.values()}  # branches and tags
    head = table.current_snapshot()
    if head is not None:
        protected.add(head.snapshot_id)
    cutoff_ms = int(before.timestamp() * 1000)
    snapshots = table.snapshots()
    expiring = sorted(
        s.snapshot_id
        for s in snapshots
        if s.timestamp_ms < cutoff_ms and s.snapshot_id not in protected
    )
    if not expiring:
        return TableExpiry(name, identifier)
    gone = set(expiring)
    kept = live_files(table, [s for s in snapshots if s.snapshot_id not in gone])
    # What is still there (a crashed expiry deleted some): one listing, not a request per file.
    present = {obj.key for _, found in list_partitions(store, name) for obj in found}
    doomed: list[str] = []
    for path in sorted(set(live_files(table, [s for s in snapshots if s.snapshot_id in gone]))):
        if path in kept:
            continue
        key = archive_key(store, path, name)
        if key is None:
            log.warning("%s: not deleted: no data file of %s in %s", path, name, store.uri)
        elif key in present:
            doomed.append(key)
    store.delete_many(doomed)  # deleted before the expiry is committed (see the module docstring)
    table.maintenance.expire_snapshots().by_ids(expiring).commit()
    log.info(
        "expired",
        extra={"table": identifier, "snapshots": len(expiring), "files_deleted": len(doomed)},
    )
    return TableExpiry(name, identifier, len(expiring), len(doomed))
