"""`make demo`: the round trip end to end on this machine.

Starts a local S3 (SeaweedFS), generates stream traffic for two tables,
archives it through the Lambda handler into S3 and into a local folder,
lists the archive, replays a time window, queries the Parquet with DuckDB,
registers the local archive in Iceberg tables of a SQLite catalog, restores
the table as it was at a moment into DynamoDB Local, and stops the servers it
started.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from devkit.servers import SeaweedS3
from devkit.traffic import TableHistory, lambda_events, orders_table

ROOT = Path(__file__).resolve().parent.parent
LOCAL_ARCHIVE = ROOT / "demo-archive"
ICEBERG_FOLDER = "demo-iceberg"  # the demo's SQLite Iceberg catalog and its tables' metadata


def say(text: str) -> None:
    print(f"==> {text}", flush=True)


def run_cli(args: list[str], env: dict[str, str], *, summary: bool = False) -> str:
    """Run a console script as a user would, and return its stdout (``summary``: print its
    stderr, where the archiver's commands write their one-line summary)."""
    bin_dir = Path(sys.executable).parent
    result = subprocess.run(
        [str(bin_dir / args[0]), *args[1:]], env=env, capture_output=True, text=True
    )
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
    if summary:
        print(f"    {result.stderr.strip()}")
    return result.stdout


def archive_through_handler(uri: str, events: list[dict[str, object]]) -> tuple[int, int, float]:
    """Feed every event to the Lambda handler as Lambda would; return (records, failures, seconds)."""
    from archiver import lambda_handler

    os.environ["ARCHIVER_ARCHIVE_URI"] = uri
    os.environ["ARCHIVER_PROMOTED_COLUMNS"] = "customer_id:string,amount:decimal(18,2)"
    os.environ["ARCHIVER_LOG_LEVEL"] = "ERROR"  # the demo prints its own summary lines
    os.environ["ARCHIVER_METRICS"] = "false"  # EMF lines are for CloudWatch, not for this terminal
    lambda_handler.reset()
    records = failures = 0
    started = time.perf_counter()
    for event in events:
        response = lambda_handler.handler(event, None)
        records += len(event["Records"])  # type: ignore[arg-type]
        failures += len(response["batchItemFailures"])
    return records, failures, time.perf_counter() - started


def restore_demo(uri: str, records: list[dict[str, Any]], env: dict[str, str], until: str) -> None:
    """Rebuild the orders table as it was at `until` in DynamoDB Local, and check it."""
    from archiver.archive.times import parse_time
    from devkit.servers import DynamoDBLocal, ServerError

    try:
        ddb = DynamoDBLocal().start()
    except ServerError as err:
        say(f"skipping the restore step: {err}")
        return
    try:
        client = ddb.client()
        client.create_table(**orders_table("orders-restored"))
        say(
            f"replayer restore --table orders --into orders-restored --until {until} "
            f"(DynamoDB Local at {ddb.endpoint})"
        )
        print(
            run_cli(
                [
                    "replayer",
                    "restore",
                    "--archive",
                    uri,
                    "--table",
                    "orders",
                    "--into",
                    "orders-restored",
                    "--until",
                    until,
                ],
                {**env, **ddb.env()},
            ),
            end="",
        )
        limit = parse_time(until) // 10**6
        expected: dict[bytes, object] = {}
        for record in records:
            change = record["dynamodb"]
            if change["ApproximateCreationDateTime"] > limit:
                break
            key = orjson.dumps(change["Keys"], option=orjson.OPT_SORT_KEYS)
            if record["eventName"] == "REMOVE":
                expected.pop(key, None)
            else:
                expected[key] = change["NewImage"]
        count = sum(
            page["Count"]
            for page in client.get_paginator("scan").paginate(
                TableName="orders-restored", Select="COUNT"
            )
        )
        say(
            f"the restored table holds {count} items; the stream's history says {len(expected)} "
            f"existed at {until}"
        )
    finally:
        ddb.stop()


def iceberg_demo(env: dict[str, str]) -> None:
    """Register the local archive in Iceberg tables of a SQLite catalog, twice, and scan one."""
    from pyiceberg.catalog import load_catalog

    folder = ROOT / ICEBERG_FOLDER
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "warehouse").mkdir(parents=True)
    properties = {
        "type": "sql",
        "uri": f"sqlite:///{folder / 'catalog.db'}",
        "warehouse": f"file://{folder / 'warehouse'}",
    }
    env = dict(env) | {f"PYICEBERG_CATALOG__DEMO__{k.upper()}": v for k, v in properties.items()}
    args = ["archiver", "iceberg-sync", "--archive", str(LOCAL_ARCHIVE), "--catalog", "demo", "-q"]
    for attempt in ("first run", "again: nothing new, nothing committed"):
        say(f"{' '.join(args[:-1]).replace(str(ROOT) + '/', './')}  ({attempt})")
        run_cli(args, env, summary=True)
    orders = load_catalog("demo", **properties).load_table("dynamodb_archive.orders")
    rows = orders.scan(selected_fields=("event_id",)).to_arrow()
    distinct = len(set(rows.column("event_id").to_pylist()))
    say(
        f"pyiceberg scan of dynamodb_archive.orders (SQLite catalog in ./{ICEBERG_FOLDER}/): "
        f"{rows.num_rows} rows, {distinct} distinct events, partitioned by "
        f"{orders.spec().fields[0].transform}(change_time), the archive's files in place"
    )
    before = orders.current_snapshot()
    assert before is not None
    files_before = len(list(orders.scan().plan_files()))
    say("archiver compact --archive ./demo-archive --iceberg demo  (one Iceberg commit per table)")
    run_cli(
        ["archiver", "compact", "--archive", str(LOCAL_ARCHIVE), "--iceberg", "demo", "-q"],
        env,
        summary=True,
    )
    orders = load_catalog("demo", **properties).load_table("dynamodb_archive.orders")
    rows = orders.scan(selected_fields=("event_id",)).to_arrow()
    files_after = len(list(orders.scan().plan_files()))
    say(
        f"dynamodb_archive.orders now reads {files_after} files instead of {files_before}: "
        f"{rows.num_rows} rows, {len(set(rows.column('event_id').to_pylist()))} distinct events "
        "(no double counts); the replaced files stay for the snapshots before the swap"
    )
    table = "demo.dynamodb_archive.orders"
    events = ["replayer", "events", "--archive", str(LOCAL_ARCHIVE), "--iceberg", table]
    now = run_cli(events, env)
    then = run_cli([*events, "--snapshot-id", str(before.snapshot_id)], env)
    say(
        f"replayer events --iceberg {table} --snapshot-id {before.snapshot_id} (time travel to "
        f"before the compaction): {then.count(chr(10))} events, the same as the current "
        f"snapshot gives: {then == now}"
    )
    if then != now:
        raise SystemExit("the snapshots before and after the compaction replay differently")


