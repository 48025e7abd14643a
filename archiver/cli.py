"""The ``archiver`` command line: ``ingest``, ``athena-ddl``, ``run``, ``compact``, ``iceberg-sync``.

``ingest`` archives stream records from files (backfills, tests, the demo);
``athena-ddl`` prints the archive's Athena table (or applies it through Glue; with
``--iceberg``, what Athena needs for its Iceberg tables: a note and queries);
``iceberg-sync`` registers the archive's files in Apache Iceberg tables.
Exit codes: 0 done; 1 failed (a malformed file, a dead-lettered record, a
failed write, a store or Glue error), after a summary; 2 bad usage (an unknown
option, a file that cannot be opened, a closed stdin, an archive that does not
exist, invalid settings or names).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import IO, Any, NoReturn

import orjson

from archiver import __version__

__all__ = ["main"]

log = logging.getLogger("archiver.cli")
CHUNK = 10_000  # records per archive call: bounds memory on large backfill files


class UsageError(Exception):
    """Bad usage: exit status 2."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="archiver", description="Archive DynamoDB Streams changes as Hive-partitioned Parquet."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    ingest = commands.add_parser(
        "ingest",
        help="archive stream records from files or stdin",
        description="Archive stream records from files (or stdin when no file or '-' is given). "
        'A file holds a Lambda event ({"Records": [...]}), a JSON array of records, or JSON Lines '
        "with one record or one event per line.",
    )
    ingest.add_argument("files", nargs="*", metavar="FILE", help="input files; '-' reads stdin")
    ingest.add_argument(
        "--archive",
        metavar="URI",
        help="s3://bucket/prefix or a folder (default: $ARCHIVER_ARCHIVE_URI)",
    )
    ingest.add_argument(
        "--table",
        metavar="NAME",
        help="table for records without eventSourceARN (default: $ARCHIVER_DEFAULT_TABLE)",
    )
    ingest.add_argument(
        "--promoted-columns",
        metavar="SPEC",
        help="e.g. 'customer_id:string,amount:decimal(18,2)' (default: $ARCHIVER_PROMOTED_COLUMNS)",
    )
    ingest.add_argument(
        "--plain-images",
        action="store_true",
        default=None,
        help="also store images as plain JSON (default: $ARCHIVER_PLAIN_IMAGES)",
    )
    ingest.add_argument(
        "--image-check",
        choices=["full", "light"],
        help="full: every attribute value of every image checked against DynamoDB's types "
        "(default for ingest); light: images need only be JSON objects "
        "(default: $ARCHIVER_IMAGE_CHECK, else full)",
    )
    ingest.add_argument("-q", "--quiet", action="store_true", help="log warnings and errors only")
    _athena_parser(commands)
    return parser


