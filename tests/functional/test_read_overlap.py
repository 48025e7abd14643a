"""Reads overlap (``archiver.archive.fetch``) and change nothing else, end to end.

The archive is what a Lambda sink with a small batch size leaves: about 120
files of four changes each over eight hour partitions of two days. Every reader (``events``,
``ls``, ``verify``, ``compact``) must give what reading the files one after
another gives, byte for byte, on a local folder and on S3 (SeaweedFS); a file
that goes missing or is damaged in the middle must stop or be reported as
before, named; and no more requests may be in flight than the setting allows
(counted in a store wrapper, and at a delaying proxy in front of SeaweedFS).
"""

from __future__ import annotations

import io
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from archiver.archive import fetch, reader
from archiver.archive.codec import order_rows, read_archive_file
from archiver.archive.errors import FormatError
from archiver.archive.reader import (
    REPLAY_COLUMNS,
    EventFilter,
    iter_events,
    iter_record_texts,
    list_partitions,
    stream_records,
    summarize_table,
)
from archiver.archive.rebuild import record_texts
from archiver.archive.s3store import S3Store
from archiver.archive.store import ArchiveStore, LocalStore, StoredObject, open_store
from archiver.compact import compact
from archiver.write import archive_records
from devkit.proxy import DelayProxy
from devkit.servers import SeaweedS3
from devkit.traffic import TableHistory
from replayer import cli as replayer_cli
from replayer.checkpoint import Checkpoint
from replayer.runner import Selection, walk
from replayer.verify import verify
from tests.stores import Passthrough

TABLE = "orders"
PER_FILE = 4
TARGET = 1024 * 1024  # every test partition compacts into one file
DEFAULT_IN_FLIGHT = fetch.IN_FLIGHT


