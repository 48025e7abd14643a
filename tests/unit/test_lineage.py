"""Iceberg registrations (``_iceberg/{table}.json``) and compaction lineage (Parquet metadata)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from archiver.archive.checkpoints import CheckpointFormatError
from archiver.archive.errors import FormatError
from archiver.archive.lineage import (
    ICEBERG_PREFIX,
    METADATA_COMPACTION,
    Compaction,
    Registration,
    registered_tables,
    registration_key,
)
from archiver.archive.reader import list_tables
from archiver.archive.store import LocalStore


def test_a_registration_round_trips_with_its_kind_and_version(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    Registration("orders", "glue", "dynamodb_archive").save(store)

    key = registration_key("orders")
    assert key == f"{ICEBERG_PREFIX}orders.json"
    assert orjson.loads(store.get(key)) == {
        "kind": "iceberg-table",
        "version": 1,
        "table": "orders",
        "catalog": "glue",
        "namespace": "dynamodb_archive",
    }
    found = Registration.load(store, "orders")
    assert found == Registration("orders", "glue", "dynamodb_archive")
    assert found.identifier == "dynamodb_archive.orders"
    assert Registration.load(store, "payments") is None
    assert registered_tables(store) == {"orders"}
    # and the folder is no table of the archive
    assert list_tables(store) == []


def test_catalog_names_compare_as_pyiceberg_reads_them() -> None:
    glue = Registration("orders", "Glue", "dynamodb_archive")
    assert glue.same_table(Registration("orders", "glue", "dynamodb_archive"))
    assert not glue.same_table(Registration("orders", "glue", "history"))
    assert not glue.same_table(Registration("orders", "laptop", "dynamodb_archive"))


@pytest.mark.parametrize(
    ("document", "named"),
    [
        (b"not json", "not JSON"),
        (b'{"kind": "stream", "version": 1}', "a 'stream' checkpoint"),
        (b'{"kind": "iceberg-table", "version": 2}', "newer version"),
        (b'{"kind": "iceberg-table", "version": 1, "table": "orders"}', "must be names"),
        (
            b'{"kind": "iceberg-table", "version": 1, "table": "payments", "catalog": "c",'
            b' "namespace": "n"}',
            "registers table 'payments'",
        ),
    ],
)
def test_a_registration_that_is_not_one_is_named(
    tmp_path: Path, document: bytes, named: str
) -> None:
    store = LocalStore(tmp_path)
    store.put(registration_key("orders"), document)
    with pytest.raises(CheckpointFormatError, match=named) as caught:
        Registration.load(store, "orders")
    assert "_iceberg/orders.json" in str(caught.value)


def test_compaction_lineage_round_trips_sorted() -> None:
    lineage = Compaction(replaces=("b.parquet", "a.parquet"), outputs=("d.parquet", "c.parquet"))
    metadata = lineage.metadata()
    assert orjson.loads(metadata[METADATA_COMPACTION]) == {
        "replaces": ["a.parquet", "b.parquet"],
        "outputs": ["c.parquet", "d.parquet"],
    }
    assert Compaction.of(metadata, "x.parquet") == Compaction(
        ("a.parquet", "b.parquet"), ("c.parquet", "d.parquet")
    )
    assert Compaction.of({b"other": b"1"}, "x.parquet") is None
    assert Compaction.of(None, "x.parquet") is None


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[]",
        b'{"replaces": ["a.parquet"]}',
        b'{"replaces": [], "outputs": ["b.parquet"]}',
        b'{"replaces": ["../a.parquet"], "outputs": ["b.parquet"]}',
        b'{"replaces": [1], "outputs": ["b.parquet"]}',
    ],
)
def test_lineage_that_is_not_two_lists_of_names_is_a_format_error(raw: bytes) -> None:
    with pytest.raises(FormatError, match=r"x\.parquet: dynamodb_archive\.compaction"):
        Compaction.of({METADATA_COMPACTION: raw}, "x.parquet")
