"""The ``replayer`` command line: ``ls``, ``events``, ``redrive``, ``restore``, ``verify``.

``events``, ``redrive`` and ``restore`` read the archive's Hive layout, or with
``--iceberg CATALOG.NS.TABLE`` the files of a snapshot of the table's Iceberg table
(``archiver.archive.icebergfiles``), through the same readers.

Exit codes: 0 done (also when the reader of stdout went away, as with
``| head``); 1 failed (an unreadable or newer-format file, a store error, output
that cannot be written), with the reason on stderr; 2 bad usage (an unknown
option, a bad time, table name or key, an archive that does not exist, a file
that cannot be opened or written, a closed stdout). Data goes to stdout (or
``--output``), messages to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import sys
from collections.abc import Sequence
from typing import IO, Any, NoReturn

import orjson

from replayer import __version__

__all__ = ["main"]


class UsageError(Exception):
    """Bad usage: exit status 2."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="replayer", description="Read a DynamoDB Streams archive back, in sequence order."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    ls = commands.add_parser(
        "ls",
        help="list the tables an archive holds",
        description="List tables with record counts, time range, files and bytes.",
    )
    _archive_argument(ls)
    ls.add_argument("--json", action="store_true", help="one JSON object per table")

    events = commands.add_parser(
        "events",
        help="print a table's stream records as JSON Lines, in order",
        description="Print a table's stream records, one JSON object per line, each exactly as it "
        "arrived, in sequence order, each eventID once. --since/--until are inclusive and take "
        "ISO-8601 (UTC unless an offset is given) or epoch seconds.",
    )
    _selection_arguments(events, slices=False)
    events.add_argument("--output", "-o", metavar="FILE", help="write to FILE instead of stdout")

    redrive = commands.add_parser(
        "redrive",
        help="send a table's archived records to a Lambda function again",
        description="Invoke a Lambda consumer synchronously with the table's archived records, in the "
        'event shape the stream delivered ({"Records": [...]}), in order per item.',
    )
    _selection_arguments(redrive)
    redrive.add_argument(
        "--function", required=True, metavar="NAME_OR_ARN", help="the consumer to invoke"
    )
    redrive.add_argument(
        "--batch-size",
        type=_positive_int(10_000),
        default=100,
        metavar="N",
        help="records per invocation, 1-10000 (default 100)",
    )
    redrive.add_argument(
        "--max-payload-bytes",
        type=_positive_int(6_291_456),
        default=6_291_456,
        metavar="B",
        help="payload bytes per invocation (default and maximum: 6 MB)",
    )
    redrive.add_argument(
        "--rate", type=_positive_float, metavar="R", help="at most R records per second"
    )
    redrive.add_argument(
        "--concurrency",
        type=_positive_int(64),
        default=1,
        metavar="C",
        help="parallel lanes, split by key hash (default 1)",
    )
    redrive.add_argument(
        "--on-error",
        choices=["stop", "skip", "dead-letter"],
        default="stop",
        help="after retries: stop (resume later), skip the failing records, or keep them "
        "under _errors/redrive/ (default stop)",
    )
    redrive.add_argument(
        "--retries",
        type=_non_negative_int,
        default=3,
        metavar="N",
        help="retries of a failed invocation, with backoff (default 3)",
    )
    _run_arguments(redrive)

    restore = commands.add_parser(
        "restore",
        help="rebuild a DynamoDB table as it was at a moment",
        description="Write the table's state at --until (state mode: each item's last change), or "
        "apply every change in order (events mode), into an existing DynamoDB table.",
    )
    _archive_argument(restore)
    restore.add_argument("--table", metavar="NAME", help="the archived table")
    _iceberg_arguments(restore)
    restore.add_argument(
        "--into", required=True, metavar="TARGET", help="the DynamoDB table to write"
    )
    restore.add_argument("--until", metavar="TIME", help="the moment to restore (default: now)")
    restore.add_argument(
        "--mode",
        choices=["state", "events"],
        default="state",
        help="state: final items only (default); events: every change in order",
    )
    restore.add_argument(
        "--base-export", metavar="URI", help="a DynamoDB export to S3 (DynamoDB JSON) to start from"
    )
    restore.add_argument(
        "--allow-non-empty", action="store_true", help="write into a table that already holds items"
    )
    restore.add_argument(
        "--conditional",
        metavar="ATTRIBUTE",
        help="never overwrite an item whose ATTRIBUTE (a version or timestamp) is newer "
        "than the change's; for restores beside live traffic",
    )
    restore.add_argument(
        "--concurrency",
        type=_positive_int(64),
        default=4,
        metavar="C",
        help="parallel lanes, split by key hash (default 4)",
    )
    restore.add_argument(
        "--max-wcu",
        type=_positive_float,
        metavar="W",
        help="at most W write capacity units per second",
    )
    restore.add_argument("--slice", metavar="K/N", help="only slice K of N, split by key hash")
    _run_arguments(restore)

    verify = commands.add_parser(
        "verify",
        help="check an archive: counts, duplicates, unreadable files, shard continuity",
        description="Per table: files, bytes, events, duplicates, time range, schema versions and unreadable "
        "files; for poller-written data, per shard: ordered sequence numbers, no conflicting records, and "
        "no checkpoint ahead of the data or range lost. Exit 1 when something is wrong.",
    )
    _archive_argument(verify)
    verify.add_argument("--table", metavar="NAME", help="only this table")
    verify.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    return parser


