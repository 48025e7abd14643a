"""Rebuilding stream records as JSON text: archived rows in, the records as they arrived out.

Replay assembles each record from the stored JSON text: the envelope with its
images spliced back in, never parsed and dumped again. Every reader (``replayer
events``, ``redrive``, the dict rebuild in :func:`archiver.archive.codec.stream_records`)
uses the rule written here, and the writer checks it on every record before it
archives one.

The contract between writer and reader, per row:

- ``envelope`` is the stream record as it arrived, minus its images;
  ``keys``, ``new_image`` and ``old_image`` are the typed DynamoDB JSON texts
  (the images null when absent); ``event_source`` is ``aws:dynamodb`` or
  ``aws:kinesis``.
- DynamoDB Streams rows: the envelope holds the placeholder ``"Keys":null``
  exactly once, and ``"NewImage":null`` / ``"OldImage":null`` exactly once when
  that image is present (its column not null) and not at all when it is
  absent, but for a record that arrived with an image as ``null``: its
  placeholder is there once, with a null column, and stays as it is. The
  original record is the envelope with each placeholder's ``null`` replaced by
  the column's text. Files written by older versions of
  the writer hold ``orjson.dumps`` of the record with its images set to None,
  which satisfies the same contract.
- Kinesis rows: the envelope is the Lambda Kinesis record
  ``{..., "kinesis": {..., "data": X, ...}, ...}``. Either X is a JSON object,
  the inner DynamoDB change record minus its images holding the same
  placeholders as above, and the original ``data`` is the standard base64
  (with padding) of the UTF-8 bytes of that object's text with its images
  spliced in; or X is a JSON string, the exact base64 text that arrived, given
  back as it is. Placeholders are spliced only inside the data object, never
  elsewhere in the outer record.

A placeholder can only be a JSON member (inside a JSON string every quote is
escaped). Placeholders are looked for in the envelope only, never in the
images spliced in, so an image's text cannot be mistaken for one.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Sequence
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from .errors import FormatError
from .record import KINESIS_SOURCE
from .schema import Col

__all__ = [
    "REBUILD_COLUMNS",
    "item_identifiers",
    "rebuild_record",
    "record_texts",
    "splice",
]

# What record_texts reads; item_identifiers also reads the sequence number.
REBUILD_COLUMNS = (Col.ENVELOPE, Col.KEYS, Col.NEW_IMAGE, Col.OLD_IMAGE, Col.EVENT_SOURCE)

_KEYS = '"Keys":null'
_NEW = '"NewImage":null'
_OLD = '"OldImage":null'
_NO_TEXT = pa.scalar(None, pa.string())
_NULL = len("null")
# Rows per slice of the vectorised rebuild: its intermediate arrays stay a few
# MB instead of growing with the partition.
_SLICE_ROWS = 8192


def _find_once(envelope: str, placeholder: str, column: str) -> int:
    at = envelope.find(placeholder)
    if at < 0:
        raise FormatError(f"envelope holds no {placeholder} placeholder, but {column} is set")
    if envelope.find(placeholder, at + len(placeholder)) >= 0:
        raise FormatError(f"envelope holds the {placeholder} placeholder more than once")
    return at


def splice(envelope: str, keys: str, new_image: str | None, old_image: str | None) -> str:
    """One DynamoDB Streams record's text: the envelope with its images spliced in.

    Parameters
    ----------
    envelope
        The record as it arrived, minus its images, holding the placeholders
        described in this module's docstring.
    keys, new_image, old_image
        Typed DynamoDB JSON text of each; ``None`` for an absent image.

    Returns
    -------
    str
        The record's JSON text.

    Raises
    ------
    FormatError
        Naming the placeholder that is missing, repeated, or present for an
        image the row does not hold.
    """
    k = _find_once(envelope, _KEYS, Col.KEYS)
    found = [(k + len(_KEYS) - _NULL, keys)]
    for placeholder, column, image in (
        (_NEW, Col.NEW_IMAGE, new_image),
        (_OLD, Col.OLD_IMAGE, old_image),
    ):
        if image is None:
            if placeholder in envelope:
                # The record arrived with that image as null: its null stays, once.
                _find_once(envelope, placeholder, column)
            continue
        at = _find_once(envelope, placeholder, column)
        found.append((at + len(placeholder) - _NULL, image))
    if len(found) == 1:
        null = found[0][0]
        return f"{envelope[:null]}{keys}{envelope[null + _NULL :]}"
    found.sort()
    pieces = []
    start = 0
    for null, text in found:
        pieces.append(envelope[start:null])
        pieces.append(text)
        start = null + _NULL
    pieces.append(envelope[start:])
    return "".join(pieces)


_scan = json.JSONDecoder().raw_decode
_SPACE = frozenset(" \t\n\r")


def _skip(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in _SPACE:
        pos += 1
    return pos


def _member(text: str, start: int, name: str) -> int | None:
    """Where the value of the first member ``name`` of the object at ``start`` begins in ``text``.

    The values before it are skipped with json's scanner, which says where each
    one ends, so positions are those of the text itself whatever its spacing.
    Lambda's Kinesis records put ``kinesis`` first and ``data`` fourth in it.
    """
    pos = _skip(text, start)
    if text[pos : pos + 1] != "{":
        return None
    pos = _skip(text, pos + 1)
    if text[pos : pos + 1] == "}":
        return None
    while True:
        key, pos = _scan(text, pos)
        pos = _skip(text, pos)
        if text[pos : pos + 1] != ":":
            raise ValueError(f"expected ':' at {pos}")
        value = _skip(text, pos + 1)
        if key == name:
            return value
        _, pos = _scan(text, value)
        pos = _skip(text, pos)
        if text[pos : pos + 1] == "}":
            return None
        if text[pos : pos + 1] != ",":
            raise ValueError(f"expected ',' or '}}' at {pos}")
        pos = _skip(text, pos + 1)


# Lambda's Kinesis records begin {"kinesis":{"kinesisSchemaVersion":..,"partitionKey":..,
# "sequenceNumber":..,"data":: matched in one step; any other layout takes _member's walk.
_STRING = r'"(?:[^"\\]|\\.)*"'
_LAMBDA_LAYOUT = re.compile(
    rf'\{{"kinesis":\{{"kinesisSchemaVersion":{_STRING},"partitionKey":{_STRING},'
    rf'"sequenceNumber":{_STRING},"data":'
)


def _kinesis_data(envelope: str) -> tuple[int, int]:
    """Where ``kinesis.data`` is in a Kinesis envelope: (start, end) of its value."""
    try:
        layout = _LAMBDA_LAYOUT.match(envelope)
        if layout is not None:
            start: int | None = layout.end()
        else:
            kinesis = _member(envelope, 0, "kinesis")
            start = None if kinesis is None else _member(envelope, kinesis, "data")
        if start is None:
            raise FormatError("Kinesis envelope holds no kinesis.data member")
        _, end = _scan(envelope, start)
    except ValueError as err:
        raise FormatError(f"Kinesis envelope is not a JSON object ({err})") from None
    return start, end


def rebuild_record(
    envelope: str, keys: str, new_image: str | None, old_image: str | None, event_source: str
) -> str:
    """One archived row's stream record as JSON text, exactly as it arrived.

    Parameters
    ----------
    envelope, keys, new_image, old_image
        The row's columns (see :func:`splice`).
    event_source
        ``aws:kinesis`` for a Kinesis-delivered change, whose images go inside
        ``kinesis.data``; anything else is a DynamoDB Streams record.

    Returns
    -------
    str
        The record's JSON text.

    Raises
    ------
    FormatError
        When the envelope breaks the contract in this module's docstring.
    """
    if event_source != KINESIS_SOURCE:
        return splice(envelope, keys, new_image, old_image)
    start, end = _kinesis_data(envelope)
    if envelope[start] == '"':
        return envelope  # the base64 text that arrived
    if envelope[start] != "{":
        raise FormatError("Kinesis envelope: kinesis.data is neither base64 text nor an object")
    inner = splice(envelope[start:end], keys, new_image, old_image)
    data = base64.b64encode(inner.encode()).decode()
    return f'{envelope[:start]}"{data}"{envelope[end:]}'


def _where(batch: pa.Table, row: int, offset: int) -> str:
    """Names row ``row`` of a slice that starts at row ``offset`` of the table."""
    if Col.EVENT_ID in batch.column_names:
        return f"row {offset + row} (eventID {batch.column(Col.EVENT_ID)[row].as_py()})"
    return f"row {offset + row}"


def _rebuild_rows(batch: pa.Table, rows: Sequence[int], offset: int) -> list[str]:
    """The per-row rebuild of ``rows`` of ``batch`` (Kinesis rows, and the error messages)."""
    picked = batch.take(pa.array(rows, pa.int64()))
    columns = [picked.column(name).to_pylist() for name in REBUILD_COLUMNS]
    out = []
    for i, (envelope, keys, new, old, source) in enumerate(zip(*columns, strict=True)):
        try:
            out.append(rebuild_record(envelope, keys, new, old, source))
        except FormatError as err:
            raise FormatError(f"{_where(batch, rows[i], offset)}: {err}") from None
    return out


def _after(parts: pa.ChunkedArray) -> pa.ChunkedArray:
    """What follows the first split of each row ("" where there was none)."""
    return pc.binary_join(pc.list_slice(parts, 1), "")


def _spliced(
    batch: pa.Table, kinesis: pa.ChunkedArray | None, suffix: str, offset: int
) -> tuple[pa.ChunkedArray, pa.ChunkedArray]:
    """The vectorised splice of ``batch``, and which rows must be rebuilt one by one instead.

    The envelope is cut at its placeholders in DynamoDB's order (Keys, then
    NewImage, then OldImage), each cut made in the part after the one before;
    one join then puts the pieces and the images together, so no image text
    is searched and each is copied once. Rows whose placeholders are in
    another order, or not there once, are left to :func:`rebuild_record`
    (which takes any order and names what breaks the contract), and so are
    Kinesis rows.
    """
    envelope = batch.column(Col.ENVELOPE)
    if kinesis is not None:  # a stand-in, so that every row splits: Kinesis rows go one by one
        envelope = pc.if_else(kinesis, _KEYS, envelope)
    new, old = batch.column(Col.NEW_IMAGE), batch.column(Col.OLD_IMAGE)
    has_new, has_old = pc.is_valid(new), pc.is_valid(old)
    parts = pc.split_pattern(envelope, _KEYS)  # every split: the count is exact
    once = pc.equal(pc.list_value_length(parts), 2)
    if not pc.all(once).as_py():
        first = pc.indices_nonzero(pc.invert(once))[0].as_py()
        _rebuild_rows(batch, [first], offset)  # raises, naming what is wrong
        raise FormatError(f"{_where(batch, first, offset)}: {_KEYS} is not there once")
    head, rest = pc.list_element(parts, 0), pc.list_element(parts, 1)
    parts = pc.split_pattern(rest, _OLD)
    by_row = pc.not_equal(pc.list_value_length(parts), pc.add(pc.cast(has_old, pa.int8()), 1))
    between, tail = pc.list_element(parts, 0), _after(parts)
    parts = pc.split_pattern(between, _NEW)
    wrong = pc.not_equal(pc.list_value_length(parts), pc.add(pc.cast(has_new, pa.int8()), 1))
    first_part, second_part = pc.list_element(parts, 0), _after(parts)
    # The counts above cover the part after Keys (OldImage) and before OldImage (NewImage): a
    # placeholder seen only elsewhere left its count short. One there too is counted here.
    for text, placeholder in ((head, _NEW), (head, _OLD), (tail, _NEW)):
        extra = pc.greater(pc.list_value_length(pc.split_pattern(text, placeholder)), 1)
        wrong = pc.or_(wrong, extra)
    by_row = pc.or_(by_row, wrong)
    texts = pc.binary_join_element_wise(
        head,
        '"Keys":',
        batch.column(Col.KEYS),
        first_part,
        pc.if_else(has_new, '"NewImage":', _NO_TEXT),
        new,
        second_part,
        pc.if_else(has_old, '"OldImage":', _NO_TEXT),
        old,
        tail,
        suffix,
        "",
        null_handling="skip",
    )
    if kinesis is not None:
        by_row = pc.or_(by_row, kinesis)
    return texts, by_row


def record_texts(table: pa.Table, suffix: str = "") -> pa.ChunkedArray:
    """Every row's stream record as JSON text, in the table's order.

    DynamoDB Streams rows are spliced column-wise with Arrow's string kernels;
    Kinesis rows (a minority), and rows whose placeholders are not in
    DynamoDB's order, are rebuilt one by one.

    Parameters
    ----------
    table
        Archive rows holding at least :data:`REBUILD_COLUMNS` (and
        ``event_id``, to name a bad row).
    suffix
        Text to end each record with (``"\\n"`` makes JSON Lines for free).

    Returns
    -------
    pyarrow.ChunkedArray
        One string per row, never null.

    Raises
    ------
    FormatError
        Naming the first row (and its eventID) whose envelope breaks the
        contract in this module's docstring.
    """
    chunks: list[pa.Array] = []
    for start in range(0, table.num_rows, _SLICE_ROWS):
        batch = table.slice(start, _SLICE_ROWS)
        kinesis = pc.equal(batch.column(Col.EVENT_SOURCE), KINESIS_SOURCE)
        if pc.all(kinesis).as_py():
            texts = _rebuild_rows(batch, range(batch.num_rows), start)
            chunks.append(pa.array([text + suffix for text in texts], pa.string()))
            continue
        mixed = kinesis if pc.any(kinesis).as_py() else None
        texts, by_row = _spliced(batch, mixed, suffix, start)
        if pc.any(by_row).as_py():
            rows = pc.indices_nonzero(by_row).to_pylist()
            merged: list[str | None] = [None] * batch.num_rows
            for row, text in zip(rows, _rebuild_rows(batch, rows, start), strict=True):
                merged[row] = text + suffix
            texts = pc.if_else(by_row, pa.array(merged, pa.string()), texts)
        chunks.extend(texts.chunks)
    return pa.chunked_array(chunks, pa.string())


_SEQUENCE = r'"(?:SequenceNumber|sequenceNumber)"[ \t\n\r]*:[ \t\n\r]*"(?P<n>\d+)"'
_LEADING_ZERO = r'equenceNumber"[ \t\n\r]*:[ \t\n\r]*"0'


def item_identifiers(table: pa.Table) -> list[str]:
    """Each row's source sequence number as it arrived: what Lambda takes as ``itemIdentifier``.

    That is ``dynamodb.SequenceNumber`` of a DynamoDB Streams record, and
    ``kinesis.sequenceNumber`` of a Kinesis-delivered one. The
    ``sequence_number`` column holds its digits zero-padded, which loses any
    leading zeros of the original (DynamoDB Local writes 21 digits with
    leading zeros): rows whose envelope may hold such a number take its text
    from the envelope, checked against the column, or else from parsing it.
    """
    digits = pc.utf8_ltrim(table.column(Col.SEQUENCE_NUMBER), characters="0")
    out: list[str] = digits.to_pylist()
    envelopes = table.column(Col.ENVELOPE)
    maybe = pc.match_substring_regex(envelopes, _LEADING_ZERO)
    if not pc.any(maybe).as_py():
        return out  # no leading zeros anywhere: the column's digits are the text
    rows = pc.indices_nonzero(maybe)
    texts = pc.take(envelopes, rows)
    found = pc.struct_field(pc.extract_regex(texts, _SEQUENCE), [0])
    agree = pc.fill_null(
        pc.equal(pc.utf8_ltrim(found, characters="0"), pc.take(digits, rows)), False
    )
    sources = pc.take(table.column(Col.EVENT_SOURCE), rows).to_pylist()
    for i, (row, text, ok) in enumerate(
        zip(rows.to_pylist(), found.to_pylist(), agree.to_pylist(), strict=True)
    ):
        if not ok:
            # another member's sequence number came first: parse this one envelope
            text = _parsed_identifier(texts[i].as_py(), sources[i]) or out[row] or "0"
        out[row] = text
    return out


def _parsed_identifier(envelope: str, source: str) -> str | None:
    try:
        record: Any = orjson.loads(envelope)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(record, dict):
        return None
    outer = record.get("kinesis" if source == KINESIS_SOURCE else "dynamodb")
    value = (
        outer.get("sequenceNumber" if source == KINESIS_SOURCE else "SequenceNumber")
        if isinstance(outer, dict)
        else None
    )
    return value if isinstance(value, str) else None
