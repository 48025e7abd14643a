"""The ``replayer`` command line: ``replayer ls`` and ``replayer events``.

Exit codes: 0 done; 1 failed (an unreadable or newer-format file, a store
error), with the reason on stderr; 2 bad usage (an unknown option, a bad time,
table name or key). Data goes to stdout (or ``--output``), messages to stderr.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import IO, Any

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

    ls = commands.add_parser("ls", help="list the tables an archive holds",
                             description="List tables with record counts, time range, files and bytes.")
    ls.add_argument("--archive", metavar="URI", help="s3://bucket/prefix or a folder "
                    "(default: $REPLAYER_ARCHIVE_URI)")
    ls.add_argument("--json", action="store_true", help="one JSON object per table")

    events = commands.add_parser(
        "events", help="print a table's stream records as JSON Lines, in order",
        description="Print a table's stream records, one JSON object per line, each exactly as it "
        "arrived, in sequence order, each eventID once. --since/--until are inclusive and take "
        "ISO-8601 (UTC unless an offset is given) or epoch seconds.",
    )
    events.add_argument("--archive", metavar="URI", help="s3://bucket/prefix or a folder "
                        "(default: $REPLAYER_ARCHIVE_URI)")
    events.add_argument("--table", required=True, metavar="NAME", help="the table to read")
    events.add_argument("--since", metavar="TIME", help="first change time to include")
    events.add_argument("--until", metavar="TIME", help="last change time to include")
    events.add_argument("--event-name", metavar="NAMES",
                        help="comma-separated subset of INSERT,MODIFY,REMOVE")
    events.add_argument("--key", metavar="JSON",
                        help='only this item, as plain JSON, e.g. \'{"pk": "order#1", "sk": 3}\'')
    events.add_argument("--output", "-o", metavar="FILE", help="write to FILE instead of stdout")
    return parser


def _store(args: argparse.Namespace) -> Any:
    from archiver.archive.store import open_store
    from replayer.settings import ReplayerSettings

    uri = args.archive or ReplayerSettings().archive_uri
    if not uri:
        raise UsageError("--archive is required (or set REPLAYER_ARCHIVE_URI)")
    return open_store(uri)


def _filter(args: argparse.Namespace) -> Any:
    from archiver.archive.errors import InvalidNameError
    from archiver.archive.layout import validate_table_name
    from archiver.archive.reader import EventFilter
    from replayer.window import parse_time

    try:
        validate_table_name(args.table)
    except InvalidNameError as err:
        raise UsageError(f"--table: {err}") from None
    try:
        since = parse_time(args.since) if args.since else None
        until = parse_time(args.until) if args.until else None
    except ValueError as err:
        raise UsageError(f"--since/--until: {err}") from None
    if since is not None and until is not None and since > until:
        raise UsageError(f"--since {args.since} is after --until {args.until}")
    names = None
    if args.event_name:
        names = frozenset(n.strip().upper() for n in args.event_name.split(",") if n.strip())
        unknown = names - {"INSERT", "MODIFY", "REMOVE"}
        if unknown or not names:
            raise UsageError(f"--event-name: unknown event name(s) {sorted(unknown)}; "
                             "use INSERT, MODIFY, REMOVE")
    key = None
    if args.key:
        try:
            key = orjson.loads(args.key)
        except orjson.JSONDecodeError as err:
            raise UsageError(f"--key: not JSON ({err.msg})") from None
        if not isinstance(key, dict) or not key:
            raise UsageError('--key: expected a JSON object of key attributes, e.g. {"pk": "a"}')
    return EventFilter(since, until, names, key)


def events(args: argparse.Namespace, stdout: IO[bytes]) -> int:
    from archiver.archive.reader import iter_events

    flt = _filter(args)
    store = _store(args)
    out: IO[bytes] = stdout
    if args.output:
        try:
            out = open(args.output, "wb")  # noqa: SIM115 - closed below
        except OSError as err:
            raise UsageError(f"--output {args.output}: {err.strerror}") from None
    count = 0
    try:
        for record in iter_events(store, args.table, flt):
            out.write(orjson.dumps(record))
            out.write(b"\n")
            count += 1
    finally:
        out.flush()
        if out is not stdout:
            out.close()
    print(f"{count} events from table {args.table}", file=sys.stderr)
    return 0


def ls(args: argparse.Namespace, stdout: IO[bytes]) -> int:
    from archiver.archive.reader import list_tables, summarize_table
    from replayer.window import format_us

    store = _store(args)
    tables = list_tables(store)
    if not args.json:
        header = f"{'table':<32} {'records':>10} {'files':>6} {'bytes':>14}  {'first change':<20}  last change"
        stdout.write((header + "\n").encode())
    for table in tables:
        s = summarize_table(store, table)
        if args.json:
            stdout.write(orjson.dumps({
                "table": s.table, "records": s.rows, "files": s.files, "bytes": s.bytes,
                "first_change": format_us(s.first_change_us), "last_change": format_us(s.last_change_us),
            }) + b"\n")
        else:
            line = (f"{s.table:<32} {s.rows:>10} {s.files:>6} {s.bytes:>14,}  "
                    f"{format_us(s.first_change_us):<20}  {format_us(s.last_change_us)}")
            stdout.write((line + "\n").encode())
    if not tables:
        print(f"no tables in {store.uri}", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None, stdout: IO[bytes] | None = None) -> int:
    """Run the ``replayer`` command; returns the exit status."""
    from archiver.archive.errors import ArchiveError, InvalidNameError

    args = _parser().parse_args(argv)
    commands = {"events": events, "ls": ls}
    try:
        return commands[args.command](args, stdout or sys.stdout.buffer)
    except (UsageError, InvalidNameError) as err:
        print(f"replayer: error: {err}", file=sys.stderr)
        return 2
    except ArchiveError as err:
        print(f"replayer: error: {err}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        sys.stderr.close()  # the reader went away (e.g. `| head`): not an error
        return 0
    except KeyboardInterrupt:
        return 130