def _athena_parser(commands: Any) -> None:
    from archiver.archive.athena import DEFAULT_DATABASE, DEFAULT_TABLE

    athena = commands.add_parser(
        "athena-ddl",
        help="print (or --apply) the archive's Athena table with partition projection",
        description="Print a CREATE EXTERNAL TABLE for the archive, with partition projection "
        "matching its layout, so new partitions are queryable at once; --apply creates or "
        "updates the table through the Glue API instead. With --iceberg, print what Athena "
        "needs for the archive's Iceberg tables (those iceberg-sync registers in Glue): a note "
        "and example queries, time travel included.",
    )
    athena.add_argument(
        "--archive", metavar="URI", help="s3://bucket/prefix (default: $ARCHIVER_ARCHIVE_URI)"
    )
    # --database, --table and --table-names default to None so that --iceberg can tell they were given
    athena.add_argument(
        "--database", metavar="DB", help=f"Glue database (default: {DEFAULT_DATABASE})"
    )
    athena.add_argument(
        "--table", metavar="NAME", help=f"Athena table name (default: {DEFAULT_TABLE})"
    )
    athena.add_argument(
        "--promoted-columns",
        metavar="SPEC",
        help="the promoted columns the archive is written with "
        "(default: $ARCHIVER_PROMOTED_COLUMNS)",
    )
    athena.add_argument(
        "--table-names",
        choices=("enum", "injected"),
        help="project table_name as an enum of the archived tables (default; "
        "injected when the archive is empty) or injected (every query names "
        "its table)",
    )
    athena.add_argument(
        "--tables",
        metavar="A,B",
        help="the DynamoDB tables to enumerate for table_name, instead of listing the archive",
    )
    athena.add_argument(
        "--start-date",
        metavar="YYYY-MM-DD",
        help="first day (UTC) to project dt from, instead of the archive's first day; with "
        "--tables or --table-names injected, the archive is not read (no AWS access to print)",
    )
    output = athena.add_mutually_exclusive_group()
    output.add_argument(
        "--apply",
        action="store_true",
        help="create or update the table through the Glue API instead of printing",
    )
    output.add_argument(
        "--glue-json",
        action="store_true",
        help="print the Glue TableInput as JSON instead of the DDL",
    )
    athena.add_argument(
        "--iceberg",
        action="store_true",
        help="print, for each Iceberg table iceberg-sync registers (one per DynamoDB table, "
        "--tables or those the archive holds), the note that its Glue entry is all Athena "
        "needs, and example queries (latest change per item, per hour, time travel)",
    )
    athena.add_argument(
        "--namespace",
        metavar="NS",
        help="with --iceberg: the namespace given to iceberg-sync, the Glue database "
        "(default: dynamodb_archive)",
    )
    athena.add_argument("-q", "--quiet", action="store_true", help="log warnings and errors only")

    run = commands.add_parser(
        "run",
        help="archive a DynamoDB stream continuously (the poller service)",
        description="Read a DynamoDB stream with the Streams API and archive it, flushing on size, count "
        "or age, checkpointing each shard after every flush. Stops cleanly on SIGTERM/SIGINT.",
    )
    run.add_argument(
        "--archive",
        metavar="URI",
        help="s3://bucket/prefix or a folder (default: $ARCHIVER_ARCHIVE_URI)",
    )
    source = run.add_mutually_exclusive_group()
    source.add_argument(
        "--stream-arn", metavar="ARN", help="the stream (default: $ARCHIVER_STREAM_ARN)"
    )
    source.add_argument(
        "--table", metavar="NAME", help="read the table's latest stream (default: $ARCHIVER_TABLE)"
    )
    run.add_argument(
        "--checkpoint",
        metavar="URI",
        help="file path or s3://bucket/key for shard positions "
        "(default: _checkpoints/ in the archive)",
    )
    run.add_argument(
        "--flush-bytes", type=int, metavar="B", help="flush at B buffered bytes (default 64 MiB)"
    )
    run.add_argument(
        "--flush-records",
        type=int,
        metavar="N",
        help="flush at N buffered records (default 100000)",
    )
    run.add_argument(
        "--flush-interval",
        type=float,
        metavar="S",
        help="flush when the oldest buffered record is S seconds old (default 300)",
    )
    run.add_argument(
        "--poll-interval",
        type=float,
        default=1.0,
        metavar="S",
        help="pause between polls of an idle stream (default 1)",
    )
    run.add_argument("--promoted-columns", metavar="SPEC", help="as for ingest")
    run.add_argument("-q", "--quiet", action="store_true", help="log warnings and errors only")

    compact = commands.add_parser(
        "compact",
        help="merge small files into files of about the target size",
        description="Merge each hour partition's small files into files of about --target-bytes, dropping "
        "duplicate events, in sequence order, with deterministic names. The merged files are written before "
        "the inputs are removed, so a crash leaves an archive that replays the same; rerunning finishes. "
        "A table that iceberg-sync registers in an Iceberg table is compacted only with --iceberg: its "
        "current snapshot's files are merged and swapped in one commit per table, and no file is removed "
        "(iceberg-sync --expire-snapshots-older-than does, when no snapshot references them any more).",
    )
    compact.add_argument(
        "--archive",
        metavar="URI",
        help="s3://bucket/prefix or a folder (default: $ARCHIVER_ARCHIVE_URI)",
    )
    compact.add_argument("--table", metavar="NAME", help="only this table (default: every table)")
    compact.add_argument(
        "--since", metavar="TIME", help="first hour to compact (ISO-8601 or epoch seconds)"
    )
    compact.add_argument("--until", metavar="TIME", help="last hour to compact")
    compact.add_argument(
        "--target-bytes",
        type=int,
        default=128 * 1024 * 1024,
        metavar="B",
        help="about how large each file should be (default 128 MiB)",
    )
    compact.add_argument(
        "--iceberg",
        metavar="CATALOG",
        help="compact the tables iceberg-sync registers in this catalog (of pyiceberg's "
        "configuration) through it: one commit per table, no file removed (default: such "
        "tables are refused)",
    )
    compact.add_argument(
        "--namespace",
        metavar="NS",
        help="with --iceberg: the tables' namespace (default: the one iceberg-sync recorded, "
        "else dynamodb_archive)",
    )
    compact.add_argument("--promoted-columns", metavar="SPEC", help=argparse.SUPPRESS)
    compact.add_argument("-q", "--quiet", action="store_true", help="log warnings and errors only")

    iceberg = commands.add_parser(
        "iceberg-sync",
        help="register the archive's new files in Apache Iceberg tables, one commit per table",
        description="For each archived DynamoDB table, register in the Iceberg table NS.TABLE (created "
        "on first use, partitioned by hour(change_time)) every data file none of its snapshots "
        "references yet, in place and in one commit (committing the swap of a compaction that "
        "crashed before its own commit). The catalog is pyiceberg's: .pyiceberg.yaml or "
        "PYICEBERG_CATALOG__NAME__* variables. Needs the 'iceberg' extra.",
    )
    iceberg.add_argument(
        "--archive",
        metavar="URI",
        help="s3://bucket/prefix or a folder (default: $ARCHIVER_ARCHIVE_URI)",
    )
    iceberg.add_argument(
        "--catalog", metavar="NAME", required=True, help="a catalog of pyiceberg's configuration"
    )
    iceberg.add_argument(
        "--namespace",
        metavar="NS",
        default="dynamodb_archive",
        help="the Iceberg namespace of the tables (default: dynamodb_archive)",
    )
    iceberg.add_argument(
        "--table",
        dest="tables",
        action="append",
        metavar="DDB_TABLE",
        help="only this DynamoDB table (repeat for more; default: every table of the archive)",
    )
    iceberg.add_argument(
        "--expire-snapshots-older-than",
        metavar="DURATION",
        help="after the sync, expire each table's snapshots older than DURATION (7d, 12h, "
        "30m, 1d12h; never the current one), and delete the archive files that only they "
        "reference (the files compactions replaced)",
    )
    iceberg.add_argument("-q", "--quiet", action="store_true", help="log warnings and errors only")


