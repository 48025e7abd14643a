"""``archiver compact`` under Apache Iceberg, end to end: swaps committed, files kept, then expired.

The archive is what a Lambda sink leaves behind (batches of 20 to 50, about a third
retried with other boundaries, so files overlap), in a local folder and on S3
(SeaweedFS), synced into pyiceberg's SQL catalog on SQLite. After each step, and
after a crash at any step, the table's current snapshot must scan to the records
``replayer events`` gives, record for record; an older snapshot must scan to the
same events until it is expired; and no file that a live snapshot references may
go away.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from pyiceberg.table import Table

from archiver import cli as archiver_cli
from archiver.archive.codec import order_rows
from archiver.archive.layout import Partition
from archiver.archive.lineage import METADATA_COMPACTION, Registration
from archiver.archive.reader import list_partitions
from archiver.archive.rebuild import record_texts
from archiver.archive.store import ArchiveStore, open_store
from archiver.compact import Swap, TrackedTable, compact
from archiver.expire import expire
from archiver.iceberg import IcebergTracker, live_files, load_catalog, referenced_files
from archiver.write import ArchiveOptions, archive_records
from devkit.traffic import TableHistory
from replayer import cli as replayer_cli
from tests.functional import test_iceberg as synced
from tests.functional.test_iceberg import NAMESPACE, Run, data_files, replayed, write_batches
from tests.stores import Passthrough

# The archive (a folder, and S3 on SeaweedFS, with the catalog's FileIO pointed at it), the
# sink's store and the sync command, set up as test_iceberg sets them up (the catalog: conftest).
archive = synced.archive
store = synced.store
iceberg_sync = synced.iceberg_sync

TABLE = "orders"
SMALL = 64 * 1024  # a target only the library takes: two output files per hour partition here
MIB = str(1024 * 1024)  # the smallest target the command takes: one file per hour here


# --- the archive and the table ------------------------------------------------------------


def write_orders(store: ArchiveStore, count: int = 500, seed: int = 41) -> TableHistory:
    """About three hours of changes to one table, as a Lambda sink writes them."""
    history = TableHistory(TABLE, seed=seed, seconds_per_change=20.0)
    write_batches(store, history.changes(count), seed, ArchiveOptions())
    return history


def table_of(name: str) -> Table:
    return load_catalog(name).load_table((NAMESPACE, TABLE))


def current_files(table: Table) -> set[str]:
    return set(live_files(table, [table.current_snapshot()]))


def snapshot_ids(table: Table) -> list[int]:
    return [s.snapshot_id for s in table.snapshots()]


def scan(table: Table, snapshot_id: int | None = None) -> pa.Table:
    """A snapshot's rows, every stored copy, with the archive's string columns."""
    rows = table.scan(snapshot_id=snapshot_id).to_arrow()
    columns = [
        pc.cast(column, pa.string()) if pa.types.is_large_string(column.type) else column
        for column in rows.columns
    ]
    return pa.table(columns, names=rows.column_names)


def assert_current_is_replay(table: Table, archive_uri: str) -> None:
    """The current snapshot holds each record replay gives exactly once: no copy, no loss."""
    rows = scan(table)
    events = replayed(archive_uri, TABLE)
    assert len(events) == len({orjson.loads(e)["eventID"] for e in events})
    stored = [text.encode() for text in record_texts(rows).to_pylist()]
    assert sorted(stored) == sorted(events)


def assert_snapshot_has_the_events(table: Table, snapshot_id: int, archive_uri: str) -> None:
    """An older snapshot (duplicates from retried batches and all) holds the same events."""
    rows = order_rows(scan(table, snapshot_id))
    rebuilt = [text.encode() for text in record_texts(rows).to_pylist()]
    assert sorted(rebuilt) == sorted(replayed(archive_uri, TABLE))


def listing(store: ArchiveStore) -> set[str]:
    return {obj.key for _, found in list_partitions(store, TABLE) for obj in found}


def key_of(store: ArchiveStore, path: str) -> str:
    root = store.uri.rstrip("/") + "/"
    assert path.startswith(root), path
    return path[len(root) :]


def lineage_of(store: ArchiveStore, key: str) -> dict[str, list[str]] | None:
    metadata = pq.read_metadata(io.BytesIO(store.get(key))).metadata or {}
    raw = metadata.get(METADATA_COMPACTION)
    return None if raw is None else orjson.loads(raw)


def tracker(store: ArchiveStore, name: str) -> IcebergTracker:
    return IcebergTracker(store, load_catalog(name))


@pytest.fixture
def compact_command(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> Callable[..., Run]:
    """Run ``archiver compact ARGS`` in-process."""

    def run(*args: str) -> Run:
        capsys.readouterr()
        caplog.clear()
        code = archiver_cli.main(["compact", *args])
        messages = capsys.readouterr().err + caplog.text
        assert "Traceback" not in messages
        return Run(code, messages)

    return run


@pytest.fixture
def local(local_archive: str, catalog_name: str, iceberg_sync: Callable[..., Run]) -> str:
    """A local archive of one table, synced: its first snapshot references every file."""
    write_orders(open_store(local_archive))
    result = iceberg_sync("--archive", local_archive, "--catalog", catalog_name)
    assert result.code == 0, result.messages
    return local_archive


# --- fault injection ----------------------------------------------------------------------


class Crash(BaseException):
    """The process died here (as far as the archive and the catalog can tell).

    A BaseException, as SystemExit is: the commands' last-resort handlers of the catalog's
    own errors (``except Exception``) must not turn a death into a reported failure.
    """


class CrashingStore(Passthrough):
    """The archive's store, failing (as if the process died) at its ``at``-th ``operation``."""

    def __init__(self, inner: ArchiveStore, operation: str, at: int) -> None:
        super().__init__(inner)
        self.operation, self.at, self.calls = operation, at, 0

    def _step(self, operation: str, key: str) -> None:
        if operation == self.operation:
            self.calls += 1
            if self.calls >= self.at:
                raise Crash(f"injected crash at {operation} #{self.calls} of {key}")

    def put(self, key: str, data: bytes) -> None:
        self._step("put", key)
        self.inner.put(key, data)

    def delete(self, key: str) -> None:
        self._step("delete", key)
        self.inner.delete(key)


