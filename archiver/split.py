"""Cutting documents into records: bytes in, the raw JSON text of each stream record out.

The body of a Lambda invocation (:func:`split_event`), a GetRecords response
(:func:`split_page`) and the files ``archiver ingest`` reads (:func:`split_document`,
:func:`iter_document`) all become lists of record texts for the one decoder
(:mod:`archiver.decode`). Nothing inside a record is parsed here. A document
the fast parser refuses as a whole (one record nested too deep, a lone
surrogate) is cut by a tolerant scanner instead, so each record fails on its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from itertools import islice
from typing import IO, Any

import msgspec

from archiver.jsontext import (
    JsonTextError,
    decode_members,
    split_array,
    tolerant_elements,
    tolerant_member,
    top_level_values,
)

__all__ = [
    "EventShapeError",
    "iter_chunks",
    "iter_document",
    "split_document",
    "split_event",
    "split_page",
]

_OPTIONAL_STR = msgspec.json.Decoder(str | None)


class EventShapeError(ValueError):
    """The document is not a DynamoDB Streams or Kinesis event (or holds no stream records)."""


def _records_member(body: bytes, what: str) -> msgspec.Raw | bytes:
    try:
        top = decode_members(body)
    except JsonTextError as err:
        if body.lstrip()[:1] != b"{":
            raise EventShapeError(
                f"expected {what} (a JSON object with 'Records'): {err}"
            ) from None
        # The fast parser refuses the document as a whole (a record too deep, a lone
        # surrogate): find the array by scanning, so each record fails on its own.
        start = tolerant_member(body, "Records")
        if start is None or body[start : start + 1] != b"[":
            raise EventShapeError(f"expected {what} with a 'Records' list: {err}") from None
        return body[start:]
    records = top.get("Records")
    if records is None:
        raise EventShapeError(
            f"expected {what} with a 'Records' list, got an object with keys {sorted(top)[:10]}"
        )
    return records


def _elements(records: msgspec.Raw | bytes, what: str) -> list[bytes]:
    text = bytes(records)
    if text[:1] != b"[":
        raise EventShapeError(f"expected {what} with a 'Records' list")
    try:
        return split_array(text) if isinstance(records, msgspec.Raw) else _tolerant(text)
    except JsonTextError as err:
        raise EventShapeError(f"{what}: 'Records' {err}") from None


def _tolerant(text: bytes) -> list[bytes]:
    return list(tolerant_elements(text, 0))


class _Event(msgspec.Struct):
    Records: list[msgspec.Raw]


class _Page(msgspec.Struct):
    Records: list[msgspec.Raw] = []
    NextShardIterator: str | None = None


_EVENT = msgspec.json.Decoder(_Event)
_PAGE = msgspec.json.Decoder(_Page)


def split_event(body: bytes) -> list[bytes]:
    """The raw text of each record of a Lambda event body (``{"Records": [...]}``), in order.

    Raises
    ------
    EventShapeError
        When the body is not a JSON object with a ``Records`` list.
    """
    try:
        # One pass over the body: a second would cost as much as the typed decode of it all.
        return [bytes(raw) for raw in _EVENT.decode(body).Records]
    except (msgspec.DecodeError, RecursionError):
        pass  # the slower path names what is wrong, or cuts out the records one by one
    what = "a DynamoDB Streams or Kinesis event"
    return _elements(_records_member(body, what), what)


def split_page(body: bytes) -> tuple[list[bytes], str | None]:
    """A GetRecords response body: each record's raw text and the ``NextShardIterator``.

    Raises
    ------
    EventShapeError
        When the body is not a GetRecords response.
    """
    try:
        fast = _PAGE.decode(body)
    except (msgspec.DecodeError, RecursionError):
        pass  # the slower path names what is wrong, or cuts out the records one by one
    else:
        return [bytes(raw) for raw in fast.Records], fast.NextShardIterator
    what = "a GetRecords response"
    try:
        top = decode_members(body)
    except JsonTextError:
        records = _records_member(body, what)
        start = tolerant_member(body, "NextShardIterator")
        iterator = None
        if start is not None:
            end = body.find(b'"', start + 1)
            iterator = _OPTIONAL_STR.decode(body[start : end + 1]) if end > start else None
        return _elements(records, what), iterator
    raw = top.get("NextShardIterator")
    try:
        iterator = _OPTIONAL_STR.decode(raw) if raw is not None else None
    except msgspec.DecodeError:
        raise EventShapeError(f"{what}: NextShardIterator is not a string") from None
    page = top.get("Records")
    return (_elements(page, what) if page is not None else []), iterator


def split_document(data: bytes, name: str) -> list[tuple[str, bytes]]:
    """The records a file holds, each with where it was (``file``, ``file:line``), in order.

    A file is a Lambda event, a JSON array of records, one record, or JSON
    Lines of any of those. A line that is not JSON comes out as it is, to be
    dead-lettered with its reason like any other bad record.

    Raises
    ------
    EventShapeError
        When the file is one JSON value that holds no stream records.
    """
    stripped = data.strip()
    if not stripped:
        return []
    try:
        whole: dict[str, msgspec.Raw] | None = decode_members(stripped)
    except JsonTextError:
        whole = None
    if whole is not None:
        return [(name, record) for record in _records_of(stripped, whole, name)]
    if stripped[:1] not in (b"{", b"["):
        try:
            value = msgspec.json.decode(stripped)
        except (msgspec.DecodeError, RecursionError):
            pass  # not one JSON value: lines, each dead-lettered or archived on its own
        else:
            raise EventShapeError(
                f"{name}: expected a Lambda event, a record or a list of records, "
                f"got {type(value).__name__}"
            )
    if top_level_values(stripped) == 1:
        # One value the fast parser refuses as a whole: cut out its records by scanning,
        # so only the bad ones are dead-lettered.
        if stripped[:1] == b"[":
            try:
                return [(name, record) for record in split_array(stripped)]
            except JsonTextError:
                return [(name, stripped)]
        return [(name, record) for record in _tolerant_records(stripped)]
    out = []
    for number, line in enumerate(data.splitlines(), 1):
        out += _split_line(line, f"{name}:{number}")
    return out


def _split_line(line: bytes, where: str) -> list[tuple[str, bytes]]:
    """One line of JSON Lines: an event, a record, or an array of records."""
    line = line.strip()
    if not line:
        return []
    if line[:1] == b"{" and b'"Records"' not in line:
        return [(where, line)]  # a record: the decoder reads it (or says what is wrong) once
    try:
        fields = decode_members(line)
    except JsonTextError:
        if line[:1] == b"[":
            try:
                return [(where, record) for record in split_array(line)]
            except JsonTextError:
                pass
        if line[:1] == b"{" and top_level_values(line) == 1:
            return [(where, record) for record in _tolerant_records(line)]
        return [(where, line)]  # dead-lettered with its reason by the decoder
    return [(where, record) for record in _records_of(line, fields, where)]


def _tolerant_records(text: bytes) -> list[bytes]:
    """The records of one object the fast parser refuses: an event's, or the object itself."""
    start = tolerant_member(text, "Records")
    if start is not None and text[start : start + 1] == b"[":
        end: list[int] = []
        records = list(tolerant_elements(text, start, end))
        if end and text[end[0] :].strip() == b"}":
            return records
    return [text]