def _settings(args: argparse.Namespace) -> Any:
    from pydantic import ValidationError

    from archiver.settings import ArchiverSettings

    overrides = {
        "archive_uri": args.archive,
        "default_table": args.table if args.command == "ingest" else None,
        "promoted_columns": getattr(args, "promoted_columns", None),
        "plain_images": getattr(args, "plain_images", None),
        "image_check": getattr(args, "image_check", None),
    }
    if args.command == "run":
        overrides.update(
            {
                "stream_arn": args.stream_arn,
                "table": args.table,
                "checkpoint_uri": args.checkpoint,
                "flush_bytes": args.flush_bytes,
                "flush_records": args.flush_records,
                "flush_interval": args.flush_interval,
            }
        )
    try:
        return ArchiverSettings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as err:
        problems = []
        for e in err.errors():
            name = "_".join(map(str, e["loc"]))
            flags = {
                "archive_uri": "--archive",
                "checkpoint_uri": "--checkpoint",
                "default_table": "--table",
            }
            flag = flags.get(name, f"--{name.replace('_', '-')}")
            problems.append(f"{flag} (or ARCHIVER_{name.upper()}): {e['msg']}")
        raise UsageError("; ".join(problems)) from None


def _open(name: str, stdin: IO[bytes] | None) -> IO[bytes]:
    if name == "-":
        if stdin is None:
            raise UsageError("-: stdin is closed")
        return stdin
    try:
        return Path(name).open("rb")
    except FileNotFoundError:
        raise UsageError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{name}: is a directory") from None
    except OSError as err:
        raise UsageError(f"{name}: cannot read ({err.strerror})") from None


def _add(totals: dict[str, int], report: Any) -> None:
    totals["records"] += report.received
    totals["archived"] += report.archived
    totals["dead_lettered"] += report.dead_lettered
    totals["failed"] += len(report.failed_positions)
    totals["files"] += len(report.files)
    totals["bytes"] += report.bytes_written
    for error in report.errors:
        log.error("write failed: %s", error)


