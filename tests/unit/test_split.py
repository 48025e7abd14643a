"""Cutting documents into record texts: Lambda events, GetRecords pages and the files people ingest.

Every record comes out as the exact bytes it had in the document (nothing is parsed
and re-dumped), in order, with where it was (``file`` or ``file:line``). One bad
record (nested too deep, a lone surrogate, not JSON at all) is cut out on its own,
so it fails alone and the rest of its document is archived.
"""

from __future__ import annotations

import io
import json
from typing import Any

import orjson
import pytest

from archiver.decode import typed_records
from archiver.jsontext import JsonTextError, decode_members
from archiver.split import (
    EventShapeError,
    iter_chunks,
    iter_document,
    split_document,
    split_event,
    split_page,
)
from tests.strategies import insert_record

ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/orders/stream/2026-11-27T00:00:00.000"


def record(event_id: str, sequence: int) -> dict[str, Any]:
    return insert_record(event_id, sequence, {"pk": {"S": event_id}, "note": {"S": "x"}})


A, B, C = (orjson.dumps(record(name, n)) for n, name in enumerate("abc", 1))
# Records the fast parser refuses: each must be cut out and fail on its own.
SURROGATE = A.replace(b'"x"', b'"\\ud800"').replace(b'"a"', b'"s"')
DEEP = A.replace(b'{"S":"x"}', b'{"L":' + b"[" * 5000 + b"]" * 5000 + b"}").replace(b'"a"', b'"d"')


def event(*records: bytes) -> bytes:
    return b'{"Records":[' + b",".join(records) + b"]}"


def texts(found: list[tuple[str, bytes]]) -> list[bytes]:
    return [text for _, text in found]


def both(data: bytes, name: str = "f.json") -> list[tuple[str, bytes]]:
    """What iter_document (the ingest path) cuts, checked against split_document on the same bytes."""
    streamed = list(iter_document(io.BytesIO(data), name))
    whole = split_document(data, name)
    assert whole == streamed, "split_document and iter_document disagree"
    return streamed


# --- Lambda events and GetRecords pages -------------------------------------------------------


def test_split_event_gives_each_record_text_as_it_arrived() -> None:
    assert split_event(event(A, B, C)) == [A, B, C]
    pretty = json.dumps({"Records": [record("a", 1), record("b", 2)]}, indent=2).encode()
    found = split_event(pretty)
    assert [orjson.loads(text) for text in found] == [record("a", 1), record("b", 2)]
    assert all(text in pretty for text in found)  # slices of the body, whitespace and all


@pytest.mark.parametrize("bad", [SURROGATE, DEEP], ids=["lone surrogate", "nested too deep"])
def test_split_event_cuts_a_record_the_parser_refuses_on_its_own(bad: bytes) -> None:
    # Given an event whose body the fast parser refuses as a whole, because of one record
    body = event(A, bad, B)
    with pytest.raises(JsonTextError):
        decode_members(body)
    # When it is split, Then every record comes out, the bad one as the text it was
    assert split_event(body) == [A, bad, B]


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b'{"foo": 1}', r"'Records' list, got an object with keys \['foo'\]"),
        (b'{"Records": "many"}', r"'Records' list"),
        (b'[{"eventID": "1"}]', r"a JSON object with 'Records'"),
        (b"null", r"a JSON object with 'Records'"),
        (b'{"Records": [', r"never closed|not valid JSON|'Records'"),
    ],
)
def test_split_event_refuses_what_is_not_an_event(body: bytes, problem: str) -> None:
    with pytest.raises(EventShapeError, match=problem):
        split_event(body)


def test_split_page_gives_records_and_the_next_iterator() -> None:
    page = b'{"Records":[' + A + b"," + B + b'],"NextShardIterator":"it-2"}'
    assert split_page(page) == ([A, B], "it-2")
    assert split_page(b'{"Records":[],"NextShardIterator":null}') == ([], None)
    assert split_page(
        b'{"Records":[' + A + b"," + SURROGATE + b'],"NextShardIterator":"it-3"}'
    ) == (
        [A, SURROGATE],
        "it-3",
    )


