"""``replayer events|restore|redrive --iceberg``: replay read from an Iceberg snapshot's files.

The archive is what a Lambda sink leaves behind (batches, some retried with other
boundaries, so some events are stored twice), registered in pyiceberg's SQL catalog on
SQLite by ``archiver iceberg-sync``, as users run it. Read through a snapshot, replay
must give exactly what reading the archive directly gives (same order, same dedupe,
same bytes), an earlier snapshot only what the archive held then, and every way of
naming something that is not there a one-line error with the README's exit code.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from pyiceberg.catalog import Catalog
from pyiceberg.table import Table

from archiver import cli as archiver_cli
from archiver.archive.icebergfiles import load_catalog
from archiver.archive.reader import list_partitions
from archiver.archive.store import open_store
from archiver.archive.times import format_us
from archiver.write import archive_records
from devkit.traffic import TableHistory
from replayer import cli as replayer_cli
from tests.functional.test_iceberg import write_batches

ROOT = Path(__file__).parents[2]
NAMESPACE = "dynamodb_archive"
KEY = (("pk", "S"), ("sk", "N"))


# --- the archive and the catalog ------------------------------------------------------------------


def catalog(name: str) -> Catalog:
    return load_catalog(name)


def iceberg_table(catalog_name: str, table: str) -> Table:
    return catalog(catalog_name).load_table((NAMESPACE, table))


@dataclass
class Run:
    code: int
    stdout: bytes
    stderr: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., Run]:
    """Run ``replayer ARGS`` (or ``archiver ARGS`` with ``archiver=True``) in-process."""

    def run(*args: str, archiver: bool = False) -> Run:
        capsys.readouterr()
        out = io.BytesIO()
        main = archiver_cli.main if archiver else replayer_cli.main
        code = main(list(args), out) if main is replayer_cli.main else main(list(args))
        stderr = capsys.readouterr().err
        assert "Traceback" not in stderr
        return Run(code, out.getvalue(), stderr)

    return run


def sync(cli: Callable[..., Run], archive: str, catalog_name: str) -> int:
    """``archiver iceberg-sync``; the current snapshot id of the orders table after it."""
    result = cli("iceberg-sync", "--archive", archive, "--catalog", catalog_name, archiver=True)
    assert result.code == 0, result.stderr
    snapshot = iceberg_table(catalog_name, "orders").current_snapshot()
    assert snapshot is not None
    return snapshot.snapshot_id


def events(cli: Callable[..., Run], *args: str) -> bytes:
    result = cli("events", *args)
    assert result.code == 0, result.stderr
    return result.stdout


@pytest.fixture
def synced(local_archive: str, catalog_name: str, cli: Callable[..., Run]) -> str:
    """A local archive of orders and payments, with a dead letter beside them, synced."""
    store = open_store(local_archive)
    write_batches(store, TableHistory("orders", seed=21, seconds_per_change=20.0).changes(400), 1)
    write_batches(store, TableHistory("payments", seed=22, seconds_per_change=60.0).changes(120), 2)
    poison = dict(TableHistory("orders", seed=99).change(), eventName="UPSERT")
    assert archive_records([poison], store).dead_lettered == 1
    sync(cli, local_archive, catalog_name)
    return local_archive


@dataclass
class TwoSyncs:
    archive: str
    first: int  # snapshot ids
    second: int
    before: bytes  # `events --archive` of the orders at each sync
    after: bytes


@pytest.fixture
def two_syncs(local_archive: str, catalog_name: str, cli: Callable[..., Run]) -> TwoSyncs:
    """A sync, more records archived, a second sync."""
    store = open_store(local_archive)
    history = TableHistory("orders", seed=7, seconds_per_change=30.0)
    write_batches(store, history.changes(150), 3)
    first = sync(cli, local_archive, catalog_name)
    before = events(cli, "--archive", local_archive, "--table", "orders")
    write_batches(store, history.changes(150), 4)
    second = sync(cli, local_archive, catalog_name)
    after = events(cli, "--archive", local_archive, "--table", "orders")
    assert first != second and before != after
    return TwoSyncs(local_archive, first, second, before, after)


# --- events ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "selection",
    [
        (),
        ("--since", "2026-11-18T11:30:00Z", "--until", "2026-11-18T12:29:59Z"),
        ("--event-name", "MODIFY,REMOVE"),
        ("--key", '{"sk": 3}'),
    ],
)
def test_events_from_the_table_are_the_archives_byte_for_byte(
    synced: str, catalog_name: str, cli: Callable[..., Run], selection: tuple[str, ...]
) -> None:
    for name in ("orders", "payments"):
        # Given the archive read directly
        direct = events(cli, "--archive", synced, "--table", name, *selection)
        assert direct.count(b"\n") > 5
        # When it is read through the current snapshot of the table's Iceberg table
        result = cli(
            "events", "--archive", synced, "--iceberg", f"{catalog_name}.{NAMESPACE}.{name}",
            *selection,
        )  # fmt: skip
        # Then the output is the same, byte for byte (the retried batches' copies dropped)
        assert result.code == 0, result.stderr
        assert result.stdout == direct
        snapshot = iceberg_table(catalog_name, name).current_snapshot()
        assert snapshot is not None
        assert f"events from table {name} (snapshot {snapshot.snapshot_id} of" in result.stderr


def test_the_window_reads_only_its_hours_of_the_snapshot(
    synced: str, catalog_name: str, cli: Callable[..., Run]
) -> None:
    # Given a file of the first hour that is gone (only a read of it would notice)
    store = open_store(synced)
    [(first, [obj, *_]), *_rest] = list_partitions(store, "orders")
    (Path(store.uri) / obj.key).unlink()
    identifier = f"{catalog_name}.{NAMESPACE}.orders"
    # When a window after that hour is read, it is not missed
    since = format_us(first.hour_start_us + 3_600_000_000)
    result = cli("events", "--archive", synced, "--iceberg", identifier, "--since", since)
    assert result.code == 0, result.stderr
    assert result.stdout == events(cli, "--archive", synced, "--table", "orders", "--since", since)
    # and a read that covers it fails, naming it
    result = cli("events", "--archive", synced, "--iceberg", identifier)
    assert result.code == 1
    assert obj.key in result.stderr and "no longer in the archive" in result.stderr


def test_table_must_agree_with_the_iceberg_table(
    synced: str, catalog_name: str, cli: Callable[..., Run]
) -> None:
    identifier = f"{catalog_name}.{NAMESPACE}.orders"
    agreed = cli("events", "--archive", synced, "--iceberg", identifier, "--table", "orders")
    assert agreed.code == 0, agreed.stderr
    assert agreed.stdout == events(cli, "--archive", synced, "--table", "orders")
    refused = cli("events", "--archive", synced, "--iceberg", identifier, "--table", "payments")
    assert refused.code == 2
    assert "--table payments" in refused.stderr and "table orders" in refused.stderr


def test_events_over_s3(
    s3_archive: str, catalog_name: str, cli: Callable[..., Run], monkeypatch: pytest.MonkeyPatch
) -> None:
    # pyiceberg's S3 FileIO (the sync reads the footers with it) takes its own s3.* properties
    prefix = f"PYICEBERG_CATALOG__{catalog_name.upper()}__"
    monkeypatch.setenv(prefix + "S3__ENDPOINT", os.environ["AWS_ENDPOINT_URL_S3"])
    monkeypatch.setenv(prefix + "S3__REGION", os.environ["AWS_REGION"])
    monkeypatch.setenv(prefix + "S3__ACCESS_KEY_ID", os.environ["AWS_ACCESS_KEY_ID"])
    monkeypatch.setenv(prefix + "S3__SECRET_ACCESS_KEY", os.environ["AWS_SECRET_ACCESS_KEY"])
    write_batches(
        open_store(s3_archive, s3="boto3"),
        TableHistory("orders", seed=8, seconds_per_change=25.0).changes(250),
        5,
    )
    sync(cli, s3_archive, catalog_name)
    direct = events(cli, "--archive", s3_archive, "--table", "orders")
    identifier = f"{catalog_name}.{NAMESPACE}.orders"
    assert events(cli, "--archive", s3_archive, "--iceberg", identifier) == direct
    assert direct.count(b"\n") > 100
    # another archive in the same bucket does not hold the table's files
    other = s3_archive.rsplit("/", 1)[0] + "/elsewhere"
    result = cli("events", "--archive", other, "--iceberg", identifier)
    assert result.code == 2
    assert f"not in the archive {other}" in result.stderr


# --- snapshots ------------------------------------------------------------------------------------


def test_an_earlier_snapshot_shows_only_the_earlier_records(
    two_syncs: TwoSyncs, catalog_name: str, cli: Callable[..., Run]
) -> None:
    identifier = f"{catalog_name}.{NAMESPACE}.orders"
    read = ("--archive", two_syncs.archive, "--iceberg", identifier)
    assert events(cli, *read, "--snapshot-id", str(two_syncs.first)) == two_syncs.before
    assert events(cli, *read, "--snapshot-id", str(two_syncs.second)) == two_syncs.after
    assert events(cli, *read) == two_syncs.after


def test_as_of_picks_the_snapshot_current_then(
    two_syncs: TwoSyncs, catalog_name: str, cli: Callable[..., Run]
) -> None:
    identifier = f"{catalog_name}.{NAMESPACE}.orders"
    read = ("--archive", two_syncs.archive, "--iceberg", identifier)
    log = iceberg_table(catalog_name, "orders").history()
    assert [entry.snapshot_id for entry in log] == [two_syncs.first, two_syncs.second]
    first_ms, second_ms = (entry.timestamp_ms for entry in log)
    assert first_ms < second_ms

    def at(ms: int) -> str:  # the time syntax of --since/--until
        return format_us(ms * 1000)

    assert events(cli, *read, "--as-of", at(first_ms)) == two_syncs.before  # inclusive
    assert events(cli, *read, "--as-of", at(second_ms - 1)) == two_syncs.before
    assert events(cli, *read, "--as-of", at(second_ms)) == two_syncs.after
    assert events(cli, *read, "--as-of", f"{second_ms / 1000 + 60:.3f}") == two_syncs.after
    # before the first snapshot there is none
    result = cli("events", *read, "--as-of", at(first_ms - 1))
    assert result.code == 2
    assert f"--as-of {at(first_ms - 1)}" in result.stderr
    assert "before the first snapshot" in result.stderr


def test_a_snapshot_id_that_is_not_there_is_bad_usage(
    two_syncs: TwoSyncs, catalog_name: str, cli: Callable[..., Run]
) -> None:
    identifier = f"{catalog_name}.{NAMESPACE}.orders"
    result = cli(
        "events", "--archive", two_syncs.archive, "--iceberg", identifier, "--snapshot-id", "42"
    )
    assert result.code == 2
    assert "--snapshot-id 42" in result.stderr and "no snapshot 42" in result.stderr
    assert str(two_syncs.second) in result.stderr  # the ones there are


# --- restore and redrive --------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["state", "events"])
def test_restore_from_the_table_equals_restore_from_the_archive(
    two_syncs: TwoSyncs,
    catalog_name: str,
    cli: Callable[..., Run],
    dynamodb_tables: Any,
    mode: str,
) -> None:
    identifier = f"{catalog_name}.{NAMESPACE}.orders"
    # Given the last change archived at the first sync
    until = orjson.loads(two_syncs.before.splitlines()[-1])["dynamodb"][
        "ApproximateCreationDateTime"
    ]
    restored = {}
    for source in (
        ("--table", "orders"),
        ("--iceberg", identifier),
        ("--iceberg", identifier, "--snapshot-id", str(two_syncs.first)),
    ):
        into = dynamodb_tables.create(*KEY)
        result = cli(
            "restore", "--archive", two_syncs.archive, *source, "--into", into, "--mode", mode,
            "--until", str(until),
        )  # fmt: skip
        assert result.code == 0, result.stderr
        items = dynamodb_tables.scan(into)
        restored[source] = sorted(items, key=lambda i: (i["pk"]["S"], int(i["sk"]["N"])))
    direct, current, first = restored.values()
    assert direct
    assert current == direct
    assert first == direct  # the first snapshot held every change up to then


def test_redrive_from_the_table_sends_what_redrive_from_the_archive_sends(
    two_syncs: TwoSyncs, catalog_name: str, cli: Callable[..., Run], lambda_server: Any
) -> None:
    lambda_server.functions["consumer"] = lambda event, context: None
    sent = []
    for source in (("--table", "orders"), ("--iceberg", f"{catalog_name}.{NAMESPACE}.orders")):
        seen = len(lambda_server.invocations)
        result = cli(
            "redrive", "--archive", two_syncs.archive, *source, "--function", "consumer",
            "--batch-size", "40",
        )  # fmt: skip
        assert result.code == 0, result.stderr
        sent.append([event for _, event in lambda_server.invocations[seen:]])
    assert sent[0] == sent[1]
    assert sum(len(e["Records"]) for e in sent[0]) == two_syncs.after.count(b"\n")


def test_a_checkpoint_of_another_snapshot_is_refused(
    two_syncs: TwoSyncs,
    catalog_name: str,
    cli: Callable[..., Run],
    lambda_server: Any,
    tmp_path: Path,
) -> None:
    lambda_server.functions["consumer"] = lambda event, context: None
    identifier = f"{catalog_name}.{NAMESPACE}.orders"
    checkpoint = str(tmp_path / "redrive.json")
    run = ["redrive", "--archive", two_syncs.archive, "--iceberg", identifier]
    run += ["--function", "consumer", "--checkpoint", checkpoint]
    assert cli(*run, "--snapshot-id", str(two_syncs.first)).code == 0
    result = cli(*run, "--snapshot-id", str(two_syncs.second))
    assert result.code == 1
    assert "another run" in result.stderr and "snapshot_id" in result.stderr


# --- what is not there ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("identifier", "named"),
    [
        ("orders", "expected CATALOG.NAMESPACE.TABLE"),
        ("{catalog}.orders", "expected CATALOG.NAMESPACE.TABLE"),
        ("nowhere.dynamodb_archive.orders", "PYICEBERG_CATALOG__NOWHERE__TYPE"),
        ("{catalog}.dynamodb_archive.customers", "no table dynamodb_archive.customers"),
        ("{catalog}.history.orders", "no table history.orders"),
    ],
)
def test_a_table_that_is_not_there_is_bad_usage(
    synced: str, catalog_name: str, cli: Callable[..., Run], identifier: str, named: str
) -> None:
    identifier = identifier.format(catalog=catalog_name)
    result = cli("events", "--archive", synced, "--iceberg", identifier)
    assert result.code == 2
    assert f"--iceberg {identifier}: " in result.stderr and named in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_catalog_that_cannot_be_loaded_is_bad_usage(
    synced: str, cli: Callable[..., Run], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYICEBERG_CATALOG__BROKEN__TYPE", "sql")  # and no uri
    result = cli("events", "--archive", synced, "--iceberg", "broken.dynamodb_archive.orders")
    assert result.code == 2
    assert "catalog 'broken' cannot be loaded" in result.stderr and "URI" in result.stderr


def test_files_outside_the_archive_are_bad_usage(
    synced: str, catalog_name: str, cli: Callable[..., Run], tmp_path: Path
) -> None:
    # Given a copy of the archive elsewhere: the table's files are the original's
    copy = tmp_path / "copy"
    shutil.copytree(synced, copy)
    result = cli(
        "events", "--archive", str(copy), "--iceberg", f"{catalog_name}.{NAMESPACE}.orders"
    )
    assert result.code == 2
    assert f"{synced}/table_name=orders/" in result.stderr
    assert f"not in the archive {copy}" in result.stderr


def test_a_file_that_is_not_an_archive_data_file_fails(
    synced: str, catalog_name: str, cli: Callable[..., Run]
) -> None:
    # Given a copy of a data file outside the layout, registered by another pyiceberg user
    store = open_store(synced)
    [(_, [obj, *_]), *_rest] = list_partitions(store, "orders")
    stray = Path(store.uri) / "imports" / "orders.parquet"
    stray.parent.mkdir()
    shutil.copy(Path(store.uri) / obj.key, stray)
    iceberg_table(catalog_name, "orders").add_files([str(stray)])
    result = cli("events", "--archive", synced, "--iceberg", f"{catalog_name}.{NAMESPACE}.orders")
    assert result.code == 1
    assert "imports/orders.parquet" in result.stderr and "not a data file" in result.stderr


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (("--table", "orders", "--snapshot-id", "1"), "--snapshot-id needs --iceberg"),
        (("--table", "orders", "--as-of", "2026-01-01"), "--as-of needs --iceberg"),
        ((), "--table is required (or give --iceberg)"),
        (("--iceberg", "c.n.orders", "--as-of", "yesterday"), "--as-of: 'yesterday' is not a time"),
        (("--iceberg", "c.n.orders", "--as-of", "1", "--snapshot-id", "1"), "not allowed with"),
    ],
)
def test_iceberg_options_are_checked(
    local_archive: str, cli: Callable[..., Run], args: tuple[str, ...], named: str
) -> None:
    Path(local_archive).mkdir()
    for command in ("events", "restore"):
        extra = ("--into", "target") if command == "restore" else ()
        argv = (command, "--archive", local_archive, *args, *extra)
        if "not allowed" in named:  # argparse's own refusal
            with pytest.raises(SystemExit) as exit_:
                cli(*argv)
            assert exit_.value.code == 2
            continue
        result = cli(*argv)
        assert result.code == 2, result.stderr
        assert named in result.stderr


def test_without_pyiceberg_iceberg_is_bad_usage_and_nothing_else_loads_it(tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    archive.mkdir()
    probe = f"""
import contextlib, io, json, sys
from replayer import cli
out = io.BytesIO()
plain = cli.main(["events", "--archive", {str(archive)!r}, "--table", "orders"], stdout=out)
loaded = sorted(m for m in sys.modules if m.split(".")[0] == "pyiceberg")
sys.modules["pyiceberg"] = None  # as if the extra were not installed
err = io.StringIO()
with contextlib.redirect_stderr(err):
    code = cli.main(["events", "--archive", {str(archive)!r}, "--iceberg", "c.n.orders"], stdout=out)
print(json.dumps([plain, loaded, code, err.getvalue()]))
"""
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    plain, loaded, code, message = json.loads(done.stdout)
    assert (plain, loaded) == (0, [])
    assert code == 2
    assert "pip install 'dynamodb-stream-archive[iceberg]'" in message
    assert "Traceback" not in message and len(message.strip().splitlines()) == 1
