"""``archiver iceberg-sync`` end to end: pyiceberg's SQL catalog (SQLite) over real archives.

The archive is what a Lambda sink leaves behind (batches, some retried with other
boundaries, so some events are stored twice), in a local folder and on S3
(SeaweedFS). The Iceberg table's current snapshot must scan to exactly the
records ``replayer events`` gives, reference the archive's own files in place,
and change only when there is something new.
"""

from __future__ import annotations

import io
import os
import random
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from pyiceberg.catalog import Catalog
from pyiceberg.io import FileIO
from pyiceberg.io.pyarrow import parquet_file_to_data_file
from pyiceberg.manifest import DATA_FILE_TYPE, DEFAULT_READ_VERSION, DataFile, ManifestFile
from pyiceberg.table import Table
from pyiceberg.transforms import HourTransform

from archiver import cli as archiver_cli
from archiver import iceberg
from archiver.archive.codec import order_rows
from archiver.archive.reader import list_partitions
from archiver.archive.rebuild import record_texts
from archiver.archive.schema import parse_promoted_columns
from archiver.archive.store import ArchiveStore, open_store
from archiver.iceberg import load_catalog, registered_files, sync
from archiver.iceberg_listing import LISTING
from archiver.write import ArchiveOptions, archive_records
from devkit.traffic import TableHistory
from replayer import cli as replayer_cli

TABLES = ("orders", "payments")
NAMESPACE = "dynamodb_archive"
PROMOTED = ArchiveOptions(
    promoted=parse_promoted_columns("customer_id:string,amount:decimal(18,2)")
)


# --- the archive: what a Lambda sink writes ------------------------------------------------------


def histories() -> dict[str, TableHistory]:
    return {
        "orders": TableHistory("orders", seed=21, seconds_per_change=20.0),
        "payments": TableHistory("payments", seed=22, seconds_per_change=30.0),
    }


def write_batches(
    store: ArchiveStore,
    records: list[dict[str, Any]],
    seed: int,
    options: ArchiveOptions = ArchiveOptions(),
) -> None:
    """Lambda batches of 20 to 50; about a third retried with other boundaries (stored twice)."""
    rng = random.Random(seed)
    start = 0
    while start < len(records):
        size = rng.randrange(20, 51)
        batches = [records[start : start + size]]
        if rng.random() < 0.35:
            batches.append(records[max(0, start - rng.randrange(1, 15)) : start + size + 5])
        for batch in batches:
            report = archive_records(batch, store, options)
            assert report.ok, report.errors
        start += size


def write_traffic(
    store: ArchiveStore,
    tables: dict[str, TableHistory],
    count: int,
    options: ArchiveOptions = ArchiveOptions(),
    seed: int = 0,
) -> None:
    for i, history in enumerate(tables.values()):
        write_batches(store, history.changes(count), seed + i, options)


def write_strays(store: ArchiveStore) -> None:
    """A dead letter, a checkpoint and a temporary file: none of them is archive data."""
    history = TableHistory("orders", seed=99)
    poison = dict(history.change(), eventName="UPSERT")
    report = archive_records([poison], store, ArchiveOptions())
    assert report.dead_lettered == 1
    store.put("_checkpoints/poller-orders.json", b'{"kind": "poller", "version": 1}')
    if store.uri.startswith("/"):  # a writer's temporary file in a local archive
        [(partition, _)] = list_partitions(store, "orders")[:1]
        (Path(store.uri) / partition.prefix / ".tmp-abc123").write_bytes(b"PAR1 half written")


def data_files(store: ArchiveStore, table: str) -> set[str]:
    """Where the archive's data files of ``table`` are, as the catalog's FileIO names them."""
    root = store.uri.rstrip("/")
    return {f"{root}/{obj.key}" for _, found in list_partitions(store, table) for obj in found}


# --- the catalog and the commands -------------------------------------------------------------


