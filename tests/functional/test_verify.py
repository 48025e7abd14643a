"""``replayer verify`` end to end: what an archive holds, and what is wrong with it.

Archives are written the way the archiver writes them (Lambda batches with
``archive_records``; poller output with shard ids and the poller's own
checkpoint format), then damaged in one precise way per test. Every failure
must exit 1 and name the file, shard or checkpoint at fault.
"""

from __future__ import annotations

import io
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pyarrow.parquet as pq
import pytest

from archiver.archive.codec import encode_records, read_archive_file
from archiver.archive.errors import FormatError
from archiver.archive.layout import partition_of
from archiver.archive.store import ArchiveStore, open_store
from archiver.archive.times import format_us
from archiver.compact import compact
from archiver.decode import decode_record
from archiver.poller import ShardCheckpoints, checkpoint_key
from archiver.write import archive_records
from devkit.traffic import TableHistory
from replayer import cli as replayer_cli

US = 1_000_000
SHARDS = ("shardId-00000001795000000000-aaaaaaaa", "shardId-00000001795000000000-bbbbbbbb")
TABLE_KEYS = {
    "table",
    "files",
    "bytes",
    "rows",
    "events",
    "duplicates",
    "first_change_us",
    "last_change_us",
    "schema_versions",
    "shards",
    "problems",
}


@dataclass
class Run:
    code: int
    report: dict[str, Any] | None  # the --json document
    messages: str  # stderr


@pytest.fixture
def verify(capsys: pytest.CaptureFixture[str]) -> Any:
    """Run ``replayer verify --archive URI --json ARGS`` in-process."""

    def run(uri: str | None, *args: str, json: bool = True) -> Run:
        capsys.readouterr()
        out = io.BytesIO()
        argv = [
            "verify",
            *(["--archive", uri] if uri else []),
            *(["--json"] if json else []),
            *args,
        ]
        code = replayer_cli.main(argv, stdout=out)
        err = capsys.readouterr().err
        assert "Traceback" not in err
        return Run(code, orjson.loads(out.getvalue()) if out.getvalue() else None, err)

    return run


def changes(table: str, count: int, *, seed: int, seconds: float = 20.0) -> list[dict[str, Any]]:
    return TableHistory(table, seed=seed, seconds_per_change=seconds).changes(count)


def write_batches(
    store: ArchiveStore,
    records: list[Any],
    size: int = 50,
    shards: list[str] | None = None,
) -> None:
    for start in range(0, len(records), size):
        report = archive_records(
            records[start : start + size],
            store,
            shard_ids=shards[start : start + size] if shards else None,
        )
        assert report.ok, report.errors


def data_keys(store: ArchiveStore, table: str) -> list[str]:
    return [obj.key for obj in store.list(f"table_name={table}/")]


def seconds(record: dict[str, Any]) -> int:
    return int(record["dynamodb"]["ApproximateCreationDateTime"])


def sequence(record: dict[str, Any]) -> str:
    return str(record["dynamodb"]["SequenceNumber"])


def table_report(run: Run, table: str) -> dict[str, Any]:
    assert run.report is not None
    (found,) = [t for t in run.report["tables"] if t["table"] == table]
    return found


def poller_traffic(count: int = 300) -> tuple[list[dict[str, Any]], list[str]]:
    """Changes as a poller reads them from two shards: each shard's sequence numbers increase."""
    records = changes("orders", count, seed=21, seconds=10.0)
    rng = random.Random(21)
    return records, [rng.choice(SHARDS) for _ in records]


def last_sequence(records: list[dict[str, Any]], shards: list[str], shard: str) -> str:
    return max((sequence(r) for r, s in zip(records, shards, strict=True) if s == shard), key=int)


def stream_arn(records: list[dict[str, Any]]) -> str:
    return str(records[0]["eventSourceARN"])