def ingest(args: argparse.Namespace, stdin: IO[bytes] | None) -> int:
    from archiver.archive.store import open_store
    from archiver.decode import typed_records
    from archiver.split import EventShapeError, iter_chunks
    from archiver.write import ArchiveOptions, archive_records

    settings = _settings(args)
    store = open_store(settings.archive_uri, sse=settings.sse_arguments, s3="boto3")
    # Files people make get the full DynamoDB-type check unless they ask for less.
    full_check = settings.image_check != "light"
    options = ArchiveOptions(
        settings.promoted, settings.plain_images, settings.default_table, full_check
    )
    files = args.files or ["-"]
    totals = {"records": 0, "archived": 0, "dead_lettered": 0, "failed": 0, "files": 0, "bytes": 0}
    bad_files = 0
    status = 0
    for name in files:
        try:
            handle = _open(name, stdin)
        except UsageError as err:
            log.error("%s", err)
            status = 2
            continue
        label = "<stdin>" if name == "-" else name
        try:
            with handle if handle is not stdin else nullcontext(handle):
                for origins, texts, typed in iter_chunks(handle, label, CHUNK, typed_records):
                    report = archive_records(texts, store, options, origins=origins, typed=typed)
                    _add(totals, report)
        except EventShapeError as err:
            log.error("%s", err)
            bad_files += 1
            continue
        except OSError as err:
            log.error("%s: cannot read (%s)", label, err.strerror or err)
            bad_files += 1
            continue
    print(
        f"archived {totals['archived']} of {totals['records']} records into {totals['files']} objects "
        f"({totals['bytes']:,} bytes) at {store.uri}"
        + (
            f"; {totals['dead_lettered']} dead-lettered under _errors/"
            if totals["dead_lettered"]
            else ""
        )
        + (f"; {totals['failed']} NOT written" if totals["failed"] else "")
        + (f"; {bad_files} file(s) skipped" if bad_files else ""),
        file=sys.stderr,
    )
    if status:
        return status
    return 1 if bad_files or totals["dead_lettered"] or totals["failed"] else 0


def _given_tables(args: argparse.Namespace) -> tuple[str, ...] | None:
    """``--tables`` as table names (None when not given); ``--table-names injected`` excludes it."""
    from archiver.archive.errors import InvalidNameError
    from archiver.archive.layout import validate_table_name

    if args.tables is None:
        return None
    if args.table_names == "injected":
        raise UsageError("--tables enumerates table_name: leave out --table-names injected")
    names = tuple(dict.fromkeys(name.strip() for name in args.tables.split(",")))
    try:
        for name in names:
            validate_table_name(name)
    except InvalidNameError as err:
        raise UsageError(f"--tables: {err}") from None
    return names


def _start_date(args: argparse.Namespace) -> str | None:
    """``--start-date`` when it is a real day written YYYY-MM-DD (None when not given)."""
    import re
    from datetime import date

    day: str | None = args.start_date
    if day is None:
        return None
    try:
        valid = re.fullmatch(r"\d{4}-\d{2}-\d{2}", day) is not None and bool(
            date.fromisoformat(day)
        )
    except ValueError:  # 2026-02-30
        valid = False
    if not valid:
        raise UsageError(f"--start-date {day!r}: expected a day as YYYY-MM-DD")
    return day