class DiesBeforeCommit:
    """The catalog's side of compaction, dying after every output is written, before the commit."""

    def __init__(self, inner: IcebergTracker) -> None:
        self.inner = inner
        self.swaps: list[Swap] = []

    def open(self, table: str, registration: Registration | None) -> TrackedTable | None:
        tracked = self.inner.open(table, registration)
        return None if tracked is None else _Dying(tracked, self.swaps)


class _Dying:
    def __init__(self, inner: TrackedTable, swaps: list[Swap]) -> None:
        self.inner, self.swaps = inner, swaps
        self.identifier = inner.identifier

    def partitions(
        self, since_us: int | None, until_us: int | None
    ) -> list[tuple[Partition, list[Any]]]:
        return self.inner.partitions(since_us, until_us)

    def commit(self, swaps: Sequence[Swap]) -> int | None:
        self.swaps += swaps
        raise Crash("injected crash before the commit")


# --- compaction ---------------------------------------------------------------------------


def test_compaction_commits_one_swap_keeps_the_files_and_scans_to_replay(
    archive: str,
    store: ArchiveStore,
    catalog_name: str,
    iceberg_sync: Callable[..., Run],
    compact_command: Callable[..., Run],
) -> None:
    # Given a synced archive of many small files (retried batches stored twice)
    write_orders(store)
    assert iceberg_sync("--archive", archive, "--catalog", catalog_name).code == 0
    before = table_of(catalog_name)
    first = before.current_snapshot()
    assert first is not None
    small = current_files(before)
    files_before = listing(store)
    # When it is compacted under Iceberg
    result = compact_command("--archive", archive, "--iceberg", catalog_name, "--target-bytes", MIB)
    # Then one commit swapped each hour's files for one compacted file
    assert result.code == 0, result.messages
    assert f"committed to catalog {catalog_name}: {NAMESPACE}.{TABLE} -" in result.messages
    table = table_of(catalog_name)
    snapshot = table.current_snapshot()
    assert snapshot is not None and snapshot.parent_snapshot_id == first.snapshot_id
    assert len(table.snapshots()) == 2
    compacted = current_files(table)
    hours = {Path(key_of(store, p)).parent for p in small}
    assert len(compacted) == len(hours) < len(small)
    assert {Path(key_of(store, p)).parent for p in compacted} == hours
    for path in compacted:
        lineage = lineage_of(store, key_of(store, path))
        assert lineage is not None and lineage["outputs"] == [Path(path).name]
    # and no archive file was removed: the snapshot before still has all of its own
    assert listing(store) == files_before | {key_of(store, p) for p in compacted}
    # and the current snapshot scans to replay, record for record, each event once
    assert_current_is_replay(table, archive)
    # and time travel to the snapshot before the compaction still scans to the same events
    assert_snapshot_has_the_events(table, first.snapshot_id, archive)
    # and replay's own checks pass on the archive, its _iceberg/ document included
    assert replayer_cli.main(["verify", "--archive", archive], stdout=io.BytesIO()) == 0
    # When compaction and sync run again
    again = compact_command("--archive", archive, "--iceberg", catalog_name, "--target-bytes", MIB)
    synced = iceberg_sync("--archive", archive, "--catalog", catalog_name)
    # Then neither commits: the replaced files are known to the older snapshot, not new
    assert again.code == 0 and "compacted 0 of" in again.messages, again.messages
    assert "committed to catalog" not in again.messages
    assert synced.code == 0 and f"{NAMESPACE}.{TABLE} unchanged" in synced.messages
    after = table_of(catalog_name)
    assert after.metadata_location == table.metadata_location
    assert current_files(after) == compacted