@pytest.fixture(scope="module")
def changes() -> list[dict[str, Any]]:
    """About seven hours of one table's changes, a minute apart on average, over two days."""
    three_hours_before_midnight = (1_795_000_000 // 86_400 + 1) * 86_400 - 3 * 3_600
    history = TableHistory(
        TABLE, seed=21, start=float(three_hours_before_midnight), seconds_per_change=60.0
    )
    return history.changes(460)


def write_small_files(store: ArchiveStore, records: list[dict[str, Any]]) -> None:
    """Lambda batches of PER_FILE records: one small file each (two across an hour's end)."""
    for start in range(0, len(records), PER_FILE):
        report = archive_records(records[start : start + PER_FILE], store)
        assert report.ok, report.errors


@pytest.fixture
def store(archive_uri: str, changes: list[dict[str, Any]]) -> ArchiveStore:
    """The archive of many small files, as the replayer opens it."""
    reader = open_store(archive_uri)
    write_small_files(open_store(archive_uri, s3="boto3"), changes)
    files = list(reader.list(f"table_name={TABLE}/"))
    partitions = list_partitions(reader, TABLE)
    assert len(files) > 100 and len(partitions) >= 6
    assert len({partition.dt for partition, _ in partitions}) == 2  # days are listed at once
    return reader


# --- the oracle: each file read in turn, the obvious way ----------------------------------------


def file_after_file(store: ArchiveStore) -> list[tuple[list[StoredObject], bytes]]:
    """Each partition's files and its JSON Lines, read one file after another."""
    parts = []
    for _, files in list_partitions(store, TABLE):
        tables = []
        for obj in files:
            with store.open(obj.key) as handle:
                tables.append(read_archive_file(handle, obj.key))
        rows = order_rows(pa.concat_tables(tables))
        parts.append((files, "".join(record_texts(rows, "\n").to_pylist()).encode()))
    return parts


def footers_one_after_another(store: ArchiveStore) -> tuple[int, int, int]:
    rows = files = size = 0
    for _, objects in list_partitions(store, TABLE):
        for obj in objects:
            with store.open(obj.key) as handle:
                rows += pq.read_metadata(handle).num_rows
            files += 1
            size += obj.size
    return rows, files, size


def middle_partition(store: ArchiveStore) -> tuple[int, list[StoredObject]]:
    partitions = list_partitions(store, TABLE)
    index = len(partitions) // 2
    return index, partitions[index][1]


# --- stores around the real one -----------------------------------------------------------------


class Vanishing(Passthrough):
    """Objects that go away once they have been listed (as when another compaction ran)."""

    def __init__(self, inner: ArchiveStore, *keys: str) -> None:
        super().__init__(inner)
        self.keys = keys

    def list(self, prefix: str) -> Iterator[StoredObject]:
        listed = list(self.inner.list(prefix))
        for key in self.keys:
            if any(obj.key == key for obj in listed):
                self.inner.delete(key)
        return iter(listed)


class Counting(Passthrough):
    """Counts the reads (get, open) running at once; the first ``hold`` wait for each other.

    A reader that kept fewer than ``hold`` reads going at once would break the
    barrier (BrokenBarrierError after its timeout), one that kept more would
    show it in ``peak``.
    """

    def __init__(self, inner: ArchiveStore, hold: int) -> None:
        super().__init__(inner)
        self.lock = threading.Lock()
        self.running = self.peak = self.reads = 0
        self.barrier = threading.Barrier(hold, timeout=60)

    def _read(self, read: Callable[[str], Any], key: str) -> Any:
        with self.lock:
            self.running += 1
            self.reads += 1
            self.peak = max(self.peak, self.running)
            first = self.reads <= self.barrier.parties
        try:
            if first:
                self.barrier.wait()
            time.sleep(0.002)  # hold the slot: a reader keeping more going would show it
            return read(key)
        finally:
            with self.lock:
                self.running -= 1

    def get(self, key: str) -> bytes:
        data: bytes = self._read(self.inner.get, key)
        return data

    def open(self, key: str) -> IO[bytes]:
        handle: IO[bytes] = self._read(self.inner.open, key)
        return handle


def events_command(
    uri: str, output: Path, capsys: pytest.CaptureFixture[str]
) -> tuple[int, bytes, str]:
    capsys.readouterr()
    code = replayer_cli.main(
        ["events", "--archive", uri, "--table", TABLE, "--output", str(output)]
    )
    return code, output.read_bytes(), capsys.readouterr().err


# --- events (and redrive and restore, which read through the same reader) -----------------------


class TestEvents:
    def test_events_are_byte_identical_to_reading_the_files_one_after_another(
        self,
        store: ArchiveStore,
        archive_uri: str,
        changes: list[dict[str, Any]],
        tmp_path: Path,
        capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        # Given the archive of many small files, and what reading them in turn gives
        expected = b"".join(lines for _, lines in file_after_file(store))
        assert expected.count(b"\n") == len(changes)
        # When `replayer events` reads it, files fetched ahead
        code, output, _ = events_command(archive_uri, tmp_path / "events.jsonl", capsys)
        # Then it writes the same bytes
        assert code == 0
        assert output == expected
        # and so it does with one request at a time, and as records (iter_events)
        monkeypatch.setattr(fetch, "IN_FLIGHT", 1)
        _, serial, _ = events_command(archive_uri, tmp_path / "serial.jsonl", capsys)
        assert serial == expected
        monkeypatch.setattr(fetch, "IN_FLIGHT", DEFAULT_IN_FLIGHT)
        records = []
        for _, files in list_partitions(store, TABLE):
            tables = [read_archive_file(pa.BufferReader(store.get(o.key)), o.key) for o in files]
            records.extend(stream_records(order_rows(pa.concat_tables(tables))))
        assert list(iter_events(store, TABLE)) == records

    def test_a_file_gone_in_the_middle_stops_the_read_after_every_partition_before_it(
        self, store: ArchiveStore
    ) -> None:
        # Given a file of a partition in the middle that goes away once it has been listed
        parts = file_after_file(store)
        index, files = middle_partition(store)
        victim = files[len(files) // 2].key
        vanishing = Vanishing(store, victim)
        # When the table is read
        read: list[bytes] = []
        with pytest.raises(FileNotFoundError) as raised:
            for texts in iter_record_texts(vanishing, TABLE, suffix="\n"):
                read.append("".join(texts.to_pylist()).encode())
        # Then the error names the file, as before, and comes after every record of the
        # partitions before it, in their order, and none of its partition
        assert victim in str(raised.value)
        assert b"".join(read) == b"".join(lines for _, lines in parts[:index])

    def test_a_damaged_file_in_the_middle_exits_1_naming_it_after_the_records_before_it(
        self,
        store: ArchiveStore,
        archive_uri: str,
        tmp_path: Path,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        # Given a file in the middle that is no Parquet file any more
        parts = file_after_file(store)
        index, files = middle_partition(store)
        victim = files[-1].key
        open_store(archive_uri, s3="boto3").put(victim, b"PAR1 not a parquet file at all PAR1")
        # When `replayer events` reads the table
        code, output, messages = events_command(archive_uri, tmp_path / "events.jsonl", capsys)
        # Then it stops with exit 1 and one line naming the file, after writing every record
        # of the partitions before it
        assert code == 1
        assert f"{store.uri}/{victim}: not a readable Parquet file" in messages
        assert "Traceback" not in messages
        assert output == b"".join(lines for _, lines in parts[:index])


class TestRedriveAndRestore:
    def test_the_walk_gets_every_partition_in_order_and_reads_none_the_checkpoint_finished(
        self, store: ArchiveStore
    ) -> None:
        # Given a checkpoint that says the first three partitions are done (a resumed run)
        partitions = list_partitions(store, TABLE)
        checkpoint = Checkpoint.open(None, {"test": "walk"})
        checkpoint.finish_partition(partitions[2][0].hour_start_us)
        counting = Counting(store, hold=1)
        seen: list[tuple[Any, list[str]]] = []
        # When redrive's and restore's walk goes over the table, in one lane
        walk(
            Selection(counting, TABLE, EventFilter(), tuple(REPLAY_COLUMNS)),
            checkpoint,
            lambda table: table.column("event_id").to_pylist(),
            lambda partition, lane, items, stop: seen.append(
                (partition, [item.value for item in items])
            ),
            lanes=1,
        )
        # Then it gets each later partition's changes in archive order, and no file of the
        # finished partitions was read (nor fetched ahead)
        expected = []
        for partition, files in partitions[3:]:
            tables = [read_archive_file(pa.BufferReader(store.get(o.key)), o.key) for o in files]
            expected.append(
                (partition, order_rows(pa.concat_tables(tables))["event_id"].to_pylist())
            )
        assert seen == expected
        assert counting.reads == sum(len(files) for _, files in partitions[3:])


# --- ls -----------------------------------------------------------------------------------------


class TestLs:
    def test_ls_counts_what_reading_each_footer_in_turn_counts(self, store: ArchiveStore) -> None:
        summary = summarize_table(store, TABLE)

        assert (summary.rows, summary.files, summary.bytes) == footers_one_after_another(store)

    def test_a_damaged_footer_in_the_middle_is_an_error_naming_the_file(
        self, store: ArchiveStore, archive_uri: str
    ) -> None:
        _, files = middle_partition(store)
        victim = files[0].key
        open_store(archive_uri, s3="boto3").put(victim, b"not parquet")

        with pytest.raises(FormatError, match=re.escape(f"{victim}: not a readable Parquet file")):
            summarize_table(store, TABLE)


def test_ls_reads_a_small_file_with_one_request_and_a_large_one_from_its_end(
    seaweed: SeaweedS3,
    s3_archive: str,
    changes: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given the archive of small files on SeaweedFS, behind a proxy that counts requests
    write_small_files(open_store(s3_archive, s3="boto3"), changes)
    expected = footers_one_after_another(open_store(s3_archive))
    with DelayProxy(seaweed.endpoint, delay=0.0) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", proxy.endpoint)
        store = open_store(s3_archive)
        files = sum(len(objects) for _, objects in list_partitions(store, TABLE))
        # When ls reads every footer
        proxy.reset_counts()
        summary = summarize_table(store, TABLE)
        listing = proxy.requests
        # Then it counts what reading each footer in turn counts, one GET a file past listing
        assert (summary.rows, summary.files, summary.bytes) == expected
        proxy.reset_counts()
        list_partitions(store, TABLE)
        assert listing - proxy.requests == files
        # and with every file counted as large, each is opened and read from its end instead
        monkeypatch.setattr(reader, "WHOLE_FILE_FOOTER_BYTES", 0)
        proxy.reset_counts()
        summary = summarize_table(store, TABLE)
        assert (summary.rows, summary.files, summary.bytes) == expected
        assert proxy.requests - listing >= files


# --- verify -------------------------------------------------------------------------------------


class TestVerify:
    def test_verify_names_a_missing_and_a_damaged_file_and_checks_every_other(
        self, store: ArchiveStore, archive_uri: str, changes: list[dict[str, Any]]
    ) -> None:
        # Given a file that goes away once listed, and a damaged one, in different partitions
        partitions = list_partitions(store, TABLE)
        gone = partitions[1][1][0]
        damaged = partitions[-2][1][-1]
        rows_of = {
            o.key: pq.read_metadata(pa.BufferReader(store.get(o.key))).num_rows
            for o in (gone, damaged)
        }
        open_store(archive_uri, s3="boto3").put(damaged.key, b"not parquet")
        total = sum(len(files) for _, files in partitions)
        # When the archive is verified
        report = verify(Vanishing(store, gone.key))
        # Then both are reported by name, as before, and every other file is checked
        (check,) = report.tables
        assert sorted(check.problems) == sorted(
            [
                f"unreadable: {store.uri}/{gone.key}: not a readable Parquet file "
                f"({_missing_message(store, gone.key)})",
                f"unreadable: {store.uri}/{damaged.key}: not a readable Parquet file "
                f"({_parquet_message(b'not parquet')})",
            ]
        )
        assert check.files == total - 2
        assert check.rows == len(changes) - sum(rows_of.values())


def _missing_message(store: ArchiveStore, key: str) -> str:
    try:
        store.get(key)
    except FileNotFoundError as err:
        return str(err)
    raise AssertionError(f"{key} is still there")


def _parquet_message(data: bytes) -> str:
    try:
        pq.ParquetFile(pa.BufferReader(data))
    except pa.ArrowInvalid as err:
        return str(err)
    raise AssertionError("a Parquet file")


# --- compact ------------------------------------------------------------------------------------


def snapshot(store: ArchiveStore) -> dict[str, bytes]:
    return {obj.key: store.get(obj.key) for obj in store.list("")}


class TestCompact:
    def test_compaction_writes_what_a_one_request_at_a_time_compaction_writes(
        self,
        store: ArchiveStore,
        archive_uri: str,
        changes: list[dict[str, Any]],
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        # Given the same small files in a folder, compacted with one request at a time
        expected = LocalStore(tmp_path / "expected")
        write_small_files(expected, changes)
        monkeypatch.setattr(fetch, "IN_FLIGHT", 1)
        assert not compact(expected, target_bytes=TARGET).errors
        monkeypatch.setattr(fetch, "IN_FLIGHT", DEFAULT_IN_FLIGHT)
        # When the archive is compacted, files fetched ahead
        report = compact(open_store(archive_uri, s3="boto3"), target_bytes=TARGET)
        # Then it holds the same files, byte for byte
        assert not report.errors
        assert report.partitions_compacted == len(list_partitions(expected, TABLE))
        assert snapshot(store) == snapshot(expected)

    def test_a_damaged_file_leaves_its_partition_as_it_is_and_the_others_are_compacted(
        self, store: ArchiveStore, archive_uri: str
    ) -> None:
        # Given a damaged file in a partition in the middle
        index, files = middle_partition(store)
        victim = files[1].key
        writer = open_store(archive_uri, s3="boto3")
        writer.put(victim, b"not parquet")
        before = {o.key: writer.get(o.key) for o in files}
        partitions = len(list_partitions(store, TABLE))
        # When the archive is compacted
        report = compact(writer, target_bytes=TARGET)
        # Then that partition is reported, naming the file, and left as it is
        prefix = victim.rsplit("/", 1)[0] + "/"
        assert report.errors == [
            f"{prefix}: {writer.uri}/{victim}: not a readable Parquet file "
            f"({_parquet_message(b'not parquet')})"
        ]
        assert {o.key: writer.get(o.key) for o in writer.list(prefix)} == before
        # and every other partition is compacted into one file
        assert report.partitions_compacted == partitions - 1
        after = list_partitions(store, TABLE)
        assert [len(f) for i, (_, f) in enumerate(after) if i != index] == [1] * (partitions - 1)

    def test_a_compaction_whose_files_another_removed_reports_each_partition(
        self, store: ArchiveStore, archive_uri: str, changes: list[dict[str, Any]], tmp_path: Path
    ) -> None:
        # Given a second compaction that runs to its end once the first one has listed the
        # partitions, before the first partition's turn
        writer = open_store(archive_uri, s3="boto3")
        raced: list[Any] = []

        def rival(_: Any) -> None:
            if not raced:
                raced.append(compact(writer, target_bytes=TARGET))

        # When the first one goes on with the files it listed
        report = compact(writer, target_bytes=TARGET, on_partition=rival)
        # Then it reports every partition whose files went away, naming a file, and changes
        # nothing: the archive is what one compaction leaves
        assert not raced[0].errors
        partitions = list_partitions(store, TABLE)
        assert len(report.errors) == len(partitions)
        for error, (partition, _) in zip(report.errors, partitions, strict=True):
            assert error.startswith(f"{partition.prefix}: ") and "another compaction" in error
        expected = LocalStore(tmp_path / "expected")
        write_small_files(expected, changes)
        compact(expected, target_bytes=TARGET)
        assert snapshot(store) == snapshot(expected)


# --- the bound on requests in flight ------------------------------------------------------------


READERS: dict[str, Callable[[ArchiveStore], Any]] = {
    "events": lambda store: sum(len(t) for t in iter_record_texts(store, TABLE)),
    "ls": lambda store: summarize_table(store, TABLE),
    "verify": verify,
    "compact": lambda store: compact(store, target_bytes=TARGET),
}


@pytest.mark.parametrize("reader", sorted(READERS))
@pytest.mark.parametrize("in_flight", [1, 4])
def test_every_reader_keeps_as_many_reads_going_as_the_setting_and_never_more(
    reader: str,
    in_flight: int,
    local_archive: str,
    changes: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given the archive of many small files, and the setting
    inner = LocalStore(local_archive)
    write_small_files(inner, changes)
    files = len(list(inner.list(f"table_name={TABLE}/")))
    monkeypatch.setattr(fetch, "IN_FLIGHT", in_flight)
    counting = Counting(inner, hold=in_flight)
    # When a reader reads the table
    READERS[reader](counting)
    # Then every file was read once, `in_flight` at a time at most, and that many at once
    assert counting.reads == files
    assert counting.peak == in_flight


@pytest.mark.parametrize("adapter", ["fsspec-s3", "boto3-s3"])
def test_s3_stores_keep_more_requests_in_flight_than_botocores_pool_and_no_more_than_the_setting(
    adapter: str,
    seaweed: SeaweedS3,
    s3_archive: str,
    changes: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given the archive on SeaweedFS, and what it replays to when read directly
    direct = open_store(s3_archive)
    write_small_files(open_store(s3_archive, s3="boto3"), changes)
    expected = b"".join(lines for _, lines in file_after_file(direct))
    # and a proxy in front of SeaweedFS that holds every request for 0.2 s
    with DelayProxy(seaweed.endpoint, delay=0.2) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", proxy.endpoint)
        store = open_store(s3_archive) if adapter == "fsspec-s3" else S3Store(s3_archive)
        assert os.environ["AWS_ENDPOINT_URL_S3"] == proxy.endpoint
        # When the table is read through it
        read = io.BytesIO()
        for texts in iter_record_texts(store, TABLE, suffix="\n"):
            read.write("".join(texts.to_pylist()).encode())
        # Then it reads the same, with more requests in flight at once than botocore's default
        # pool of 10 connections allows, and never more than the setting
        assert read.getvalue() == expected
        assert proxy.requests > len(list(direct.list(f"table_name={TABLE}/")))
        assert 10 < proxy.max_in_flight <= fetch.IN_FLIGHT