def athena_ddl(args: argparse.Namespace, stdin: IO[bytes]) -> int:
    """Print the archive's Athena table, or create/update it in Glue with ``--apply``.

    The archive is listed only for what the options leave open: its tables (unless
    ``--tables`` or ``--table-names injected``) and its first day (unless ``--start-date``).
    ``--iceberg`` prints the note and queries for the Iceberg tables instead (no DDL).
    """
    import dataclasses
    from datetime import UTC, datetime

    from archiver.archive.athena import (
        DEFAULT_DATABASE,
        DEFAULT_TABLE,
        archive_extent,
        athena_table,
        validate_glue_name,
    )
    from archiver.archive.errors import InvalidNameError
    from archiver.archive.store import open_store

    if args.iceberg:
        return _athena_iceberg(args)
    if args.namespace is not None:
        raise UsageError("--namespace names the Iceberg tables' namespace: give it with --iceberg")
    database, name = args.database or DEFAULT_DATABASE, args.table or DEFAULT_TABLE
    names = (("--database", database, "database"), ("--table", name, "table"))
    for flag, value, what in names:
        try:
            validate_glue_name(value, what)
        except InvalidNameError as err:
            raise UsageError(f"{flag}: {err}") from None
    given_tables, start_date = _given_tables(args), _start_date(args)
    settings = _settings(args)
    try:
        table = athena_table(
            settings.archive_uri,
            database=database,
            name=name,
            promoted=settings.promoted,
            first_day="1970-01-01",
        )
    except InvalidNameError as err:
        raise UsageError(f"--archive (or ARCHIVER_ARCHIVE_URI): {err}") from None
    enumerate_tables = args.table_names in (None, "enum")
    tables, first_day = given_tables, start_date
    if (enumerate_tables and tables is None) or first_day is None:
        listed, listed_first_day = archive_extent(open_store(settings.archive_uri, s3="boto3"))
        tables = tuple(listed) if tables is None else tables
        first_day = first_day or listed_first_day
    if enumerate_tables and not tables:
        log.warning("the archive holds no table yet: projecting table_name as injected")
    table = dataclasses.replace(
        table,
        table_names=(tables or ()) if enumerate_tables else (),
        first_day=first_day or datetime.now(UTC).strftime("%Y-%m-%d"),
    )
    if args.glue_json:
        text = orjson.dumps(table.glue_table_input(), option=orjson.OPT_INDENT_2).decode()
        sys.stdout.write(text + "\n")
        return 0
    if not args.apply:
        sys.stdout.write(table.ddl())
        return 0
    from archiver.athena import apply_table

    outcome = apply_table(table)
    projection = f"enum of {len(table.table_names)} table(s)" if table.table_names else "injected"
    print(
        f"{outcome} Glue table {table.database}.{table.name} over {table.location} "
        f"(table_name {projection}; dt from {table.first_day})",
        file=sys.stderr,
    )
    return 0


def _athena_iceberg(args: argparse.Namespace) -> int:
    """``athena-ddl --iceberg``: the note and example queries for the archive's Iceberg tables.

    Nothing is applied: ``iceberg-sync`` with a Glue catalog writes the Glue entries that
    Athena reads. The archive is listed only when ``--tables`` is not given.
    """
    from archiver.archive.athena import DEFAULT_DATABASE, archive_extent, validate_glue_name
    from archiver.archive.athena_iceberg import iceberg_queries
    from archiver.archive.errors import InvalidNameError
    from archiver.archive.store import open_store

    if args.apply or args.glue_json:
        flag = "--apply" if args.apply else "--glue-json"
        raise UsageError(
            f"--iceberg {flag}: `archiver iceberg-sync` with a Glue catalog writes the Iceberg "
            "tables' Glue entries itself; --iceberg only prints what to query"
        )
    hive_only = [
        ("--database", args.database),
        ("--table", args.table),
        ("--table-names", args.table_names),
        ("--start-date", args.start_date),
        ("--promoted-columns", args.promoted_columns),
    ]
    given = [flag for flag, value in hive_only if value is not None]
    if given:
        raise UsageError(
            f"{given[0]} is for the Hive table, not --iceberg: the Iceberg tables are "
            "NS.TABLE, one per DynamoDB table (give --namespace, and --tables)"
        )
    namespace = args.namespace or DEFAULT_DATABASE  # iceberg-sync's default namespace too
    try:
        validate_glue_name(namespace, "namespace")
    except InvalidNameError as err:
        raise UsageError(f"--namespace: {err}") from None
    settings = _settings(args)
    try:
        iceberg_queries(settings.archive_uri, namespace, ())  # the URI, before any listing
    except InvalidNameError as err:
        raise UsageError(f"--archive (or ARCHIVER_ARCHIVE_URI): {err}") from None
    tables = _given_tables(args)
    if tables is None:
        store = open_store(settings.archive_uri, s3="boto3")
        if not store.exists():
            raise UsageError(f"--archive {settings.archive_uri}: no such bucket")
        tables = tuple(archive_extent(store)[0])
        if not tables:
            log.warning("the archive holds no table yet: no Iceberg table to query")
    sys.stdout.write(iceberg_queries(settings.archive_uri, namespace, tables))
    return 0