def test_plain_compaction_of_a_synced_table_is_refused(
    local_archive: str,
    catalog_name: str,
    iceberg_sync: Callable[..., Run],
    compact_command: Callable[..., Run],
) -> None:
    # Given an archive of two tables, one of them synced to an Iceberg table
    store = open_store(local_archive)
    write_orders(store)
    payments = TableHistory("payments", seed=42, seconds_per_change=30.0)
    write_batches(store, payments.changes(300), 42, ArchiveOptions())
    assert (
        iceberg_sync("--archive", local_archive, "--catalog", catalog_name, "--table", TABLE).code
        == 0
    )
    orders_before = listing(store)
    payments_before = data_files(store, "payments")
    # When the archive is compacted without --iceberg
    result = compact_command("--archive", local_archive, "--target-bytes", MIB)
    # Then the synced table is refused, naming its Iceberg table and the option, and left as it is
    assert result.code == 1
    assert f"archiver: error: {TABLE}: tracked by the Iceberg table {NAMESPACE}.{TABLE}" in (
        result.messages
    )
    assert f"--iceberg {catalog_name}" in result.messages
    assert "_iceberg/orders.json" in result.messages
    assert listing(store) == orders_before
    assert current_files(table_of(catalog_name)) == data_files(store, TABLE)
    # and the other table, which no Iceberg table tracks, is compacted as before
    assert data_files(store, "payments") != payments_before
    assert len(data_files(store, "payments")) < len(payments_before)


