"""The command lines end to end: ``archiver ingest`` and ``replayer ls|events``.

Most runs are in-process (``main(argv, ...)`` returns the exit status); a few
run the installed commands as real subprocesses, to see what a user sees on
stderr. Every failure case checks the exit status (0 done, 1 failed after a
summary, 2 bad usage), that the message names the file or option, and that no
traceback reaches the user.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pyarrow.parquet as pq
import pytest

from archiver import cli as archiver_cli
from archiver.archive.reader import iter_events
from archiver.archive.store import LocalStore, open_store
from archiver.write import archive_records
from devkit.traffic import TableHistory, kinesis_record
from replayer import cli as replayer_cli
from tests.strategies import stream_arn

EVENTS = Path(__file__).resolve().parents[1] / "events"
BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Run:
    code: int
    stdout: bytes
    messages: str  # stderr, plus log lines (which pytest captures instead of stderr in-process)


@pytest.fixture
def ingest(capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> Any:
    """Run ``archiver ingest ARGS`` in-process."""

    def run(*args: str, stdin: bytes = b"") -> Run:
        capsys.readouterr()
        caplog.clear()
        code = archiver_cli.main(["ingest", *args], stdin=io.BytesIO(stdin))
        captured = capsys.readouterr()
        return Run(code, captured.out.encode(), captured.err + caplog.text)

    return run


@pytest.fixture
def replayer(capsys: pytest.CaptureFixture[str]) -> Any:
    """Run ``replayer ARGS`` in-process."""

    def run(*args: str) -> Run:
        capsys.readouterr()
        out = io.BytesIO()
        code = replayer_cli.main(list(args), stdout=out)
        return Run(code, out.getvalue(), capsys.readouterr().err)

    return run


def changes(
    count: int, *, table: str = "orders", seed: int = 3, seconds: float = 30.0
) -> list[dict[str, Any]]:
    return TableHistory(table, seed=seed, seconds_per_change=seconds).changes(count)


def numbered_item_changes(numbers: list[str]) -> list[dict[str, Any]]:
    """An INSERT, then a MODIFY, of each item of table ``numbers`` keyed ``n`` (N)."""
    records = []
    for i, number in enumerate(numbers * 2):
        keys = {"n": {"N": number}}
        ddb: dict[str, Any] = {
            "ApproximateCreationDateTime": 1_795_000_000 + i,
            "Keys": keys,
            "NewImage": {**keys, "v": {"N": str(i)}},
        }
        if i >= len(numbers):
            ddb["OldImage"] = {**keys, "v": {"N": str(i - len(numbers))}}
        ddb.update(
            SequenceNumber=str(10**20 + i), SizeBytes=60, StreamViewType="NEW_AND_OLD_IMAGES"
        )
        records.append(
            {
                "eventID": f"event-{i}",
                "eventName": "MODIFY" if i >= len(numbers) else "INSERT",
                "eventVersion": "1.1",
                "eventSource": "aws:dynamodb",
                "awsRegion": "us-east-1",
                "dynamodb": ddb,
                "eventSourceARN": stream_arn("numbers"),
            }
        )
    return records


def replay(uri: str, table: str = "orders") -> list[dict[str, Any]]:
    return list(iter_events(open_store(uri), table))


def load_event(name: str) -> Any:
    """A recorded input from tests/events/."""
    return orjson.loads((EVENTS / f"{name}.json").read_bytes())


def lines_of(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in data.splitlines()]


def seconds_of(record: dict[str, Any]) -> int:
    return int(record["dynamodb"]["ApproximateCreationDateTime"])


def iso(seconds: int, offset_hours: int = 0) -> str:
    return datetime.fromtimestamp(seconds, timezone(timedelta(hours=offset_hours))).isoformat()


def write(path: Path, data: bytes | str) -> str:
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return str(path)


def clean(messages: str) -> None:
    assert "Traceback" not in messages


# --- archiver ingest ----------------------------------------------------------------------------


def ingest_between_good_files(
    ingest: Any, tmp_path: Path, archive: str, content: bytes
) -> tuple[list[dict[str, Any]], Any]:
    """``archiver ingest`` of a good file, ``bad.json`` holding ``content``, a good file."""
    records = changes(40)
    first = write(tmp_path / "first.json", orjson.dumps(records[:20]))
    bad = write(tmp_path / "bad.json", content)
    last = write(tmp_path / "last.json", orjson.dumps({"Records": records[20:]}))
    return records, ingest("--archive", archive, first, bad, last)


class TestIngest:
    def test_event_array_and_json_lines_files_are_archived_in_one_command(
        self, ingest: Any, tmp_path: Path, local_archive: str
    ) -> None:
        # Given a Lambda event file, a JSON array file, and JSON Lines mixing records and events
        records = changes(250)
        event = write(tmp_path / "event.json", orjson.dumps({"Records": records[:100]}))
        array = write(tmp_path / "array.json", orjson.dumps(records[100:150]))
        lines = [orjson.dumps(r) for r in records[150:180]]
        lines.append(orjson.dumps({"Records": records[180:220]}))
        lines += [orjson.dumps(r) for r in records[220:250]]
        jsonl = write(tmp_path / "changes.jsonl", b"\n".join(lines) + b"\n\n")
        # When they are ingested together
        result = ingest("--archive", local_archive, event, array, jsonl)
        # Then all of them are archived and replay in order
        assert result.code == 0, result.messages
        assert "archived 250 of 250 records" in result.messages
        assert replay(local_archive) == records
        clean(result.messages)

    def test_a_recorded_lambda_event_round_trips(self, ingest: Any, local_archive: str) -> None:
        result = ingest("--archive", local_archive, str(EVENTS / "dynamodb_event.json"))

        assert result.code == 0, result.messages
        expected = load_event("dynamodb_event")["Records"]
        assert replay(local_archive, "ExampleTableWithStream") == expected

    @pytest.mark.parametrize("files", [["-"], []], ids=["dash", "no-file"])
    def test_stdin_is_read_for_dash_or_no_file(
        self, ingest: Any, local_archive: str, files: list[str]
    ) -> None:
        records = changes(60)

        result = ingest(
            "--archive", local_archive, *files, stdin=orjson.dumps({"Records": records})
        )

        assert result.code == 0, result.messages
        assert replay(local_archive) == records

    def test_the_archive_may_come_from_the_environment(
        self, ingest: Any, local_archive: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("ARCHIVER_ARCHIVE_URI", local_archive)
        records = changes(10)

        result = ingest(write(tmp_path / "a.json", orjson.dumps(records)))

        assert result.code == 0, result.messages
        assert replay(local_archive) == records

    def test_no_archive_anywhere_is_bad_usage_naming_the_option(
        self, ingest: Any, tmp_path: Path
    ) -> None:
        result = ingest(write(tmp_path / "a.json", orjson.dumps(changes(1))))

        assert result.code == 2
        assert "--archive" in result.messages and "ARCHIVER_ARCHIVE_URI" in result.messages
        clean(result.messages)

    @pytest.mark.parametrize("table", ["../x", "ab", "a/b", "x" * 256])
    def test_an_invalid_default_table_is_bad_usage_naming_the_option(
        self, ingest: Any, tmp_path: Path, local_archive: str, table: str
    ) -> None:
        source = write(tmp_path / "a.json", orjson.dumps(changes(3)))

        result = ingest("--archive", local_archive, "--table", table, source)

        assert result.code == 2
        assert "archiver: error: --table (or ARCHIVER_DEFAULT_TABLE)" in result.messages
        assert "invalid table name" in result.messages
        assert not Path(local_archive).exists()
        clean(result.messages)

    def test_an_invalid_default_table_in_the_environment_is_bad_usage(
        self, ingest: Any, tmp_path: Path, local_archive: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("ARCHIVER_DEFAULT_TABLE", "../x")

        result = ingest("--archive", local_archive, write(tmp_path / "a.json", b"[]"))

        assert result.code == 2 and "ARCHIVER_DEFAULT_TABLE" in result.messages

    def test_warnings_about_bad_values_hold_no_map_keys_and_no_values(
        self, ingest: Any, tmp_path: Path, local_archive: str
    ) -> None:
        # Given records whose bad values sit in maps keyed by e-mail addresses
        secret = "alice@example.com"
        good = changes(1)[0]
        images = [
            {"by_email": {"M": {secret: {"N": f"{secret}-not-a-number"}}}},
            {"by_email": {"M": {secret: {secret: "x", "S": "y"}}}},
            {"by_email": {"M": {secret: {secret: "x"}}}},
            {"tags": {"L": [{"M": {secret: {"N": "12abc"}}}]}},
        ]
        records = []
        for i, image in enumerate(images):
            record = orjson.loads(orjson.dumps(good))
            record["eventID"] = f"bad-{i}"
            record["dynamodb"]["NewImage"] = {**record["dynamodb"]["Keys"], **image}
            records.append(record)
        # When they are ingested with the full image check (the default)
        result = ingest(
            "--archive", local_archive, write(tmp_path / "bad.json", orjson.dumps(records))
        )
        # Then each is dead-lettered with a warning naming the image, the top-level attribute
        # and the depth, but neither the map key nor the value
        assert result.code == 1
        warnings = [line for line in result.messages.splitlines() if "dead-lettered record" in line]
        assert len(warnings) == len(images)
        assert secret not in result.messages
        assert all("NewImage.by_email.*" in line for line in warnings[:3])
        assert "NewImage.tags[0].*" in warnings[3]
        clean(result.messages)

    def test_a_missing_file_exits_2_naming_it_and_the_others_are_archived(
        self, ingest: Any, tmp_path: Path, local_archive: str
    ) -> None:
        records = changes(30)
        good = write(tmp_path / "good.json", orjson.dumps(records))
        missing = str(tmp_path / "no-such-file.json")

        result = ingest("--archive", local_archive, missing, good)

        assert result.code == 2
        assert f"{missing}: no such file" in result.messages
        assert replay(local_archive) == records
        clean(result.messages)

    @pytest.mark.parametrize(
        ("content", "where", "problem"),
        [
            (b'{"foo": 1, "bar": [2]}', "bad.json", "neither a Lambda event nor a stream record"),
            (b'{"Records": {"not": "a list"}}', "bad.json", "'Records' is not a list"),
            (b'"just a string"', "bad.json", "got str"),
        ],
        ids=["foreign-object", "records-not-a-list", "scalar"],
    )
    def test_a_malformed_file_exits_1_naming_it_and_the_good_files_are_archived(
        self,
        ingest: Any,
        tmp_path: Path,
        local_archive: str,
        content: bytes,
        where: str,
        problem: str,
    ) -> None:
        # Given a malformed file between two good ones, When they are ingested in one command
        records, result = ingest_between_good_files(ingest, tmp_path, local_archive, content)
        # Then the command fails after archiving the good files, and names the bad one
        assert result.code == 1
        assert f"{tmp_path / where}: " in result.messages
        assert problem in result.messages
        assert "1 file(s) skipped" in result.messages
        assert replay(local_archive) == records
        clean(result.messages)

    @pytest.mark.parametrize(
        ("content", "line"),
        [
            (b"this is not JSON\n", 1),
            (b'{"eventName": "INSERT", "dynamodb": {}}\n{"Records": []}\n{oops\n', 3),
        ],
        ids=["not-json", "bad-json-line"],
    )
    def test_a_line_that_is_not_json_is_dead_lettered_with_its_file_and_line(
        self, ingest: Any, tmp_path: Path, local_archive: str, content: bytes, line: int
    ) -> None:
        # Given a file with a line that is not JSON between two good files, When they are
        # ingested in one command
        records, result = ingest_between_good_files(ingest, tmp_path, local_archive, content)
        # Then the good records are archived, the line is dead-lettered naming file and line,
        # and the command fails with the count
        assert result.code == 1
        assert f"origin={tmp_path / 'bad.json'}:{line}" in result.messages
        assert "not valid JSON" in result.messages
        assert "dead-lettered under _errors/" in result.messages
        assert replay(local_archive) == records
        letters = [
            orjson.loads(text)
            for path in Path(local_archive, "_errors").rglob("*.jsonl")
            for text in path.read_bytes().splitlines()
        ]
        assert f"{tmp_path / 'bad.json'}:{line}" in [letter["origin"] for letter in letters]
        clean(result.messages)

    def test_dead_lettered_records_exit_1_with_the_count_in_the_summary(
        self, ingest: Any, tmp_path: Path, local_archive: str
    ) -> None:
        records = changes(12)
        poison = load_event("poison_records")["Records"]
        mixed = write(tmp_path / "mixed.json", orjson.dumps(records[:6] + poison + records[6:]))

        result = ingest("--archive", local_archive, mixed)

        assert result.code == 1
        assert "archived 12 of 17 records" in result.messages
        assert "5 dead-lettered under _errors/" in result.messages
        assert replay(local_archive) == records
        assert list(LocalStore(local_archive).list("_errors/"))
        clean(result.messages)

    def test_an_unreachable_store_exits_1_saying_what_was_not_written(
        self,
        ingest: Any,
        tmp_path: Path,
        s3_archive: str,
        closed_endpoint: str,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", closed_endpoint)
        monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
        source = write(tmp_path / "a.json", orjson.dumps(changes(25)))

        result = ingest("--archive", s3_archive, source)

        assert result.code == 1
        assert "archived 0 of 25 records" in result.messages
        assert "25 NOT written" in result.messages
        clean(result.messages)

    def test_ingest_to_s3_and_replay_from_s3(
        self, ingest: Any, replayer: Any, tmp_path: Path, s3_archive: str
    ) -> None:
        records = changes(200)
        source = write(tmp_path / "a.json", orjson.dumps({"Records": records}))

        assert ingest("--archive", s3_archive, source).code == 0
        result = replayer("events", "--archive", s3_archive, "--table", "orders")

        assert result.code == 0, result.messages
        assert lines_of(result.stdout) == records


# --- replayer -----------------------------------------------------------------------------------

ORDERS = 600  # 30 s apart on average: about five hours, several hour partitions


@pytest.fixture(scope="module")
def history() -> dict[str, list[dict[str, Any]]]:
    return {
        "orders": changes(ORDERS, seed=21),
        "customers": changes(90, table="customers", seed=22),
    }


@pytest.fixture(scope="module")
def archive(
    tmp_path_factory: pytest.TempPathFactory, history: dict[str, list[dict[str, Any]]]
) -> str:
    """A local archive of two tables, archived in batches of 50 as Lambda would (read only)."""
    root = tmp_path_factory.mktemp("replayer") / "archive"
    store = LocalStore(root)
    for records in history.values():
        for start in range(0, len(records), 50):
            assert archive_records(records[start : start + 50], store).ok
    return str(root)


@pytest.fixture
def own_archive(archive: str, tmp_path: Path) -> str:
    """A copy of the archive that a test may damage."""
    return str(shutil.copytree(archive, tmp_path / "archive"))


def data_keys(uri: str, table: str = "orders") -> list[str]:
    return [o.key for o in LocalStore(uri).list(f"table_name={table}/")]


class TestReplayerLs:
    def _expected(self, uri: str, records: list[dict[str, Any]], table: str) -> dict[str, Any]:
        objects = list(LocalStore(uri).list(f"table_name={table}/"))
        times = [seconds_of(r) for r in records]
        stamp = "%Y-%m-%dT%H:%M:%SZ"
        return {
            "table": table,
            "records": len(records),
            "files": len(objects),
            "bytes": sum(o.size for o in objects),
            "first_change": datetime.fromtimestamp(min(times), UTC).strftime(stamp),
            "last_change": datetime.fromtimestamp(max(times), UTC).strftime(stamp),
        }

    def test_ls_lists_tables_with_counts_files_bytes_and_time_range(
        self, replayer: Any, archive: str, history: dict[str, list[dict[str, Any]]]
    ) -> None:
        result = replayer("ls", "--archive", archive)

        assert result.code == 0, result.messages
        header, *rows = result.stdout.decode().splitlines()
        assert header.split()[:4] == ["table", "records", "files", "bytes"]
        parsed = [row.split() for row in rows]
        assert [row[0] for row in parsed] == ["customers", "orders"]
        for row in parsed:
            expected = self._expected(archive, history[row[0]], row[0])
            assert row[1:] == [
                str(expected["records"]),
                str(expected["files"]),
                f"{expected['bytes']:,}",
                expected["first_change"],
                expected["last_change"],
            ]

    def test_ls_json_gives_one_object_per_table(
        self, replayer: Any, archive: str, history: dict[str, list[dict[str, Any]]]
    ) -> None:
        result = replayer("ls", "--archive", archive, "--json")

        assert result.code == 0, result.messages
        assert lines_of(result.stdout) == [
            self._expected(archive, history["customers"], "customers"),
            self._expected(archive, history["orders"], "orders"),
        ]

    def test_a_stray_table_folder_is_skipped_with_a_warning(
        self, replayer: Any, own_archive: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        # Given, beside the archive's tables, a folder whose name is no table name
        Path(own_archive, "table_name=...", "dt=2026-11-18").mkdir(parents=True)
        Path(own_archive, "table_name=ab").mkdir()
        # When the archive is listed
        result = replayer("ls", "--archive", own_archive, "--json")
        # Then the tables are listed and each stray folder is named in a warning
        assert result.code == 0, result.messages
        assert [t["table"] for t in lines_of(result.stdout)] == ["customers", "orders"]
        assert "table_name=...: not a valid table name" in caplog.text
        assert "table_name=ab: not a valid table name" in caplog.text

    def test_ls_of_an_empty_archive_says_so(self, replayer: Any, tmp_path: Path) -> None:
        result = replayer("ls", "--archive", str(tmp_path), "--json")

        assert result.code == 0
        assert result.stdout == b""
        assert f"no tables in {tmp_path}" in result.messages


class TestReplayerEvents:
    def test_events_prints_every_record_in_order(
        self, replayer: Any, archive: str, history: dict[str, list[dict[str, Any]]]
    ) -> None:
        result = replayer("events", "--archive", archive, "--table", "orders")

        assert result.code == 0, result.messages
        assert lines_of(result.stdout) == history["orders"]
        assert f"{ORDERS} events from table orders" in result.messages

    def test_the_archive_may_come_from_the_environment(
        self,
        replayer: Any,
        archive: str,
        history: dict[str, list[dict[str, Any]]],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        monkeypatch.setenv("REPLAYER_ARCHIVE_URI", archive)

        result = replayer("events", "--table", "customers")

        assert result.code == 0, result.messages
        assert lines_of(result.stdout) == history["customers"]

    @pytest.mark.parametrize("form", ["iso", "iso-offset", "epoch"])
    def test_since_and_until_include_records_exactly_at_both_ends(
        self, replayer: Any, archive: str, history: dict[str, list[dict[str, Any]]], form: str
    ) -> None:
        # Given a window whose ends are the change times of two records, hours apart
        records = history["orders"]
        since, until = seconds_of(records[150]), seconds_of(records[420])
        assert until - since > 2 * 3600
        text = {
            "iso": lambda s: iso(s).replace("+00:00", "Z"),
            "iso-offset": lambda s: iso(s, offset_hours=-5),
            "epoch": str,
        }[form]
        # When the events of that window are asked for
        result = replayer(
            "events",
            "--archive",
            archive,
            "--table",
            "orders",
            "--since",
            text(since),
            "--until",
            text(until),
        )
        # Then the window holds both boundary records and nothing outside it
        assert result.code == 0, result.messages
        expected = [r for r in records if since <= seconds_of(r) <= until]
        assert lines_of(result.stdout) == expected
        assert seconds_of(expected[0]) == since and seconds_of(expected[-1]) == until

    def test_a_window_one_second_inside_the_boundaries_excludes_them(
        self, replayer: Any, archive: str, history: dict[str, list[dict[str, Any]]]
    ) -> None:
        records = history["orders"]
        since, until = seconds_of(records[150]), seconds_of(records[420])

        result = replayer(
            "events",
            "--archive",
            archive,
            "--table",
            "orders",
            "--since",
            str(since + 1),
            "--until",
            f"{until - 0.5}",
        )

        assert result.code == 0, result.messages
        replayed = lines_of(result.stdout)
        assert replayed == [r for r in records if since + 1 <= seconds_of(r) <= until - 1]
        assert records[150] not in replayed and records[420] not in replayed

    def test_since_alone_and_until_alone_are_open_ended(
        self, replayer: Any, archive: str, history: dict[str, list[dict[str, Any]]]
    ) -> None:
        records = history["orders"]
        moment = seconds_of(records[300])

        later = replayer(
            "events", "--archive", archive, "--table", "orders", "--since", str(moment)
        )
        earlier = replayer(
            "events", "--archive", archive, "--table", "orders", "--until", str(moment)
        )

        assert lines_of(later.stdout) == [r for r in records if seconds_of(r) >= moment]
        assert lines_of(earlier.stdout) == [r for r in records if seconds_of(r) <= moment]

    @pytest.mark.parametrize(
        ("option", "names"), [("REMOVE", {"REMOVE"}), ("insert, modify", {"INSERT", "MODIFY"})]
    )
    def test_event_name_selects_event_types(
        self,
        replayer: Any,
        archive: str,
        history: dict[str, list[dict[str, Any]]],
        option: str,
        names: set[str],
    ) -> None:
        result = replayer(
            "events", "--archive", archive, "--table", "orders", "--event-name", option
        )

        assert result.code == 0, result.messages
        expected = [r for r in history["orders"] if r["eventName"] in names]
        assert expected and lines_of(result.stdout) == expected

    @pytest.mark.parametrize("key", ['{"pk": "order#00042", "sk": 0}', '{"pk": "order#00042"}'])
    def test_key_selects_one_item_given_as_plain_json(
        self, replayer: Any, archive: str, history: dict[str, list[dict[str, Any]]], key: str
    ) -> None:
        result = replayer("events", "--archive", archive, "--table", "orders", "--key", key)

        assert result.code == 0, result.messages
        wanted = {"pk": {"S": "order#00042"}, "sk": {"N": "0"}}
        expected = [r for r in history["orders"] if r["dynamodb"]["Keys"] == wanted]
        assert len(expected) >= 2
        assert lines_of(result.stdout) == expected

    def test_events_are_the_json_text_that_arrived_line_for_line(
        self, replayer: Any, archive: str, history: dict[str, list[dict[str, Any]]]
    ) -> None:
        # Given records that arrived as orjson's JSON text; When replayed
        result = replayer("events", "--archive", archive, "--table", "orders")

        # Then stdout holds that text, byte for byte, one record per line
        assert result.code == 0, result.messages
        assert result.stdout == b"".join(orjson.dumps(r) + b"\n" for r in history["orders"])

    def test_a_38_digit_key_selects_exactly_its_item(
        self, replayer: Any, local_archive: str
    ) -> None:
        # Given 13 items whose numeric keys differ only past a float's 17 digits, 2 changes each
        big = 10000000000000000000000000000000000003
        records = numbered_item_changes([str(big + d) for d in range(-6, 7)])
        assert archive_records(records, LocalStore(local_archive)).ok

        # When one of them is asked for by its key
        result = replayer(
            "events", "--archive", local_archive, "--table", "numbers", "--key", f'{{"n": {big}}}'
        )

        # Then exactly that item's changes come out
        assert result.code == 0, result.messages
        expected = [r for r in records if r["dynamodb"]["Keys"] == {"n": {"N": str(big)}}]
        assert len(expected) == 2
        assert lines_of(result.stdout) == expected
        assert "2 events from table numbers" in result.messages

    def test_the_key_filter_works_with_the_window_and_event_names(
        self, replayer: Any, archive: str, history: dict[str, list[dict[str, Any]]]
    ) -> None:
        records = history["orders"]
        since, until = seconds_of(records[100]), seconds_of(records[500])
        wanted = {"pk": {"S": "order#00042"}, "sk": {"N": "0"}}

        result = replayer(
            "events",
            "--archive",
            archive,
            "--table",
            "orders",
            "--key",
            '{"sk": 0.0, "pk": "order#00042"}',
            "--since",
            str(since),
            "--until",
            str(until),
            "--event-name",
            "MODIFY",
        )

        assert result.code == 0, result.messages
        expected = [
            r
            for r in records
            if r["dynamodb"]["Keys"] == wanted
            and since <= seconds_of(r) <= until
            and r["eventName"] == "MODIFY"
        ]
        assert expected and lines_of(result.stdout) == expected

    def test_kinesis_records_come_back_with_the_data_that_arrived(
        self, replayer: Any, local_archive: str
    ) -> None:
        # Given DynamoDB changes delivered through Kinesis, archived
        raws = [kinesis_record(r, i) for i, r in enumerate(changes(60, seed=31))]
        assert archive_records(raws, LocalStore(local_archive)).ok

        # When replayed
        result = replayer("events", "--archive", local_archive, "--table", "orders")

        # Then each line is the Kinesis record that arrived, its base64 data byte for byte
        assert result.code == 0, result.messages
        assert result.stdout == b"".join(orjson.dumps(r) + b"\n" for r in raws)

    def test_a_key_value_of_another_type_matches_nothing(self, replayer: Any, archive: str) -> None:
        result = replayer(
            "events",
            "--archive",
            archive,
            "--table",
            "orders",
            "--key",
            '{"pk": "order#00042", "sk": "0"}',
        )

        assert result.code == 0
        assert result.stdout == b""

    def test_output_writes_to_a_file_instead_of_stdout(
        self, replayer: Any, archive: str, history: dict[str, list[dict[str, Any]]], tmp_path: Path
    ) -> None:
        target = tmp_path / "out.jsonl"

        result = replayer(
            "events", "--archive", archive, "--table", "customers", "--output", str(target)
        )

        assert result.code == 0, result.messages
        assert result.stdout == b""
        assert lines_of(target.read_bytes()) == history["customers"]

    @pytest.mark.parametrize(
        ("args", "option"),
        [
            (["--since", "yesterday"], "--since"),
            (["--until", "2026-13-45"], "--until"),
            (["--since", "1795010000", "--until", "1795000000"], "--since"),
            (["--since", "99999999999999"], "--since"),  # the year 3 million
            (["--until", "-99999999999999"], "--until"),
            (["--until", "10000-01-01"], "--until"),
            (["--event-name", "UPSERT"], "--event-name"),
            (["--event-name", ","], "--event-name"),
            (["--key", "{pk: 1}"], "--key"),
            (["--key", '["order#00042"]'], "--key"),
            (["--key", "{}"], "--key"),
            (["--key", '{"pk": true}'], "--key"),
            (["--table", "../orders"], "--table"),
            (["--table", "ab"], "--table"),
            (["--output", "/nonexistent-dir/out.jsonl"], "--output"),
        ],
        ids=lambda v: " ".join(v) if isinstance(v, list) else v,
    )
    def test_bad_arguments_exit_2_naming_the_option(
        self, replayer: Any, archive: str, args: list[str], option: str
    ) -> None:
        argv = ["events", "--archive", archive]
        if "--table" not in args:
            argv += ["--table", "orders"]

        result = replayer(*argv, *args)

        assert result.code == 2
        assert result.messages.startswith("replayer: error: ")
        assert option in result.messages
        assert result.stdout == b""
        clean(result.messages)

    @pytest.mark.parametrize("command", [["events", "--table", "orders"], ["ls"]])
    def test_no_archive_anywhere_is_bad_usage(self, replayer: Any, command: list[str]) -> None:
        result = replayer(*command)

        assert result.code == 2
        assert "--archive" in result.messages and "REPLAYER_ARCHIVE_URI" in result.messages


class TestMissingArchive:
    @pytest.mark.parametrize(
        "command", [["ls"], ["events", "--table", "orders"], ["verify"]], ids=lambda c: c[0]
    )
    def test_a_folder_that_does_not_exist_is_an_error_not_an_empty_archive(
        self, replayer: Any, tmp_path: Path, command: list[str]
    ) -> None:
        missing = tmp_path / "no" / "such" / "folder"

        result = replayer(*command, "--archive", str(missing))

        assert result.code == 2
        assert result.messages == f"replayer: error: --archive {missing}: no such folder\n"
        assert result.stdout == b"" and not missing.exists()

    @pytest.mark.parametrize(
        "command", [["ls"], ["events", "--table", "orders"], ["verify"]], ids=lambda c: c[0]
    )
    def test_a_bucket_that_does_not_exist_is_an_error_not_an_empty_archive(
        self, replayer: Any, s3_archive: str, command: list[str]
    ) -> None:
        bucket = f"no-such-bucket-{uuid.uuid4().hex[:12]}"

        missing = replayer(*command, "--archive", f"s3://{bucket}/archive")
        empty = replayer(*command, "--archive", s3_archive)  # a bucket with nothing in it yet

        assert missing.code == 2
        assert f"--archive s3://{bucket}/archive: no such bucket" in missing.messages
        assert empty.code == 0, empty.messages


class TestReplayerDamagedArchives:
    def test_a_file_of_a_newer_schema_version_stops_the_replay_naming_file_and_version(
        self, replayer: Any, own_archive: str
    ) -> None:
        # Given an archive file written by a future version of the archiver
        store = LocalStore(own_archive)
        existing = data_keys(own_archive)[3]
        with store.open(existing) as handle:
            table = pq.read_table(handle)
        metadata = dict(table.schema.metadata or {})
        metadata[b"dynamodb_archive.schema_version"] = b"2"
        future_key = existing.rsplit("/", 1)[0] + "/9_9_ffffffffffffffff.parquet"
        pq.write_table(table.replace_schema_metadata(metadata), Path(own_archive, future_key))
        # When the table is replayed or listed
        for command in (["events", "--table", "orders"], ["ls"]):
            result = replayer(*command, "--archive", own_archive)
            # Then the replayer stops, naming the file and the version it cannot read
            assert result.code == 1, command
            assert future_key in result.messages
            assert "schema version 2" in result.messages
            clean(result.messages)

    def test_a_corrupt_file_outside_the_window_is_never_opened(
        self, replayer: Any, own_archive: str, history: dict[str, list[dict[str, Any]]]
    ) -> None:
        # Given a corrupt Parquet file in the first hour of the table
        keys = data_keys(own_archive)
        first_hour = keys[0].rsplit("/", 1)[0]
        corrupt_key = f"{first_hour}/1_1_0000000000000000.parquet"
        Path(own_archive, corrupt_key).write_bytes(b"PAR1 this is not a parquet file PAR1")
        # When the events of a later hour are asked for
        later_hour = next(k for k in keys if not k.startswith(first_hour + "/")).rsplit("/", 1)[0]
        day, hour = later_hour.split("/")[1][3:], int(later_hour.split("/")[2][5:])
        start = int(datetime.fromisoformat(f"{day}T{hour:02d}:00:00+00:00").timestamp())
        windowed = replayer(
            "events",
            "--archive",
            own_archive,
            "--table",
            "orders",
            "--since",
            str(start),
            "--until",
            str(start + 3599),
        )
        # Then the corrupt file's partition is pruned and the replay succeeds
        assert windowed.code == 0, windowed.messages
        expected = [r for r in history["orders"] if start <= seconds_of(r) < start + 3600]
        assert expected and lines_of(windowed.stdout) == expected
        # while a replay without the window, or a listing, fails naming the file
        for command in (["events", "--table", "orders"], ["ls"]):
            result = replayer(*command, "--archive", own_archive)
            assert result.code == 1, command
            assert corrupt_key in result.messages
            assert "not a readable Parquet file" in result.messages
            clean(result.messages)

    def test_a_foreign_parquet_file_is_named(self, replayer: Any, own_archive: str) -> None:
        first_hour = data_keys(own_archive)[0].rsplit("/", 1)[0]
        foreign_key = f"{first_hour}/2_2_0000000000000000.parquet"
        with LocalStore(own_archive).open(data_keys(own_archive)[0]) as handle:
            table = pq.read_table(handle).replace_schema_metadata(None)
        pq.write_table(table, Path(own_archive, foreign_key))

        result = replayer("events", "--archive", own_archive, "--table", "orders")

        assert result.code == 1
        assert foreign_key in result.messages and "not an archive file" in result.messages


# --- the installed commands, as a user runs them -------------------------------------------------


def run_command(args: list[str], stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        args,
        input=stdin,
        capture_output=True,
        cwd=ROOT,
        env=dict(os.environ),
        timeout=120,
        check=False,
    )


def run_with_stdout_closed(argv: list[str]) -> subprocess.CompletedProcess[bytes]:
    """``argv`` started as a shell's ``>&-`` starts it: no stdout at all."""
    return subprocess.run(
        argv,
        stderr=subprocess.PIPE,
        preexec_fn=lambda: os.close(1),
        cwd=ROOT,
        timeout=120,
        check=False,
    )


