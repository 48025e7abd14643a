"""``replayer restore`` end to end, into tables on DynamoDB Local (AWS's own emulator).

A table history is generated (INSERT, MODIFY, REMOVE and TTL deletions over
several hours), archived into a local folder, then restored in ``state`` and
``events`` mode. Every check compares a full Scan of the restored table with a
state the test computes on its own, by folding the generated stream records
in sequence order; nothing here trusts the replayer's own fold. Numbers are
compared as decimals and sets as sets (DynamoDB normalises ``1.10`` to ``1.1``
and returns set members in any order); binary comes back as bytes.

Most runs are in-process (``main(argv, stdout=...)`` returns the exit status);
the kill-and-resume test runs the real command in a subprocess and kills it.
"""

from __future__ import annotations

import base64
import gzip
import io
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest

from archiver.archive.store import LocalStore
from archiver.write import archive_records
from devkit.traffic import TableHistory
from replayer.cli import main
from replayer.dynamo import Op, RestoreError, TableWriter

ROOT = Path(__file__).resolve().parents[2]
TABLE = "orders"
KEY = (("pk", "S"), ("sk", "N"))

SUMMARY_FIELDS = {
    "mode",
    "changes_read",
    "final_items",
    "puts",
    "deletes",
    "skipped_newer",
    "base_items",
    "elapsed_s",
    "ok",
}


# -- the independent oracle ------------------------------------------------------------------------


def plain(value: dict[str, Any]) -> Any:
    """A typed attribute value as a comparable Python value (either Lambda or low-level form)."""
    ((tag, v),) = value.items()
    if tag == "N":
        return ("N", Decimal(v))
    if tag == "B":
        return ("B", v if isinstance(v, bytes) else base64.b64decode(v))
    if tag == "SS":
        return ("SS", frozenset(v))
    if tag == "NS":
        return ("NS", frozenset(Decimal(x) for x in v))
    if tag == "BS":
        return ("BS", frozenset(x if isinstance(x, bytes) else base64.b64decode(x) for x in v))
    if tag == "M":
        return ("M", {name: plain(x) for name, x in v.items()})
    if tag == "L":
        return ("L", [plain(x) for x in v])
    return (tag, v)


def ident(key: dict[str, Any]) -> tuple[str, Decimal]:
    """An item's identity from its typed key, whatever the form."""
    return key["pk"]["S"], Decimal(key["sk"]["N"])


def plain_item(item: dict[str, Any]) -> dict[str, Any]:
    return {name: plain(value) for name, value in item.items()}


def seconds(record: dict[str, Any]) -> float:
    return float(record["dynamodb"]["ApproximateCreationDateTime"])


def fold(
    records: Iterable[dict[str, Any]],
    until: float | None = None,
    base: dict[tuple[str, Decimal], dict[str, Any]] | None = None,
) -> dict[tuple[str, Decimal], Any]:
    """Each item's last change at or before ``until`` (inclusive), in sequence order."""
    state = dict(base or {})
    for record in sorted(records, key=lambda r: int(r["dynamodb"]["SequenceNumber"])):
        if until is not None and seconds(record) > until:
            continue
        key = ident(record["dynamodb"]["Keys"])
        if record["eventName"] == "REMOVE":
            state.pop(key, None)
        else:
            state[key] = record["dynamodb"]["NewImage"]
    return state


def expected_items(
    state: dict[tuple[str, Decimal], dict[str, Any]],
) -> dict[tuple[str, Decimal], Any]:
    return {key: plain_item(image) for key, image in state.items()}


def scanned(tables: Any, name: str) -> dict[tuple[str, Decimal], Any]:
    items = tables.scan(name)
    out = {ident(item): plain_item(item) for item in items}
    assert len(out) == len(items)
    return out


def changes_until(records: Sequence[dict[str, Any]], until: float) -> list[dict[str, Any]]:
    return [r for r in records if seconds(r) <= until]


