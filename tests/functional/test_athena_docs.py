"""Every query in docs/athena.md gives the right answer over an archive the archiver wrote.

Each ```sql block is parsed with sqlglot's Athena dialect, transpiled to
DuckDB and run over the Parquet files, exposed as a DuckDB view named like
the Athena table (partition columns typed VARCHAR, as in the generated DDL).
The expected answers are computed here from the raw stream records, not from
the archive. Some batches are archived twice with other boundaries, as Lambda
retries do, so the archive holds duplicate changes the queries must handle.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest
import sqlglot

from archiver.archive.athena import DEFAULT_DATABASE, DEFAULT_TABLE, athena_table
from archiver.archive.schema import parse_promoted_columns
from archiver.archive.store import LocalStore
from archiver.write import ArchiveOptions, archive_records
from devkit.traffic import TableHistory

DOC = Path(__file__).resolve().parents[2] / "docs" / "athena.md"
PROMOTED = "customer_id:string,amount:decimal(18,2)"
START = datetime(2026, 11, 18, 20, 0, tzinfo=UTC).timestamp()  # the archive spans midnight
MOMENT = datetime(2026, 11, 19, 1, 0, tzinfo=UTC)  # the docs' TIMESTAMP '2026-11-19 01:00:00'
ITEM = "order#00026"  # the docs' item
DAYS = ("2026-11-18", "2026-11-19")
TTL_PRINCIPAL = "dynamodb.amazonaws.com"


def sql_blocks() -> dict[str, str]:
    """The docs' queries by title (each block's first line is ``-- title``)."""
    blocks = re.findall(r"```sql\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    titled = {}
    for block in blocks:
        first, _, _ = block.partition("\n")
        assert first.startswith("-- "), f"a sql block in {DOC.name} has no title: {first!r}"
        titled[first[3:].strip()] = block
    assert len(titled) == len(blocks), "two sql blocks share a title"
    return titled


@dataclass
class Archive:
    root: Path
    orders: list[dict[str, Any]]
    customers: list[dict[str, Any]]


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Archive:
    orders = TableHistory("orders", seed=5, start=START, seconds_per_change=20).changes(1500)
    customers = TableHistory(
        "customers", seed=6, start=START, key_names=("id",), items=30, seconds_per_change=60
    ).changes(300)
    root = tmp_path_factory.mktemp("athena-docs") / "archive"
    store = LocalStore(root)
    options = ArchiveOptions(parse_promoted_columns(PROMOTED), plain_images=True)
    deliveries = [orders[i : i + 100] for i in range(0, len(orders), 100)]
    deliveries += [customers[i : i + 100] for i in range(0, len(customers), 100)]
    # Lambda retrying with other batch boundaries: these changes are archived twice.
    deliveries += [orders[50:180], orders[1250:1330]]
    for batch in deliveries:
        assert archive_records(batch, store, options).ok
    return Archive(root, orders, customers)


def connect(root: Path, time_zone: str = "UTC", *, union_by_name: bool = True) -> Any:
    """DuckDB with the archive at ``root`` as the Athena table's view, read as the docs say."""
    con = duckdb.connect()
    con.execute(f"SET TimeZone = '{time_zone}'")  # UTC: Athena's session time zone
    con.execute(f"CREATE SCHEMA {DEFAULT_DATABASE}")
    files = f"{root}/table_name=*/dt=*/hour=*/*.parquet"
    con.execute(
        f"CREATE VIEW {DEFAULT_DATABASE}.{DEFAULT_TABLE} AS SELECT * FROM read_parquet('{files}', "
        f"hive_partitioning = true, union_by_name = {str(union_by_name).lower()}, "
        "hive_types = {'table_name': VARCHAR, 'dt': VARCHAR, 'hour': VARCHAR})"
    )
    return con


@pytest.fixture(scope="module")
def con(archive: Archive) -> Iterator[duckdb.DuckDBPyConnection]:
    con = connect(archive.root)
    yield con
    con.close()