def _archive_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--archive",
        metavar="URI",
        help="s3://bucket/prefix or a folder (default: $REPLAYER_ARCHIVE_URI)",
    )


def _iceberg_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--iceberg",
        metavar="CATALOG.NS.TABLE",
        help="read the files of a snapshot of this Iceberg table (archiver iceberg-sync's) "
        "instead of listing the archive; they must be files of --archive",
    )
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "--snapshot-id",
        type=int,
        metavar="ID",
        help="with --iceberg: this snapshot instead of the current one",
    )
    which.add_argument(
        "--as-of",
        metavar="TIME",
        help="with --iceberg: the snapshot that was current at TIME (the table's snapshot log)",
    )


def _selection_arguments(parser: argparse.ArgumentParser, *, slices: bool = True) -> None:
    _archive_argument(parser)
    parser.add_argument(
        "--table",
        metavar="NAME",
        help="the table to read (with --iceberg: the one the Iceberg table holds, by default)",
    )
    _iceberg_arguments(parser)
    parser.add_argument("--since", metavar="TIME", help="first change time to include")
    parser.add_argument("--until", metavar="TIME", help="last change time to include")
    parser.add_argument(
        "--event-name", metavar="NAMES", help="comma-separated subset of INSERT,MODIFY,REMOVE"
    )
    parser.add_argument(
        "--key",
        metavar="JSON",
        help='only this item, as plain JSON, e.g. \'{"pk": "order#1", "sk": 3}\'',
    )
    if slices:
        parser.add_argument("--slice", metavar="K/N", help="only slice K of N, split by key hash")


def _run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--checkpoint",
        metavar="PATH",
        help="progress file: a rerun with the same arguments resumes after the last "
        "acknowledged batch",
    )
    parser.add_argument("--dry-run", action="store_true", help="say what would be done; do nothing")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")


def _positive_int(limit: int) -> Any:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not 1 <= value <= limit:
            raise argparse.ArgumentTypeError(f"{value} is not between 1 and {limit}")
        return value

    return parse


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} must be more than 0")
    return value


def _store(args: argparse.Namespace) -> Any:
    from archiver.archive.store import open_store

    uri = args.archive
    if not uri:
        from replayer.settings import ReplayerSettings  # pydantic: only when it is needed

        uri = ReplayerSettings().archive_uri
    if not uri:
        raise UsageError("--archive is required (or set REPLAYER_ARCHIVE_URI)")
    store = open_store(uri)
    if not store.exists():
        what = "bucket" if uri.startswith("s3://") else "folder"
        raise UsageError(f"--archive {uri}: no such {what}")
    return store