def test_files_the_sink_wrote_after_the_sync_wait_for_the_next_sync(
    local: str, catalog_name: str, iceberg_sync: Callable[..., Run]
) -> None:
    # Given a synced archive, and more files from the sink since
    store = open_store(local)
    history = TableHistory(TABLE, seed=41, seconds_per_change=20.0)
    history.changes(500)
    later = history.changes(60)
    for start in range(0, len(later), 20):
        archive_records(later[start : start + 20], store)
    unsynced = listing(store) - {key_of(store, p) for p in current_files(table_of(catalog_name))}
    assert unsynced
    # When it is compacted under Iceberg
    report = compact(store, target_bytes=SMALL, tracker=tracker(store, catalog_name))
    # Then the new files are neither inputs nor outputs: they are still there, not in the table
    assert not report.errors and report.commits
    table = table_of(catalog_name)
    assert unsynced <= listing(store)
    assert not unsynced & {key_of(store, p) for p in referenced_files(table)}
    # and the next sync registers them beside the compacted files
    result = iceberg_sync("--archive", local, "--catalog", catalog_name)
    assert result.code == 0 and f"+{len(unsynced)} files" in result.messages, result.messages
    table = table_of(catalog_name)
    assert {key_of(store, p) for p in current_files(table)} >= unsynced
    assert_current_is_replay(table, local)


# --- crashes --------------------------------------------------------------------------------


def test_a_crash_before_the_commit_is_committed_by_the_next_sync(
    local: str, catalog_name: str, iceberg_sync: Callable[..., Run]
) -> None:
    # Given a synced archive, and a compaction that dies after writing every output
    store = open_store(local)
    before = table_of(catalog_name)
    dying = DiesBeforeCommit(tracker(store, catalog_name))
    with pytest.raises(Crash):
        compact(store, target_bytes=SMALL, tracker=dying)
    written = {key for swap in dying.swaps for key in swap.added}
    assert len(written) > len(dying.swaps)  # several outputs per hour
    # Then the table is as it was, and scans as it did
    table = table_of(catalog_name)
    assert table.metadata_location == before.metadata_location
    assert written <= listing(store)
    # When the archive is synced
    result = iceberg_sync("--archive", local, "--catalog", catalog_name)
    # Then the sync commits the swap instead of adding the outputs beside their inputs
    assert result.code == 0, result.messages
    assert f"compacted files of {len(dying.swaps)} hours swapped in" in result.messages
    table = table_of(catalog_name)
    assert {key_of(store, p) for p in current_files(table)} == written
    assert_current_is_replay(table, local)  # no event counted twice
    # and a compaction now has nothing left to do
    report = compact(store, target_bytes=SMALL, tracker=tracker(store, catalog_name))
    assert not report.errors and not report.commits and report.partitions_compacted == 0
    assert table_of(catalog_name).metadata_location == table.metadata_location


def test_a_crash_before_the_commit_is_finished_by_the_next_compaction(
    local: str, catalog_name: str
) -> None:
    # Given a compaction that died before its commit
    store = open_store(local)
    with pytest.raises(Crash):
        compact(store, target_bytes=SMALL, tracker=DiesBeforeCommit(tracker(store, catalog_name)))
    written = listing(store)
    # When compaction runs again
    report = compact(store, target_bytes=SMALL, tracker=tracker(store, catalog_name))
    # Then it writes nothing new (the outputs are there) and commits the swap
    assert not report.errors and len(report.commits) == 1
    assert report.bytes_out == 0
    assert listing(store) == written
    table = table_of(catalog_name)
    assert len(table.snapshots()) == 2
    assert_current_is_replay(table, local)


def test_a_crash_between_outputs_leaves_them_out_until_compaction_finishes(
    local: str, catalog_name: str, iceberg_sync: Callable[..., Run]
) -> None:
    # Given a compaction that dies writing the second output of its first hour
    store = open_store(local)
    first = table_of(catalog_name)
    with pytest.raises(Crash):
        compact(
            CrashingStore(store, "put", 2), target_bytes=SMALL, tracker=tracker(store, catalog_name)
        )
    [orphan] = listing(store) - {key_of(store, p) for p in current_files(first)}
    lineage = lineage_of(store, orphan)
    assert lineage is not None and len(lineage["outputs"]) > 1
    # When the archive is synced
    result = iceberg_sync("--archive", local, "--catalog", catalog_name)
    # Then the unfinished compaction's file is left out: nothing is committed
    assert result.code == 0, result.messages
    assert "1 files of unfinished or superseded compactions left out" in result.messages
    assert table_of(catalog_name).metadata_location == first.metadata_location
    # When compaction runs again
    report = compact(store, target_bytes=SMALL, tracker=tracker(store, catalog_name))
    # Then it finishes: the file written before the crash is one of its outputs
    assert not report.errors and report.commits
    table = table_of(catalog_name)
    assert orphan in {key_of(store, p) for p in current_files(table)}
    assert_current_is_replay(table, local)


