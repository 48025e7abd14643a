"""An Iceberg snapshot's file URIs as a view of the archive (no catalog needed for these)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from archiver.archive.errors import FormatError, StoreAccessDenied
from archiver.archive.icebergfiles import (
    IcebergUsageError,
    SnapshotFileMissing,
    SnapshotFiles,
    SnapshotStore,
    parse_identifier,
)
from archiver.archive.layout import US_PER_HOUR
from archiver.archive.reader import list_partitions
from archiver.archive.store import LocalStore, open_store
from archiver.write import archive_records
from devkit.traffic import TableHistory


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    """A local archive (in a folder whose name needs quoting in a URI) of three hours of orders."""
    store = LocalStore(tmp_path / "my archive")
    history = TableHistory("orders", seed=4, seconds_per_change=60.0)
    for _ in range(6):
        assert archive_records(history.changes(30), store).ok
    return store


def snapshot(*uris: str) -> SnapshotFiles:
    return SnapshotFiles("dynamodb_archive.orders", 7, uris)


def every_file(store: LocalStore) -> list[str]:
    return [obj.key for _, found in list_partitions(store, "orders") for obj in found]


def test_identifiers_have_three_parts_and_the_table_may_hold_dots() -> None:
    assert parse_identifier("glue.dynamodb_archive.orders") == (
        "glue",
        "dynamodb_archive",
        "orders",
    )
    assert parse_identifier("laptop.ns.orders.v2") == ("laptop", "ns", "orders.v2")
    for bad in ("orders", "glue.orders", "glue..orders", ".ns.orders", "glue.ns."):
        with pytest.raises(IcebergUsageError, match=r"CATALOG\.NAMESPACE\.TABLE"):
            parse_identifier(bad)


def test_every_way_of_naming_a_local_file_is_the_same_key(store: LocalStore) -> None:
    keys = every_file(store)
    root = store.uri
    quoted = root.replace(" ", "%20")
    forms = [f"{root}/{keys[0]}", f"file://{quoted}/{keys[1]}", f"file:{quoted}/{keys[2]}"]
    view = SnapshotStore(store, snapshot(*forms, f"{root}/{keys[0]}"))
    assert view.keys == sorted(keys[:3])
    assert view.tables == {"orders"}


def test_s3_files_under_the_archive_prefix_are_its_keys() -> None:
    store = open_store("s3://bucket/changes/")  # building it reaches no server
    key = "table_name=orders/dt=2026-11-18/hour=11/1_2_abc.parquet"
    view = SnapshotStore(
        store, snapshot(f"s3://bucket/changes/{key}", f"s3a://bucket/changes/{key}")
    )
    assert view.keys == [key]
    with pytest.raises(IcebergUsageError, match="not in the archive s3://bucket/changes/"):
        SnapshotStore(store, snapshot(f"s3://other/changes/{key}"))
    with pytest.raises(IcebergUsageError, match=r"\(it is a file of the archive s3://bucket\)"):
        SnapshotStore(store, snapshot(f"s3://bucket/{key}"))


def test_the_view_lists_only_the_snapshot_as_the_archive_would(store: LocalStore) -> None:
    keys = every_file(store)
    chosen = keys[::2]
    view = SnapshotStore(store, snapshot(*(f"{store.uri}/{k}" for k in chosen)))
    assert [obj.key for _, found in list_partitions(view, "orders") for obj in found] == chosen
    sizes = {obj.key: obj.size for obj in store.list("")}
    assert all(obj.size == sizes[obj.key] for obj in view.list(""))
    assert view.list_dirs("") == ["table_name=orders"]
    assert view.list_dirs("table_name=payments/") == []
    assert view.get(chosen[0]) == store.get(chosen[0])


def test_a_window_keeps_only_its_hours(store: LocalStore) -> None:
    partitions = list_partitions(store, "orders")
    assert len(partitions) >= 3
    second = partitions[1][0].hour_start_us
    view = SnapshotStore(
        store,
        snapshot(*(f"{store.uri}/{k}" for k in every_file(store))),
        since_us=second + 1,
        until_us=second + US_PER_HOUR - 1,
    )
    assert view.keys == [obj.key for obj in partitions[1][1]]


def test_a_file_the_archive_lost_is_an_error_naming_it(store: LocalStore) -> None:
    keys = every_file(store)
    view = SnapshotStore(store, snapshot(*(f"{store.uri}/{k}" for k in keys)))
    (Path(store.uri) / keys[1]).unlink()
    with pytest.raises(SnapshotFileMissing, match=re.escape(keys[1])):
        list_partitions(view, "orders")
    with pytest.raises(SnapshotFileMissing, match=r"snapshot 7 of dynamodb_archive\.orders"):
        view.get(keys[1])


def test_files_that_are_not_the_archives_data_files_are_refused(
    store: LocalStore, tmp_path: Path
) -> None:
    with pytest.raises(FormatError, match=r"imports/x\.parquet.*not a data file"):
        SnapshotStore(store, snapshot(f"{store.uri}/imports/x.parquet"))
    with pytest.raises(IcebergUsageError, match="not in the archive"):
        SnapshotStore(store, snapshot(str(tmp_path / "elsewhere" / "x.parquet")))
    with pytest.raises(IcebergUsageError, match="not in the archive"):
        SnapshotStore(store, snapshot(f"{store.uri}/../escape.parquet"))


def test_the_view_is_read_only(store: LocalStore) -> None:
    view = SnapshotStore(store, snapshot())
    with pytest.raises(StoreAccessDenied):
        view.put("table_name=orders/x", b"")
    with pytest.raises(StoreAccessDenied):
        view.delete(every_file(store)[0])
    assert view.exists() and list(view.list("")) == []
