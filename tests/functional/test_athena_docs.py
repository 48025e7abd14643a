"""Every query in docs/athena.md gives the right answer over an archive the archiver wrote.

Each ```sql block is parsed with sqlglot's Athena dialect, transpiled to
DuckDB and run over the Parquet files, exposed as a DuckDB view named like
the Athena table (partition columns typed VARCHAR, as in the generated DDL).
The expected answers are computed here from the raw stream records, not from
the archive. Some batches are archived twice with other boundaries, as Lambda
retries do, so the archive holds duplicate changes the queries must handle.
The blocks titled ``-- iceberg: ...`` query the Iceberg table of the same archive
(synced twice, so time travel has somewhere to go), read through pyiceberg; so do the
queries ``archiver athena-ddl --iceberg`` prints.
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
from sqlglot import exp

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


OPTIONS = ArchiveOptions(parse_promoted_columns(PROMOTED), plain_images=True)


def histories() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The docs' orders and customers: their changes as the stream delivered them."""
    orders = TableHistory("orders", seed=5, start=START, seconds_per_change=20).changes(1500)
    customers = TableHistory(
        "customers", seed=6, start=START, key_names=("id",), items=30, seconds_per_change=60
    ).changes(300)
    return orders, customers


def deliveries(
    orders: list[dict[str, Any]], customers: list[dict[str, Any]]
) -> list[list[dict[str, Any]]]:
    """The batches the sink archives, in order."""
    batches = [orders[i : i + 100] for i in range(0, len(orders), 100)]
    batches += [customers[i : i + 100] for i in range(0, len(customers), 100)]
    # Lambda retrying with other batch boundaries: these changes are archived twice.
    batches += [orders[50:180], orders[1250:1330]]
    return batches


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Archive:
    orders, customers = histories()
    root = tmp_path_factory.mktemp("athena-docs") / "archive"
    store = LocalStore(root)
    for batch in deliveries(orders, customers):
        assert archive_records(batch, store, OPTIONS).ok
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
    assert set(sql_blocks()) == set(CHECKS) | set(ICEBERG_CHECKS)


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


# --- the Iceberg tables (the docs' section, and `archiver athena-ddl --iceberg`) -------------
#
# DuckDB's iceberg extension cannot be installed here (no network), so pyiceberg reads the
# table at the snapshot a query asks for, and DuckDB runs the query on that as the view Athena
# would query (metadata tables from pyiceberg's inspect API, which has Iceberg's columns). A
# FOR TIMESTAMP/VERSION AS OF clause is resolved to its snapshot as Athena resolves it (the last
# snapshot committed at or before the moment; the snapshot of that id), its moment evaluated
# by DuckDB, and the clause taken out of the query.

ICEBERG = "iceberg: "
DOC_SNAPSHOT_ID = "949530903748831860"  # the docs' example snapshot id: the first sync's here
DOC_SYNC_TIME = "2026-11-19 06:00:00 UTC"  # the docs' sync time: a moment between the syncs here
FIRST_SYNC = 7  # the first sync registers the first seven batches: orders[:700]


@dataclass
class IcebergTable:
    table: Any  # pyiceberg's Table of orders after both syncs
    first: Any  # the first sync's snapshot
    files: list[int]  # files each sync registered
    archive: Archive  # the changes the stream delivered
    first_orders: list[dict[str, Any]]  # the changes the first sync registered


@pytest.fixture(scope="module")
def iceberg(tmp_path_factory: pytest.TempPathFactory) -> IcebergTable:
    """The orders table of the docs' archive, synced twice: after 700 changes, then after all."""
    from pyiceberg.catalog.sql import SqlCatalog

    from archiver.iceberg import sync

    root = tmp_path_factory.mktemp("athena-iceberg")
    store = LocalStore(root / "archive")
    catalog = SqlCatalog("docs", uri=f"sqlite:///{root / 'catalog.db'}", warehouse=f"file://{root}")
    orders, customers = histories()
    batches = deliveries(orders, customers)
    assert all(r in orders for batch in batches[:FIRST_SYNC] for r in batch)
    files = []
    for part in (batches[:FIRST_SYNC], batches[FIRST_SYNC:]):
        for batch in part:
            assert archive_records(batch, store, OPTIONS).ok
        report = sync(store, catalog, namespace=DEFAULT_DATABASE, tables=["orders"])
        assert not report.errors, report.errors
        files.append(report.files_registered)
    table = catalog.load_table((DEFAULT_DATABASE, "orders"))
    first, second = table.snapshots()
    assert second.parent_snapshot_id == first.snapshot_id
    first_orders = [r for batch in batches[:FIRST_SYNC] for r in batch]
    return IcebergTable(table, first, files, Archive(root, orders, customers), first_orders)


