"""``archive_records``, the one write path, fed the way each source feeds it.

The Lambda handler hands over dicts (Python's runtime parsed the event), our own
runtime, the poller and ``archiver ingest`` hand over each record's JSON text. The
archive must not depend on which: same records, same objects, same bytes. What
``archiver ingest`` reads (files people make, checked in full) keeps every number
digit for digit, and a line that is not JSON is dead-lettered with where it was.
"""

from __future__ import annotations

import io
import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archiver.archive.reader import iter_events, iter_record_texts
from archiver.archive.store import LocalStore
from archiver.decode import typed_records
from archiver.split import iter_chunks, iter_document
from archiver.write import ArchiveOptions, ArchiveReport, archive_records
from tests.strategies import (
    dynamodb_records,
    insert_record,
    kinesis_records,
    record_batches,
    stream_arn,
)

PROPERTY = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# What ``archiver ingest`` uses unless told otherwise: the full image check.
INGEST = ArchiveOptions(full_check=True)
ARN = stream_arn("orders")


@contextmanager
def archive_dir() -> Iterator[Path]:
    """A fresh archive folder (in memory where the machine has /dev/shm: stores fsync)."""
    shm = Path("/dev/shm")
    with tempfile.TemporaryDirectory(dir=shm if shm.is_dir() else None) as root:
        yield Path(root)


def tree(root: Path) -> dict[str, bytes]:
    """Every object of an archive folder: key -> bytes."""
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def dead_letters(root: Path) -> list[dict[str, Any]]:
    return [
        json.loads(line)  # json, not orjson: integers beyond 64 bits stay integers
        for path in sorted((root / "_errors").rglob("*.jsonl"))
        for line in path.read_bytes().splitlines()
    ]


def texts_of(store: LocalStore, table: str = "orders") -> list[bytes]:
    return [
        text.encode() for array in iter_record_texts(store, table) for text in array.to_pylist()
    ]


record = insert_record


# --- the bytes path and the dict path --------------------------------------------------------

_poison = st.sampled_from(
    [
        {"eventID": "p1", "eventName": "INSERT", "eventSourceARN": ARN},  # no dynamodb
        {**record("p2", 900), "eventName": "UPSERT"},
        [1, 2],
    ]
)


@PROPERTY
@given(
    record_batches(dynamodb_records() | kinesis_records(table="orders"), max_size=6),
    st.lists(_poison, max_size=2),
    st.data(),
)
def test_bytes_and_dicts_give_the_same_archive(
    records: list[dict[str, Any]], poison: list[Any], data: st.DataObject
) -> None:
    # Given a batch, with maybe a few records that cannot be archived among the good ones
    batch = data.draw(st.permutations(records + poison))
    with archive_dir() as a, archive_dir() as b:
        # When it is archived once as each record's JSON text and once as dicts
        by_text = archive_records([orjson.dumps(r) for r in batch], LocalStore(a))
        by_dict = archive_records(batch, LocalStore(b))
        # Then both runs write the same data objects under the same keys, byte for byte
        data_a = {k: v for k, v in tree(a).items() if not k.startswith("_errors/")}
        assert data_a == {k: v for k, v in tree(b).items() if not k.startswith("_errors/")}
        assert len(data_a) == len({k for k in by_text.files if k.endswith(".parquet")})
        assert (by_text.archived, by_text.dead_lettered) == (len(records), len(poison))
        assert (by_dict.archived, by_dict.dead_lettered) == (len(records), len(poison))
        assert by_text.ok and by_dict.ok
        # and dead-letter the same records, kept as the same JSON (a reason may be worded
        # for the Python type on one path and for the JSON value on the other)
        kept = ("where", "position", "record")
        assert [{k: d.get(k) for k in kept} for d in dead_letters(a)] == [
            {k: d.get(k) for k in kept} for d in dead_letters(b)
        ]


# --- what ``archiver ingest`` reads --------------------------------------------------------


def ingest(data: bytes, root: Path, name: str = "changes.jsonl") -> ArchiveReport:
    """What ``archiver ingest`` does with one file, short of the CLI: cut, then archive."""
    [(origins, texts, typed)] = iter_chunks(io.BytesIO(data), name, 10_000, typed_records)
    return archive_records(texts, LocalStore(root), INGEST, origins=origins, typed=typed)