def _source(args: argparse.Namespace, flt: Any) -> tuple[Any, str]:
    """The store to read: the archive, or the archive as an Iceberg snapshot sees it.

    With ``--iceberg``, ``args.table`` is set to the DynamoDB table the snapshot's files
    hold (it must be ``--table`` when that is given), and only the snapshot's files of
    the hours in ``flt``'s window are listed (and checked to be in the archive). Also
    returns a note saying which snapshot was read ("" without ``--iceberg``).
    """
    if not args.iceberg:
        return _store(args), ""
    from archiver.archive import icebergfiles as ice
    from archiver.archive.layout import validate_table_name
    from archiver.archive.times import parse_time

    as_of = None
    if args.as_of is not None:
        try:
            as_of = parse_time(args.as_of)
        except ValueError as err:
            raise UsageError(f"--as-of: {err}") from None
    store = _store(args)
    try:
        catalog_name, namespace, name = ice.parse_identifier(args.iceberg)
        files = ice.snapshot_files(
            ice.load_catalog(catalog_name),
            namespace,
            name,
            snapshot_id=args.snapshot_id,
            as_of_us=as_of,
        )
        view = ice.SnapshotStore(store, files, flt.since_us, flt.until_us)
    except ice.SnapshotNotFound as err:
        option = "--snapshot-id" if args.snapshot_id is not None else "--as-of"
        value = args.snapshot_id if args.snapshot_id is not None else args.as_of
        raise UsageError(f"{option} {value}: {err}") from None
    except ice.IcebergUsageError as err:
        raise UsageError(f"--iceberg {args.iceberg}: {err}") from None
    held = sorted(view.tables)
    if len(held) > 1:
        raise ice.IcebergError(
            f"snapshot {files.snapshot_id} of {files.identifier} holds changes of several "
            f"DynamoDB tables ({', '.join(held)}); give an Iceberg table of one"
        )
    if args.table and held and held != [args.table]:
        raise UsageError(
            f"--table {args.table}: the Iceberg table {files.identifier} holds changes "
            f"of table {held[0]}"
        )
    table = args.table or (held[0] if held else name)
    try:
        args.table = validate_table_name(table)
    except ValueError as err:
        raise UsageError(f"--iceberg {args.iceberg}: {err}; give --table") from None
    snapshot = "no snapshot" if files.snapshot_id is None else f"snapshot {files.snapshot_id}"
    return view, f"{snapshot} of Iceberg table {catalog_name}.{files.identifier}"


def _slice(args: argparse.Namespace) -> tuple[int, int] | None:
    from replayer.lanes import parse_slice

    if not getattr(args, "slice", None):
        return None
    try:
        return parse_slice(args.slice)
    except ValueError as err:
        raise UsageError(f"--slice: {err}") from None


def _filter(args: argparse.Namespace) -> Any:
    from archiver.archive.errors import InvalidNameError
    from archiver.archive.layout import validate_table_name
    from archiver.archive.reader import EventFilter
    from archiver.archive.times import parse_time

    iceberg = getattr(args, "iceberg", None)
    if not iceberg:
        for option, value in (("--snapshot-id", args.snapshot_id), ("--as-of", args.as_of)):
            if value is not None:
                raise UsageError(f"{option} needs --iceberg")
        if not args.table:
            raise UsageError("--table is required (or give --iceberg)")
    if args.table:
        try:
            validate_table_name(args.table)
        except InvalidNameError as err:
            raise UsageError(f"--table: {err}") from None
    try:
        since = parse_time(args.since) if getattr(args, "since", None) else None
        until = parse_time(args.until) if args.until else None
    except ValueError as err:
        raise UsageError(f"--since/--until: {err}") from None
    if since is not None and until is not None and since > until:
        raise UsageError(f"--since {args.since} is after --until {args.until}")
    names = None
    if getattr(args, "event_name", None):
        names = frozenset(n.strip().upper() for n in args.event_name.split(",") if n.strip())
        unknown = names - {"INSERT", "MODIFY", "REMOVE"}
        if unknown or not names:
            raise UsageError(
                f"--event-name: unknown event name(s) {sorted(unknown)}; use INSERT, MODIFY, REMOVE"
            )
    key = None
    if getattr(args, "key", None):
        from archiver.archive.keymatch import parse_key

        try:
            key = parse_key(args.key)
        except ValueError as err:
            raise UsageError(f"--key: {err}") from None
    return EventFilter(since, until, names, key, _slice(args))