def main() -> int:
    # Given: traffic for two tables over a few hours, delivered in Lambda batches of 100.
    orders = TableHistory("orders", seed=7, items=400, seconds_per_change=4.0)
    customers = TableHistory(
        "customers", seed=8, items=150, key_names=("customer_id",), seconds_per_change=12.0
    )
    order_records = orders.changes(3000)
    customer_records = customers.changes(1000)
    events = list(lambda_events(order_records)) + list(lambda_events(customer_records))
    events.append(events[3])  # Lambda retries a batch: no duplicate may appear
    poison = dict(order_records[0], eventID="poison-1", eventName="UPSERT")
    events.append({"Records": [poison]})  # an undecodable record is dead-lettered, not lost
    total = len(order_records) + len(customer_records)
    say(
        f"generated {total} stream records for tables 'orders' and 'customers' "
        f"({len(events)} Lambda invocations, one retried, one with a poison record)"
    )

    with SeaweedS3() as s3:
        s3.create_bucket("demo-archive")
        os.environ.update(s3.env())
        env = dict(os.environ)
        say(f"started a local S3 (SeaweedFS) at {s3.endpoint}")

        uri = "s3://demo-archive/changes"
        n, failed, seconds = archive_through_handler(uri, events)
        say(
            f"archived {n} records into {uri} through the Lambda handler in {seconds:.1f} s "
            f"({n / seconds:,.0f} records/s, {failed} batch item failures)"
        )

        shutil.rmtree(LOCAL_ARCHIVE, ignore_errors=True)
        n, failed, seconds = archive_through_handler(str(LOCAL_ARCHIVE), events)
        say(f"archived the same records into ./{LOCAL_ARCHIVE.name}/ in {seconds:.1f} s")

        say(f"replayer ls --archive {uri}")
        print(run_cli(["replayer", "ls", "--archive", uri], env), end="")

        dead = sorted(
            p.relative_to(LOCAL_ARCHIVE) for p in (LOCAL_ARCHIVE / "_errors").rglob("*.jsonl")
        )
        reason = orjson.loads((LOCAL_ARCHIVE / dead[0]).read_bytes().splitlines()[0])["reason"]
        say(f"dead letters: {len(dead)} file(s) under _errors/, reason: {reason!r}")

        since, until = "2026-11-18T11:30:00Z", "2026-11-18T12:29:59Z"
        say(f"replayer events --table orders --since {since} --until {until}")
        out = run_cli(
            [
                "replayer",
                "events",
                "--archive",
                uri,
                "--table",
                "orders",
                "--since",
                since,
                "--until",
                until,
            ],
            env,
        )
        replayed = [orjson.loads(line) for line in io.StringIO(out)]
        from archiver.archive.times import parse_time

        lo, hi = parse_time(since) // 10**6, parse_time(until) // 10**6
        expected = [
            r for r in order_records if lo <= r["dynamodb"]["ApproximateCreationDateTime"] <= hi
        ]
        same = replayed == expected
        say(
            f"replayed {len(replayed)} events in sequence order; identical to what the stream "
            f"delivered: {same}"
        )
        if not same:
            return 1

        import duckdb

        say("DuckDB over the local archive: changes per table, hour and event")
        con = duckdb.connect()
        glob = f"{LOCAL_ARCHIVE}/table_name=*/dt=*/hour=*/*.parquet"
        rows = con.execute(f"""
            SELECT table_name, dt, hour, event_name, count(DISTINCT event_id) AS changes,
                   count(*) FILTER (WHERE ttl_delete) AS ttl_deletes
            FROM read_parquet('{glob}', hive_partitioning = true,
                              hive_types = {{'table_name': VARCHAR, 'dt': VARCHAR, 'hour': VARCHAR}})
            GROUP BY ALL ORDER BY ALL
        """).fetchall()
        print(f"    {'table':<10} {'dt':<10} {'hour':<4} {'event':<6} {'changes':>7} {'ttl':>4}")
        for table, dt, hour, name, changes, ttl in rows:
            print(f"    {table:<10} {dt:<10} {hour:<4} {name:<6} {changes:>7} {ttl:>4}")
        top = con.execute(f"""
            SELECT customer_id, sum(amount) AS total
            FROM read_parquet('{glob}', hive_partitioning = true,
                              hive_types = {{'table_name': VARCHAR, 'dt': VARCHAR, 'hour': VARCHAR}})
            WHERE table_name = 'orders' AND event_name = 'INSERT'
            GROUP BY customer_id ORDER BY total DESC, customer_id LIMIT 1
        """).fetchone()
        assert top is not None
        say(
            f"promoted columns are typed: top customer by inserted order amount is {top[0]} "
            f"with {top[1]} (decimal(18,2))"
        )
        iceberg_demo(env)
        restore_demo(uri, order_records, env, until)
    say("stopped the local servers; the local archive stays in ./demo-archive/ for you to explore")
    return 0


if __name__ == "__main__":
    sys.exit(main())