def _records_of(text: bytes, fields: dict[str, msgspec.Raw], where: str) -> list[bytes]:
    if "Records" in fields:
        try:
            return split_array(bytes(fields["Records"]))
        except JsonTextError:
            raise EventShapeError(f"{where}: 'Records' is not a list") from None
    if "eventName" in fields or "dynamodb" in fields or "kinesis" in fields:
        return [text]
    raise EventShapeError(
        f"{where}: a JSON object that is neither a Lambda event nor a stream record "
        f"(keys {sorted(fields)[:5]})"
    )


def iter_document(handle: IO[bytes], name: str) -> Iterator[tuple[str, bytes]]:
    """As :func:`split_document`, reading JSON Lines a chunk of lines at a time (memory flat).

    A file whose first line is a whole JSON object or array, followed by more
    lines, is JSON Lines; any other file is read whole.
    """
    for origins, texts, _ in iter_chunks(handle, name, 1_000, _no_typed_decode):
        yield from zip(origins, texts, strict=True)


def _no_typed_decode(body: bytes) -> None:
    return None


def iter_chunks(
    handle: IO[bytes],
    name: str,
    size: int,
    typed_event: Callable[[bytes], list[Any] | None],
) -> Iterator[tuple[list[str], list[bytes], list[Any] | None]]:
    """As :func:`iter_document`, about ``size`` records at a time: ``(origins, texts, typed)``.

    JSON Lines of plain records (what a backfill usually is) take one typed decode
    per chunk: ``typed_event`` of the lines joined as one Lambda event (see
    :func:`archiver.decode.typed_records`), given back in ``typed``, one per text.
    Lines it refuses are cut one by one, and their ``typed`` is None (or ``typed``
    is None for a file that is not JSON Lines).
    """
    head: list[tuple[int, bytes]] = []
    number = 0
    for line in handle:
        number += 1
        if line.strip():
            head.append((number, line))
            if len(head) == 2:
                break
    first = head[0][1].strip() if head else b""
    if len(head) < 2 or not _whole_value(first):
        rest = handle.read() if len(head) == 2 else b""
        cut = split_document(b"".join(line for _, line in head) + rest, name)
        for at in range(0, len(cut), size):
            part = cut[at : at + size]
            yield [where for where, _ in part], [text for _, text in part], None
        return
    # The first lines join the first chunk (their typed decode left to the decoder).
    cut = [record for at, line in head for record in _split_line(line, f"{name}:{at}")]
    origins: list[str] = [where for where, _ in cut]
    texts: list[bytes] = [text for _, text in cut]
    typed: list[Any] = [None] * len(cut)
    while lines := list(islice(handle, max(size - len(texts), 1))):
        stripped = [line.strip() for line in lines]
        decoded = None
        if all(text[:1] == b"{" for text in stripped):
            decoded = typed_event(b'{"Records":[' + b",".join(stripped) + b"]}")
        if decoded is not None:
            origins += [f"{name}:{at}" for at in range(number + 1, number + len(lines) + 1)]
            texts += stripped
            typed += decoded
        else:
            for at, line in enumerate(lines, number + 1):
                for where, text in _split_line(line, f"{name}:{at}"):
                    origins.append(where)
                    texts.append(text)
            typed += [None] * (len(texts) - len(typed))
        number += len(lines)
        if len(texts) >= size:
            yield origins, texts, typed
            origins, texts, typed = [], [], []
    if texts:
        yield origins, texts, typed


def _whole_value(line: bytes) -> bool:
    try:
        decode_members(line)
    except JsonTextError:
        try:
            split_array(line)
        except JsonTextError:
            return False
    return True