# --- the files ``archiver ingest`` reads -----------------------------------------------------


def test_a_lambda_event_file() -> None:
    assert both(event(A, B, C)) == [("f.json", A), ("f.json", B), ("f.json", C)]


def test_a_json_array_of_records() -> None:
    assert both(b"[" + A + b",\n" + B + b"]\n") == [("f.json", A), ("f.json", B)]


def test_one_record() -> None:
    assert both(A + b"\n") == [("f.json", A)]
    pretty = json.dumps(record("a", 1), indent=2).encode()
    assert both(pretty) == [("f.json", pretty)]


def test_a_pretty_printed_event() -> None:
    data = json.dumps({"Records": [record("a", 1), record("b", 2)]}, indent=2).encode()
    found = both(data)
    assert [where for where, _ in found] == ["f.json", "f.json"]
    assert [orjson.loads(text) for text in texts(found)] == [record("a", 1), record("b", 2)]
    assert all(text in data for text in texts(found))


def test_json_lines_with_blank_lines_and_a_line_that_is_not_json() -> None:
    # Given JSON Lines with blank lines, a line of garbage and CRLF line ends
    data = A + b"\n\n" + b"not json at all\n" + B + b"\r\n   \n" + C + b"\n"
    # Then each line is its own record, named by its line number (blank lines counted)
    assert both(data, "changes.jsonl") == [
        ("changes.jsonl:1", A),
        ("changes.jsonl:3", b"not json at all"),
        ("changes.jsonl:4", B),
        ("changes.jsonl:6", C),
    ]


def test_json_lines_whose_first_line_is_garbage() -> None:
    assert both(b"garbage\n" + A + b"\n" + B + b"\n") == [
        ("f.json:1", b"garbage"),
        ("f.json:2", A),
        ("f.json:3", B),
    ]


def test_json_lines_of_events_and_of_arrays() -> None:
    data = event(A) + b"\n" + event(B, C) + b"\n"
    assert both(data) == [("f.json:1", A), ("f.json:2", B), ("f.json:2", C)]
    arrays = b"[" + A + b"]\n[" + B + b"," + C + b"]\n"
    assert both(arrays) == [("f.json:1", A), ("f.json:2", B), ("f.json:2", C)]


def test_json_lines_of_an_array_then_records() -> None:
    assert both(b"[" + A + b"," + B + b"]\n" + C + b"\n") == [
        ("f.json:1", A),
        ("f.json:1", B),
        ("f.json:2", C),
    ]


def test_a_pretty_printed_array_followed_by_more_is_not_cut_short() -> None:
    # Given a pretty-printed array of one record, then a line holding another array
    data = json.dumps([record("a", 1)], indent=2).encode() + b"\n[" + B + b"]\n"
    # Then no record is lost without a trace: b comes out, as a record or as a bad line
    found = both(data)
    assert any(B in text for text in texts(found)), found


@pytest.mark.parametrize("bad", [SURROGATE, DEEP], ids=["lone surrogate", "nested too deep"])
def test_an_event_file_with_a_record_the_parser_refuses(bad: bytes) -> None:
    # Given a Lambda event file with one record the fast parser refuses
    data = event(A, bad, B)
    # Then the file is cut into its three records, so only the bad one fails
    assert both(data) == [("f.json", A), ("f.json", bad), ("f.json", B)]


def test_a_pretty_printed_event_file_with_a_record_the_parser_refuses() -> None:
    bad = record("s", 9)
    bad["dynamodb"]["NewImage"]["note"] = {"S": "\ud800"}  # json writes it as a \ud800 escape
    data = json.dumps({"Records": [record("a", 1), bad, record("b", 2)]}, indent=2).encode()
    found = both(data)
    assert len(found) == 3, [where for where, _ in found][:8]
    assert orjson.loads(found[0][1]) == record("a", 1)
    assert b"\\ud800" in found[1][1]
    assert orjson.loads(found[2][1]) == record("b", 2)