def events(args: argparse.Namespace, stdout: IO[bytes]) -> int:
    """Write the selected records as JSON Lines, each as it arrived, from the stored text.

    Parameters
    ----------
    args
        The parsed ``replayer events`` options.
    stdout
        Where the lines go unless ``--output`` names a file.

    Returns
    -------
    int
        The exit status: 0.

    Raises
    ------
    UsageError
        For a bad option (exit status 2).
    ArchiveError
        For an unreadable or newer-format file, or a store error (exit status 1).
    """
    from archiver.archive.reader import iter_record_texts
    from replayer.jsonl import LineWriter

    flt = _filter(args)
    store, source = _source(args, flt)
    out: IO[bytes] = stdout
    if args.output:
        try:
            out = open(args.output, "wb")  # noqa: SIM115 - closed below
        except OSError as err:
            raise UsageError(f"--output {args.output}: {err.strerror}") from None
    name = args.output or "stdout"
    count = 0
    try:
        with LineWriter(out, name=name) as writer:
            for lines in iter_record_texts(store, args.table, flt, suffix="\n"):
                writer.put(lines)
                count += len(lines)
        _flush(out, name)
    finally:
        if out is not stdout:
            with contextlib.suppress(OSError):  # a failed write was reported already
                out.close()
    read = f" ({source})" if source else ""
    print(f"{count} events from table {args.table}{read}", file=sys.stderr)
    return 0


def ls(args: argparse.Namespace, stdout: IO[bytes]) -> int:
    from archiver.archive.reader import list_tables, summarize_table
    from archiver.archive.times import format_us

    store = _store(args)
    tables = list_tables(store)
    if not args.json:
        header = f"{'table':<32} {'records':>10} {'files':>6} {'bytes':>14}  {'first change':<20}  last change"
        _write(stdout, (header + "\n").encode())
    for table in tables:
        s = summarize_table(store, table)
        if args.json:
            _write(
                stdout,
                orjson.dumps(
                    {
                        "table": s.table,
                        "records": s.rows,
                        "files": s.files,
                        "bytes": s.bytes,
                        "first_change": format_us(s.first_change_us),
                        "last_change": format_us(s.last_change_us),
                    }
                )
                + b"\n",
            )
        else:
            line = (
                f"{s.table:<32} {s.rows:>10} {s.files:>6} {s.bytes:>14,}  "
                f"{format_us(s.first_change_us):<20}  {format_us(s.last_change_us)}"
            )
            _write(stdout, (line + "\n").encode())
    if not tables:
        print(f"no tables in {store.uri}", file=sys.stderr)
    return 0


def _write(out: IO[bytes], data: bytes) -> None:
    from replayer.jsonl import writing

    with writing("stdout"):
        out.write(data)


def _flush(out: IO[bytes], name: str) -> None:
    from replayer.jsonl import writing

    with writing(name):
        out.flush()


def _checkpoint(args: argparse.Namespace, store: Any) -> Any:
    """The run's checkpoint; a ``--checkpoint`` that cannot be written is bad usage, found first."""
    from replayer.checkpoint import Checkpoint

    path = None if args.dry_run else args.checkpoint
    checkpoint = Checkpoint.open(path, _fingerprint(args, store))
    try:
        checkpoint.check_writable()
    except OSError as err:
        raise UsageError(
            f"--checkpoint {args.checkpoint}: cannot write ({err.strerror or err})"
        ) from None
    return checkpoint


def _fingerprint(args: argparse.Namespace, store: Any, **extra: Any) -> dict[str, Any]:
    keep = (
        "table",
        "since",
        "until",
        "event_name",
        "key",
        "slice",
        "concurrency",
        "function",
        "into",
        "mode",
        "base_export",
        "conditional",
        "batch_size",
        "max_payload_bytes",
        "iceberg",
        "snapshot_id",
        "as_of",
    )
    fingerprint = {"command": args.command, "archive": store.uri}
    fingerprint.update(
        {name: getattr(args, name) for name in keep if getattr(args, name, None) is not None}
    )
    fingerprint.update(extra)
    return fingerprint