def expected_ops(records: Sequence[dict[str, Any]], until: float) -> Counter[tuple[Any, ...]]:
    """Every write events mode must make: a put of each new image, a delete of each REMOVE."""
    ops: Counter[tuple[Any, ...]] = Counter()
    for r in changes_until(records, until):
        if r["eventName"] == "REMOVE":
            ops[("delete", ident(r["dynamodb"]["Keys"]))] += 1
        else:
            ops[
                ("put", ident(r["dynamodb"]["Keys"]), r["dynamodb"]["NewImage"]["version"]["N"])
            ] += 1
    return ops


def op_signature(op: Op) -> tuple[Any, ...]:
    if op.kind == "delete":
        return ("delete", ident(op.key))
    assert op.item is not None
    return ("put", ident(op.key), op.item["version"]["N"])


def iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat().replace("+00:00", "Z")


# -- archives and runs -----------------------------------------------------------------------------


@dataclass(frozen=True)
class History:
    uri: str
    records: list[dict[str, Any]]

    @property
    def first(self) -> float:
        return min(seconds(r) for r in self.records)

    @property
    def last(self) -> float:
        return max(seconds(r) for r in self.records)


def archive(path: Path, records: list[dict[str, Any]]) -> str:
    report = archive_records(records, LocalStore(path))
    assert report.ok and report.archived == len(records), report.errors
    return str(path)


def make_history(
    path: Path,
    count: int,
    *,
    seed: int,
    items: int,
    spacing: float,
    view_type: str = "NEW_AND_OLD_IMAGES",
) -> History:
    records = TableHistory(
        TABLE, seed=seed, items=items, seconds_per_change=spacing, view_type=view_type
    ).changes(count)
    return History(archive(path, records), records)


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> History:
    """2,000 changes to 120 items over about five hours: REMOVEs, TTL deletions, re-inserts."""
    history = make_history(
        tmp_path_factory.mktemp("big") / "archive", 2000, seed=11, items=120, spacing=9.0
    )
    names = Counter(r["eventName"] for r in history.records)
    ttl = [
        r
        for r in history.records
        if r.get("userIdentity", {}).get("principalId") == "dynamodb.amazonaws.com"
    ]
    assert names["INSERT"] > 120 and names["MODIFY"] and names["REMOVE"] and ttl  # re-inserts too
    assert history.last - history.first > 4 * 3600
    return history


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> History:
    """600 changes to 60 items over about three hours."""
    return make_history(
        tmp_path_factory.mktemp("small") / "archive", 600, seed=23, items=60, spacing=18.0
    )


@dataclass
class Run:
    code: int
    summary: dict[str, Any] | None
    stderr: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., Run]:
    """Run ``replayer ARGS`` in-process; the --json summary parsed, stderr captured."""

    def run(*args: str) -> Run:
        capsys.readouterr()
        out = io.BytesIO()
        code = main(list(args), stdout=out)
        text = out.getvalue().strip()
        return Run(code, orjson.loads(text) if text else None, capsys.readouterr().err)

    return run


def restore_args(history: History, into: str, until: float | str | None, *extra: str) -> list[str]:
    args = ["restore", "--archive", history.uri, "--table", TABLE, "--into", into, *extra]
    if until is not None:
        args += ["--until", str(until) if isinstance(until, str) else f"{until:.0f}"]
    return args


# -- restores to several moments -------------------------------------------------------------------


