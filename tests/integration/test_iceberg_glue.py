"""``archiver iceberg-sync`` with pyiceberg's Glue catalog: the catalog Athena reads.

Glue is moto's server (no real local Glue exists); the archive, and the tables'
metadata files, live on SeaweedFS (S3). The catalog is configured as a deployment
configures it, through ``PYICEBERG_CATALOG__<NAME>__*`` variables only:
``glue.endpoint`` points pyiceberg's boto3 Glue client at moto, ``s3.*`` its Arrow
FileIO at SeaweedFS. What Athena needs is then checked in Glue itself: a table
whose parameters say ``table_type=ICEBERG`` and where its metadata is.

moto serves every Glue call pyiceberg 0.12 makes here (CreateDatabase, GetDatabase,
GetTable, CreateTable, UpdateTable with VersionId and SkipArchive). It does not
refuse an UpdateTable whose VersionId is stale, as AWS Glue does (the optimistic lock that
makes two overlapping commits safe), so concurrent syncs are not tested here.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3
import orjson
import pytest
from pyiceberg.catalog import Catalog

from archiver import cli
from archiver.archive.reader import list_partitions
from archiver.archive.store import ArchiveStore, open_store, split_s3_uri
from archiver.iceberg import load_catalog, registered_files
from archiver.write import archive_records
from devkit.traffic import TableHistory
from replayer import cli as replayer_cli

TABLES = ("orders", "payments")


@dataclass
class Run:
    code: int
    err: str  # stderr and log lines


@dataclass
class Glue:
    catalog: str  # the name of the catalog in pyiceberg's configuration
    database: str  # the namespace
    warehouse: str  # s3://bucket/prefix of the tables' metadata
    client: Any  # boto3's Glue client on moto


@pytest.fixture
def glue(
    s3_archive: str, moto_endpoint: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> Glue:
    """A pyiceberg Glue catalog on moto, its warehouse beside the archive on SeaweedFS."""
    import os

    name = f"glue{uuid.uuid4().hex[:8]}"
    bucket, _ = split_s3_uri(s3_archive)
    warehouse = f"s3://{bucket}/iceberg"
    monkeypatch.setenv("PYICEBERG_HOME", str(tmp_path))  # no user's ~/.pyiceberg.yaml
    prefix = f"PYICEBERG_CATALOG__{name.upper()}__"
    settings = {
        "TYPE": "glue",
        "GLUE__ENDPOINT": moto_endpoint,  # glue.endpoint
        "GLUE__REGION": os.environ["AWS_REGION"],
        "WAREHOUSE": warehouse,
        # pyiceberg's FileIO reads its own s3.* properties, not AWS_ENDPOINT_URL_S3
        "S3__ENDPOINT": os.environ["AWS_ENDPOINT_URL_S3"],
        "S3__REGION": os.environ["AWS_REGION"],
        "S3__ACCESS_KEY_ID": os.environ["AWS_ACCESS_KEY_ID"],
        "S3__SECRET_ACCESS_KEY": os.environ["AWS_SECRET_ACCESS_KEY"],
    }
    for key, value in settings.items():
        monkeypatch.setenv(prefix + key, value)
    client = boto3.client("glue", endpoint_url=moto_endpoint)
    return Glue(name, f"archive_{uuid.uuid4().hex[:12]}", warehouse, client)


@pytest.fixture
def iceberg_sync(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> Callable[..., Run]:
    def run(*args: str) -> Run:
        capsys.readouterr()
        caplog.clear()
        code = cli.main(["iceberg-sync", *args], stdin=io.BytesIO())
        messages = capsys.readouterr().err + caplog.text
        assert "Traceback" not in messages
        return Run(code, messages)

    return run


def write_archive(store: ArchiveStore) -> None:
    """Two tables, in Lambda batches, some retried with other boundaries (stored twice)."""
    for seed, table in enumerate(TABLES):
        changes = TableHistory(table, seed=40 + seed, seconds_per_change=45.0).changes(240)
        batches = [changes[i : i + 40] for i in range(0, len(changes), 40)]
        batches += [changes[30:75]]
        for batch in batches:
            assert archive_records(batch, store).ok


def data_files(store: ArchiveStore, table: str) -> set[str]:
    root = store.uri.rstrip("/")
    return {f"{root}/{obj.key}" for _, found in list_partitions(store, table) for obj in found}


def replayed_event_ids(archive: str, table: str) -> list[str]:
    out = io.BytesIO()
    assert replayer_cli.main(["events", "--archive", archive, "--table", table], stdout=out) == 0
    return [orjson.loads(line)["eventID"] for line in out.getvalue().splitlines()]


def catalog(glue: Glue) -> Catalog:
    return load_catalog(glue.catalog)


def test_iceberg_sync_registers_tables_athena_can_read_in_glue(
    s3_archive: str, glue: Glue, iceberg_sync: Callable[..., Run]
) -> None:
    # Given an archive of two tables on S3, and no Glue database yet
    store = open_store(s3_archive, s3="boto3")
    write_archive(store)
    with pytest.raises(glue.client.exceptions.EntityNotFoundException):
        glue.client.get_database(Name=glue.database)
    # When it is synced into the Glue catalog
    sync = ("--archive", s3_archive, "--catalog", glue.catalog, "--namespace", glue.database)
    result = iceberg_sync(*sync)
    # Then the database holds one Iceberg table per DynamoDB table, as Athena expects them
    assert result.code == 0, result.err
    assert "synced 2 of 2 tables" in result.err
    listed = glue.client.get_tables(DatabaseName=glue.database)["TableList"]
    assert sorted(t["Name"] for t in listed) == sorted(TABLES)
    for name in TABLES:
        entry = glue.client.get_table(DatabaseName=glue.database, Name=name)["Table"]
        parameters = entry["Parameters"]
        assert parameters["table_type"] == "ICEBERG"
        location = parameters["metadata_location"]
        assert location.startswith(f"{glue.warehouse}/{glue.database}.db/{name}/metadata/")
        assert location.endswith(".metadata.json")
        assert (
            entry["StorageDescriptor"]["Location"] == f"{glue.warehouse}/{glue.database}.db/{name}"
        )
        # the columns, for the Glue console and information_schema (Athena reads the metadata)
        columns = {c["Name"]: c["Type"] for c in entry["StorageDescriptor"]["Columns"]}
        assert columns["event_id"] == "string" and columns["change_time"] == "timestamp"
        # the metadata file Glue points at is on S3, and the table scans to the archive
        table = catalog(glue).load_table((glue.database, name))
        assert table.metadata_location == location
        assert table.format_version == 2  # the Iceberg format Athena reads and writes
        assert registered_files(table) == data_files(store, name)
        rows = table.scan().to_arrow()
        event_ids = replayed_event_ids(s3_archive, name)
        assert set(rows.column("event_id").to_pylist()) == set(event_ids)
        assert rows.num_rows > len(event_ids)  # the retried batch's copies are there, as stored
    # When it is synced again with nothing new
    again = iceberg_sync(*sync)
    # Then nothing is committed: Glue points at the same metadata, no new snapshot
    assert again.code == 0, again.err
    assert "0 files registered" in again.err
    for name in TABLES:
        entry = glue.client.get_table(DatabaseName=glue.database, Name=name)["Table"]
        table = catalog(glue).load_table((glue.database, name))
        assert entry["Parameters"]["metadata_location"] == table.metadata_location
        assert len(table.snapshots()) == 1
        assert f"{glue.database}.{name} unchanged" in again.err


def test_a_sync_after_new_files_moves_the_glue_pointer_once(
    s3_archive: str, glue: Glue, iceberg_sync: Callable[..., Run]
) -> None:
    # Given a synced archive
    store = open_store(s3_archive, s3="boto3")
    write_archive(store)
    sync = ("--archive", s3_archive, "--catalog", glue.catalog, "--namespace", glue.database)
    assert iceberg_sync(*sync).code == 0
    before = glue.client.get_table(DatabaseName=glue.database, Name="orders")["Table"]
    # When the sink writes more and the archive is synced again
    more = TableHistory("orders", seed=77, start=2_000_000_000.0).changes(60)
    assert archive_records(more, store).ok
    result = iceberg_sync(*sync)
    # Then Glue's pointer moved to the new metadata, remembering the previous one
    assert result.code == 0, result.err
    after = glue.client.get_table(DatabaseName=glue.database, Name="orders")["Table"]
    previous = before["Parameters"]["metadata_location"]
    assert after["Parameters"]["metadata_location"] != previous
    assert after["Parameters"]["previous_metadata_location"] == previous
    table = catalog(glue).load_table((glue.database, "orders"))
    assert len(table.snapshots()) == 2
    assert registered_files(table) == data_files(store, "orders")
    # and the other table did not change
    payments = glue.client.get_table(DatabaseName=glue.database, Name="payments")["Table"]
    assert "previous_metadata_location" not in payments["Parameters"]


def test_the_scheduled_function_syncs_into_glue(
    s3_archive: str, glue: Glue, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the function's environment as deploy/template.yaml sets it (the catalog's
    # endpoint aside), and an archive
    from archiver.iceberg_handler import handler

    store = open_store(s3_archive, s3="boto3")
    write_archive(store)
    monkeypatch.setenv("ARCHIVER_ARCHIVE_URI", s3_archive)
    monkeypatch.setenv("ARCHIVER_ICEBERG_CATALOG", glue.catalog)
    monkeypatch.setenv("ARCHIVER_ICEBERG_NAMESPACE", glue.database)
    # When the schedule invokes it, twice
    first = handler({}, None)
    second = handler({}, None)
    # Then the first registers every file as Iceberg tables in Glue, the second nothing
    assert first["files_registered"] == sum(len(data_files(store, t)) for t in TABLES)
    assert second["files_registered"] == 0
    for name in TABLES:
        entry = glue.client.get_table(DatabaseName=glue.database, Name=name)["Table"]
        assert entry["Parameters"]["table_type"] == "ICEBERG"
        snapshot = first["tables"][f"{glue.database}.{name}"]["snapshot_id"]
        assert second["tables"][f"{glue.database}.{name}"]["snapshot_id"] == snapshot


def test_athena_ddl_iceberg_queries_the_tables_glue_holds(
    s3_archive: str,
    glue: Glue,
    iceberg_sync: Callable[..., Run],
    capsys: pytest.CaptureFixture[str],
) -> None:
    import sqlglot
    from sqlglot import exp

    # Given a synced archive
    write_archive(open_store(s3_archive, s3="boto3"))
    sync = ("--archive", s3_archive, "--catalog", glue.catalog, "--namespace", glue.database)
    assert iceberg_sync(*sync).code == 0
    # When athena-ddl --iceberg lists the archive for the tables to query
    capsys.readouterr()
    code = cli.main(
        ["athena-ddl", "--iceberg", "--archive", s3_archive, "--namespace", glue.database]
    )
    printed = capsys.readouterr()
    assert code == 0, printed.err
    # Then every table its queries name is an Iceberg table Glue holds (or its $snapshots)
    code_lines = [line for line in printed.out.splitlines() if not line.startswith("--")]
    queries = [q for q in "\n".join(code_lines).split(";") if q.strip()]
    named = {
        (t.db, t.name.removesuffix("$snapshots"))
        for query in queries
        for t in sqlglot.parse_one(query.replace("<snapshot_id>", "1"), read="athena").find_all(
            exp.Table
        )
    }
    assert named == {(glue.database, name) for name in TABLES}
    for database, name in named:
        entry = glue.client.get_table(DatabaseName=database, Name=name)["Table"]
        assert entry["Parameters"]["table_type"] == "ICEBERG"