@pytest.fixture
def archive(archive_uri: str, catalog_name: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The archive URI; for S3, the catalog's FileIO is given the endpoint (its s3.* properties)."""
    if archive_uri.startswith("s3://"):
        prefix = f"PYICEBERG_CATALOG__{catalog_name.upper()}__"
        # pyiceberg's S3 FileIO reads its own properties, not AWS_ENDPOINT_URL_S3; without a
        # region it would ask AWS for the bucket's.
        monkeypatch.setenv(prefix + "S3__ENDPOINT", os.environ["AWS_ENDPOINT_URL_S3"])
        monkeypatch.setenv(prefix + "S3__REGION", os.environ["AWS_REGION"])
        monkeypatch.setenv(prefix + "S3__ACCESS_KEY_ID", os.environ["AWS_ACCESS_KEY_ID"])
        monkeypatch.setenv(prefix + "S3__SECRET_ACCESS_KEY", os.environ["AWS_SECRET_ACCESS_KEY"])
    return archive_uri


@pytest.fixture
def store(archive: str) -> ArchiveStore:
    """The store the sink writes the archive with."""
    return open_store(archive, s3="boto3")


class Run:
    def __init__(self, code: int, messages: str) -> None:
        self.code = code
        self.messages = messages


@pytest.fixture
def iceberg_sync(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> Callable[..., Run]:
    """Run ``archiver iceberg-sync ARGS`` in-process."""

    def run(*args: str) -> Run:
        capsys.readouterr()
        caplog.clear()
        code = archiver_cli.main(["iceberg-sync", *args])
        messages = capsys.readouterr().err + caplog.text
        assert "Traceback" not in messages
        return Run(code, messages)

    return run


def replayed(archive: str, table: str) -> list[bytes]:
    """``replayer events`` of the table: one JSON text per record, in archive order."""
    out = io.BytesIO()
    assert replayer_cli.main(["events", "--archive", archive, "--table", table], stdout=out) == 0
    return out.getvalue().splitlines()


def scanned(table: Table) -> pa.Table:
    """The current snapshot, every stored row, with the archive's string columns."""
    rows = table.scan().to_arrow()
    columns = [
        pc.cast(column, pa.string()) if pa.types.is_large_string(column.type) else column
        for column in rows.columns
    ]
    return pa.table(columns, names=rows.column_names)


def assert_scan_is_the_archive(table: Table, archive: str, name: str) -> None:
    """The snapshot holds exactly the records replay gives: each event once, text for text."""
    rows = scanned(table)
    events = replayed(archive, name)
    event_ids = [orjson.loads(line)["eventID"] for line in events]
    assert len(set(event_ids)) == len(event_ids)
    assert set(rows.column("event_id").to_pylist()) == set(event_ids)
    # the rows stored twice by retried batches are there twice, as in the Hive layout
    stored = sum(f.record_count for f in _live_data_files(table))
    assert rows.num_rows == stored >= len(events)
    rebuilt = [text.encode() for text in record_texts(order_rows(rows)).to_pylist()]
    assert sorted(rebuilt) == sorted(events)  # envelope and images, byte for byte


def _live_data_files(table: Table) -> list[Any]:
    snapshot = table.current_snapshot()
    assert snapshot is not None
    return [
        entry.data_file
        for manifest in snapshot.manifests(table.io)
        for entry in manifest.fetch_manifest_entry(table.io, discard_deleted=True)
    ]


def catalog(name: str) -> Catalog:
    return load_catalog(name)


# --- the sync --------------------------------------------------------------------------------


def test_the_tables_scan_to_the_archive_in_place(
    archive: str, store: ArchiveStore, catalog_name: str, iceberg_sync: Callable[..., Run]
) -> None:
    # Given an archive of two tables, with a dead letter, a checkpoint and a temporary file
    write_traffic(store, histories(), 400)
    write_strays(store)
    # When it is synced
    result = iceberg_sync("--archive", archive, "--catalog", catalog_name)
    # Then each DynamoDB table is an Iceberg table of the archive's own files, nothing else
    assert result.code == 0, result.messages
    assert "synced 2 of 2 tables" in result.messages
    assert "statistics missing" not in result.messages  # metrics only where the files have them
    iceberg = catalog(catalog_name)
    assert sorted(iceberg.list_tables(NAMESPACE)) == [(NAMESPACE, t) for t in TABLES]
    for name in TABLES:
        table = iceberg.load_table((NAMESPACE, name))
        assert registered_files(table) == data_files(store, name)
        assert not any("_errors" in p or "_checkpoints" in p for p in registered_files(table))
        assert len(table.snapshots()) == 1  # one commit
        assert f"{name} +{len(data_files(store, name))} files" in result.messages
        # partitioned by the hour of the change, each file's partition its path's hour
        [spec_field] = table.spec().fields
        assert isinstance(spec_field.transform, HourTransform)
        assert table.schema().find_field(spec_field.source_id).name == "change_time"
        for data_file in _live_data_files(table):
            hour = data_file.partition[0]  # hours since the epoch
            stamp = pa.scalar(hour * 3_600_000_000, pa.timestamp("us", tz="UTC")).as_py()
            assert f"/dt={stamp:%Y-%m-%d}/hour={stamp:%H}/" in data_file.file_path
        # sorted as the files declare, and the columns documented
        [sort_field] = table.sort_order().fields
        assert table.schema().find_field(sort_field.source_id).name == "sequence_number"
        assert table.schema().find_field("event_id").doc
        assert_scan_is_the_archive(table, archive, name)


def test_a_rerun_with_nothing_new_commits_nothing(
    archive: str, store: ArchiveStore, catalog_name: str, iceberg_sync: Callable[..., Run]
) -> None:
    # Given a synced archive
    write_traffic(store, histories(), 150)
    assert iceberg_sync("--archive", archive, "--catalog", catalog_name).code == 0
    before = {n: catalog(catalog_name).load_table((NAMESPACE, n)) for n in TABLES}
    # (whose commits pyiceberg does not re-apply after losing a race: that would register
    # the other writer's files a second time)
    assert all(t.properties["commit.retry.num-retries"] == "0" for t in before.values())
    # When it is synced again
    result = iceberg_sync("--archive", archive, "--catalog", catalog_name)
    # Then no table has a new snapshot, or new metadata
    assert result.code == 0, result.messages
    assert "0 files registered" in result.messages
    for name, table in before.items():
        after = catalog(catalog_name).load_table((NAMESPACE, name))
        snapshot = table.current_snapshot()
        assert snapshot is not None
        assert after.current_snapshot() == snapshot
        assert after.metadata_location == table.metadata_location
        assert f"{NAMESPACE}.{name} unchanged (snapshot {snapshot.snapshot_id})" in result.messages


def test_files_written_after_a_sync_are_registered_by_the_next(
    archive: str, store: ArchiveStore, catalog_name: str, iceberg_sync: Callable[..., Run]
) -> None:
    # Given a synced archive, without promoted columns
    tables = histories()
    write_traffic(store, tables, 200)
    assert iceberg_sync("--archive", archive, "--catalog", catalog_name).code == 0
    first = {n: catalog(catalog_name).load_table((NAMESPACE, n)) for n in TABLES}
    synced = {n: registered_files(t) for n, t in first.items()}
    # When the sink goes on, now with promoted columns, and the archive is synced again
    write_traffic(store, tables, 200, PROMOTED, seed=10)
    result = iceberg_sync("--archive", archive, "--catalog", catalog_name)
    # Then one new snapshot per table adds exactly the new files, and the new columns
    assert result.code == 0, result.messages
    for name, before in first.items():
        table = catalog(catalog_name).load_table((NAMESPACE, name))
        new = data_files(store, name) - synced[name]
        assert new
        assert registered_files(table) == synced[name] | new
        snapshot, previous = table.current_snapshot(), before.current_snapshot()
        assert snapshot is not None and previous is not None
        assert snapshot.parent_snapshot_id == previous.snapshot_id
        assert len(table.snapshots()) == 2
        assert snapshot.summary is not None
        assert int(snapshot.summary["added-data-files"]) == len(new)
        assert {"customer_id", "amount"} <= set(table.schema().column_names)
        assert_scan_is_the_archive(table, archive, name)
        amounts = scanned(table).column("amount")
        assert 0 < amounts.null_count < len(amounts)  # older files have no such column


def test_table_limits_the_tables(
    archive: str, store: ArchiveStore, catalog_name: str, iceberg_sync: Callable[..., Run]
) -> None:
    write_traffic(store, histories(), 100)
    result = iceberg_sync("--archive", archive, "--catalog", catalog_name, "--table", "payments")
    assert result.code == 0, result.messages
    assert "synced 1 of 1 tables" in result.messages
    assert catalog(catalog_name).list_tables(NAMESPACE) == [(NAMESPACE, "payments")]


def test_the_namespace_is_chosen(
    local_archive: str, catalog_name: str, iceberg_sync: Callable[..., Run]
) -> None:
    store = open_store(local_archive)
    write_traffic(store, {"orders": TableHistory("orders", seed=3)}, 60)
    result = iceberg_sync(
        "--archive", local_archive, "--catalog", catalog_name, "--namespace", "history"
    )
    assert result.code == 0, result.messages
    assert catalog(catalog_name).list_tables("history") == [("history", "orders")]


# --- bad input ----------------------------------------------------------------------------------


def test_a_catalog_that_is_not_configured_is_bad_usage(
    local_archive: str, catalog_name: str, iceberg_sync: Callable[..., Run]
) -> None:
    write_traffic(open_store(local_archive), {"orders": TableHistory("orders")}, 30)
    result = iceberg_sync("--archive", local_archive, "--catalog", "nowhere")
    assert result.code == 2
    assert "--catalog nowhere" in result.messages
    assert "PYICEBERG_CATALOG__NOWHERE__" in result.messages


def test_a_catalog_that_cannot_be_loaded_is_bad_usage(
    local_archive: str, iceberg_sync: Callable[..., Run], monkeypatch: pytest.MonkeyPatch
) -> None:
    write_traffic(open_store(local_archive), {"orders": TableHistory("orders")}, 30)
    monkeypatch.setenv("PYICEBERG_CATALOG__BROKEN__TYPE", "sql")  # and no uri
    result = iceberg_sync("--archive", local_archive, "--catalog", "broken")
    assert result.code == 2
    assert "--catalog broken" in result.messages and "URI" in result.messages


def test_an_archive_that_does_not_exist_is_bad_usage(
    tmp_path: Path, catalog_name: str, iceberg_sync: Callable[..., Run]
) -> None:
    missing = tmp_path / "no-archive"
    result = iceberg_sync("--archive", str(missing), "--catalog", catalog_name)
    assert result.code == 2
    assert str(missing) in result.messages


@pytest.mark.parametrize(
    ("table", "named"), [("customers", "no such table"), ("../x", "invalid table name")]
)
def test_a_table_the_archive_does_not_hold_is_bad_usage(
    local_archive: str,
    catalog_name: str,
    iceberg_sync: Callable[..., Run],
    table: str,
    named: str,
) -> None:
    write_traffic(open_store(local_archive), {"orders": TableHistory("orders")}, 30)
    result = iceberg_sync("--archive", local_archive, "--catalog", catalog_name, "--table", table)
    assert result.code == 2
    assert named in result.messages


def test_a_file_that_is_not_an_archive_file_fails_its_table_and_commits_nothing(
    local_archive: str, catalog_name: str, iceberg_sync: Callable[..., Run]
) -> None:
    # Given an archive with a Parquet file of someone else's among the orders
    store = open_store(local_archive)
    write_traffic(store, histories(), 60)
    [(partition, _), *_] = list_partitions(store, "orders")
    foreign = Path(store.uri) / partition.prefix / "foreign.parquet"
    pq.write_table(pa.table({"x": [1, 2]}), foreign)
    # When it is synced
    result = iceberg_sync("--archive", local_archive, "--catalog", catalog_name)
    # Then the orders table fails, naming the file, and the other table is synced
    assert result.code == 1
    assert "foreign.parquet" in result.messages
    assert "synced 1 of 2 tables" in result.messages
    assert catalog(catalog_name).list_tables(NAMESPACE) == [(NAMESPACE, "payments")]


def test_a_file_outside_its_hour_is_refused(
    local_archive: str, catalog_name: str, iceberg_sync: Callable[..., Run]
) -> None:
    # Given an archive file moved into another hour's folder
    store = open_store(local_archive)
    write_traffic(store, {"orders": TableHistory("orders", seed=5, seconds_per_change=20.0)}, 400)
    partitions = list_partitions(store, "orders")
    assert len(partitions) > 1
    (_, [obj, *_]), (later, _) = partitions[0], partitions[1]
    moved = Path(store.uri) / later.prefix / obj.key.rsplit("/", 1)[1]
    (Path(store.uri) / obj.key).rename(moved)
    result = iceberg_sync("--archive", local_archive, "--catalog", catalog_name)
    assert result.code == 1
    assert moved.name in result.messages and "hour" in result.messages
    assert catalog(catalog_name).list_tables(NAMESPACE) == []


def test_the_sink_and_the_cli_do_not_load_pyiceberg() -> None:
    # pyiceberg is an optional extra: the Lambda sink (zip or image) and every other command
    # must work without it, so only iceberg-sync may import it.
    probe = (
        "import sys, archiver.lambda_handler, archiver.runtime, archiver.cli as cli; "
        "cli._parser().parse_args(['iceberg-sync', '--catalog', 'x']); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pyiceberg', 'sqlalchemy')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=Path(__file__).parents[2],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


class SinkWritingStore:
    """The archive's store, with a sink that writes a new batch as the sync reads its first footer.

    (A footer is read with ``get`` for a small file, ``open`` for a large one.)
    """

    def __init__(self, inner: ArchiveStore, write: Callable[[], None]) -> None:
        self.inner = inner
        self.uri = inner.uri
        self.write: Callable[[], None] | None = write

    def _first_read(self, key: str) -> None:
        if self.write is not None and key.endswith(".parquet"):
            write, self.write = self.write, None
            write()  # after the listing, before the commit

    def open(self, key: str) -> Any:
        self._first_read(key)
        return self.inner.open(key)

    def get(self, key: str) -> bytes:
        self._first_read(key)
        return self.inner.get(key)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_files_the_sink_writes_during_a_sync_wait_for_the_next(
    archive: str, store: ArchiveStore, catalog_name: str, iceberg_sync: Callable[..., Run]
) -> None:
    # Given an archive, and a sink that writes a new batch while the sync runs
    tables = {"orders": TableHistory("orders", seed=31, seconds_per_change=20.0)}
    write_traffic(store, tables, 200)
    listed = data_files(store, "orders")
    later = tables["orders"].changes(40)
    sink = SinkWritingStore(open_store(archive), lambda: archive_records(later, store))
    # When the archive is synced
    report = sync(sink, catalog(catalog_name))  # type: ignore[arg-type]
    # Then the commit holds the files listed, not the one written meanwhile
    assert not report.errors and sink.write is None
    table = catalog(catalog_name).load_table((NAMESPACE, "orders"))
    assert registered_files(table) == listed != data_files(store, "orders")
    # and the next run registers it, and only it
    result = iceberg_sync("--archive", archive, "--catalog", catalog_name)
    assert result.code == 0, result.messages
    table = catalog(catalog_name).load_table((NAMESPACE, "orders"))
    snapshot = table.current_snapshot()
    assert snapshot is not None and snapshot.summary is not None
    assert int(snapshot.summary["added-data-files"]) == len(data_files(store, "orders") - listed)
    assert registered_files(table) == data_files(store, "orders")
    assert_scan_is_the_archive(table, archive, "orders")


# --- what each sync reads, and the DataFiles it makes ------------------------------------------


@pytest.fixture
def manifests_read(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The manifests whose entries pyiceberg reads, one path per read (from any thread)."""
    read: list[str] = []
    fetch = ManifestFile.fetch_manifest_entry

    def counted(self: ManifestFile, io: FileIO, discard_deleted: bool = True) -> Any:
        read.append(self.manifest_path)
        return fetch(self, io, discard_deleted=discard_deleted)

    monkeypatch.setattr(ManifestFile, "fetch_manifest_entry", counted)
    return read


def manifests_by_sync(table: Table) -> list[str]:
    """The manifest each snapshot added, oldest first (one per sync of new files)."""
    added: list[str] = []
    for snapshot in table.snapshots():
        added += [
            m.manifest_path
            for m in snapshot.manifests(table.io)
            if m.added_snapshot_id == snapshot.snapshot_id
        ]
    return added


def test_a_sync_reads_the_manifests_of_the_days_with_new_files_only(
    local_archive: str,
    catalog_name: str,
    iceberg_sync: Callable[..., Run],
    manifests_read: list[str],
) -> None:
    # Given a table synced day by day, four syncs of four days (a change every 20 minutes)
    store = open_store(local_archive)
    history = TableHistory("orders", seed=51, seconds_per_change=1200.0)
    changes = history.changes(4 * 72)
    for day in range(4):
        write_batches(store, changes[day * 72 : (day + 1) * 72], day, ArchiveOptions())
        result = iceberg_sync("--archive", local_archive, "--catalog", catalog_name)
        assert result.code == 0, result.messages
    table = catalog(catalog_name).load_table((NAMESPACE, "orders"))
    first, *_, last = manifests_by_sync(table)
    assert len(manifests_by_sync(table)) == 4
    # When nothing is new
    manifests_read.clear()
    result = iceberg_sync("--archive", local_archive, "--catalog", catalog_name)
    # Then no manifest is read, and nothing committed
    assert result.code == 0 and "unchanged" in result.messages, result.messages
    assert manifests_read == []
    # When the sink writes the last day's next batch
    write_batches(store, history.changes(20), 7, ArchiveOptions())
    result = iceberg_sync("--archive", local_archive, "--catalog", catalog_name)
    # Then that day's manifest only is read (and the new files registered)
    assert result.code == 0 and "orders +" in result.messages, result.messages
    assert set(manifests_read) == {last}
    # When a batch of the first day is retried late, with other boundaries (a new file there)
    before = registered_files(catalog(catalog_name).load_table((NAMESPACE, "orders")))
    manifests_read.clear()
    report = archive_records(changes[5:30], store)
    assert report.ok
    result = iceberg_sync("--archive", local_archive, "--catalog", catalog_name)
    # Then it is registered, and only it, from that day's manifest alone
    assert result.code == 0, result.messages
    assert set(manifests_read) == {first}
    table = catalog(catalog_name).load_table((NAMESPACE, "orders"))
    assert registered_files(table) == before | {f"{store.uri}/{key}" for key in report.files}
    assert registered_files(table) == data_files(store, "orders")
    assert_scan_is_the_archive(table, local_archive, "orders")


def test_a_listing_no_snapshot_of_the_lineage_recorded_is_not_trusted(
    local_archive: str,
    catalog_name: str,
    iceberg_sync: Callable[..., Run],
    manifests_read: list[str],
) -> None:
    # Given a table synced twice, rolled back to its first snapshot, and the second expired by
    # another tool that leaves the files it registered in the archive
    store = open_store(local_archive)
    history = TableHistory("orders", seed=52, seconds_per_change=60.0)
    write_batches(store, history.changes(120), 1, ArchiveOptions())
    assert iceberg_sync("--archive", local_archive, "--catalog", catalog_name).code == 0
    synced = registered_files(catalog(catalog_name).load_table((NAMESPACE, "orders")))
    write_batches(store, history.changes(120), 2, ArchiveOptions())
    assert iceberg_sync("--archive", local_archive, "--catalog", catalog_name).code == 0
    table = catalog(catalog_name).load_table((NAMESPACE, "orders"))
    first, second = table.snapshots()
    table.manage_snapshots().rollback_to_snapshot(first.snapshot_id).commit()
    table.maintenance.expire_snapshots().by_id(second.snapshot_id).commit()
    assert LISTING in table.properties  # (the second sync's record: of no snapshot any more)
    manifests_read.clear()
    # When it is synced
    result = iceberg_sync("--archive", local_archive, "--catalog", catalog_name)
    # Then the record is not trusted: every manifest is read, and the files no snapshot
    # references any more are registered again
    assert result.code == 0, result.messages
    read = set(manifests_read)
    table = catalog(catalog_name).load_table((NAMESPACE, "orders"))
    assert read == set(manifests_by_sync(table)[:1])
    assert registered_files(table) == data_files(store, "orders") != synced


# Every field of a DataFile, as pyiceberg makes and writes them (its __eq__ compares paths).
DATA_FILE_FIELDS = [field.name for field in DATA_FILE_TYPE[DEFAULT_READ_VERSION].fields]


def assert_same_data_file(built: DataFile, expected: DataFile) -> None:
    assert "lower_bounds" in DATA_FILE_FIELDS and len(DATA_FILE_FIELDS) >= 16
    for name in DATA_FILE_FIELDS:
        assert getattr(built, name) == getattr(expected, name), (name, built.file_path)


def test_the_data_files_are_the_ones_add_files_makes(
    archive: str, store: ArchiveStore, catalog_name: str, iceberg_sync: Callable[..., Run]
) -> None:
    # Given a table synced from files of two schemas (promoted columns configured later)
    tables = {"orders": TableHistory("orders", seed=53, seconds_per_change=20.0)}
    write_traffic(store, tables, 150)
    assert iceberg_sync("--archive", archive, "--catalog", catalog_name).code == 0
    write_traffic(store, tables, 150, PROMOTED, seed=10)
    assert iceberg_sync("--archive", archive, "--catalog", catalog_name).code == 0
    table = catalog(catalog_name).load_table((NAMESPACE, "orders"))
    files = [(p, obj) for p, found in list_partitions(store, "orders") for obj in found]
    sample = files[:3] + files[-3:]
    assert {obj.key for _, obj in sample[:3]}.isdisjoint(obj.key for _, obj in sample[3:])
    # When the sync makes their DataFiles from the footers it reads (its own checks')
    built = iceberg._data_files(table.metadata, iceberg._footers(store, sample))
    # Then each is, field for field, the one pyiceberg's add_files makes of that file
    assert len(built) == len(sample)
    for data_file in built:
        expected = parquet_file_to_data_file(table.io, table.metadata, data_file.file_path)
        assert_same_data_file(data_file, expected)
    assert {data_file.partition[0] for data_file in built} == {
        p.hour_start_us // 3_600_000_000 for p, _ in sample
    }
    # and so is every file the syncs registered, metrics and bounds included, as read back
    committed = _live_data_files(table)
    assert len(committed) == len(files)
    for data_file in committed:
        expected = parquet_file_to_data_file(table.io, table.metadata, data_file.file_path)
        assert_same_data_file(data_file, expected)
    assert any(data_file.lower_bounds for data_file in committed)