def test_a_compaction_superseded_after_its_crash_is_left_out(
    local: str, catalog_name: str, iceberg_sync: Callable[..., Run]
) -> None:
    # Given a compaction that died before its commit, then one with another target that did not
    store = open_store(local)
    with pytest.raises(Crash):
        compact(store, target_bytes=SMALL, tracker=DiesBeforeCommit(tracker(store, catalog_name)))
    report = compact(store, target_bytes=4 * SMALL, tracker=tracker(store, catalog_name))
    assert not report.errors and report.commits
    committed = table_of(catalog_name)
    # When the archive is synced
    result = iceberg_sync("--archive", local, "--catalog", catalog_name)
    # Then the first one's files are left out, not added beside the second one's
    assert result.code == 0, result.messages
    assert "files of unfinished or superseded compactions left out" in result.messages
    table = table_of(catalog_name)
    assert table.metadata_location == committed.metadata_location
    assert_current_is_replay(table, local)


def test_replaced_files_changed_outside_the_archiver_are_refused(
    local: str, catalog_name: str, iceberg_sync: Callable[..., Run]
) -> None:
    # Given a compaction that died before its commit, and someone who then removed one of
    # its inputs from the table by hand
    store = open_store(local)
    dying = DiesBeforeCommit(tracker(store, catalog_name))
    with pytest.raises(Crash):
        compact(store, target_bytes=SMALL, tracker=dying)
    table = table_of(catalog_name)
    victim = dying.swaps[0].removed[0]
    [data_file] = [
        f for p, f in live_files(table, [table.current_snapshot()]).items() if p.endswith(victim)
    ]
    transaction = table.transaction()
    with transaction.update_snapshot().overwrite() as overwrite:
        overwrite.delete_data_file(data_file)
    transaction.commit_transaction()
    changed = table_of(catalog_name)
    # When the archive is synced
    result = iceberg_sync("--archive", local, "--catalog", catalog_name)
    # Then the table is refused, naming the replaced file, and nothing is committed
    assert result.code == 1
    assert victim in result.messages and "changed outside archiver" in result.messages
    assert table_of(catalog_name).metadata_location == changed.metadata_location


class SyncsBeforeCommit:
    """The catalog's side of compaction, with a sink and a sync that commit just before it does."""

    def __init__(self, inner: IcebergTracker, meanwhile: Callable[[], None]) -> None:
        self.inner, self.meanwhile = inner, meanwhile

    def open(self, table: str, registration: Registration | None) -> TrackedTable | None:
        tracked = self.inner.open(table, registration)
        return None if tracked is None else _Meanwhile(tracked, self.meanwhile)


class _Meanwhile:
    def __init__(self, inner: TrackedTable, meanwhile: Callable[[], None]) -> None:
        self.inner, self.meanwhile = inner, meanwhile
        self.identifier = inner.identifier

    def partitions(
        self, since_us: int | None, until_us: int | None
    ) -> list[tuple[Partition, list[Any]]]:
        return self.inner.partitions(since_us, until_us)

    def commit(self, swaps: Sequence[Swap]) -> int | None:
        self.meanwhile()
        return self.inner.commit(swaps)