def run(con: duckdb.DuckDBPyConnection, title: str) -> list[dict[str, Any]]:
    athena_sql = sql_blocks()[title]
    sqlglot.parse_one(athena_sql, read="athena")  # raises on anything Athena's dialect rejects
    [duck_sql] = sqlglot.transpile(athena_sql, read="athena", write="duckdb")
    cursor = con.execute(duck_sql)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


# --- facts from the raw records --------------------------------------------------------------


def when(record: dict[str, Any]) -> datetime:
    return datetime.fromtimestamp(record["dynamodb"]["ApproximateCreationDateTime"], UTC)


def seq(record: dict[str, Any]) -> int:
    return int(record["dynamodb"]["SequenceNumber"])


def image(record: dict[str, Any], which: str = "NewImage") -> dict[str, Any] | None:
    result: dict[str, Any] | None = record["dynamodb"].get(which)
    return result


def principal(record: dict[str, Any]) -> str | None:
    identity = record.get("userIdentity")
    return identity["principalId"] if identity else None


def item_records(archive: Archive) -> list[dict[str, Any]]:
    found = [r for r in archive.orders if r["dynamodb"]["Keys"]["pk"]["S"] == ITEM]
    return sorted(found, key=seq)


def key_of(keys: dict[str, Any]) -> tuple[Any, ...]:
    """An item's identity from typed keys or plain keys."""
    plain = {k: (v.get("S") or int(v["N"])) if isinstance(v, dict) else v for k, v in keys.items()}
    return tuple(sorted(plain.items()))


# --- one check per query --------------------------------------------------------------------


def check_item_history(rows: list[dict[str, Any]], archive: Archive) -> None:
    expected = item_records(archive)
    assert len(expected) >= 5  # the docs' item has a history worth showing
    got = [
        (int(r["sequence_number"]), r["change_time"], r["event_name"], r["status"]) for r in rows
    ]
    assert got == [
        (seq(r), when(r), r["eventName"], (image(r) or {}).get("status", {}).get("S"))
        for r in expected
    ]


def check_item_at_moment(rows: list[dict[str, Any]], archive: Archive) -> None:
    history = item_records(archive)
    before = [r for r in history if when(r) <= MOMENT]
    # the moment matters: the item changed after it, and was deleted and re-created before it
    assert len(before) < len(history) and "REMOVE" in [r["eventName"] for r in before]
    last = before[-1]
    assert last["eventName"] == "MODIFY"
    [row] = rows
    assert (row["event_name"], row["change_time"]) == (last["eventName"], when(last))
    plain = orjson.loads(row["new_image_plain"])
    new = image(last)
    assert new is not None
    assert (plain["status"], plain["version"]) == (new["status"]["S"], int(new["version"]["N"]))


def check_table_at_moment(rows: list[dict[str, Any]], archive: Archive) -> None:
    state: dict[tuple[Any, ...], dict[str, Any]] = {}
    for record in sorted(archive.orders, key=seq):
        if when(record) > MOMENT:
            continue
        key = key_of(record["dynamodb"]["Keys"])
        if record["eventName"] == "REMOVE":
            state.pop(key, None)
        else:
            state[key] = image(record) or {}
    got = {}
    for row in rows:
        plain = orjson.loads(row["new_image_plain"])
        got[key_of(orjson.loads(row["item_key"]))] = (plain["status"], plain["version"])
    assert len(rows) == len(got)  # one row per item
    assert got == {k: (v["status"]["S"], int(v["version"]["N"])) for k, v in state.items()}
    assert 0 < len(got) < len({key_of(r["dynamodb"]["Keys"]) for r in archive.orders})


def check_deletes(rows: list[dict[str, Any]], archive: Archive) -> None:
    removes = [r for r in archive.orders if r["eventName"] == "REMOVE"]
    expected = Counter(
        ("ttl" if principal(r) == TTL_PRINCIPAL else "user", principal(r)) for r in removes
    )
    assert {("ttl", TTL_PRINCIPAL), ("user", None)} <= set(expected)  # both kinds occur
    assert {(r["deleted_by"], r["principal"]): r["deletes"] for r in rows} == dict(expected)
    assert len(rows) == len(expected)


