"""The scheduled ``iceberg-sync`` function end to end: ``handler`` configured as Lambda configures it.

Everything comes from environment variables, as deploy/template.yaml sets them:
``ARCHIVER_ARCHIVE_URI``, ``ARCHIVER_ICEBERG_CATALOG``, ``ARCHIVER_ICEBERG_NAMESPACE``
and pyiceberg's ``PYICEBERG_CATALOG__<NAME>__*`` (here a SQL catalog on SQLite; the
Glue catalog is tests/integration/test_iceberg_glue.py). The archive is a local
folder or S3 on SeaweedFS.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from archiver.archive.reader import list_partitions
from archiver.archive.store import ArchiveStore, open_store
from archiver.iceberg import load_catalog, registered_files
from archiver.iceberg_handler import IcebergSyncFailed, handler
from archiver.write import archive_records
from devkit.traffic import TableHistory

NAMESPACE = "history"
LOCAL_ONLY = pytest.mark.parametrize("archive_uri", ["local"], indirect=True)
CONTEXT = SimpleNamespace(aws_request_id="req-1", function_name="iceberg-sync")


@pytest.fixture
def configured(
    archive_uri: str, catalog_name: str, monkeypatch: pytest.MonkeyPatch
) -> ArchiveStore:
    """The function's environment; returns the store the sink writes the archive with."""
    monkeypatch.setenv("ARCHIVER_ARCHIVE_URI", archive_uri)
    monkeypatch.setenv("ARCHIVER_ICEBERG_CATALOG", catalog_name)
    monkeypatch.setenv("ARCHIVER_ICEBERG_NAMESPACE", NAMESPACE)
    if archive_uri.startswith("s3://"):
        prefix = f"PYICEBERG_CATALOG__{catalog_name.upper()}__"
        monkeypatch.setenv(prefix + "S3__ENDPOINT", os.environ["AWS_ENDPOINT_URL_S3"])
        monkeypatch.setenv(prefix + "S3__REGION", os.environ["AWS_REGION"])
        monkeypatch.setenv(prefix + "S3__ACCESS_KEY_ID", os.environ["AWS_ACCESS_KEY_ID"])
        monkeypatch.setenv(prefix + "S3__SECRET_ACCESS_KEY", os.environ["AWS_SECRET_ACCESS_KEY"])
    return open_store(archive_uri, s3="boto3")


def write(store: ArchiveStore, table: str, count: int, seed: int) -> None:
    changes = TableHistory(table, seed=seed, seconds_per_change=60.0).changes(count)
    for i in range(0, count, 50):
        assert archive_records(changes[i : i + 50], store).ok


def data_files(store: ArchiveStore, table: str) -> set[str]:
    root = store.uri.rstrip("/")
    return {f"{root}/{obj.key}" for _, found in list_partitions(store, table) for obj in found}


def test_each_scheduled_run_registers_what_is_new(
    configured: ArchiveStore, catalog_name: str
) -> None:
    # Given an archive of two tables
    store = configured
    write(store, "orders", 200, seed=1)
    write(store, "payments", 120, seed=2)
    # When the schedule invokes the function
    result = handler({}, CONTEXT)
    # Then both tables are registered in the configured catalog and namespace
    catalog = load_catalog(catalog_name)
    assert sorted(catalog.list_tables(NAMESPACE)) == [
        (NAMESPACE, "orders"),
        (NAMESPACE, "payments"),
    ]
    for name in ("orders", "payments"):
        table = catalog.load_table((NAMESPACE, name))
        assert registered_files(table) == data_files(store, name)
        entry = result["tables"][f"{NAMESPACE}.{name}"]
        assert entry["files_registered"] == len(data_files(store, name))
        assert entry["snapshot_id"] == table.current_snapshot().snapshot_id
    assert result["files_registered"] == sum(
        len(data_files(store, n)) for n in ("orders", "payments")
    )
    # When it runs again with nothing new, Then nothing is committed
    again = handler({}, CONTEXT)
    assert again["files_registered"] == 0
    assert len(catalog.load_table((NAMESPACE, "orders")).snapshots()) == 1
    # When the sink wrote more, Then the next run registers exactly that
    more = TableHistory("orders", seed=3, start=2_000_000_000.0).changes(40)
    assert archive_records(more, store).ok
    third = handler({}, CONTEXT)
    assert third["tables"][f"{NAMESPACE}.orders"]["files_registered"] >= 1
    assert third["tables"][f"{NAMESPACE}.payments"]["files_registered"] == 0
    assert registered_files(catalog.load_table((NAMESPACE, "orders"))) == data_files(
        store, "orders"
    )


@LOCAL_ONLY
def test_a_table_that_fails_fails_the_invocation_after_the_others(
    configured: ArchiveStore, catalog_name: str
) -> None:
    # Given an archive where one orders file lies in another hour's folder
    store = configured
    write(store, "orders", 200, seed=1)
    write(store, "payments", 60, seed=2)
    (_, files), (second, _) = list_partitions(store, "orders")[:2]
    root = Path(store.uri)
    shutil.copy(root / files[0].key, root / second.prefix / "moved.parquet")
    # When the schedule invokes the function
    with pytest.raises(IcebergSyncFailed) as failed:
        handler({}, CONTEXT)
    # Then the invocation fails naming the table and the file, and the other table is synced
    message = str(failed.value)
    assert "1 of 2 tables not synced" in message
    assert f"{NAMESPACE}.orders" in message and "moved.parquet" in message
    catalog = load_catalog(catalog_name)
    payments = catalog.load_table((NAMESPACE, "payments"))
    assert registered_files(payments) == data_files(store, "payments")
    assert (NAMESPACE, "orders") not in catalog.list_tables(NAMESPACE)


@LOCAL_ONLY
@pytest.mark.parametrize(
    "variable,value,says",
    [
        ("ARCHIVER_ICEBERG_CATALOG", None, "ARCHIVER_ICEBERG_CATALOG is not set"),
        ("ARCHIVER_ICEBERG_CATALOG", "nowhere", "PYICEBERG_CATALOG__NOWHERE__"),
        ("ARCHIVER_ICEBERG_NAMESPACE", "", "ARCHIVER_ICEBERG_NAMESPACE"),
        ("ARCHIVER_ARCHIVE_URI", None, "ARCHIVER_ARCHIVE_URI"),
    ],
)
def test_a_function_that_cannot_sync_fails_saying_what_to_set(
    configured: ArchiveStore,
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
    value: str | None,
    says: str,
) -> None:
    write(configured, "orders", 30, seed=1)
    if value is None:
        monkeypatch.delenv(variable)
    else:
        monkeypatch.setenv(variable, value)
    with pytest.raises(IcebergSyncFailed, match=says):
        handler({}, CONTEXT)


@LOCAL_ONLY
def test_an_archive_that_does_not_exist_fails_the_invocation(
    tmp_path: Path, configured: ArchiveStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARCHIVER_ARCHIVE_URI", str(tmp_path / "nowhere"))
    with pytest.raises(IcebergSyncFailed, match="no such archive"):
        handler({}, CONTEXT)