def compact(args: argparse.Namespace, stdin: IO[bytes]) -> int:
    """Merge the archive's small files (``archiver compact``).

    Exit 0 when every partition is compacted, 1 when a partition or a table failed or was
    refused (a table an Iceberg table tracks, without ``--iceberg``), after the summary; 2
    for bad arguments, an archive that does not exist or a catalog that is not configured.
    """
    from archiver.archive.layout import validate_table_name
    from archiver.archive.store import open_store
    from archiver.archive.times import parse_time
    from archiver.compact import Tracker
    from archiver.compact import compact as run_compaction

    settings = _settings(args)
    if args.table:
        validate_table_name(args.table)
    if args.target_bytes < 1024 * 1024:
        raise UsageError(f"--target-bytes {args.target_bytes}: use at least 1 MiB")
    try:
        since = parse_time(args.since) if args.since else None
        until = parse_time(args.until) if args.until else None
    except ValueError as err:
        raise UsageError(f"--since/--until: {err}") from None
    if args.namespace is not None and args.iceberg is None:
        raise UsageError("--namespace names the Iceberg tables' namespace: give it with --iceberg")
    store = open_store(settings.archive_uri, sse=settings.sse_arguments, s3="boto3")
    if not store.exists():
        what = "bucket" if settings.archive_uri.startswith("s3://") else "folder"
        raise UsageError(f"--archive {settings.archive_uri}: no such {what}")
    tracker: Tracker | None = None
    if args.iceberg is not None:
        try:
            from archiver import iceberg
        except ModuleNotFoundError as err:
            print(
                f"archiver: error: compact --iceberg needs {err.name}: "
                "pip install 'dynamodb-stream-archive[iceberg]'",
                file=sys.stderr,
            )
            return 1
        try:
            catalog = iceberg.load_catalog(args.iceberg)
        except iceberg.CatalogConfigError as err:
            raise UsageError(f"--iceberg {args.iceberg}: {err}") from None
        tracker = iceberg.IcebergTracker(store, catalog, namespace=args.namespace)
    report = run_compaction(
        store,
        table=args.table,
        since_us=since,
        until_us=until,
        target_bytes=args.target_bytes,
        tracker=tracker,
    )
    commits = [
        f"{c.identifier} -{c.files_removed} +{c.files_added} files in {c.partitions} "
        f"partitions (snapshot {c.snapshot_id})"
        for c in report.commits
    ]
    print(
        f"compacted {report.partitions_compacted} of {report.partitions_seen} partitions: "
        f"{report.files_in} files ({report.bytes_in:,} bytes) into {report.files_out} "
        f"({report.bytes_out:,} bytes), {report.duplicates_dropped} duplicates dropped"
        + (
            f"; committed to catalog {args.iceberg}: {'; '.join(commits)}; the replaced files "
            "stay for older snapshots until iceberg-sync --expire-snapshots-older-than"
            if commits
            else ""
        ),
        file=sys.stderr,
    )
    for error in report.errors:
        print(f"archiver: error: {error}", file=sys.stderr)
    return 1 if report.errors else 0