class TestInstalledCommands:
    def test_archiver_ingest_from_a_pipe_and_replayer_events_to_a_pipe(
        self, tmp_path: Path, local_archive: str
    ) -> None:
        # Given records piped into the installed `archiver ingest -`
        records = changes(80)
        ingested = run_command(
            [str(BIN / "archiver"), "ingest", "--archive", local_archive, "-"],
            stdin=orjson.dumps({"Records": records}),
        )
        assert ingested.returncode == 0, ingested.stderr
        assert b"archived 80 of 80 records" in ingested.stderr
        # When `python -m replayer events` prints them
        replayed = run_command(
            [
                sys.executable,
                "-m",
                "replayer",
                "events",
                "--archive",
                local_archive,
                "--table",
                "orders",
            ]
        )
        # Then stdout holds exactly the records, one per line, and stderr only the summary
        assert replayed.returncode == 0, replayed.stderr
        assert lines_of(replayed.stdout) == records
        assert replayed.stderr.decode().strip() == "80 events from table orders"

    def test_replayer_events_into_a_pipe_closed_early_ends_quietly(
        self, archive: str, history: dict[str, list[dict[str, Any]]]
    ) -> None:
        # Given `replayer events` writing into a pipe whose reader stops after 50 KB (`| head`)
        command = [sys.executable, "-m", "replayer", "events", "--archive", archive]
        with subprocess.Popen(
            [*command, "--table", "orders"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        ) as replayed:
            assert replayed.stdout is not None and replayed.stderr is not None
            head = replayed.stdout.read(50_000)
            replayed.stdout.close()
            stderr = replayed.stderr.read().decode()
            code = replayed.wait(timeout=120)

        # Then it exits 0 without a traceback, having written the records in order until then
        assert code == 0, stderr
        assert "Traceback" not in stderr
        whole = b"".join(orjson.dumps(r) + b"\n" for r in history["orders"])
        assert len(head) == 50_000 and whole.startswith(head)

    def test_archiver_reports_bad_files_on_stderr_without_a_traceback(
        self, tmp_path: Path, local_archive: str
    ) -> None:
        good = write(tmp_path / "good.json", orjson.dumps(changes(5)))
        bad = write(tmp_path / "bad.jsonl", b'{"eventName": "INSERT"}\nnot json\n')
        missing = str(tmp_path / "missing.json")

        result = run_command(
            [str(BIN / "archiver"), "ingest", "--archive", local_archive, bad, missing, good]
        )

        stderr = result.stderr.decode()
        assert result.returncode == 2
        assert f"origin={bad}:2" in stderr and "not valid JSON" in stderr
        assert f"{missing}: no such file" in stderr
        assert "archived 5 of 7 records" in stderr  # the two lines of bad.jsonl dead-lettered
        assert "Traceback" not in stderr

    def test_replayer_reports_bad_usage_on_stderr_without_a_traceback(
        self, local_archive: str
    ) -> None:
        result = run_command(
            [
                sys.executable,
                "-m",
                "replayer",
                "events",
                "--archive",
                local_archive,
                "--table",
                "orders",
                "--since",
                "soon",
            ]
        )

        assert result.returncode == 2
        assert result.stdout == b""
        assert result.stderr.decode().startswith("replayer: error: --since")
        assert "Traceback" not in result.stderr.decode()

    @pytest.mark.parametrize(
        ("command", "code", "message"),
        [
            (
                ["events", "--table", "orders"],
                2,
                "replayer: error: stdout is closed (give --output",
            ),
            (["ls"], 2, "replayer: error: stdout is closed"),
            (["verify", "--json"], 2, "replayer: error: stdout is closed"),
            (["events", "--table", "orders", "--output", os.devnull], 0, "events from table"),
        ],
        ids=["events", "ls", "verify-json", "events-output"],
    )
    def test_a_closed_stdout_is_bad_usage_when_the_command_writes_to_it(
        self, archive: str, command: list[str], code: int, message: str
    ) -> None:
        # Given `replayer ...` started with its stdout closed (`>&-`)
        result = run_with_stdout_closed(
            [sys.executable, "-m", "replayer", *command, "--archive", archive]
        )
        # Then it says so in one line (or needs no stdout), without a traceback
        stderr = result.stderr.decode()
        assert result.returncode == code, stderr
        assert stderr.startswith(message) or message in stderr
        if code:
            assert len(stderr.strip().splitlines()) == 1
        assert "Traceback" not in stderr

    @pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
    @pytest.mark.parametrize(
        ("command", "output"),
        [
            (["events", "--table", "orders"], "stdout"),
            (["events", "--table", "orders", "--output", "/dev/full"], "/dev/full"),
            (["ls"], "stdout"),
            (["ls", "--json"], "stdout"),
        ],
        ids=["events", "events-output", "ls", "ls-json"],
    )
    def test_a_full_disk_fails_in_one_line_naming_the_output(
        self, archive: str, command: list[str], output: str
    ) -> None:
        # Given `replayer ...` writing to a device that is always full
        with open("/dev/full", "wb") as full:
            result = subprocess.run(
                [sys.executable, "-m", "replayer", *command, "--archive", archive],
                stdout=full,
                stderr=subprocess.PIPE,
                cwd=ROOT,
                timeout=120,
                check=False,
            )
        # Then it fails (exit 1) in one line naming what could not be written
        stderr = result.stderr.decode()
        assert result.returncode == 1, stderr
        assert stderr == f"replayer: error: cannot write to {output}: No space left on device\n"

    def test_archiver_ingest_of_a_closed_stdin_is_bad_usage(self, local_archive: str) -> None:
        result = subprocess.run(
            [str(BIN / "archiver"), "ingest", "--archive", local_archive, "-"],
            capture_output=True,
            preexec_fn=lambda: os.close(0),
            cwd=ROOT,
            timeout=120,
            check=False,
        )

        stderr = result.stderr.decode()
        assert result.returncode == 2, stderr
        assert "-: stdin is closed" in stderr and "archived 0 of 0 records" in stderr
        assert "Traceback" not in stderr


# --- archiver run: what fails before the stream is read ----------------------------------------

RUN_STREAM = stream_arn("orders")


class TestArchiverRun:
    @pytest.mark.parametrize(
        "content",
        [b"[1, 2]", b'"x"', b"{not json", b'{"stream_arn": "%s", "positions": [1]}'],
        ids=["list", "string", "not-json", "positions-a-list"],
    )
    def test_a_malformed_checkpoint_fails_in_one_line_naming_it(
        self, local_archive: str, capsys: pytest.CaptureFixture[str], content: bytes
    ) -> None:
        # Given a file under _checkpoints/ where the stream's checkpoint goes, that is not one
        from archiver.poller import checkpoint_key

        key = checkpoint_key(RUN_STREAM)
        path = Path(local_archive, key)
        path.parent.mkdir(parents=True)
        path.write_bytes(content.replace(b"%s", RUN_STREAM.encode()))
        # When the poller is started
        code = archiver_cli.main(["run", "--archive", local_archive, "--stream-arn", RUN_STREAM])
        # Then it stops before reading the stream, naming the file
        err = capsys.readouterr().err
        assert code == 1
        assert err.startswith(f"archiver: error: cannot use checkpoint {local_archive}/{key}: ")
        clean(err)

    def test_a_checkpoint_that_cannot_be_written_fails_before_the_stream_is_read(
        self, local_archive: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        blocker = write(tmp_path / "not-a-folder", b"")
        checkpoint = f"{blocker}/shards.json"

        code = archiver_cli.main(
            [
                "run",
                "--archive",
                local_archive,
                "--stream-arn",
                RUN_STREAM,
                "--checkpoint",
                checkpoint,
            ]
        )

        err = capsys.readouterr().err
        assert code == 1
        assert (
            err
            == f"archiver: error: --checkpoint {checkpoint}: cannot write ({blocker} is not a folder)\n"
        )

    def test_a_closed_stdout_fails_before_the_stream_is_read_while_metrics_go_there(
        self, local_archive: str
    ) -> None:
        # Given `archiver run` started with its stdout, where its metrics lines go, closed
        command = [str(BIN / "archiver"), "run", "--archive", local_archive]
        result = run_with_stdout_closed([*command, "--stream-arn", RUN_STREAM])
        # Then it stops at once, in one line saying what to do
        stderr = result.stderr.decode()
        assert result.returncode == 1, stderr
        assert stderr == (
            "archiver: error: stdout is closed: metrics lines go there (or ARCHIVER_METRICS=false)\n"
        )