def test_a_sync_during_a_compaction_commits_its_swap_and_its_own_commit_is_refused(
    local: str, catalog_name: str, iceberg_sync: Callable[..., Run]
) -> None:
    # Given a compaction, and a sink and a sync that add a file to its first hour after it
    # wrote its outputs, before it commits
    store = open_store(local)
    history = TableHistory(TABLE, seed=41, seconds_per_change=20.0)
    retried = history.changes(500)[10:30]  # a retried batch in the first hour: a new file
    synced: list[Run] = []

    def meanwhile() -> None:
        archive_records(retried, store)
        synced.append(iceberg_sync("--archive", local, "--catalog", catalog_name))

    before = listing(store)
    racing = SyncsBeforeCommit(tracker(store, catalog_name), meanwhile)
    # When the compaction commits
    report = compact(store, target_bytes=SMALL, tracker=racing)
    # Then the sync found every output written and committed the swaps, beside the new file
    [sync] = synced
    assert sync.code == 0 and "compacted files of 3 hours swapped in" in sync.messages
    outputs = {key for key in listing(store) - before if lineage_of(store, key)}
    [new] = listing(store) - before - outputs
    table = table_of(catalog_name)
    assert {key_of(store, p) for p in current_files(table)} == outputs | {new}
    assert_snapshot_has_the_events(table, snapshot_ids(table)[-1], local)
    # and the compaction's own commit is refused (files were added to an hour it compacted)
    assert len(report.errors) == 1 and not report.commits
    assert report.errors[0].startswith(f"{NAMESPACE}.{TABLE}: commit failed: ")
    assert table_of(catalog_name).metadata_location == table.metadata_location
    # When compaction runs again
    again = compact(store, target_bytes=SMALL, tracker=tracker(store, catalog_name))
    # Then it compacts that hour again, the new file included: each event once
    assert not again.errors and again.commits and again.partitions_compacted == 1
    assert_current_is_replay(table_of(catalog_name), local)


# --- expiry ---------------------------------------------------------------------------------


def compact_tracked(store: ArchiveStore, catalog_name: str) -> tuple[set[str], set[str]]:
    """Compact the tracked table: the keys its current snapshot held before, and after."""
    replaced = {key_of(store, p) for p in current_files(table_of(catalog_name))}
    assert not compact(store, target_bytes=SMALL, tracker=tracker(store, catalog_name)).errors
    return replaced, {key_of(store, p) for p in current_files(table_of(catalog_name))}


def test_expiry_deletes_the_replaced_files_and_nothing_else(
    local: str, catalog_name: str, iceberg_sync: Callable[..., Run]
) -> None:
    # Given a compacted table, and files the sink wrote since the last sync
    store = open_store(local)
    replaced, compacted = compact_tracked(store, catalog_name)
    history = TableHistory(TABLE, seed=41, seconds_per_change=20.0)
    history.changes(500)
    later = history.changes(40)
    archive_records(later, store)
    unsynced = listing(store) - replaced - compacted
    assert unsynced
    # When the snapshots before now are expired
    now = datetime.now(UTC) + timedelta(seconds=1)
    report = expire(
        store, load_catalog(catalog_name), namespace=NAMESPACE, tables=[TABLE], before=now
    )
    # Then the snapshot before the compaction is gone, and with it the files only it referenced
    assert not report.errors
    assert report.snapshots_expired == 1 and report.files_deleted == len(replaced - compacted)
    table = table_of(catalog_name)
    assert len(table.snapshots()) == 1
    assert listing(store) == compacted | unsynced  # the sink's new files are still there
    # and the next sync (expiring again, by the command) registers the new files, deletes none
    result = iceberg_sync(
        "--archive", local, "--catalog", catalog_name, "--expire-snapshots-older-than", "0s"
    )
    assert result.code == 0, result.messages
    assert f"+{len(unsynced)} files" in result.messages
    assert "expired 1 snapshots" in result.messages  # the one before this sync's
    assert "deleted 0 archive files" in result.messages
    assert listing(store) == compacted | unsynced
    assert_current_is_replay(table_of(catalog_name), local)