def test_an_array_file_with_a_record_the_parser_refuses() -> None:
    assert both(b"[" + A + b"," + SURROGATE + b"," + B + b"]") == [
        ("f.json", A),
        ("f.json", SURROGATE),
        ("f.json", B),
    ]


@pytest.mark.parametrize("data", [b"", b"\n\n", b"   "])
def test_an_empty_file_holds_no_records(data: bytes) -> None:
    assert both(data) == []


def test_a_json_value_that_holds_no_records_is_refused_naming_the_file() -> None:
    with pytest.raises(EventShapeError, match=r"f\.json: .*neither a Lambda event nor a stream"):
        split_document(b'{"foo": 1}', "f.json")
    with pytest.raises(EventShapeError, match=r"f\.json"):
        list(iter_document(io.BytesIO(b'{"foo": 1}'), "f.json"))


def test_iter_document_reads_json_lines_a_line_at_a_time() -> None:
    # Given a handle that yields JSON Lines and refuses to be read whole
    class LinesOnly(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            raise AssertionError("JSON Lines must be read line by line")

    data = b"".join(orjson.dumps(record(f"r{n}", n)) + b"\n" for n in range(1, 50))
    found = list(iter_document(LinesOnly(data), "big.jsonl"))
    assert [where for where, _ in found] == [f"big.jsonl:{n}" for n in range(1, 50)]
    assert b"\n".join(texts(found)) + b"\n" == data


def test_iter_chunks_cuts_json_lines_as_iter_document_with_one_typed_decode_per_chunk() -> None:
    # Given JSON Lines of plain records with, among them, a blank line, a line that is not
    # JSON, a whole event on one line and a record the fast parser refuses
    plain = [orjson.dumps(record(f"r{n}", n)) for n in range(1, 12)]
    lines = [*plain[:4], b"", b"{not json", *plain[4:7], event(B, C), SURROGATE, *plain[7:]]
    data = b"\n".join(lines) + b"\n"
    decoded: list[int] = []

    def typed_event(body: bytes) -> list[Any] | None:
        found = typed_records(body)
        decoded.append(-1 if found is None else len(found))
        return found

    # When it is cut three lines at a time
    chunks = list(iter_chunks(io.BytesIO(data), "f.jsonl", 3, typed_event))
    # Then the records and their origins are those iter_document gives, in order
    flat = [(w, t) for origins, texts_, _ in chunks for w, t in zip(origins, texts_, strict=True)]
    assert flat == list(iter_document(io.BytesIO(data), "f.jsonl"))
    # and the records of a chunk of plain lines carry their typed decode, made for the chunk
    # at once; the others (and the first two lines, read to tell JSON Lines from one
    # document) carry none
    typed = [t for _, _, chunk in chunks for t in (chunk or [])]
    assert len(typed) == len(flat)
    with_typed = [text for (_, text), t in zip(flat, typed, strict=True) if t is not None]
    assert set(with_typed) <= set(plain[2:]) and {plain[2], *plain[-2:]} <= set(with_typed)
    assert all(
        t.eventID == orjson.loads(text)["eventID"]
        for (_, text), t in zip(flat, typed, strict=True)
        if t is not None
    )
    assert -1 in decoded and max(decoded) >= 2  # refused lines are cut one by one
    assert all(len(texts_) <= 4 for _, texts_, _ in chunks)  # the event line holds two


def test_iter_chunks_gives_a_whole_document_without_typed_decodes() -> None:
    data = json.dumps({"Records": [record("a", 1), record("b", 2), record("c", 3)]}).encode()
    chunks = list(iter_chunks(io.BytesIO(data), "e.json", 2, typed_records))
    assert [(origins, typed) for origins, _, typed in chunks] == [
        (["e.json", "e.json"], None),
        (["e.json"], None),
    ]
    assert [t for _, texts_, _ in chunks for t in texts_] == texts(split_document(data, "e.json"))