@PROPERTY
@given(
    record_batches(dynamodb_records() | kinesis_records(table="orders"), max_size=8),
    st.lists(_poison, max_size=2),
    st.integers(1, 4),
    st.data(),
)
def test_json_lines_decoded_a_chunk_at_a_time_give_the_same_archive(
    records: list[dict[str, Any]], poison: list[Any], size: int, data: st.DataObject
) -> None:
    # Given JSON Lines of records, maybe with lines that cannot be archived among them
    lines = data.draw(st.permutations([orjson.dumps(r) for r in records + poison]))
    blob = b"\n".join(lines) + b"\n"
    with archive_dir() as a, archive_dir() as b:
        # When it is ingested as the CLI does (a typed decode per chunk of plain lines), and
        # once with every record decoded on its own
        archived = 0
        for origins, texts, typed in iter_chunks(io.BytesIO(blob), "f.jsonl", size, typed_records):
            report = archive_records(texts, LocalStore(a), INGEST, origins=origins, typed=typed)
            archived += report.archived
        found = list(iter_document(io.BytesIO(blob), "f.jsonl"))
        archive_records([t for _, t in found], LocalStore(b), INGEST, origins=[w for w, _ in found])
        # Then every record is archived, the same records as the same text, and the same
        # lines are dead-lettered with the same reasons
        assert archived == len(records)
        tables = sorted({path.name for path in a.glob("table_name=*")})
        assert tables == sorted({path.name for path in b.glob("table_name=*")})
        for table in tables:
            name = table.removeprefix("table_name=")
            assert sorted(texts_of(LocalStore(a), name)) == sorted(texts_of(LocalStore(b), name))
        kept = ("where", "record", "record_text", "reason", "origin")
        assert sorted(json.dumps({k: d.get(k) for k in kept}) for d in dead_letters(a)) == sorted(
            json.dumps({k: d.get(k) for k in kept}) for d in dead_letters(b)
        )


def test_json_lines_with_a_bad_line_archive_the_others_and_dead_letter_it_with_its_origin() -> None:
    # Given JSON Lines with blank lines and one line that is not JSON at all
    good = [record("a", 1), record("b", 2), record("c", 3)]
    lines = [orjson.dumps(r) for r in good]
    data = lines[0] + b"\n\n" + b"{not json\n" + lines[1] + b"\n\n" + lines[2] + b"\n"
    with archive_dir() as root:
        # When the file is ingested
        report = ingest(data, root)
        # Then the three records are archived, as the text they were on their lines
        assert (report.received, report.archived, report.dead_lettered) == (4, 3, 1)
        assert report.ok
        assert texts_of(LocalStore(root)) == lines
        # and the bad line is dead-lettered with its reason, its text and where it was
        [letter] = dead_letters(root)
        assert letter["origin"] == "changes.jsonl:3"
        assert letter["record_text"] == "{not json"
        assert "not valid JSON" in letter["reason"]
        assert letter["position"] == 1


def test_an_integer_beyond_64_bits_is_kept_digit_for_digit() -> None:
    # Given a file whose records hold 2^70 in an image: as a DynamoDB number, and as a bare
    # JSON number (which DynamoDB JSON does not allow)
    as_text = record("t", 1, {"pk": {"S": "t"}, "big": {"N": str(2**70)}})
    data = (
        orjson.dumps(as_text)
        + b"\n"
        + orjson.dumps(record("j", 2, {"pk": {"S": "j"}, "big": {"N": "@"}})).replace(
            b'"@"', b"1180591620717411303424"
        )
        + b"\n"
    )
    with archive_dir() as root:
        # When it is ingested with the full check
        report = ingest(data, root)
        store = LocalStore(root)
        # Then the DynamoDB number is archived and replayed with every digit
        assert (report.archived, report.dead_lettered) == (1, 1)
        assert texts_of(store) == [orjson.dumps(as_text)]
        [replayed] = iter_events(store, "orders")
        assert replayed["dynamodb"]["NewImage"]["big"] == {"N": "1180591620717411303424"}
        # and the bare JSON number is dead-lettered with the attribute path, kept as it was:
        # 1180591620717411303424 in the dead letter, not 1.1805916207174113e+21
        [letter] = dead_letters(root)
        assert letter["where"].endswith("NewImage.big")
        assert letter["origin"] == "changes.jsonl:2"
        assert repr(letter["record"]["dynamodb"]["NewImage"]["big"]) == repr({"N": 2**70})
        dead_bytes = b"".join(tree(root / "_errors").values())
        assert b'"big":{"N":1180591620717411303424}' in dead_bytes


def test_an_integer_beyond_64_bits_under_the_light_check_is_not_archived_as_a_float() -> None:
    # Given the light check, an image holding a bare 2^70 is a JSON object of valid UTF-8
    text = orjson.dumps(record("j", 2, {"pk": {"S": "j"}, "big": {"N": "@"}})).replace(
        b'"@"', b"1180591620717411303424"
    )
    with archive_dir() as root:
        store = LocalStore(root)
        report = archive_records([text], store, ArchiveOptions(full_check=False))
        assert report.ok and report.archived + report.dead_lettered == 1
        # Then whatever is archived replays digit for digit, as text and as a dict
        # (repr, not ==: 2^70 is also exactly a double, 1.1805916207174113e+21 == 2**70)
        if report.archived:
            assert texts_of(store) == [text]
            [replayed] = iter_events(store, "orders")
            assert repr(replayed["dynamodb"]["NewImage"]["big"]) == repr({"N": 2**70})
        else:
            [letter] = dead_letters(root)
            assert repr(letter["record"]["dynamodb"]["NewImage"]["big"]) == repr({"N": 2**70})