def moment(history: History, name: str) -> tuple[float, str]:
    """A moment T (seconds) and how to write it on the command line."""
    times = sorted(seconds(r) for r in history.records)
    if name == "before":
        return history.first - 1, f"{history.first - 1:.0f}"
    if name == "middle":
        middle = history.first + (history.last - history.first) / 2 + 0.25
        return middle, iso(middle)
    if name == "at-change":
        k = next(i for i in range(len(times) // 3, len(times)) if times[i] > times[i - 1])
        return times[k], f"{times[k]:.0f}"
    return history.last + 3600, iso(history.last + 3600)


@pytest.mark.parametrize("mode", ["state", "events"])
@pytest.mark.parametrize("when", ["before", "middle", "at-change", "after"])
def test_restore_gives_the_state_at_each_moment(
    big: History, dynamodb_tables: Any, cli: Callable[..., Run], mode: str, when: str
) -> None:
    # Given an archived history and an empty target table
    until, text = moment(big, when)
    expected = expected_items(fold(big.records, until))
    if when == "at-change":
        # the moment is exactly a change's time: including it must matter
        assert expected != expected_items(fold(big.records, until - 1))
    into = dynamodb_tables.create(*KEY)

    # When the table is restored as of T
    run = cli(*restore_args(big, into, text, "--mode", mode, "--json"))

    # Then the table holds exactly each item's last change at or before T
    assert run.code == 0, run.stderr
    assert scanned(dynamodb_tables, into) == expected
    # and the summary says what was read and written
    assert run.summary is not None and set(run.summary) == SUMMARY_FIELDS
    read = changes_until(big.records, until)
    assert run.summary["mode"] == mode and run.summary["ok"] is True
    assert run.summary["changes_read"] == len(read)
    if mode == "state":
        assert run.summary["final_items"] == len(expected)
        assert (run.summary["puts"], run.summary["deletes"]) == (len(expected), 0)
    else:
        removes = sum(r["eventName"] == "REMOVE" for r in read)
        assert (run.summary["puts"], run.summary["deletes"]) == (len(read) - removes, removes)
    assert f"into {into} ({mode} mode" in run.stderr


# -- a base export ---------------------------------------------------------------------------------


def write_export(
    client: Any, bucket: str, prefix: str, items: list[dict[str, Any]], export_time: float
) -> str:
    """A full DynamoDB export to S3 in DynamoDB JSON, laid out as the service writes it."""
    export_id = f"{int(export_time * 1000):014d}-{uuid.uuid4().hex[:8]}"
    folder = f"{prefix}/AWSDynamoDB/{export_id}"
    client.put_object(Bucket=bucket, Key=f"{prefix}/AWSDynamoDB/{export_id}/_started", Body=b"")
    manifest = []
    halves = [items[: len(items) // 2], items[len(items) // 2 :]]
    for half in halves:
        name = f"{uuid.uuid4().hex[:26]}.json.gz"
        body = gzip.compress(b"".join(orjson.dumps({"Item": item}) + b"\n" for item in half))
        key = f"{folder}/data/{name}"
        client.put_object(Bucket=bucket, Key=key, Body=body)
        manifest.append(
            {"itemCount": len(half), "md5Checksum": "", "etag": "", "dataFileS3Key": key}
        )
    files = b"".join(orjson.dumps(line) + b"\n" for line in manifest)
    client.put_object(Bucket=bucket, Key=f"{folder}/manifest-files.json", Body=files)
    summary = {
        "version": "2020-06-30",
        "exportArn": f"arn:aws:dynamodb:us-east-1:123456789012:table/{TABLE}/export/{export_id}",
        "startTime": iso(export_time + 60),
        "endTime": iso(export_time + 300),
        "tableArn": f"arn:aws:dynamodb:us-east-1:123456789012:table/{TABLE}",
        "tableId": str(uuid.uuid4()),
        "exportTime": iso(export_time),
        "s3Bucket": bucket,
        "s3Prefix": prefix,
        "s3SseAlgorithm": "AES256",
        "s3SseKmsKeyId": None,
        "manifestFilesS3Key": f"{folder}/manifest-files.json",
        "billedSizeBytes": 0,
        "itemCount": len(items),
        "outputFormat": "DYNAMODB_JSON",
        "exportType": "FULL_EXPORT",
    }
    client.put_object(
        Bucket=bucket, Key=f"{folder}/manifest-summary.json", Body=orjson.dumps(summary)
    )
    return folder


@pytest.mark.parametrize("mode", ["state", "events"])
def test_restore_from_a_base_export_keeps_items_that_never_changed_after_it(
    tmp_path: Path,
    seaweed: Any,
    s3_endpoint: str,
    dynamodb_tables: Any,
    cli: Callable[..., Run],
    mode: str,
) -> None:
    # Given a history whose first part is only in a DynamoDB export to S3 (state at E) ...
    records = TableHistory(TABLE, seed=31, items=300, seconds_per_change=12.0).changes(1400)
    export_time = seconds(records[1000]) + 0.5
    exported = fold(records, export_time)
    # ... and whose archive starts shortly before E (streams and exports overlap a little)
    archived = [r for r in records if seconds(r) >= export_time - 30]
    assert archived[0] is not records[0]
    history = History(archive(tmp_path / "archive", archived), archived)
    changed_later = {ident(r["dynamodb"]["Keys"]) for r in archived if seconds(r) > export_time}
    untouched = set(exported) - changed_later
    removed_later = {k for k in exported if k not in fold(records)}
    assert (
        untouched and removed_later
    )  # the export alone holds some items; the archive deletes others
    bucket = seaweed.create_bucket(f"exports-{uuid.uuid4().hex[:12]}")
    folder = write_export(
        seaweed.client(), bucket, "exports/orders", list(exported.values()), export_time
    )
    # the export's own folder, or the folder above AWSDynamoDB/
    base = f"s3://{bucket}/{folder}" if mode == "events" else f"s3://{bucket}/exports/orders"
    into = dynamodb_tables.create(*KEY)
    until = seconds(records[-1]) + 60

    # When the table is restored from the export plus the archive
    run = cli(*restore_args(history, into, until, "--mode", mode, "--base-export", base, "--json"))

    # Then it equals the whole history's state, items untouched since the export included
    assert run.code == 0, run.stderr
    restored = scanned(dynamodb_tables, into)
    assert restored == expected_items(fold(records, until))
    assert untouched <= set(restored) and not removed_later & set(restored)
    assert run.summary is not None and run.summary["base_items"] == len(exported)
    assert f"started from an export of {len(exported)} items" in run.stderr


# -- interruption and resume -----------------------------------------------------------------------


class Interruptions:
    """A TableWriter factory whose writers fail once, on the Nth write, before or after writing."""

    def __init__(self, at: int | None, after_writing: bool) -> None:
        self.at = at
        self.after_writing = after_writing
        self.calls = 0
        self.written: list[tuple[Any, ...]] = []
        self.failed_batch: list[tuple[Any, ...]] = []
        self._lock = threading.Lock()

    def writer_class(self) -> type[TableWriter]:
        plan = self

        class Interrupted(TableWriter):
            def write(self, ops: Sequence[Op]) -> int:
                with plan._lock:
                    plan.calls += 1
                    call = plan.calls
                if plan.at is not None and not plan.after_writing and call >= plan.at:
                    raise RestoreError("simulated failure: connection reset before the write")
                skipped = super().write(ops)
                with plan._lock:
                    plan.written += [op_signature(op) for op in ops]
                if plan.at is not None and plan.after_writing and call == plan.at:
                    plan.failed_batch = [op_signature(op) for op in ops]
                    raise RestoreError(
                        "simulated failure: crash after the write, before the checkpoint"
                    )
                return skipped

        return Interrupted


@pytest.mark.parametrize(
    ("mode", "after_writing", "at", "concurrency"),
    [
        ("state", False, 3, "4"),
        ("events", False, 6, "4"),
        ("state", True, 1, "1"),
        ("events", True, 1, "1"),
    ],
    ids=[
        "state-before-write",
        "events-before-write",
        "state-crash-after-write",
        "events-crash-after-write",
    ],
)
def test_interrupted_restore_resumes_from_its_checkpoint(
    small: History,
    dynamodb_tables: Any,
    cli: Callable[..., Run],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    mode: str,
    after_writing: bool,
    at: int,
    concurrency: str,
) -> None:
    # Given a restore whose writes fail part-way (as when DynamoDB keeps refusing, or the
    # process dies between a write and its checkpoint)
    until = small.last + 1
    into = dynamodb_tables.create(*KEY)
    checkpoint = tmp_path / "restore.checkpoint"
    args = restore_args(
        small,
        into,
        until,
        "--mode",
        mode,
        "--concurrency",
        concurrency,
        "--checkpoint",
        str(checkpoint),
        "--json",
    )
    first = Interruptions(at, after_writing)
    monkeypatch.setattr("replayer.dynamo.TableWriter", first.writer_class())
    failed = cli(*args)
    assert (
        failed.code == 1
        and "simulated failure" in failed.stderr
        and "Traceback" not in failed.stderr
    )
    assert first.written or after_writing
    assert checkpoint.exists() and not orjson.loads(checkpoint.read_bytes())["finished"]

    # When the same command runs again with the same checkpoint
    second = Interruptions(None, False)
    monkeypatch.setattr("replayer.dynamo.TableWriter", second.writer_class())
    resumed = cli(*args)

    # Then the table is the state at T, and the rerun did only what was left
    assert resumed.code == 0, resumed.stderr
    assert scanned(dynamodb_tables, into) == expected_items(fold(small.records, until))
    assert orjson.loads(checkpoint.read_bytes())["finished"] is True
    if mode == "events":
        # every change applied once; only a batch written but never acknowledged comes again
        assert Counter(first.written + second.written) == (
            expected_ops(small.records, until) + Counter(first.failed_batch)
        )
        assert resumed.summary is not None
        done = resumed.summary["puts"] + resumed.summary["deletes"]
        assert done == sum(expected_ops(small.records, until).values()) - len(first.written) + len(
            first.failed_batch
        )
    else:
        # each final item put once; only a batch written but never acknowledged comes again
        def puts(written: list[tuple[Any, ...]]) -> Counter[tuple[Any, ...]]:
            return Counter(w for w in written if w[0] == "put")

        final = Counter(
            ("put", key, image["version"]["N"]) for key, image in fold(small.records, until).items()
        )
        assert puts(first.written) + puts(second.written) == final + puts(first.failed_batch)


def test_restore_killed_mid_way_resumes_with_the_same_table(
    big: History, dynamodb_tables: Any, cli: Callable[..., Run], tmp_path: Path
) -> None:
    # Given an events-mode restore running as a real process (paced by --max-wcu so that it
    # is still writing when the first hour is acknowledged)
    until = big.last + 1
    into = dynamodb_tables.create(*KEY)
    checkpoint = tmp_path / "restore.checkpoint"
    args = restore_args(
        big,
        into,
        until,
        "--mode",
        "events",
        "--max-wcu",
        "1500",
        "--checkpoint",
        str(checkpoint),
        "--json",
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "replayer", *args],
        cwd=ROOT,
        env=dict(os.environ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    state: dict[str, Any] = {}
    try:
        while process.poll() is None:
            if checkpoint.exists():
                state = orjson.loads(checkpoint.read_bytes())
                if state["done_through_us"] is not None:
                    break
            time.sleep(0.02)
        # When it is killed (no chance to clean up) after some hours were acknowledged
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(30)
        stderr = process.stderr.read().decode() if process.stderr else ""
    assert state.get("done_through_us") is not None and not state["finished"], stderr
    partly = scanned(dynamodb_tables, into)
    expected = expected_items(fold(big.records, until))
    assert partly != expected

    # and the same command runs again
    resumed = cli(*args)

    # Then the table is the state at T, and the rerun did not start over
    assert resumed.code == 0, resumed.stderr
    assert scanned(dynamodb_tables, into) == expected
    assert resumed.summary is not None
    assert resumed.summary["puts"] + resumed.summary["deletes"] < len(
        changes_until(big.records, until)
    )
    assert orjson.loads(checkpoint.read_bytes())["finished"] is True


# -- refusals before any write ---------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["state", "events"])
@pytest.mark.parametrize("view_type", ["KEYS_ONLY", "OLD_IMAGE"])
def test_an_archive_without_new_images_is_refused_before_writing(
    tmp_path: Path, dynamodb_tables: Any, cli: Callable[..., Run], mode: str, view_type: str
) -> None:
    # Given a table archived from a stream that carries no new images
    history = make_history(
        tmp_path / "archive", 200, seed=5, items=20, spacing=30.0, view_type=view_type
    )
    into = dynamodb_tables.create(*KEY)

    # When it is restored
    run = cli(*restore_args(history, into, history.last + 1, "--mode", mode))

    # Then the replayer says why and writes nothing
    assert run.code == 1
    assert view_type in run.stderr and "NEW_IMAGE" in run.stderr
    assert "Traceback" not in run.stderr
    assert dynamodb_tables.scan(into) == []


def stray_items() -> list[dict[str, Any]]:
    return [
        {
            "pk": {"S": f"stray#{i}"},
            "sk": {"N": str(i)},
            "note": {"S": "not from the archive"},
            "blob": {"B": bytes([i]) * 8},
        }
        for i in range(3)
    ]


@pytest.mark.parametrize("mode", ["state", "events"])
def test_a_non_empty_target_needs_allow_non_empty(
    small: History, dynamodb_tables: Any, cli: Callable[..., Run], mode: str
) -> None:
    # Given a target that already holds items: strays, a stale copy of a live item, and an
    # item the history deletes
    until = small.last + 1
    final = fold(small.records, until)
    removed = sorted({ident(r["dynamodb"]["Keys"]) for r in small.records} - set(final))
    live = sorted(final)[0]
    assert removed
    doomed = {"pk": {"S": removed[0][0]}, "sk": {"N": str(removed[0][1])}, "version": {"N": "0"}}
    stale = {"pk": {"S": live[0]}, "sk": {"N": str(live[1])}, "version": {"N": "0"}}
    into = dynamodb_tables.create(*KEY)
    dynamodb_tables.put(into, [*stray_items(), doomed, stale])
    before = scanned(dynamodb_tables, into)

    # When it is restored without --allow-non-empty
    refused = cli(*restore_args(small, into, until, "--mode", mode))

    # Then nothing is written and the message says what to do
    assert refused.code == 1
    assert into in refused.stderr and "--allow-non-empty" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert scanned(dynamodb_tables, into) == before

    # When it is restored with the flag
    allowed = cli(*restore_args(small, into, until, "--mode", mode, "--allow-non-empty"))

    # Then archived items are restored, deleted ones deleted, and strays left alone
    assert allowed.code == 0, allowed.stderr
    expected = expected_items(final) | {ident(i): plain_item(i) for i in stray_items()}
    assert scanned(dynamodb_tables, into) == expected


def test_a_missing_target_table_is_a_clear_error(
    small: History, dynamodb_tables: Any, cli: Callable[..., Run]
) -> None:
    # Given no table named like the target
    missing = f"missing-{uuid.uuid4().hex[:8]}"

    # When a restore names it
    run = cli(*restore_args(small, missing, small.last))

    # Then the message names it, with no traceback
    assert run.code == 1
    assert f"table {missing} does not exist" in run.stderr
    assert "Traceback" not in run.stderr
    assert missing not in dynamodb_tables.client.list_tables()["TableNames"]


@pytest.mark.parametrize("mode", ["state", "events"])
@pytest.mark.parametrize(
    "key",
    [(("id", "S"),), (("pk", "S"),), (("pk", "S"), ("version", "N")), (("pk", "S"), ("sk", "S"))],
    ids=["other-name", "hash-only", "other-range", "other-type"],
)
def test_a_target_with_another_key_is_refused_before_writing(
    small: History,
    dynamodb_tables: Any,
    cli: Callable[..., Run],
    mode: str,
    key: tuple[tuple[str, str], ...],
) -> None:
    # Given a target whose key schema is not the archived table's (pk S, sk N)
    into = dynamodb_tables.create(*key)

    # When the archive is restored into it
    run = cli(*restore_args(small, into, small.last, "--mode", mode))

    # Then the replayer names both keys and writes nothing
    assert run.code == 1
    assert f"the key of {into} ({', '.join(f'{name} {kind}' for name, kind in key)})" in run.stderr
    assert f"archived key of {TABLE} (pk S, sk N)" in run.stderr
    assert "Traceback" not in run.stderr
    assert dynamodb_tables.scan(into) == []


@pytest.mark.parametrize("mode", ["state", "events"])
def test_dry_run_counts_and_writes_nothing(
    small: History, dynamodb_tables: Any, cli: Callable[..., Run], tmp_path: Path, mode: str
) -> None:
    # Given an empty target
    into = dynamodb_tables.create(*KEY)
    until = small.last + 1
    checkpoint = tmp_path / "dry.checkpoint"

    # When a dry run is asked for
    run = cli(
        *restore_args(
            small,
            into,
            until,
            "--mode",
            mode,
            "--dry-run",
            "--json",
            "--checkpoint",
            str(checkpoint),
        )
    )

    # Then it says what it would write, and writes nothing (not even a checkpoint)
    assert run.code == 0, run.stderr
    read = changes_until(small.records, until)
    removes = sum(r["eventName"] == "REMOVE" for r in read)
    final = fold(small.records, until)
    puts, deletes = (len(final), 0) if mode == "state" else (len(read) - removes, removes)
    assert run.summary is not None
    assert (run.summary["puts"], run.summary["deletes"]) == (puts, deletes)
    assert f"would write {puts} puts and {deletes} deletes" in run.stderr
    if mode == "state":
        # every key the history touched, in canonical typed JSON
        keys = sorted(
            {
                orjson.dumps(r["dynamodb"]["Keys"], option=orjson.OPT_SORT_KEYS).decode()
                for r in read
            }
        )
        assert f"key range: {keys[0]} .. {keys[-1]}" in run.stderr
    assert dynamodb_tables.scan(into) == []
    assert not checkpoint.exists()


def test_conditional_restore_keeps_newer_items(
    small: History, dynamodb_tables: Any, cli: Callable[..., Run]
) -> None:
    # Given a live target where some items were updated after T (a higher version), and
    # others hold an older version
    until = small.last + 1
    final = fold(small.records, until)
    keys = sorted(final)
    newer = {}
    for pk, sk in keys[:5]:
        version = int(final[(pk, sk)]["version"]["N"]) + 100
        newer[(pk, sk)] = {
            "pk": {"S": pk},
            "sk": {"N": str(sk)},
            "version": {"N": str(version)},
            "status": {"S": "written by live traffic"},
        }
    older = [
        {"pk": {"S": pk}, "sk": {"N": str(sk)}, "version": {"N": "0"}} for pk, sk in keys[5:10]
    ]
    into = dynamodb_tables.create(*KEY)
    dynamodb_tables.put(into, [*newer.values(), *older])

    # When the state is restored with --conditional version
    run = cli(
        *restore_args(small, into, until, "--conditional", "version", "--allow-non-empty", "--json")
    )

    # Then newer items are kept, older ones replaced, missing ones written
    assert run.code == 0, run.stderr
    expected = expected_items(final) | {k: plain_item(item) for k, item in newer.items()}
    assert scanned(dynamodb_tables, into) == expected
    assert run.summary is not None and run.summary["skipped_newer"] == len(newer)
    assert f"{len(newer)} writes skipped: the table held a newer item" in run.stderr


@pytest.mark.parametrize("mode", ["state", "events"])
def test_two_slices_together_equal_the_whole_restore(
    small: History, dynamodb_tables: Any, cli: Callable[..., Run], mode: str
) -> None:
    # Given one target and a restore split in two slices by key hash (as two machines would)
    until = small.last + 1
    expected = expected_items(fold(small.records, until))
    into = dynamodb_tables.create(*KEY)

    # When slice 1/2 runs, then slice 2/2
    first = cli(*restore_args(small, into, until, "--mode", mode, "--slice", "1/2"))
    after_first = scanned(dynamodb_tables, into)
    second = cli(
        *restore_args(small, into, until, "--mode", mode, "--slice", "2/2", "--allow-non-empty")
    )

    # Then each slice wrote a part, and together they wrote the whole state
    assert (first.code, second.code) == (0, 0), first.stderr + second.stderr
    assert after_first and len(after_first) < len(expected)
    assert all(expected[k] == v for k, v in after_first.items())
    assert scanned(dynamodb_tables, into) == expected


# -- usage errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        (["--until", "next tuesday"], "'next tuesday' is not a time"),
        (["--until", "1795000000", "--slice", "3/2"], "--slice"),
        (["--until", "1795000000", "--slice", "0/2"], "--slice"),
        (["--until", "1795000000", "--slice", "half"], "--slice"),
        (["--checkpoint", "restore.checkpoint"], "--checkpoint needs an explicit --until"),
        (["--until", "1795000000", "--table", "no/slashes"], "--table"),
    ],
)
def test_bad_usage_exits_2_and_names_the_option(
    small: History, cli: Callable[..., Run], tmp_path: Path, extra: list[str], named: str
) -> None:
    # Given a bad option (nothing can reach a table: the target does not even exist)
    args = ["restore", "--archive", small.uri, "--table", TABLE, "--into", "nowhere", *extra]

    # When the restore runs
    run = cli(*args)

    # Then it exits 2 with a message naming the option
    assert run.code == 2
    assert named in run.stderr and "Traceback" not in run.stderr
    assert not (tmp_path / "restore.checkpoint").exists()


@pytest.mark.parametrize(
    "extra", [["--mode", "snapshot"], ["--concurrency", "0"], ["--max-wcu", "-5"]]
)
def test_argument_errors_exit_2(
    small: History, extra: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    # Given an option value argparse rejects; When the restore runs; Then it exits 2
    with pytest.raises(SystemExit) as exit_:
        main(["restore", "--archive", small.uri, "--table", TABLE, "--into", "nowhere", *extra])
    assert exit_.value.code == 2
    assert extra[0] in capsys.readouterr().err


@pytest.mark.parametrize("mode", ["state", "events"])
def test_conditional_restore_applies_deletes_of_older_items(
    tmp_path: Path, dynamodb_tables: Any, cli: Callable[..., Run], mode: str
) -> None:
    # Given a history where items are deleted, some for good and some to be inserted again ...
    history = make_history(tmp_path / "archive", 150, seed=3, items=12, spacing=60.0)
    until = history.last + 1
    final = fold(history.records, until)
    names = [(ident(r["dynamodb"]["Keys"]), r["eventName"]) for r in history.records]
    removed = sorted({key for key, _ in names} - set(final))
    reinserted = {
        key
        for i, (key, name) in enumerate(names)
        if name == "REMOVE" and (key, "INSERT") in names[i:]
    }
    assert removed and reinserted
    # ... and a target holding an old version (0) of every item the history ends up deleting
    into = dynamodb_tables.create(*KEY)
    dynamodb_tables.put(
        into, [{"pk": {"S": pk}, "sk": {"N": str(sk)}, "version": {"N": "0"}} for pk, sk in removed]
    )

    # When the table is restored with --conditional version
    run = cli(
        *restore_args(
            history, into, until, "--mode", mode, "--conditional", "version", "--allow-non-empty"
        )
    )

    # Then nothing newer was there, so the table is the state at T
    assert run.code == 0, run.stderr
    assert scanned(dynamodb_tables, into) == expected_items(final)
