"""``archiver compact`` end to end, on a local folder and on S3 (SeaweedFS).

The input is what a Lambda sink leaves behind: two tables' histories over
several hours, written in batches of 20 to 50 records, some batches retried
with other boundaries (so files overlap and hold duplicates), some written
with promoted columns and some without. Compaction must leave an archive that
replays exactly the same, in fewer, larger, ordered files with names that
depend on the content only, and survive a crash at any point.
"""

from __future__ import annotations

import base64
import copy
import io
import json
import math
import random
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from archiver import cli as archiver_cli
from archiver.archive.errors import StoreUnavailable
from archiver.archive.layout import Partition, parse_data_key
from archiver.archive.reader import iter_events, iter_record_texts, list_partitions
from archiver.archive.schema import parse_promoted_columns
from archiver.archive.store import ArchiveStore, LocalStore, open_store
from archiver.compact import CompactReport, compact
from archiver.write import ArchiveOptions, archive_records
from devkit.traffic import TableHistory, kinesis_record
from tests.stores import Passthrough

TABLES = ("orders", "payments")
TARGET = 64 * 1024  # small, so that one hour of test traffic makes several output files
PROMOTED = ArchiveOptions(
    promoted=parse_promoted_columns("customer_id:string,amount:decimal(18,2)")
)


# --- the input: what a Lambda sink writes -----------------------------------------------------


def history() -> dict[str, list[dict[str, Any]]]:
    """Each table's changes, in stream order (about 5 and 4 hours of traffic)."""
    return {
        "orders": TableHistory("orders", seed=11, seconds_per_change=15.0).changes(1200),
        "payments": TableHistory("payments", seed=12, seconds_per_change=24.0).changes(600),
    }


def lambda_batches(records: list[dict[str, Any]], seed: int) -> list[list[dict[str, Any]]]:
    """Batches of 20 to 50 as Lambda delivers them; about a third retried with other boundaries."""
    rng = random.Random(seed)
    batches, start = [], 0
    while start < len(records):
        size = rng.randrange(20, 51)
        batches.append(records[start : start + size])
        if rng.random() < 0.35:  # a retry that starts earlier and reaches further
            batches.append(
                records[max(0, start - rng.randrange(1, 15)) : start + size + rng.randrange(10)]
            )
        start += size
    return batches


def write_lambda_traffic(store: ArchiveStore, tables: dict[str, list[dict[str, Any]]]) -> None:
    rng = random.Random(7)
    for seed, records in enumerate(tables.values()):
        for batch in lambda_batches(records, seed):
            options = PROMOTED if rng.random() < 0.5 else ArchiveOptions()
            report = archive_records(batch, store, options)
            assert report.ok, report.errors


@dataclass(frozen=True)
class Input:
    records: dict[str, list[dict[str, Any]]]
    objects: dict[str, bytes]  # key -> bytes of the uncompacted archive


@pytest.fixture(scope="module")
def small_files(tmp_path_factory: pytest.TempPathFactory) -> Input:
    """The uncompacted archive, encoded once; tests copy it into their own store."""
    tables = history()
    store = LocalStore(tmp_path_factory.mktemp("input"))
    write_lambda_traffic(store, tables)
    assert replay_all(store) == tables  # before compaction, the reader's dedupe gives the history
    return Input(tables, snapshot(store))