def iceberg_sync(args: argparse.Namespace, stdin: IO[bytes]) -> int:
    """Register the archive's new data files in its Iceberg tables (``archiver iceberg-sync``).

    With ``--expire-snapshots-older-than``, then expire each synced table's old snapshots
    and delete the archive files only they reference. Exit 0 when every table is in sync
    (and expired), 1 when a table failed (after the summary), 2 for a catalog that is not
    configured, an archive that does not exist, a bad table name or a bad duration.
    """
    from datetime import UTC, datetime

    from archiver.archive.layout import validate_table_name
    from archiver.archive.reader import list_tables
    from archiver.archive.store import open_store
    from archiver.archive.times import parse_duration

    settings = _settings(args)
    tables = [validate_table_name(name) for name in args.tables] if args.tables else None
    older_than = None
    if args.expire_snapshots_older_than is not None:
        try:
            older_than = parse_duration(args.expire_snapshots_older_than)
        except ValueError as err:
            raise UsageError(f"--expire-snapshots-older-than: {err}") from None
    try:
        from archiver import iceberg
    except ModuleNotFoundError as err:
        print(
            f"archiver: error: iceberg-sync needs {err.name}: "
            "pip install 'dynamodb-stream-archive[iceberg]'",
            file=sys.stderr,
        )
        return 1
    # s3fs reads just the footers (the boto3 store gets whole objects); the registrations
    # under _iceberg/ are written with the archive's server-side encryption.
    store = open_store(settings.archive_uri, sse=settings.sse_arguments)
    if not store.exists():
        what = "bucket" if settings.archive_uri.startswith("s3://") else "folder"
        raise UsageError(f"--archive {settings.archive_uri}: no such {what}")
    if tables is not None:
        held = set(list_tables(store))
        unknown = [name for name in tables if name not in held]
        if unknown:
            raise UsageError(f"--table {unknown[0]}: the archive holds no such table")
    try:
        catalog = iceberg.load_catalog(args.catalog)
    except iceberg.CatalogConfigError as err:
        raise UsageError(f"--catalog {args.catalog}: {err}") from None
    report = iceberg.sync(store, catalog, namespace=args.namespace, tables=tables)
    synced = [_synced(t) for t in report.tables if not t.error]
    print(
        f"synced {len(synced)} of {len(report.tables)} tables into catalog {args.catalog}, "
        f"{report.files_registered} files registered"
        + (f": {'; '.join(synced)}" if synced else ""),
        file=sys.stderr,
    )
    errors = report.errors
    if older_than is not None:
        from archiver.expire import expire

        now = datetime.now(UTC)
        try:
            before = now - older_than
        except OverflowError:  # older than the year 1: nothing is that old
            before = datetime.min.replace(tzinfo=UTC)
        done = [t.table for t in report.tables if not t.error]
        expired = expire(store, catalog, namespace=args.namespace, tables=done, before=before)
        tables_done = [
            f"{t.identifier} -{t.snapshots_expired} snapshots, -{t.files_deleted} files"
            for t in expired.tables
            if not t.error and t.snapshots_expired
        ]
        print(
            f"expired {expired.snapshots_expired} snapshots older than {before:%Y-%m-%dT%H:%M:%SZ} "
            f"and deleted {expired.files_deleted} archive files only they referenced"
            + (f": {'; '.join(tables_done)}" if tables_done else ""),
            file=sys.stderr,
        )
        errors += expired.errors
    for error in errors:
        print(f"archiver: error: {error}", file=sys.stderr)
    return 1 if errors else 0


def _synced(table: Any) -> str:
    """One table's part of the iceberg-sync summary."""
    done = []
    if table.files_registered:
        done.append(f"+{table.files_registered} files")
    if table.compactions_committed:
        # a compaction that wrote its files but did not commit them (it crashed, or is running)
        done.append(
            f"compacted files of {table.compactions_committed} hours swapped in "
            f"(-{table.files_replaced} files)"
        )
    if table.files_left_out:
        done.append(
            f"{table.files_left_out} files of unfinished or superseded compactions left out"
        )
    return f"{table.identifier} {', '.join(done) or 'unchanged'} (snapshot {table.snapshot_id})"


def run(args: argparse.Namespace, stdin: IO[bytes]) -> int:
    from archiver.service import ServiceError, run_service

    settings = _settings(args)
    if args.quiet:
        settings = settings.model_copy(update={"log_level": "WARNING"})
    try:
        return run_service(settings, poll_interval=args.poll_interval)
    except ServiceError as err:
        print(f"archiver: error: {err}", file=sys.stderr)
        return 1


def main(argv: Sequence[str] | None = None, stdin: IO[bytes] | None = None) -> int:
    """Run the ``archiver`` command; returns the exit status."""
    from archiver.archive.errors import ArchiveError, InvalidNameError
    from archiver.logs import configure

    args = _parser().parse_args(argv)
    configure("WARNING" if args.quiet else "INFO", json=False)
    if args.command != "athena-ddl":  # the commands that read or write archive files
        from archiver.archive.codec import use_system_allocator

        use_system_allocator()
    commands: dict[str, Callable[[argparse.Namespace, Any], int]] = {
        "ingest": ingest,  # the only one that reads stdin
        "athena-ddl": athena_ddl,
        "run": run,
        "compact": compact,
        "iceberg-sync": iceberg_sync,
    }
    if stdin is None and sys.stdin is not None:
        stdin = sys.stdin.buffer  # None when stdin is closed: ingest says so if it needs it
    try:
        return commands[args.command](args, stdin)
    except (UsageError, InvalidNameError) as err:
        print(f"archiver: error: {err}", file=sys.stderr)
        return 2
    except ArchiveError as err:
        print(f"archiver: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def console() -> NoReturn:
    """The ``archiver`` console command: :func:`main` on ``sys.argv``, then a quick exit."""
    from archiver.archive.exits import exit_quickly

    exit_quickly(main())