def iceberg_connection(table: Any, snapshot_id: int) -> Any:
    """DuckDB with the Iceberg table at one snapshot, and its metadata tables, as Athena names them."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"CREATE SCHEMA {DEFAULT_DATABASE}")
    name = table.name()[-1]
    for suffix, rows in (
        ("", table.scan(snapshot_id=snapshot_id).to_arrow()),
        ("$snapshots", table.inspect.snapshots()),
        ("$history", table.inspect.history()),
    ):
        con.register("source", rows)
        con.execute(f'CREATE TABLE {DEFAULT_DATABASE}."{name}{suffix}" AS SELECT * FROM source')
        con.unregister("source")
    return con


def run_iceberg(
    iceberg: IcebergTable, athena_sql: str, *, between_syncs: bool = True
) -> list[dict[str, Any]]:
    """Run an Athena query of the Iceberg table; time travel picks the snapshot Athena would."""
    table = iceberg.table
    tree = sqlglot.parse_one(athena_sql, read="athena")  # raises on what Athena's dialect rejects
    snapshot = table.current_snapshot()
    version = tree.find(exp.Version)
    if version is not None:
        assert version.args["kind"] == "AS OF"
        if version.name == "VERSION":
            snapshot = table.snapshot_by_id(int(version.expression.name))
        else:
            assert version.name == "TIMESTAMP"
            moment = version.expression.sql(dialect="duckdb")
            with duckdb.connect() as clock:
                clock.execute("SET TimeZone = 'UTC'")
                [(ms,)] = clock.execute(
                    f"SELECT epoch_ms(CAST({moment} AS TIMESTAMPTZ))"
                ).fetchall()
            if between_syncs:
                snapshot = table.snapshot_as_of_timestamp(ms)
            else:  # a moment relative to now: every snapshot here is from the last minutes
                now = datetime.now(UTC).timestamp() * 1000
                assert now - 2 * 3_600_000 < ms < now
        assert snapshot is not None, "no snapshot at that moment: Athena would refuse the query"
        version.pop()
    con = iceberg_connection(table, snapshot.snapshot_id)
    try:
        cursor = con.execute(tree.sql(dialect="duckdb"))
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    finally:
        con.close()


def doc_iceberg_query(iceberg: IcebergTable, title: str) -> str:
    """The docs' query, with the example snapshot id and sync time made this table's."""
    first, second = iceberg.table.snapshots()
    between = datetime.fromtimestamp(
        (first.timestamp_ms + second.timestamp_ms) / 2000, UTC
    ).strftime("%Y-%m-%d %H:%M:%S.%f UTC")
    assert second.timestamp_ms - first.timestamp_ms > 2, "the syncs are too close to tell apart"
    sql = sql_blocks()[ICEBERG + title]
    return sql.replace(DOC_SNAPSHOT_ID, str(first.snapshot_id)).replace(DOC_SYNC_TIME, between)


def check_iceberg_moment(rows: list[dict[str, Any]], iceberg: IcebergTable) -> None:
    check_table_at_moment(rows, iceberg.archive)  # the same answer as the Hive table's query


def check_iceberg_hourly(rows: list[dict[str, Any]], iceberg: IcebergTable) -> None:
    expected = Counter(
        when(r).replace(minute=0, second=0, microsecond=0) for r in iceberg.archive.orders
    )
    assert [(r["hour"], r["changes"]) for r in rows] == sorted(expected.items())
    assert {r["hour"].strftime("%Y-%m-%d") for r in rows} == set(DAYS)  # the filter spans both


def check_snapshots(rows: list[dict[str, Any]], iceberg: IcebergTable) -> None:
    first, second = rows
    assert first["snapshot_id"] == iceberg.first.snapshot_id and first["parent_id"] is None
    assert second["snapshot_id"] == iceberg.table.current_snapshot().snapshot_id
    assert second["parent_id"] == first["snapshot_id"]
    assert {r["operation"] for r in rows} == {"append"}
    assert [int(r["files_added"]) for r in rows] == iceberg.files
    assert int(second["rows_after"]) == iceberg.table.scan().to_arrow().num_rows


def check_history(rows: list[dict[str, Any]], iceberg: IcebergTable) -> None:
    assert [r["snapshot_id"] for r in rows] == [s.snapshot_id for s in iceberg.table.snapshots()]
    assert all(r["is_current_ancestor"] for r in rows)
    assert rows[1]["parent_id"] == rows[0]["snapshot_id"]


def check_first_sync(rows: list[dict[str, Any]], iceberg: IcebergTable) -> None:
    [row] = rows
    assert row["changes"] == len({r["eventID"] for r in iceberg.first_orders})
    assert row["latest_change"] == max(when(r) for r in iceberg.first_orders)
    assert row["changes"] < len(iceberg.archive.orders)  # not the current table


ICEBERG_CHECKS: dict[str, Callable[[list[dict[str, Any]], IcebergTable], None]] = {
    ICEBERG + "table at a moment": check_iceberg_moment,
    ICEBERG + "changes per hour": check_iceberg_hourly,
    ICEBERG + "snapshots": check_snapshots,
    ICEBERG + "history": check_history,
    ICEBERG + "table at a sync time": check_first_sync,
    ICEBERG + "table at a snapshot": check_first_sync,
}


@pytest.mark.parametrize("title", sorted(ICEBERG_CHECKS))
def test_docs_iceberg_query_answers(title: str, iceberg: IcebergTable) -> None:
    query = doc_iceberg_query(iceberg, title[len(ICEBERG) :])
    ICEBERG_CHECKS[title](run_iceberg(iceberg, query), iceberg)


def test_docs_time_travel_queries_travel(iceberg: IcebergTable) -> None:
    # the two time travel examples read the first sync's table, and say so in their clause
    for title, kind in (("table at a sync time", "TIMESTAMP"), ("table at a snapshot", "VERSION")):
        version = sqlglot.parse_one(sql_blocks()[ICEBERG + title], read="athena").find(exp.Version)
        assert version is not None and version.name == kind
    # and without the clause, the same query reads the whole table
    current = sql_blocks()[ICEBERG + "table at a snapshot"].replace(
        f" FOR VERSION AS OF {DOC_SNAPSHOT_ID}", ""
    )
    [row] = run_iceberg(iceberg, current)
    assert row["changes"] == len(iceberg.archive.orders)


def athena_ddl_iceberg(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    from archiver import cli

    capsys.readouterr()
    code = cli.main(["athena-ddl", "--iceberg", *args])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    return printed.out


def statements(text: str) -> list[str]:
    """The SQL statements of a script: comment lines dropped, split at ';'."""
    code = "\n".join(line for line in text.splitlines() if not line.startswith("--"))
    return [part.strip() for part in code.split(";") if part.strip()]


def test_athena_ddl_iceberg_queries_run_on_the_iceberg_table(
    iceberg: IcebergTable, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given the queries athena-ddl --iceberg prints for orders
    text = athena_ddl_iceberg(capsys, "--archive", "s3://my-bucket/changes", "--tables", "orders")
    assert "table_type=ICEBERG" in text and "metadata_location" in text
    queries = statements(text)
    assert len(queries) == 5
    assert "<snapshot_id>" in queries[-1]
    # When each runs on the table (the snapshot to fill in: the first sync's)
    results = [
        run_iceberg(
            iceberg,
            query.replace("<snapshot_id>", str(iceberg.first.snapshot_id)),
            between_syncs=False,
        )
        for query in queries
    ]
    # Then each answers: the latest change of every item, snapshots, the first sync's count
    latest, _per_hour, snapshots, _at_moment, at_snapshot = results
    items = {key_of(r["dynamodb"]["Keys"]) for r in iceberg.archive.orders}
    assert len(latest) == len({r["item_key"] for r in latest}) == len(items)
    assert [r["snapshot_id"] for r in snapshots] == [
        s.snapshot_id for s in reversed(iceberg.table.snapshots())
    ]
    assert at_snapshot == [{"changes": len({r["eventID"] for r in iceberg.first_orders})}]


def test_athena_ddl_iceberg_names_each_table_in_its_namespace(
    capsys: pytest.CaptureFixture[str],
) -> None:
    text = athena_ddl_iceberg(
        capsys, "--archive", "s3://my-bucket/p", "--tables", "orders,payments", "--namespace", "cdc"
    )
    tables = {
        (t.db, t.name)
        for query in statements(text.replace("<snapshot_id>", "1"))
        for t in sqlglot.parse_one(query, read="athena").find_all(exp.Table)
    }
    assert tables == {
        (db, name)
        for db in ("cdc",)
        for table in ("orders", "payments")
        for name in (table, f"{table}$snapshots")
    }
    assert "--namespace cdc" in text