class TestCounts:
    def test_a_clean_archive_passes_with_its_counts_time_range_and_schema_versions(
        self, archive_uri: str, verify: Any
    ) -> None:
        # Given two tables archived in Lambda batches
        store = open_store(archive_uri)
        history = {
            "orders": changes("orders", 400, seed=1),
            "payments": changes("payments", 150, seed=2),
        }
        for records in history.values():
            write_batches(store, records)
        # When the archive is verified
        run = verify(archive_uri)
        # Then it passes
        assert run.code == 0, run.messages
        assert run.report is not None and run.report["ok"] is True and run.report["problems"] == []
        assert run.messages.strip().endswith("verify: OK")
        # with one entry per table in the documented shape, counting what was written
        assert [t["table"] for t in run.report["tables"]] == ["orders", "payments"]
        for table, records in history.items():
            found = table_report(run, table)
            assert set(found) == TABLE_KEYS
            objects = list(store.list(f"table_name={table}/"))
            first, last = min(map(seconds, records)) * US, max(map(seconds, records)) * US
            assert found == {
                "table": table,
                "files": len(objects),
                "bytes": sum(o.size for o in objects),
                "rows": len(records),
                "events": len(records),
                "duplicates": 0,
                "first_change_us": first,
                "last_change_us": last,
                "schema_versions": [1],
                "shards": 0,
                "problems": [],
            }
            # and the text report says the same
            size = sum(o.size for o in objects)
            assert (
                f"{table}: {len(records)} events in {len(objects)} files ({size:,} bytes), "
                f"0 duplicates, {format_us(first)} .. {format_us(last)}, schema versions [1], "
                "0 shards"
            ) in run.messages

    def test_an_archive_written_from_record_texts_verifies_as_one_written_from_dicts(
        self, tmp_path: Any, verify: Any
    ) -> None:
        # Given the same poller traffic archived from each record's JSON text (our runtime,
        # the poller) and from dicts (Python's Lambda runtime)
        records, shards = poller_traffic(200)
        as_text, as_dicts = str(tmp_path / "text"), str(tmp_path / "dicts")
        write_batches(open_store(as_text), [orjson.dumps(r) for r in records], shards=shards)
        write_batches(open_store(as_dicts), records, shards=shards)
        # When both are verified
        by_text, by_dicts = verify(as_text), verify(as_dicts)
        # Then both pass with the same report
        assert by_text.code == by_dicts.code == 0, by_text.messages
        assert by_text.report is not None and by_dicts.report is not None
        assert by_text.report["tables"] == by_dicts.report["tables"]
        found = table_report(by_text, "orders")
        assert (found["events"], found["shards"], found["problems"]) == (len(records), 2, [])

    def test_duplicates_from_retried_overlapping_batches_are_counted_not_failed(
        self, local_archive: str, verify: Any
    ) -> None:
        # Given batches that Lambda retried with other boundaries (so files overlap)
        store = open_store(local_archive)
        records = changes("orders", 300, seed=3)
        write_batches(store, records, size=40)
        write_batches(store, records[15:], size=40)
        write_batches(store, records[100:230], size=25)
        rows = sum(pq.read_metadata(store.open(key)).num_rows for key in data_keys(store, "orders"))
        assert rows > len(records)
        # When it is verified
        run = verify(local_archive)
        # Then the duplicates are counted, each event once, and that is not a failure
        assert run.code == 0, run.messages
        found = table_report(run, "orders")
        assert (found["rows"], found["events"], found["duplicates"]) == (
            rows,
            len(records),
            rows - len(records),
        )
        assert found["problems"] == []

    def test_an_unreadable_file_and_a_newer_schema_version_fail_naming_each_file(
        self, local_archive: str, verify: Any
    ) -> None:
        # Given an archive with garbage at a data key, and a file from a future archiver
        store = open_store(local_archive)
        records = changes("orders", 200, seed=4)
        write_batches(store, records)
        good = data_keys(store, "orders")
        hour = good[0].rsplit("/", 1)[0]
        garbage = f"{hour}/1_2_00000000deadbeef.parquet"
        store.put(garbage, b"these bytes are not parquet")
        table = pq.read_table(store.open(good[-1]))
        future = f"{good[-1].rsplit('/', 1)[0]}/3_4_00000000feedf00d.parquet"
        sink = io.BytesIO()
        metadata = {**table.schema.metadata, b"dynamodb_archive.schema_version": b"2"}
        pq.write_table(table.replace_schema_metadata(metadata), sink)
        store.put(future, sink.getvalue())
        # When it is verified
        run = verify(local_archive)
        # Then it fails, naming both files and what is wrong with each
        assert run.code == 1
        assert run.report is not None and run.report["ok"] is False
        problems = table_report(run, "orders")["problems"]
        assert len(problems) == 2
        (bad,) = [p for p in problems if garbage in p]
        assert "not a readable Parquet file" in bad
        (newer,) = [p for p in problems if future in p]
        assert "schema version 2" in newer
        assert garbage in run.messages and future in run.messages
        assert run.messages.strip().endswith("verify: FAILED")
        # while the readable files are still counted
        assert table_report(run, "orders")["events"] == len(records)
        assert table_report(run, "orders")["files"] == len(good)

    def test_every_flipped_byte_of_a_file_is_named_by_verify_or_changes_nothing(
        self, local_archive: str, verify: Any
    ) -> None:
        # Given an archive file, and every byte of it flipped in turn (a bit of each, in steps)
        store = open_store(local_archive)
        write_batches(store, changes("orders", 60, seed=8, seconds=1.0), size=60)
        [key] = data_keys(store, "orders")
        original = store.get(key)
        expected = pq.read_table(io.BytesIO(original))
        silent = missed = 0
        for position in range(0, len(original), max(1, len(original) // 150)):
            flipped = bytearray(original)
            flipped[position] ^= 0x10
            store.put(key, bytes(flipped))
            # When the archive is read, and verified
            try:
                with store.open(key) as handle:
                    read = read_archive_file(handle, key)
            except FormatError:
                read = None
            run = verify(local_archive)
            # Then a flip either changes nothing that is read, or is an error naming the file,
            # and verify fails exactly when reading does
            if read is not None and not read.equals(expected):
                silent += 1
            if (read is None) != (run.code == 1):
                missed += 1
        store.put(key, original)
        assert (silent, missed) == (0, 0)

    def test_a_file_without_a_column_fails_naming_the_file_and_the_column(
        self, local_archive: str, verify: Any
    ) -> None:
        # Given an archive file rewritten without its envelope column (replay needs it)
        store = open_store(local_archive)
        write_batches(store, changes("orders", 40, seed=9, seconds=1.0), size=40)
        [key] = data_keys(store, "orders")
        table = pq.read_table(store.open(key))
        sink = io.BytesIO()
        pq.write_table(table.drop_columns(["envelope"]), sink)
        store.put(key, sink.getvalue())
        # When it is verified, Then it fails, naming the file and the column
        run = verify(local_archive)
        assert run.code == 1
        [problem] = table_report(run, "orders")["problems"]
        assert key in problem and "envelope" in problem


class TestShards:
    def test_poller_written_shards_in_order_pass_before_and_after_compaction(
        self, local_archive: str, verify: Any
    ) -> None:
        # Given what a poller writes: records of two shards, a restart that re-archived a tail
        # with other boundaries, and its checkpoint at the last record of each shard
        store = open_store(local_archive)
        records, shards = poller_traffic()
        write_batches(store, records, size=60, shards=shards)
        write_batches(store, records[170:], size=45, shards=shards[170:])
        arn = stream_arn(records)
        ShardCheckpoints(
            store,
            checkpoint_key(arn),
            arn,
            {s: last_sequence(records, shards, s) for s in SHARDS},
            finished={SHARDS[0]},
        ).save()
        # When it is verified
        run = verify(local_archive)
        # Then both shards are seen in order, the re-archived tail is only duplicates
        assert run.code == 0, run.messages
        found = table_report(run, "orders")
        assert found["shards"] == 2 and found["events"] == len(records) and found["duplicates"] > 0
        assert "2 shards" in run.messages
        # When the archive is then compacted into files that mix the shards
        compact(store, target_bytes=1024 * 1024)
        # Then each shard is still in order and nothing is duplicated any more
        run = verify(local_archive)
        assert run.code == 0, run.messages
        found = table_report(run, "orders")
        assert (found["shards"], found["events"], found["duplicates"]) == (2, len(records), 0)

    def test_rows_of_a_shard_out_of_order_in_a_file_are_named(
        self, local_archive: str, verify: Any
    ) -> None:
        # Given a good archive plus one file whose rows of a shard are not in sequence order
        store = open_store(local_archive)
        records, shards = poller_traffic()
        write_batches(store, records, size=60, shards=shards)
        decoded = [
            decode_record(r, None, s) for r, s in zip(records[:40], shards[:40], strict=True)
        ]
        one_hour = [
            d
            for d in decoded
            if partition_of("orders", d.change_time_us)
            == partition_of("orders", decoded[0].change_time_us)
        ]
        mine = [i for i, d in enumerate(one_hour) if d.shard_id == SHARDS[0]]
        early, late = one_hour[mine[1]], one_hour[mine[2]]
        one_hour[mine[1]], one_hour[mine[2]] = late, early
        key = partition_of("orders", early.change_time_us).key("5_6_00000000000000aa.parquet")
        store.put(key, encode_records(one_hour))
        # When it is verified
        run = verify(local_archive)
        # Then it fails naming the file, the shard and the sequence numbers
        assert run.code == 1
        (problem,) = table_report(run, "orders")["problems"]
        assert key in problem and SHARDS[0] in problem
        assert f"sequence {early.sequence_number} does not follow {late.sequence_number}" in problem

    def test_two_different_events_under_one_shard_sequence_are_named(
        self, local_archive: str, verify: Any
    ) -> None:
        # Given a good archive, and another file holding a different event at a sequence number
        # of one shard that the archive already holds
        store = open_store(local_archive)
        records, shards = poller_traffic()
        write_batches(store, records, size=60, shards=shards)
        original = records[77]
        impostor = orjson.loads(orjson.dumps(original))
        impostor["eventID"] = "f" * 32
        impostor["dynamodb"]["NewImage"] = {
            **impostor["dynamodb"]["Keys"],
            "forged": {"BOOL": True},
        }
        report = archive_records([impostor], store, shard_ids=[shards[77]])
        assert report.ok
        # When it is verified
        run = verify(local_archive)
        # Then it fails, naming the file, the shard, the sequence number and both events
        assert run.code == 1
        (problem,) = table_report(run, "orders")["problems"]
        assert report.files[0] in problem and shards[77] in problem
        assert f"sequence {sequence(original)} holds two different events" in problem
        assert original["eventID"] in problem and impostor["eventID"] in problem


class TestCheckpoints:
    def test_a_checkpoint_at_or_behind_the_data_passes(self, archive_uri: str, verify: Any) -> None:
        # Given poller data and a checkpoint at the last record of one shard, behind on the other
        store = open_store(archive_uri)
        records, shards = poller_traffic(120)
        write_batches(store, records, size=60, shards=shards)
        arn = stream_arn(records)
        behind = min(
            (sequence(r) for r, s in zip(records, shards, strict=True) if s == SHARDS[1]), key=int
        )
        ShardCheckpoints(
            store,
            checkpoint_key(arn),
            arn,
            {SHARDS[0]: last_sequence(records, shards, SHARDS[0]), SHARDS[1]: behind},
        ).save()
        # When it is verified
        run = verify(archive_uri)
        # Then it passes
        assert run.code == 0, run.messages
        assert run.report is not None and run.report["problems"] == []

    def test_a_checkpoint_beyond_the_archived_data_fails(
        self, archive_uri: str, verify: Any
    ) -> None:
        # Given poller data whose checkpoint claims more of a shard than the archive holds
        # (as when a write was lost after the checkpoint was saved)
        store = open_store(archive_uri)
        records, shards = poller_traffic(120)
        write_batches(store, records, size=60, shards=shards)
        arn = stream_arn(records)
        ahead = str(int(last_sequence(records, shards, SHARDS[1])) + 500)
        key = checkpoint_key(arn)
        ShardCheckpoints(
            store,
            key,
            arn,
            {SHARDS[0]: last_sequence(records, shards, SHARDS[0]), SHARDS[1]: ahead},
        ).save()
        # When it is verified
        run = verify(archive_uri)
        # Then it fails naming the checkpoint, the shard and its position
        assert run.code == 1
        assert run.report is not None and run.report["ok"] is False
        (problem,) = run.report["problems"]
        assert key in problem and SHARDS[1] in problem and ahead in problem
        assert "beyond the archived data" in problem
        assert all(t["problems"] == [] for t in run.report["tables"])
        assert f"problem: {problem}" in run.messages

    def test_a_recorded_gap_fails_naming_shard_and_range(
        self, local_archive: str, verify: Any
    ) -> None:
        # Given poller data whose checkpoint records records trimmed away before they were read
        store = open_store(local_archive)
        records, shards = poller_traffic(120)
        write_batches(store, records, size=60, shards=shards)
        arn = stream_arn(records)
        after = last_sequence(records[:50], shards[:50], SHARDS[0])
        key = checkpoint_key(arn)
        gap = {
            "shard": SHARDS[0],
            "after_sequence": after,
            "reason": "the position after the last archived record was trimmed",
            "detected_at": 1_795_000_000.0,
        }
        ShardCheckpoints(
            store, key, arn, {s: last_sequence(records, shards, s) for s in SHARDS}, gaps=[gap]
        ).save()
        # When it is verified
        run = verify(local_archive)
        # Then it fails, saying which records were lost
        assert run.code == 1
        assert run.report is not None
        (problem,) = run.report["problems"]
        assert key in problem and SHARDS[0] in problem and f"after sequence {after}" in problem
        assert "lost" in problem and "trimmed" in problem

    @pytest.mark.parametrize(
        ("content", "problem"),
        [
            (b"{not json", "not a checkpoint (not JSON"),
            (b"[1, 2]", "not a checkpoint (not a JSON object)"),
            (b'{"gaps": 5}', "not a stream checkpoint (gaps must be a list of objects)"),
            (b'{"gaps": ["lost"]}', "not a stream checkpoint (gaps must be a list of objects)"),
            (b'{"positions": ["shard-1"]}', "not a stream checkpoint (positions must be"),
            (b'{"positions": {"shard-1": 17}}', "not a stream checkpoint (positions must be"),
            (b'{"positions": {"shard-1": null}}', "not a stream checkpoint (positions must be"),
        ],
        ids=[
            "not-json",
            "json-list",
            "gaps-a-number",
            "gap-a-string",
            "positions-a-list",
            "position-a-number",
            "position-null",
        ],
    )
    def test_an_unreadable_checkpoint_fails_naming_it(
        self, local_archive: str, verify: Any, content: bytes, problem: str
    ) -> None:
        # Given poller data and, among the checkpoints, a file that is not one
        store = open_store(local_archive)
        records, shards = poller_traffic(60)
        write_batches(store, records, size=60, shards=shards)
        store.put("_checkpoints/0123456789abcdef.json", content)
        # When it is verified
        run = verify(local_archive)
        # Then it fails naming that file, without a traceback
        assert run.code == 1
        assert run.report is not None
        (found,) = run.report["problems"]
        assert "_checkpoints/0123456789abcdef.json" in found and problem in found


class TestSelection:
    def test_table_restricts_the_check_to_one_table_and_its_checkpoints(
        self, local_archive: str, verify: Any
    ) -> None:
        # Given a sound table, and another with an unreadable file and a recorded gap
        store = open_store(local_archive)
        orders = changes("orders", 120, seed=5)
        write_batches(store, orders)
        payments = changes("payments", 120, seed=6)
        write_batches(store, payments)
        store.put(
            data_keys(store, "payments")[0].rsplit("/", 1)[0] + "/7_7_0000000000000bad.parquet",
            b"garbage",
        )
        arn = stream_arn(payments)
        gap = {"shard": SHARDS[0], "after_sequence": sequence(payments[3]), "reason": "trimmed"}
        ShardCheckpoints(store, checkpoint_key(arn), arn, {}, gaps=[gap]).save()
        # When only the sound table is verified
        run = verify(local_archive, "--table", "orders")
        # Then it passes, reporting that table only
        assert run.code == 0, run.messages
        assert run.report is not None
        assert [t["table"] for t in run.report["tables"]] == ["orders"]
        assert run.report["problems"] == [] and "payments" not in run.messages
        # When the other table, or the whole archive, is verified
        for args in (["--table", "payments"], []):
            run = verify(local_archive, *args)
            # Then both of its problems are reported
            assert run.code == 1, args
            assert run.report is not None
            assert len(table_report(run, "payments")["problems"]) == 1
            assert len(run.report["problems"]) == 1

    def test_without_json_only_the_text_report_is_written(
        self, local_archive: str, verify: Any
    ) -> None:
        store = open_store(local_archive)
        write_batches(store, changes("orders", 60, seed=7))

        run = verify(local_archive, json=False)

        assert run.code == 0 and run.report is None
        assert "orders: 60 events in" in run.messages and "verify: OK" in run.messages

    @pytest.mark.parametrize("table", ["ab", "../orders", "orders/x"])
    def test_an_invalid_table_is_bad_usage(
        self, local_archive: str, verify: Any, table: str
    ) -> None:
        run = verify(local_archive, "--table", table)

        assert run.code == 2 and run.report is None
        assert "--table" in run.messages and repr(table) in run.messages

    def test_a_stray_table_folder_is_skipped_with_a_warning(
        self, archive_uri: str, verify: Any, caplog: pytest.LogCaptureFixture
    ) -> None:
        # Given a sound table and, beside it, an object under a folder that names no table
        store = open_store(archive_uri)
        write_batches(store, changes("orders", 60, seed=8))
        store.put("table_name=a b/dt=2026-11-18/hour=01/1_1_0000000000000000.parquet", b"x")
        # When the archive is verified
        run = verify(archive_uri)
        # Then the table passes and the stray folder is named in a warning
        assert run.code == 0, run.messages
        assert run.report is not None
        assert [t["table"] for t in run.report["tables"]] == ["orders"]
        assert "table_name=a b: not a valid table name" in caplog.text

    def test_an_archive_that_does_not_exist_is_bad_usage_not_an_empty_archive(
        self, verify: Any, tmp_path: Path
    ) -> None:
        run = verify(str(tmp_path / "no-such-folder"))

        assert run.code == 2 and run.report is None
        assert "no-such-folder: no such folder" in run.messages
        assert "verify: OK" not in run.messages

    def test_no_archive_anywhere_is_bad_usage(self, verify: Any) -> None:
        run = verify(None)

        assert run.code == 2
        assert "--archive" in run.messages and "REPLAYER_ARCHIVE_URI" in run.messages