def check_hourly_volume(rows: list[dict[str, Any]], archive: Archive) -> None:
    expected = Counter(
        (
            r["eventSourceARN"].split(":table/")[1].split("/")[0],
            when(r).strftime("%Y-%m-%d"),
            when(r).strftime("%H"),
        )
        for r in archive.orders + archive.customers
    )
    assert [(r["table_name"], r["dt"], r["hour"], r["changes"]) for r in rows] == [
        (*key, count) for key, count in sorted(expected.items())
    ]
    assert {dt for _, dt, _ in expected} == set(DAYS)


def check_top_keys(rows: list[dict[str, Any]], archive: Archive) -> None:
    counts = Counter(key_of(r["dynamodb"]["Keys"]) for r in archive.orders)
    assert len(rows) == 10
    for row in rows:
        key = key_of(orjson.loads(row["item"]))
        assert key == key_of(orjson.loads(row["item_key"]))
        assert row["changes"] == counts[key]
    returned = {key_of(orjson.loads(row["item"])) for row in rows}
    changes = [row["changes"] for row in rows]
    assert changes == sorted(changes, reverse=True)
    assert min(changes) >= max(c for k, c in counts.items() if k not in returned)


def check_typed_images(rows: list[dict[str, Any]], archive: Archive) -> None:
    orders: Counter[str] = Counter()
    totals: dict[str, Decimal] = {}
    for record in archive.orders:
        if record["eventName"] == "INSERT":
            new = image(record) or {}
            status = new["status"]["S"]
            orders[status] += 1
            totals[status] = totals.get(status, Decimal(0)) + Decimal(new["amount"]["N"])
    assert [(r["status"], r["orders"], r["total"]) for r in rows] == [
        (status, orders[status], totals[status]) for status in sorted(orders)
    ]


def check_plain_images(rows: list[dict[str, Any]], archive: Archive) -> None:
    expected: Counter[tuple[str, str]] = Counter()
    for record in archive.orders:
        old, new = image(record, "OldImage"), image(record)
        if record["eventName"] == "MODIFY" and old and new and old["status"] != new["status"]:
            expected[(old["status"]["S"], new["status"]["S"])] += 1
    assert [(r["from_status"], r["to_status"], r["changes"]) for r in rows] == sorted(
        (*pair, count) for pair, count in expected.items()
    )


def check_promoted(rows: list[dict[str, Any]], archive: Archive) -> None:
    orders: Counter[str] = Counter()
    totals: dict[str, Decimal] = {}
    for record in archive.orders:
        if record["eventName"] == "INSERT":
            new = image(record) or {}
            customer = new["customer_id"]["S"]
            orders[customer] += 1
            totals[customer] = totals.get(customer, Decimal(0)) + Decimal(new["amount"]["N"])
    top = sorted(orders, key=lambda c: (-orders[c], c))[:5]
    assert [(r["customer_id"], r["orders"], r["total"]) for r in rows] == [
        (c, orders[c], totals[c]) for c in top
    ]


def check_deduplicated(rows: list[dict[str, Any]], archive: Archive) -> None:
    expected = {r["eventID"] for r in archive.orders if when(r).strftime("%Y-%m-%d") == DAYS[1]}
    assert len(rows) == len(expected)
    assert {r["event_id"] for r in rows} == expected


CHECKS: dict[str, Callable[[list[dict[str, Any]], Archive], None]] = {
    "item history": check_item_history,
    "item at a moment": check_item_at_moment,
    "table at a moment": check_table_at_moment,
    "deletes by ttl and by users": check_deletes,
    "hourly volume per table": check_hourly_volume,
    "top changed keys": check_top_keys,
    "typed images": check_typed_images,
    "plain images": check_plain_images,
    "promoted columns": check_promoted,
    "deduplicated changes": check_deduplicated,
}