def test_a_crash_during_expiry_is_finished_by_a_rerun(
    local: str, catalog_name: str, iceberg_sync: Callable[..., Run]
) -> None:
    # Given a compacted table whose older snapshot references many files no other one does
    store = open_store(local)
    replaced, compacted = compact_tracked(store, catalog_name)
    doomed = replaced - compacted
    assert len(doomed) > 3
    # When an expiry dies after deleting some of them, before its commit
    later = datetime.now(UTC) + timedelta(seconds=1)
    with pytest.raises(Crash):
        expire(
            CrashingStore(store, "delete", 3),
            load_catalog(catalog_name),
            namespace=NAMESPACE,
            tables=[TABLE],
            before=later,
        )
    # Then two are gone, no snapshot expired, and the current snapshot scans as it did
    assert len(doomed - listing(store)) == 2
    table = table_of(catalog_name)
    assert len(table.snapshots()) == 2
    assert_current_is_replay(table, local)
    # and a sync meanwhile registers nothing (the files still there are an old snapshot's)
    synced = iceberg_sync("--archive", local, "--catalog", catalog_name)
    assert synced.code == 0 and "unchanged" in synced.messages, synced.messages
    # When the expiry runs again
    result = iceberg_sync(
        "--archive", local, "--catalog", catalog_name, "--expire-snapshots-older-than", "0s"
    )
    # Then it finishes: the rest deleted, the snapshot expired, the current one intact
    assert result.code == 0, result.messages
    assert f"deleted {len(doomed) - 2} archive files" in result.messages
    table = table_of(catalog_name)
    assert len(table.snapshots()) == 1
    assert listing(store) == compacted
    assert_current_is_replay(table, local)


# --- bad usage ------------------------------------------------------------------------------


def test_a_table_registered_in_another_namespace_is_refused(
    local: str,
    catalog_name: str,
    iceberg_sync: Callable[..., Run],
    compact_command: Callable[..., Run],
) -> None:
    result = iceberg_sync("--archive", local, "--catalog", catalog_name, "--namespace", "other")
    assert result.code == 1
    assert f"registers {TABLE} in {NAMESPACE}.{TABLE} of catalog {catalog_name}" in result.messages
    refused = compact_command("--archive", local, "--iceberg", catalog_name, "--namespace", "other")
    assert refused.code == 1
    assert f"--namespace {NAMESPACE}" in refused.messages


def test_a_table_synced_before_registrations_existed_gets_one_at_the_next_sync(
    local: str, catalog_name: str, iceberg_sync: Callable[..., Run]
) -> None:
    # Given a synced table whose registration is not there (as an older archiver left it)
    store = open_store(local)
    assert Registration.load(store, TABLE) == Registration(TABLE, catalog_name, NAMESPACE)
    store.delete(f"_iceberg/{TABLE}.json")
    before = table_of(catalog_name)
    # When it is synced with nothing new
    result = iceberg_sync("--archive", local, "--catalog", catalog_name)
    # Then the registration is written, and nothing is committed
    assert result.code == 0 and "unchanged" in result.messages, result.messages
    assert Registration.load(store, TABLE) == Registration(TABLE, catalog_name, NAMESPACE)
    assert table_of(catalog_name).metadata_location == before.metadata_location


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--expire-snapshots-older-than", "a week"], "--expire-snapshots-older-than"),
        (["--expire-snapshots-older-than", "7"], "'7' is not a duration"),
    ],
)
def test_a_bad_duration_is_bad_usage(
    local: str, catalog_name: str, iceberg_sync: Callable[..., Run], args: list[str], named: str
) -> None:
    result = iceberg_sync("--archive", local, "--catalog", catalog_name, *args)
    assert result.code == 2 and named in result.messages


def test_compact_namespace_without_iceberg_is_bad_usage(
    local: str, compact_command: Callable[..., Run]
) -> None:
    result = compact_command("--archive", local, "--namespace", "x")
    assert result.code == 2 and "--iceberg" in result.messages


def test_compact_with_a_catalog_that_is_not_configured_is_bad_usage(
    local: str, compact_command: Callable[..., Run]
) -> None:
    result = compact_command("--archive", local, "--iceberg", "nowhere")
    assert result.code == 2 and "--iceberg nowhere" in result.messages