@pytest.fixture(scope="module")
def clean_run(small_files: Input, tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """The archive after one uninterrupted compaction at TARGET, in a local folder."""
    store = LocalStore(tmp_path_factory.mktemp("clean"))
    load(store, small_files.objects)
    report = compact(store, target_bytes=TARGET)
    assert not report.errors
    return snapshot(store)


def snapshot(store: ArchiveStore) -> dict[str, bytes]:
    return {obj.key: store.get(obj.key) for obj in store.list("")}


def load(store: ArchiveStore, objects: dict[str, bytes]) -> None:
    """Give a fresh store these objects (a folder's are written directly: set-up needs no fsync)."""
    for key, data in objects.items():
        if isinstance(store, LocalStore):
            path = store.root / key
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        else:
            store.put(key, data)


def canonical(text: bytes) -> bytes:
    """The JSON of a record's text, whatever its layout."""
    return orjson.dumps(orjson.loads(text), option=orjson.OPT_SORT_KEYS)


def record_texts_of(store: ArchiveStore, table: str = "orders") -> list[bytes]:
    """The table's records as replay gives them out as text, in archive order."""
    return [t.encode() for array in iter_record_texts(store, table) for t in array.to_pylist()]


def replay_all(store: ArchiveStore) -> dict[str, list[dict[str, Any]]]:
    return {table: list(iter_events(store, table)) for table in TABLES}


def prefix_of(key: str) -> str:
    parsed = parse_data_key(key)
    assert parsed is not None, key
    return parsed[0].prefix


def partitions(objects: dict[str, bytes] | ArchiveStore) -> dict[str, list[str]]:
    """Partition prefix -> its data file keys."""
    keys = objects.keys() if isinstance(objects, dict) else [o.key for o in objects.list("")]
    grouped: dict[str, list[str]] = {}
    for key in sorted(keys):
        if parse_data_key(key) is not None:
            grouped.setdefault(prefix_of(key), []).append(key)
    return grouped


def read(data: bytes) -> tuple[pa.Table, pq.FileMetaData]:
    parquet = pq.ParquetFile(io.BytesIO(data))
    return parquet.read(), parquet.metadata


@pytest.fixture
def store(archive_uri: str) -> ArchiveStore:
    """The store ``archiver compact`` itself would use for the archive URI."""
    return open_store(archive_uri, s3="boto3")


# --- fault injection ----------------------------------------------------------------------------


class Crash(Exception):  # not a StoreError: the process is gone, nothing handles it
    """The process died here (as far as the archive can tell)."""


class CrashingStore(Passthrough):
    """An ArchiveStore over a real one whose ``operation`` fails from its ``at``-th call on."""

    def __init__(self, inner: ArchiveStore, operation: str, at: int) -> None:
        super().__init__(inner)
        self.operation = operation
        self.at = at
        self.calls = 0

    def _step(self, operation: str, key: str) -> None:
        if operation == self.operation:
            self.calls += 1
            if self.calls >= self.at:
                raise Crash(f"injected crash at {operation} #{self.calls} of {key}")

    def put(self, key: str, data: bytes) -> None:
        self._step("put", key)
        self.inner.put(key, data)

    def delete(self, key: str) -> None:
        self._step("delete", key)
        self.inner.delete(key)


# --- the CLI ------------------------------------------------------------------------------------


@dataclass
class Run:
    code: int
    messages: str


@pytest.fixture
def archiver(capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> Any:
    """Run ``archiver compact ARGS`` in-process."""

    def run(*args: str) -> Run:
        capsys.readouterr()
        caplog.clear()
        try:
            code = archiver_cli.main(["compact", *args])
        except SystemExit as exit_:  # argparse's own usage errors
            code = int(exit_.code or 0)
        return Run(code, capsys.readouterr().err + caplog.text)

    return run


def hour_of(prefix: str) -> str:
    """``table_name=t/dt=2026-11-18/hour=07/`` -> ``2026-11-18T07:00:00Z``."""
    day, hour = prefix.split("/")[1][3:], prefix.split("/")[2][5:]
    return f"{day}T{hour}:00:00Z"


# --- tests --------------------------------------------------------------------------------------


class TestCompaction:
    def test_many_small_files_become_few_of_about_the_target_size_and_replay_the_same(
        self, store: ArchiveStore, small_files: Input, clean_run: dict[str, bytes]
    ) -> None:
        # Given an archive of many small Lambda-batch files, with duplicates across files
        load(store, small_files.objects)
        files_before = partitions(small_files.objects)
        rows_before = sum(read(data)[0].num_rows for data in small_files.objects.values())
        events = sum(len(records) for records in small_files.records.values())
        assert rows_before > events  # the retried batches did leave duplicates behind
        # When it is compacted
        report = compact(store, target_bytes=TARGET)
        # Then it replays exactly as before (see small_files)
        assert not report.errors
        assert replay_all(store) == small_files.records
        # in far fewer files, each about the target size (at most one smaller per partition)
        after = snapshot(store)
        assert after == clean_run  # what other tests inspect and start from
        files_after = partitions(after)
        assert files_after.keys() == files_before.keys()
        assert sum(map(len, files_after.values())) * 3 < sum(map(len, files_before.values()))
        for prefix, keys in files_after.items():
            sizes = sorted(len(after[key]) for key in keys)
            assert all(0.5 * TARGET <= size <= 1.5 * TARGET for size in sizes[1:]), (prefix, sizes)
            assert sizes[0] <= 1.5 * TARGET
            assert len(keys) <= math.ceil(sum(sizes) / TARGET) + 1
        # and the report adds up
        assert report.partitions_seen == len(files_before)
        assert report.partitions_compacted == sum(
            1 for keys in files_before.values() if len(keys) > 1
        )
        assert report.files_in == sum(len(keys) for keys in files_before.values() if len(keys) > 1)
        assert report.files_out == sum(
            len(files_after[p]) for p, keys in files_before.items() if len(keys) > 1
        )
        assert report.duplicates_dropped == rows_before - events

    def test_merged_files_hold_each_event_once_in_sequence_order_and_say_so(
        self, small_files: Input, clean_run: dict[str, bytes]
    ) -> None:
        # Given the small files, some with promoted columns and some without
        # When they are compacted (clean_run; the same bytes in any store, as tested below)
        # Then every event is held exactly once, across all files
        after = clean_run
        images = {r["eventID"]: r["dynamodb"] for rs in small_files.records.values() for r in rs}
        promoted = {
            event
            for data in small_files.objects.values()
            if "customer_id" in pq.read_schema(io.BytesIO(data)).names
            for event in read(data)[0].column("event_id").to_pylist()
        }
        seen: list[str] = []
        for prefix, keys in partitions(after).items():
            for key in keys:
                table, metadata = read(after[key])
                ids = table.column("event_id").to_pylist()
                sequences = table.column("sequence_number").to_pylist()
                seen += ids
                # in sequence order inside each file, declared in the Parquet metadata
                assert sequences == sorted(sequences) and len(set(sequences)) == len(sequences)
                index = table.schema.get_field_index("sequence_number")
                for group in range(metadata.num_row_groups):
                    assert metadata.row_group(group).sorting_columns == (pq.SortingColumn(index),)
                # named from the content: first and last sequence number, digest of the events
                name = key.rsplit("/", 1)[1]
                assert name.startswith(f"{sequences[0].lstrip('0')}_{sequences[-1].lstrip('0')}_")
                # with the promoted columns of the files that had them, filled from the images
                # for every event that any input file held with them
                if "customer_id" not in table.column_names:
                    assert not promoted & set(ids), prefix  # no input of the hour had them
                    continue
                assert table.schema.field("customer_id").type == pa.string()
                assert table.schema.field("amount").type == pa.decimal128(18, 2)
                for event, customer in zip(
                    ids, table.column("customer_id").to_pylist(), strict=True
                ):
                    image = images[event].get("NewImage") or images[event].get("OldImage")
                    if event in promoted:
                        assert customer == image["customer_id"]["S"], (prefix, event)
                    else:
                        assert customer is None, (prefix, event)
        assert sorted(seen) == sorted(images)

    def test_a_second_run_changes_nothing(
        self, store: ArchiveStore, clean_run: dict[str, bytes]
    ) -> None:
        # Given an archive compacted once
        load(store, clean_run)
        once = snapshot(store)
        assert once == clean_run
        # When compaction runs again over it
        report = compact(store, target_bytes=TARGET)
        # Then nothing is written or removed
        assert report.partitions_compacted == 0 and report.files_out == 0
        assert report.partitions_seen == len(partitions(once))
        assert snapshot(store) == once

    def test_the_same_input_gives_the_same_keys_and_bytes_in_any_store(
        self, local_archive: str, s3_archive: str, small_files: Input, clean_run: dict[str, bytes]
    ) -> None:
        # Given the same small files in two fresh archives, a folder and an S3 bucket
        local, s3 = open_store(local_archive, s3="boto3"), open_store(s3_archive, s3="boto3")
        load(local, small_files.objects)
        load(s3, small_files.objects)
        # When each is compacted
        compact(local, target_bytes=TARGET)
        compact(s3, target_bytes=TARGET)
        # Then both hold the same objects, byte for byte, as any other clean run
        assert snapshot(local) == clean_run
        assert snapshot(s3) == clean_run

    def test_data_that_compresses_well_is_compacted_once(self, local_archive: str) -> None:
        # Given small files of changes that compress far better than the size estimate assumes
        records = TableHistory("orders", seed=4, seconds_per_change=1.0).changes(400)
        for record in records:
            for image in ("NewImage", "OldImage"):
                if image in record["dynamodb"]:
                    record["dynamodb"][image]["note"] = {"S": "a" * 3000}
        store = LocalStore(local_archive)
        for start in range(0, len(records), 25):
            archive_records(records[start : start + 25], store)
        first = compact(store, target_bytes=TARGET)
        assert first.partitions_compacted == 1 and first.files_in == 16
        once = snapshot(store)
        # When compaction runs again
        second = compact(store, target_bytes=TARGET)
        # Then the partition is seen as compacted: nothing is rewritten
        assert second.partitions_compacted == 0 and second.bytes_out == 0
        assert snapshot(store) == once
        assert list(iter_events(store, "orders")) == records

    def test_kinesis_partitions_keep_change_time_then_sequence_order(
        self, local_archive: str
    ) -> None:
        # Given changes delivered through a Kinesis data stream, whose sequence numbers follow
        # arrival, not change time, several changes to the second
        changes = TableHistory("orders", seed=5, seconds_per_change=0.4).changes(600)
        rng = random.Random(5)
        order = list(range(len(changes)))
        for start in range(0, len(order), 8):  # arrival shuffles neighbours
            block = order[start : start + 8]
            rng.shuffle(block)
            order[start : start + 8] = block
        records = [kinesis_record(c, order[i]) for i, c in enumerate(changes)]
        change_time = {
            r["eventID"]: c["dynamodb"]["ApproximateCreationDateTime"]
            for r, c in zip(records, changes, strict=True)
        }
        delivered = sorted(records, key=lambda r: int(r["kinesis"]["sequenceNumber"]))
        store = LocalStore(local_archive)
        for batch in lambda_batches(delivered, seed=9):
            archive_records(batch, store)
        expected = sorted(
            delivered,
            key=lambda r: (change_time[r["eventID"]], int(r["kinesis"]["sequenceNumber"])),
        )
        assert expected != delivered  # time order and sequence order differ in this traffic
        before = list(iter_events(store, "orders"))
        assert before == expected
        # When it is compacted
        report = compact(store, target_bytes=TARGET)
        # Then it replays the same
        assert report.partitions_compacted >= 1 and report.files_out > report.partitions_compacted
        assert list(iter_events(store, "orders")) == expected
        # and each file is ordered by change time, then Kinesis sequence number, and says so
        for _, files in list_partitions(store, "orders"):
            for obj in files:
                with store.open(obj.key) as handle:
                    parquet = pq.ParquetFile(handle)
                    table = parquet.read(columns=["change_time", "sequence_number"])
                    rows = list(
                        zip(
                            table.column("change_time").cast(pa.int64()).to_pylist(),
                            table.column("sequence_number").to_pylist(),
                            strict=True,
                        )
                    )
                    assert rows == sorted(rows)
                    schema = parquet.schema_arrow
                    assert parquet.metadata.row_group(0).sorting_columns == (
                        pq.SortingColumn(schema.get_field_index("change_time")),
                        pq.SortingColumn(schema.get_field_index("sequence_number")),
                    )

    def test_each_record_keeps_its_text_byte_for_byte(self, local_archive: str) -> None:
        # Given small files of records archived from their JSON text: compact ones, pretty-printed
        # ones, ones whose attribute values only the full check refuses, and Kinesis-delivered
        # ones whose data is kept as the base64 text that arrived
        changes = TableHistory("orders", seed=8, seconds_per_change=2.0).changes(240)
        texts = []
        for n, change in enumerate(changes):
            if n % 4 == 1:
                texts.append(json.dumps(change, indent=2).encode())
            elif n % 4 == 2:
                odd = copy.deepcopy(change)
                for image in ("NewImage", "OldImage"):
                    if image in odd["dynamodb"]:
                        odd["dynamodb"][image]["odd"] = {"N": "12abc"}
                texts.append(orjson.dumps(odd))
            elif n % 8 == 3:
                inner = kinesis_record(change, n)
                spaced = json.dumps(orjson.loads(base64.b64decode(inner["kinesis"]["data"])))
                inner["kinesis"]["data"] = base64.b64encode(spaced.encode()).decode()
                texts.append(orjson.dumps(inner))
            else:
                texts.append(orjson.dumps(change))
        store = LocalStore(local_archive)
        for start in range(0, len(texts), 30):
            report = archive_records(texts[start : start + 30], store)
            assert report.ok and report.dead_lettered == 0
        before = record_texts_of(store)
        assert sorted(map(canonical, before)) == sorted(map(canonical, texts))
        # When it is compacted
        report = compact(store, target_bytes=TARGET)
        # Then every record replays as the very text it replayed as before, in the same order
        assert report.partitions_compacted >= 1
        assert record_texts_of(store) == before
        # and the compact texts are the ones that arrived, byte for byte
        kept = set(before)
        assert all(text in kept for text in texts if b"\n" not in text)


class TestCrashSafety:
    @pytest.mark.parametrize(
        ("operation", "at"),
        [("delete", 3), ("put", 2)],
        ids=["delete-fails-after-the-merged-file-was-written", "put-fails-on-the-second-output"],
    )
    def test_a_crash_leaves_an_archive_that_replays_the_same_and_a_rerun_finishes(
        self,
        store: ArchiveStore,
        small_files: Input,
        clean_run: dict[str, bytes],
        operation: str,
        at: int,
    ) -> None:
        # Given small files, and a store that fails (as if the process died) at the given step
        load(store, small_files.objects)
        crashing = CrashingStore(store, operation, at)
        # When compaction runs into the failure
        with pytest.raises(Crash):
            compact(crashing, target_bytes=TARGET)
        # Then the interrupted partition holds some merged output next to (some of) its inputs
        interrupted = snapshot(store)
        new = interrupted.keys() - small_files.objects.keys()
        gone = small_files.objects.keys() - interrupted.keys()
        assert new and new <= clean_run.keys()
        first = min(partitions(small_files.objects).items(), key=lambda p: p[0])
        assert {prefix_of(key) for key in new | gone} == {first[0]}
        if operation == "put":
            assert len(new) == 1 and not gone  # one of several outputs, no input removed yet
            assert len(partitions(clean_run)[first[0]]) > 1
        else:
            assert len(gone) == at - 1
        # and the archive replays exactly as before
        assert replay_all(store) == small_files.records
        # When compaction is run again with a working store
        report = compact(store, target_bytes=TARGET)
        # Then it finishes: inputs gone, outputs exactly those of an uninterrupted run (which
        # replays as the input does)
        assert not report.errors
        assert snapshot(store) == clean_run

    def test_a_crash_between_deletes_gives_the_bytes_of_a_clean_run(self, tmp_path: Path) -> None:
        # Given one hour of changes, and where compaction cuts it into files
        records = TableHistory("orders", seed=6, seconds_per_change=5.0).changes(330)
        probe = LocalStore(tmp_path / "probe")
        for start in range(0, len(records), 50):
            archive_records(records[start : start + 50], probe)
        compact(probe, target_bytes=TARGET)
        outputs = sorted(obj.key for obj in probe.list(""))
        assert len(outputs) >= 3
        second = outputs[1].rsplit("/", 1)[1].split("_")[0]
        cut = next(i for i, r in enumerate(records) if r["dynamodb"]["SequenceNumber"] == second)
        # and small files where a batch with promoted columns (A) was retried without them
        # across that cut (B), then more traffic came (C)
        inputs = LocalStore(tmp_path / "inputs")
        archive_records(records[: cut + 20], inputs, PROMOTED)
        archive_records(records[cut - 5 : cut + 5], inputs)
        for start in range(cut + 20, len(records), 50):
            archive_records(records[start : start + 50], inputs)
        objects = snapshot(inputs)
        clean = LocalStore(tmp_path / "clean")
        load(clean, objects)
        compact(clean, target_bytes=TARGET)
        # When a compaction dies after deleting A, before deleting B
        store = LocalStore(tmp_path / "archive")
        load(store, objects)
        with pytest.raises(Crash):
            compact(CrashingStore(store, "delete", 2), target_bytes=TARGET)
        assert list(iter_events(store, "orders")) == records
        # and runs again
        compact(store, target_bytes=TARGET)
        # Then the archive is byte for byte what an uninterrupted run leaves
        assert snapshot(store) == snapshot(clean)
        assert list(iter_events(store, "orders")) == records


class FailingPartitionStore(CrashingStore):
    """Writes under one partition's prefix fail as S3 does in an outage; the rest succeed."""

    def __init__(self, inner: ArchiveStore, prefix: str) -> None:
        super().__init__(inner, "none", 0)
        self.prefix = prefix

    def put(self, key: str, data: bytes) -> None:
        if key.startswith(self.prefix):
            raise StoreUnavailable(f"write {key}: SlowDown")
        self.inner.put(key, data)


class TestStoreErrors:
    def test_a_partition_the_store_fails_is_reported_and_the_others_are_compacted(
        self, local_archive: str, small_files: Input, clean_run: dict[str, bytes]
    ) -> None:
        # Given small files, and a store that fails every write under one partition
        store = LocalStore(local_archive)
        load(store, small_files.objects)
        prefixes = sorted(partitions(small_files.objects))
        failing = prefixes[1]
        # When the archive is compacted
        report = compact(FailingPartitionStore(store, failing), target_bytes=TARGET)
        # Then that partition is reported, named, and left as it was; every other one is done
        assert len(report.errors) == 1 and report.errors[0].startswith(failing)
        assert "SlowDown" in report.errors[0] and "a rerun finishes it" in report.errors[0]
        after = partitions(snapshot(store))
        assert after[failing] == partitions(small_files.objects)[failing]
        for prefix in prefixes:
            if prefix != failing:
                assert after[prefix] == partitions(clean_run)[prefix]
        assert report.partitions_compacted == len(prefixes) - 1
        # and the archive replays as before; a rerun finishes the job
        assert replay_all(store) == small_files.records
        assert not compact(store, target_bytes=TARGET).errors
        assert snapshot(store) == clean_run


class TestRaces:
    def test_a_compaction_whose_files_another_compaction_removed_reports_it_and_changes_nothing(
        self, store: ArchiveStore, small_files: Input, clean_run: dict[str, bytes]
    ) -> None:
        # Given small files, and a second compaction that runs to its end just after the
        # first one listed the partitions of the first table
        load(store, small_files.objects)
        raced: list[CompactReport] = []

        def rival(partition: Partition) -> None:
            if not raced:
                raced.append(compact(store, target_bytes=TARGET))

        # When the first one goes on with the files it listed
        report = compact(store, target_bytes=TARGET, on_partition=rival)
        # Then it reports each partition whose files went away, naming a file and the likely
        # cause, and goes on with the others
        assert not raced[0].errors
        hours = [p for p, keys in partitions(small_files.objects).items() if len(keys) > 1]
        first_table = [p for p in hours if p.startswith(f"table_name={TABLES[0]}/")]
        assert len(report.errors) == len(first_table)
        for error, prefix in zip(report.errors, sorted(first_table), strict=True):
            assert error.startswith(f"{prefix}: ") and "another compaction" in error
            assert f"{prefix}" in error.split(": ", 1)[1]  # the file that went away
        # and the archive is what one compaction leaves
        assert snapshot(store) == clean_run

    def test_two_compaction_commands_at_once_leave_the_archive_one_of_them_would(
        self, tmp_path: Path, small_files: Input
    ) -> None:
        # Given small files in a folder, and what one compaction makes of them
        target = str(1024 * 1024)
        expected = LocalStore(tmp_path / "expected")
        load(expected, small_files.objects)
        assert not compact(expected, target_bytes=int(target)).errors
        archive = LocalStore(tmp_path / "archive")
        load(archive, small_files.objects)
        # When two `archiver compact` run on it at once
        command = [sys.executable, "-m", "archiver", "compact", "--archive", archive.uri]
        runs = [
            subprocess.Popen(
                [*command, "--target-bytes", target, "-q"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        outcomes = [(run.wait(timeout=300), run.stderr.read()) for run in runs if run.stderr]
        # Then each ends with a summary, the one that lost a race with exit 1 saying why,
        # and neither with a traceback
        for code, stderr in outcomes:
            assert code in (0, 1) and "Traceback" not in stderr, stderr
            assert "compacted" in stderr
            if code == 1:
                assert "another compaction" in stderr
        # and the archive holds what one compaction makes, and replays the same
        assert snapshot(archive) == snapshot(expected)
        assert replay_all(archive) == small_files.records


class TestCommand:
    def test_compact_command_merges_each_partition_and_prints_a_summary(
        self, local_archive: str, small_files: Input, archiver: Any
    ) -> None:
        # Given the small files (under 1 MiB per hour)
        archive_uri = local_archive
        store = open_store(archive_uri, s3="boto3")
        load(store, small_files.objects)
        multi = sum(1 for keys in partitions(small_files.objects).values() if len(keys) > 1)
        total = len(partitions(small_files.objects))
        # When `archiver compact` runs with the smallest target it accepts
        result = archiver("--archive", archive_uri, "--target-bytes", str(1024 * 1024))
        # Then each hour becomes one file and the summary says how many partitions were compacted
        assert result.code == 0, result.messages
        assert f"compacted {multi} of {total} partitions" in result.messages
        assert all(len(keys) == 1 for keys in partitions(store).values())
        assert replay_all(store) == small_files.records
        # and a second run says there was nothing to do
        again = archiver("--archive", archive_uri, "--target-bytes", str(1024 * 1024))
        assert again.code == 0
        assert f"compacted 0 of {total} partitions" in again.messages

    def test_table_since_and_until_restrict_the_partitions_touched(
        self, local_archive: str, small_files: Input, archiver: Any
    ) -> None:
        # Given the small files of two tables over several hours
        store = LocalStore(local_archive)
        load(store, small_files.objects)
        hours = sorted(
            p for p in partitions(small_files.objects) if p.startswith("table_name=orders/")
        )
        chosen = hours[1:3]
        # When one table is compacted, only in the second and third hours
        result = archiver(
            "--archive",
            local_archive,
            "--table",
            "orders",
            "--since",
            hour_of(chosen[0]),
            "--until",
            hour_of(chosen[1]),
        )
        # Then exactly those partitions changed, each now one file
        assert result.code == 0, result.messages
        assert "compacted 2 of 2 partitions" in result.messages
        after = snapshot(store)
        for prefix, keys in partitions(small_files.objects).items():
            mine = {k: v for k, v in after.items() if k.startswith(prefix)}
            if prefix in chosen:
                assert len(mine) == 1, prefix
            else:
                assert mine == {k: small_files.objects[k] for k in keys}, prefix
        # When the other table is compacted from its third hour on
        payments = sorted(
            p for p in partitions(small_files.objects) if p.startswith("table_name=payments/")
        )
        result = archiver(
            "--archive", local_archive, "--table", "payments", "--since", hour_of(payments[2])
        )
        # Then its first two hours are untouched and the rest are merged
        assert result.code == 0, result.messages
        after = partitions(store)
        for prefix in payments[:2]:
            assert after[prefix] == partitions(small_files.objects)[prefix]
        assert all(len(after[prefix]) == 1 for prefix in payments[2:])
        assert replay_all(store) == small_files.records

    @pytest.mark.parametrize("damage", ["foreign-parquet", "garbage", "newer-schema-version"])
    def test_an_unreadable_file_is_reported_and_its_partition_left_as_it_is(
        self, local_archive: str, small_files: Input, archiver: Any, damage: str
    ) -> None:
        # Given a partition that holds a file the archiver cannot read among its own
        store = LocalStore(local_archive)
        load(store, small_files.objects)
        hours = partitions(small_files.objects)
        victim = sorted(hours)[2]
        sample = pq.read_table(io.BytesIO(small_files.objects[hours[victim][0]]))
        bad_key = f"{victim}5_5_{damage.replace('-', '')}.parquet"
        sink = io.BytesIO()
        if damage == "foreign-parquet":
            pq.write_table(pa.table({"id": [1, 2, 3], "name": ["a", "b", "c"]}), sink)
        elif damage == "newer-schema-version":
            metadata = {**sample.schema.metadata, b"dynamodb_archive.schema_version": b"2"}
            pq.write_table(sample.replace_schema_metadata(metadata), sink)
        else:
            sink.write(b"PAR1 not really parquet PAR1")
        store.put(bad_key, sink.getvalue())
        untouched = {k: v for k, v in snapshot(store).items() if k.startswith(victim)}
        # When the archive is compacted
        result = archiver("--archive", local_archive, "--target-bytes", str(1024 * 1024))
        # Then the command fails naming the partition and the file
        assert result.code == 1
        assert f"archiver: error: {victim}" in result.messages
        assert bad_key in result.messages
        assert "Traceback" not in result.messages
        # and leaves that partition as it was while compacting every other one
        after = snapshot(store)
        assert {k: v for k, v in after.items() if k.startswith(victim)} == untouched
        others = {p: keys for p, keys in partitions(after).items() if p != victim}
        assert others and all(len(keys) == 1 for keys in others.values())
        assert (
            f"compacted {sum(1 for p, k in hours.items() if len(k) > 1) - 1} of" in result.messages
        )

    @pytest.mark.parametrize(
        ("args", "option"),
        [
            (["--target-bytes", "1000"], "--target-bytes"),
            (["--target-bytes", "lots"], "--target-bytes"),
            (["--since", "last tuesday"], "--since"),
            (["--until", "2026-13-45"], "--until"),
            (["--since", "99999999999999"], "--since"),  # the year 3 million
            (["--until", "-99999999999999"], "--until"),
            (["--table", "../orders"], "table"),
            (["--table", "ab"], "table"),
        ],
        ids=lambda v: " ".join(v) if isinstance(v, list) else v,
    )
    def test_bad_arguments_exit_2_naming_the_option_and_touch_nothing(
        self, local_archive: str, small_files: Input, archiver: Any, args: list[str], option: str
    ) -> None:
        store = LocalStore(local_archive)
        load(store, small_files.objects)

        result = archiver("--archive", local_archive, *args)

        assert result.code == 2
        assert option in result.messages and args[1] in result.messages
        assert "Traceback" not in result.messages
        assert snapshot(store) == small_files.objects

    def test_an_archive_that_does_not_exist_is_bad_usage_not_an_empty_archive(
        self, archiver: Any, tmp_path: Path
    ) -> None:
        missing = tmp_path / "no" / "such" / "archive"

        result = archiver("--archive", str(missing))

        assert result.code == 2
        assert f"archiver: error: --archive {missing}: no such folder" in result.messages
        assert "compacted" not in result.messages and not missing.exists()

    def test_a_stray_table_folder_is_skipped_with_a_warning(
        self, local_archive: str, small_files: Input, archiver: Any
    ) -> None:
        # Given the small files and, beside the tables, a folder that names no valid table
        store = LocalStore(local_archive)
        load(store, small_files.objects)
        stray = Path(local_archive, "table_name=x y", "dt=2026-11-18", "hour=01")
        stray.mkdir(parents=True)
        (stray / "1_1_0000000000000000.parquet").write_bytes(b"not parquet")
        # When the archive is compacted
        result = archiver("--archive", local_archive, "--target-bytes", str(1024 * 1024))
        # Then the tables are compacted and the stray folder named in a warning, left as it is
        assert result.code == 0, result.messages
        assert "table_name=x y: not a valid table name" in result.messages
        assert all(len(keys) == 1 for keys in partitions(store).values())
        assert (stray / "1_1_0000000000000000.parquet").read_bytes() == b"not parquet"

    def test_no_archive_anywhere_is_bad_usage(self, archiver: Any) -> None:
        result = archiver("--table", "orders")

        assert result.code == 2
        assert "--archive" in result.messages and "ARCHIVER_ARCHIVE_URI" in result.messages