def _report(
    args: argparse.Namespace, summary: dict[str, Any], lines: list[str], stdout: IO[bytes]
) -> None:
    if args.json:
        _write(stdout, orjson.dumps(summary) + b"\n")
        _flush(stdout, "stdout")
    for line in lines:
        print(line, file=sys.stderr)


def redrive(args: argparse.Namespace, stdout: IO[bytes]) -> int:
    from replayer.progress import Progress
    from replayer.redrive import LambdaInvoker, RedriveOptions
    from replayer.redrive import redrive as run
    from replayer.runner import Selection

    flt = _filter(args)
    store, source = _source(args, flt)
    options = RedriveOptions(
        function=args.function,
        batch_size=args.batch_size,
        max_payload_bytes=args.max_payload_bytes,
        rate=args.rate,
        concurrency=args.concurrency,
        on_error=args.on_error,
        retries=args.retries,
        dry_run=args.dry_run,
    )
    checkpoint = _checkpoint(args, store)
    dead_letters = None
    if args.on_error == "dead-letter":
        from archiver.archive.store import open_store
        from replayer.settings import ReplayerSettings

        dead_letters = open_store(store.uri, sse=ReplayerSettings().sse_arguments)
    invoker = LambdaInvoker(args.function)
    from archiver.archive.reader import REPLAY_COLUMNS

    summary = run(
        Selection(store, args.table, flt, tuple(REPLAY_COLUMNS)),
        options,
        checkpoint,
        invoker,
        dead_letters=dead_letters,
        progress=Progress("redrive", "records"),
        slices=flt.slice[1] if flt.slice else 1,
    )
    if args.dry_run:
        done = f"would send {summary.records} records in {summary.batches} batches"
    else:
        done = (
            f"delivered {summary.delivered} of {summary.records} records in {summary.batches} batches "
            f"({summary.invocations} invocations, {summary.retries} retries)"
        )
    lines = [f"redrive to {args.function}: {done} in {summary.elapsed:.1f} s"]
    if source:
        lines.append(f"read {source}")
    if summary.failed:
        kept = " and kept under _errors/redrive/" if summary.dead_lettered else ""
        failed = "would fail" if args.dry_run else "failed"
        lines.append(f"{len(summary.failed)} records {failed}{kept}:")
        lines += [f"  {f['record']}: {f['reason']}" for f in summary.failed[:20]]
    if summary.stopped:
        lines.append(f"stopped: {summary.stopped}")
        if args.checkpoint:
            lines.append(f"rerun the same command to resume from {args.checkpoint}")
    _report(args, summary.as_dict(), lines, stdout)
    return 0 if summary.ok else 1


def restore(args: argparse.Namespace, stdout: IO[bytes]) -> int:
    import time as clock

    from replayer.dynamo import TableWriter
    from replayer.export import open_export
    from replayer.progress import Progress
    from replayer.restore import RestoreOptions
    from replayer.restore import restore as run
    from replayer.runner import Selection

    flt = _filter(args)
    if flt.until_us is None:
        if args.checkpoint:
            raise UsageError(
                "--checkpoint needs an explicit --until, so that a rerun restores the same moment"
            )
        flt = type(flt)(None, int(clock.time() * 1_000_000), None, None, flt.slice)
    store, source = _source(args, flt)
    options = RestoreOptions(
        into=args.into,
        mode=args.mode,
        allow_non_empty=args.allow_non_empty,
        condition_attribute=args.conditional,
        concurrency=args.concurrency,
        max_wcu=args.max_wcu,
        dry_run=args.dry_run,
    )
    export = open_export(args.base_export) if args.base_export else None
    checkpoint = _checkpoint(args, store)
    from botocore.config import Config

    from archiver.archive.aws import client as aws_client

    client = aws_client("dynamodb", config=Config(retries={"mode": "standard"}))
    writer = TableWriter(
        client, args.into, max_wcu=args.max_wcu, condition_attribute=args.conditional
    )
    summary = run(
        Selection(store, args.table, flt, ()),
        options,
        checkpoint,
        writer,
        export=export,
        progress=Progress("restore", "writes"),
        slices=flt.slice[1] if flt.slice else 1,
    )
    verb = "would write" if args.dry_run else "wrote"
    lines = [
        f"restore of {args.table} into {args.into} ({args.mode} mode, as of {format_until(flt.until_us)}): "
        f"read {summary.changes_read} changes, {verb} {summary.puts} puts and {summary.deletes} deletes "
        f"in {summary.elapsed:.1f} s"
    ]
    if source:
        lines.append(f"read {source}")
    if summary.base_items:
        lines.append(f"started from an export of {summary.base_items} items")
    if summary.skipped_newer:
        lines.append(f"{summary.skipped_newer} writes skipped: the table held a newer item")
    if args.dry_run and summary.first_key is not None:
        lines.append(f"key range: {summary.first_key} .. {summary.last_key}")
    _report(args, summary.as_dict(), lines, stdout)
    return 0