def test_every_query_in_the_docs_has_a_check() -> None:
    assert set(sql_blocks()) == set(CHECKS)


@pytest.mark.parametrize("title", sorted(CHECKS))
def test_docs_query_answers(title: str, con: duckdb.DuckDBPyConnection, archive: Archive) -> None:
    CHECKS[title](run(con, title), archive)


def test_the_archive_holds_duplicates_the_queries_must_remove(
    con: duckdb.DuckDBPyConnection, archive: Archive
) -> None:
    [(stored, unique)] = con.execute(
        f"SELECT count(*), count(DISTINCT event_id) FROM {DEFAULT_DATABASE}.{DEFAULT_TABLE}"
    ).fetchall()
    assert unique == len(archive.orders) + len(archive.customers)
    assert stored > unique


def test_view_columns_are_the_athena_tables(con: duckdb.DuckDBPyConnection) -> None:
    # The files, read as Athena reads them, have exactly the generated table's columns.
    table = athena_table(
        "s3://bucket/archive", promoted=parse_promoted_columns(PROMOTED), first_day=DAYS[0]
    )
    view = f"{DEFAULT_DATABASE}.{DEFAULT_TABLE}"
    described = [row[0] for row in con.execute(f"DESCRIBE {view}").fetchall()]
    data_columns = [c.name for c in table.columns]
    assert described[: len(data_columns)] == data_columns
    # DuckDB appends the hive partition columns in its own order
    assert sorted(described[len(data_columns) :]) == sorted(c.name for c in table.partition_keys)


# --- what engines other than Athena need (the docs' last section) ----------------------------


@pytest.mark.parametrize("title", ["table at a moment", "item at a moment"])
def test_the_moment_queries_need_a_session_in_utc(
    title: str, con: duckdb.DuckDBPyConnection, archive: Archive
) -> None:
    # Given the same archive read in Tokyo, When a query names a moment without a zone,
    # Then it asks for another moment: 16:00 UTC the day before, before the first change
    tokyo = connect(archive.root, "Asia/Tokyo")
    try:
        assert run(tokyo, title) == []
    finally:
        tokyo.close()
    rows = run(con, title)
    CHECKS[title](rows, archive)
    assert rows


def test_files_with_new_columns_need_union_by_name(tmp_path: Path) -> None:
    # Given an archive whose later files have a promoted column the earlier ones lack
    records = TableHistory("orders", seed=7, seconds_per_change=3600).changes(6)
    store = LocalStore(tmp_path / "archive")
    assert archive_records(records[:3], store).ok
    promoted = ArchiveOptions(parse_promoted_columns("customer_id:string"))
    assert archive_records(records[3:], store, promoted).ok
    query = f"SELECT count(*), count(customer_id) FROM {DEFAULT_DATABASE}.{DEFAULT_TABLE}"
    # When DuckDB reads it by the first file's schema, Then the new column is not there
    plain = connect(tmp_path / "archive", union_by_name=False)
    with pytest.raises(duckdb.BinderException, match="customer_id"):
        plain.execute(query)
    plain.close()
    # and with union_by_name it is, null in the older files
    united = connect(tmp_path / "archive")
    assert united.execute(query).fetchall() == [(6, 3)]
    united.close()


def test_plain_json_numbers_come_back_as_doubles(con: duckdb.DuckDBPyConnection) -> None:
    # ratio has 34 significant digits: exact in the typed image, a double through ->> of plain JSON
    [(typed, plain)] = con.execute(
        "SELECT new_image ->> '$.ratio.N', new_image_plain ->> '$.ratio' "
        f"FROM {DEFAULT_DATABASE}.{DEFAULT_TABLE} "
        "WHERE table_name = 'orders' AND event_name = 'INSERT' LIMIT 1"
    ).fetchall()
    assert len(typed) == len("0.") + 34
    assert float(plain) == float(typed) and Decimal(plain) != Decimal(typed)