def verify(args: argparse.Namespace, stdout: IO[bytes]) -> int:
    from archiver.archive.layout import validate_table_name
    from archiver.archive.times import format_us
    from replayer.verify import verify as run

    if args.table:
        try:
            validate_table_name(args.table)
        except ValueError as err:
            raise UsageError(f"--table: {err}") from None
    store = _store(args)
    report = run(store, args.table)
    lines = []
    for check in report.tables:
        lines.append(
            f"{check.table}: {check.events} events in {check.files} files ({check.bytes:,} bytes), "
            f"{check.duplicates} duplicates, {format_us(check.first_change_us)} .. "
            f"{format_us(check.last_change_us)}, schema versions {sorted(check.schema_versions)}, "
            f"{len(check.shards)} shards"
        )
        lines += [f"  problem: {p}" for p in check.problems]
    lines += [f"problem: {p}" for p in report.problems]
    lines.append("verify: OK" if report.ok else "verify: FAILED")
    summary = {
        "ok": report.ok,
        "tables": [t.as_dict() for t in report.tables],
        "problems": report.problems,
    }
    _report(args, summary, lines, stdout)
    return 0 if report.ok else 1


def format_until(us: int | None) -> str:
    from archiver.archive.times import format_us

    return format_us(us)


def _stdout(args: argparse.Namespace) -> IO[bytes]:
    """The process's stdout; a closed one is bad usage for a command that writes to it."""
    if sys.stdout is not None:
        return sys.stdout.buffer
    events_to_stdout = args.command == "events" and not args.output
    if args.command == "ls" or events_to_stdout or getattr(args, "json", False):
        hint = " (give --output FILE)" if events_to_stdout else ""
        raise UsageError(f"stdout is closed{hint}")
    return io.BytesIO()  # never written to: without --json the command writes to stderr only


def _drop_stdout() -> None:
    """Point stdout at /dev/null: what could not be written is not tried again at exit."""
    if sys.stdout is None:
        return
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def main(argv: Sequence[str] | None = None, stdout: IO[bytes] | None = None) -> int:
    """Run the ``replayer`` command; returns the exit status."""
    from archiver.archive.errors import ArchiveError, InvalidNameError
    from replayer.checkpoint import CheckpointError
    from replayer.dynamo import RestoreError
    from replayer.export import ExportError
    from replayer.jsonl import OutputError
    from replayer.redrive import RedriveError

    args = _parser().parse_args(argv)
    commands = {
        "events": events,
        "ls": ls,
        "redrive": redrive,
        "restore": restore,
        "verify": verify,
    }
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    try:
        out = stdout if stdout is not None else _stdout(args)
        code = commands[args.command](args, out)
        _flush(out, "stdout")
        return code
    except (UsageError, InvalidNameError) as err:
        print(f"replayer: error: {err}", file=sys.stderr)
        return 2
    except (ArchiveError, CheckpointError, RestoreError, ExportError, RedriveError) as err:
        print(f"replayer: error: {err}", file=sys.stderr)
        return 1
    except OutputError as err:
        print(f"replayer: error: {err}", file=sys.stderr)
        if stdout is None:
            _drop_stdout()
        return 1
    except BrokenPipeError:
        sys.stderr.close()  # the reader went away (e.g. `| head`): not an error
        return 0
    except KeyboardInterrupt:
        return 130


def console() -> NoReturn:
    """The ``replayer`` console command: :func:`main` on ``sys.argv``, then a quick exit."""
    from archiver.archive.exits import exit_quickly

    exit_quickly(main())
