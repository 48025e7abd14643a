"""Rebuilding records as text: the stored JSON text spliced, against today's dict rebuild.

The tables here are built by the writer contract itself (``orjson.dumps`` of
each record with its images set to None, as older archive files hold), so
the rebuild is checked against the contract, whatever the writer does today.
The oracle is the rebuild the replayer used before: parse the envelope and
every image, fill the images in, dump it again.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import orjson
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archiver.archive.errors import FormatError
from archiver.archive.rebuild import item_identifiers, rebuild_record, record_texts, splice
from archiver.archive.record import pad_sequence
from archiver.archive.schema import Col
from devkit.traffic import TableHistory, kinesis_record
from tests.strategies import MIN_SECONDS, attribute_names, dynamodb_records, strings

PROPERTY = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
IMAGES = ("Keys", "NewImage", "OldImage")
KINESIS = "aws:kinesis"

# Text that looks like a placeholder, or like the members the rebuild looks for.
TRICKY = (
    '"Keys":null',
    '"NewImage":null',
    '"OldImage":null',
    '\\"Keys\\":null',
    '"Keys":',
    ":null",
    "null",
    "Keys",
    '"data":{"Keys":null}',
    '"kinesis":{"data":"e30="}',
    '"',
    "\\",
)
tricky_texts = st.one_of(
    st.sampled_from(TRICKY), st.tuples(strings, st.sampled_from(TRICKY)).map("".join)
)


# --- the writer contract, and the rebuild of today ----------------------------------------------


def _placeholders(record: dict[str, Any]) -> dict[str, Any]:
    """The record with its images set to None: the envelope older writers stored."""
    ddb = {name: None if name in IMAGES else value for name, value in record["dynamodb"].items()}
    return dict(record, dynamodb=ddb)


def row_of(raw: dict[str, Any], *, string_data: bool = False) -> dict[str, Any]:
    """One archive row of the columns the rebuild reads, for a record as it arrived."""
    if raw.get("eventSource") == KINESIS:
        change = orjson.loads(base64.b64decode(raw["kinesis"]["data"]))
        data = raw["kinesis"]["data"] if string_data else _placeholders(change)
        envelope = dict(raw, kinesis=dict(raw["kinesis"], data=data))
        sequence = raw["kinesis"]["sequenceNumber"]
    else:
        change = raw
        envelope = _placeholders(raw)
        sequence = raw["dynamodb"]["SequenceNumber"]
    ddb = change["dynamodb"]
    source = raw.get("eventSource", "aws:dynamodb")
    return {
        Col.EVENT_ID: change["eventID"],
        Col.EVENT_SOURCE: source,
        Col.SEQUENCE_NUMBER: pad_sequence(sequence, source),
        Col.KEYS: orjson.dumps(ddb["Keys"]).decode(),
        Col.NEW_IMAGE: None if "NewImage" not in ddb else orjson.dumps(ddb["NewImage"]).decode(),
        Col.OLD_IMAGE: None if "OldImage" not in ddb else orjson.dumps(ddb["OldImage"]).decode(),
        Col.ENVELOPE: orjson.dumps(envelope).decode(),
    }


def table_of(rows: list[dict[str, Any]]) -> pa.Table:
    names = [Col.EVENT_ID, Col.EVENT_SOURCE, Col.SEQUENCE_NUMBER, Col.KEYS, Col.NEW_IMAGE]
    names += [Col.OLD_IMAGE, Col.ENVELOPE]
    return pa.table({name: pa.array([r[name] for r in rows], pa.string()) for name in names})


def dict_rebuild(row: dict[str, Any]) -> dict[str, Any]:
    """Today's rebuild: parse the envelope and the images, fill them in (the oracle)."""
    record: dict[str, Any] = orjson.loads(row[Col.ENVELOPE])
    images = [row[Col.KEYS], row[Col.NEW_IMAGE], row[Col.OLD_IMAGE]]
    if row[Col.EVENT_SOURCE] == KINESIS:
        change = record["kinesis"]["data"]
        if isinstance(change, str):
            return record  # the base64 text that arrived
        _fill(change, images)
        record["kinesis"]["data"] = base64.b64encode(orjson.dumps(change)).decode()
    else:
        _fill(record, images)
    return record


def _fill(record: dict[str, Any], values: list[str | None]) -> None:
    for name, value in zip(IMAGES, values, strict=True):
        if name in record["dynamodb"]:
            record["dynamodb"][name] = None if value is None else orjson.loads(value)


# --- records with text that looks like placeholders -------------------------------------------


@st.composite
def tricky_changes(draw: st.DrawFn) -> dict[str, Any]:
    """A DynamoDB Streams record whose images and envelope hold placeholder-like text."""
    record = draw(dynamodb_records(seconds=draw(st.integers(MIN_SECONDS, MIN_SECONDS + 10**6))))
    ddb = record["dynamodb"]
    for image in ("NewImage", "OldImage"):
        if image in ddb and draw(st.booleans()):
            name = draw(st.one_of(tricky_texts, attribute_names))
            ddb[image] = dict(ddb[image])
            ddb[image][name] = draw(
                st.one_of(
                    tricky_texts.map(lambda text: {"S": text}),
                    st.tuples(tricky_texts, tricky_texts).map(
                        lambda pair: {"M": {pair[0]: {"S": pair[1]}, "n": {"NULL": True}}}
                    ),
                )
            )
    if draw(st.booleans()):
        record[draw(tricky_texts)] = draw(tricky_texts)  # a field this code does not know
    if draw(st.booleans()):
        ddb[draw(st.sampled_from(["Note", '"Keys"']))] = draw(tricky_texts)
    return record


@st.composite
def mixed_records(draw: st.DrawFn) -> tuple[dict[str, Any], bool]:
    """A record as it arrived, from DynamoDB Streams or Kinesis; for Kinesis, whether the
    archive keeps its data as the base64 text (not re-encodable from orjson's dump)."""
    change = draw(tricky_changes())
    if not draw(st.booleans()):
        return change, False
    precision = draw(st.sampled_from(["MILLISECOND", "MICROSECOND"]))
    raw = kinesis_record(change, draw(st.integers(0, 10**9)), precision=precision)
    if draw(st.booleans()):
        raw[draw(tricky_texts)] = {"data": draw(tricky_texts)}  # an outer field named like one
    if not draw(st.booleans()):
        return raw, False
    # A change encoded by another JSON writer (spaces, escaped unicode): only its base64
    # text can give it back.
    inner = json.loads(base64.b64decode(raw["kinesis"]["data"]))
    data = base64.b64encode(json.dumps(inner).encode()).decode()
    return dict(raw, kinesis=dict(raw["kinesis"], data=data)), True


@PROPERTY
@given(st.lists(mixed_records(), min_size=1, max_size=6))
def test_record_texts_equal_todays_rebuild_row_for_row(
    drawn: list[tuple[dict[str, Any], bool]],
) -> None:
    # Given DynamoDB and Kinesis rows mixed, with placeholder-like text in names and values
    rows = [row_of(raw, string_data=string_data) for raw, string_data in drawn]
    table = table_of(rows)

    # When their records are rebuilt as text
    texts = record_texts(table).to_pylist()

    # Then each is orjson.dumps of today's dict rebuild, and of the record as it arrived
    assert texts == [orjson.dumps(dict_rebuild(row)).decode() for row in rows]
    assert texts == [orjson.dumps(raw).decode() for raw, _ in drawn]
    # and the vectorised rebuild agrees with the one-row rebuild
    columns = [Col.ENVELOPE, Col.KEYS, Col.NEW_IMAGE, Col.OLD_IMAGE, Col.EVENT_SOURCE]
    assert texts == [rebuild_record(*(row[name] for name in columns)) for row in rows]
    assert record_texts(table, suffix="\n").to_pylist() == [text + "\n" for text in texts]
    # and Kinesis data comes back as the exact base64 text that arrived
    for text, (raw, _) in zip(texts, drawn, strict=True):
        if raw.get("eventSource") == KINESIS:
            assert orjson.loads(text)["kinesis"]["data"] == raw["kinesis"]["data"]


def test_rows_across_slices_keep_their_order() -> None:
    # Given 20,000 rows (more than two of the rebuild's slices), Kinesis rows here and there
    records = TableHistory("orders", seed=11, items=50).changes(40)
    raws = [kinesis_record(r, i) if i % 4 == 0 else r for i, r in enumerate(records)]
    base = table_of([row_of(raw) for raw in raws])
    picks = [(i * 7) % 40 for i in range(20_000)]
    picks[8190:8196] = [0, 4, 8, 1, 2, 12]  # Kinesis rows around the first slice's end
    table = base.take(pa.array(picks))

    # When rebuilt; Then row i is record picks[i]
    expected = [orjson.dumps(raws[p]).decode() for p in picks]
    assert record_texts(table).to_pylist() == expected
    assert record_texts(table.slice(8000, 500)).to_pylist() == expected[8000:8500]
    assert record_texts(table.slice(0, 0)).to_pylist() == []


def test_only_kinesis_rows() -> None:
    raws = [kinesis_record(r, i) for i, r in enumerate(TableHistory("orders", seed=2).changes(5))]
    table = table_of([row_of(raw) for raw in raws])
    assert record_texts(table).to_pylist() == [orjson.dumps(raw).decode() for raw in raws]


# --- text, not values: what no parse-and-dump could give back -----------------------------------


def test_the_stored_text_comes_back_as_it_is() -> None:
    # Given an envelope in another writer's spelling: spaces, escaped unicode, a 30-digit integer
    envelope = (
        '{ "eventID" : "e1", "dynamodb" : {"Keys":null, "SizeBytes": 123456789012345678901234567890,'
        ' "NewImage":null}, "note": "caf\\u00e9 1.0E+2" }'
    )
    keys, new = '{"pk": {"S": "a"}}', '{"pk":{"S":"a"},"n":{"N":"1.50"}}'
    # When spliced; Then only the placeholders' null changed
    assert splice(envelope, keys, new, None) == (
        envelope.replace('"Keys":null', f'"Keys":{keys}').replace(
            '"NewImage":null', f'"NewImage":{new}'
        )
    )


def test_images_are_never_searched_for_placeholders() -> None:
    # Given images whose text holds placeholders (not DynamoDB JSON, but text all the same)
    envelope = '{"eventID":"e1","dynamodb":{"Keys":null,"NewImage":null,"OldImage":null}}'
    keys, new, old = '{"Keys":null}', '{"OldImage":null,"NewImage":null}', '{"Keys":null}'
    row = {
        Col.EVENT_ID: "e1",
        Col.EVENT_SOURCE: "aws:dynamodb",
        Col.SEQUENCE_NUMBER: pad_sequence("1"),
        Col.KEYS: keys,
        Col.NEW_IMAGE: new,
        Col.OLD_IMAGE: old,
        Col.ENVELOPE: envelope,
    }
    expected = f'{{"eventID":"e1","dynamodb":{{"Keys":{keys},"NewImage":{new},"OldImage":{old}}}}}'
    # When spliced one by one and column-wise; Then each image goes in its own place
    assert splice(envelope, keys, new, old) == expected
    assert record_texts(table_of([row, row])).to_pylist() == [expected, expected]


def test_kinesis_data_is_the_base64_of_the_inner_text_spliced() -> None:
    # Given a Kinesis envelope that is not in Lambda's member order, with spaces and big numbers
    inner = (
        '{"eventID": "e1", "dynamodb": {"SizeBytes": 123456789012345678901234567890, "Keys":null}}'
    )
    envelope = (
        '{"eventSource": "aws:kinesis", "n": 1e400, "kinesis": {"partitionKey": "p", '
        f'"data" : {inner} , "sequenceNumber": "4959"}}, "x": {{"data": {{"Keys":null}}}}}}'
    )
    keys = '{"pk":{"S":"a"}}'

    # When rebuilt
    text = rebuild_record(envelope, keys, None, None, KINESIS)

    # Then data is the base64 of exactly the inner text with its images spliced in, and the
    # rest of the envelope (the decoy "data" outside kinesis included) is unchanged
    data = base64.b64encode(inner.replace('"Keys":null', f'"Keys":{keys}').encode()).decode()
    assert text == envelope.replace(f"{inner} ,", f'"{data}" ,')


def test_kinesis_data_kept_as_base64_text_comes_back_byte_for_byte() -> None:
    data = base64.b64encode(b'{"eventID": "e1", "dynamodb": {"Keys": {"pk": {"S": "a"}}}}').decode()
    envelope = f'{{"kinesis":{{"sequenceNumber":"1","data":"{data}"}},"eventSource":"aws:kinesis"}}'
    # images in the columns are not needed: the base64 text holds them
    assert rebuild_record(envelope, '{"pk":{"S":"a"}}', None, None, KINESIS) == envelope


# --- broken contracts ------------------------------------------------------------------------


ENVELOPE = '{"eventID":"e1","dynamodb":{"Keys":null,"NewImage":null,"SequenceNumber":"1"}}'
KEYS, IMAGE = '{"pk":{"S":"a"}}', '{"pk":{"S":"a"},"v":{"N":"1"}}'


BROKEN = [
    (ENVELOPE.replace('"Keys":null,', ""), IMAGE, r'no "Keys":null placeholder'),
    (
        ENVELOPE.replace('"Keys":null', '"Keys":null,"x":{"Keys":null}'),
        IMAGE,
        r'"Keys":null placeholder more than once',
    ),
    (
        ENVELOPE.replace('"NewImage":null', '"NewImage":null,"NewImage":null'),
        IMAGE,
        r'"NewImage":null placeholder more than once',
    ),
    (
        ENVELOPE.replace('{"eventID"', '{"x":{"NewImage":null},"eventID"'),
        IMAGE,
        r'"NewImage":null placeholder more than once',
    ),
    (
        ENVELOPE.replace('"SequenceNumber"', '"x":{"NewImage":null},"SequenceNumber"'),
        IMAGE,
        r'"NewImage":null placeholder more than once',
    ),
    (ENVELOPE.replace('"NewImage":null,', ""), IMAGE, r'no "NewImage":null placeholder, but new'),
    (
        ENVELOPE.replace('"NewImage":null', '"NewImage":null,"NewImage":null'),
        None,
        r'"NewImage":null placeholder more than once',
    ),
]
BROKEN_IDS = [
    "no-keys",
    "keys-twice",
    "new-image-twice",
    "new-image-also-before-keys",
    "new-image-also-at-the-end",
    "no-new-image-placeholder",
    "null-image-twice",
]


def test_an_image_that_arrived_as_null_stays_null() -> None:
    # Given a record that arrived with "NewImage": null (its column is null, its null kept)
    # When it is rebuilt, Then the null is given back where it was, once
    assert splice(ENVELOPE, KEYS, None, None) == ENVELOPE.replace('"Keys":null', f'"Keys":{KEYS}')


@pytest.mark.parametrize(("envelope", "new_image", "message"), BROKEN, ids=BROKEN_IDS)
def test_splice_names_a_missing_or_repeated_placeholder(
    envelope: str, new_image: str | None, message: str
) -> None:
    with pytest.raises(FormatError, match=message):
        splice(envelope, KEYS, new_image, None)


@pytest.mark.parametrize(("envelope", "new_image", "message"), BROKEN, ids=BROKEN_IDS)
def test_record_texts_refuse_what_splice_refuses(
    envelope: str, new_image: str | None, message: str
) -> None:
    # Given good rows and one whose envelope breaks the contract, in every position
    good = {
        Col.EVENT_ID: "good",
        Col.EVENT_SOURCE: "aws:dynamodb",
        Col.SEQUENCE_NUMBER: pad_sequence("1"),
        Col.KEYS: KEYS,
        Col.NEW_IMAGE: IMAGE,
        Col.OLD_IMAGE: None,
        Col.ENVELOPE: ENVELOPE,
    }
    bad = dict(good, **{Col.EVENT_ID: "bad", Col.ENVELOPE: envelope, Col.NEW_IMAGE: new_image})
    for rows in ([bad], [good, bad], [bad, good, good]):
        # Then the vectorised rebuild names it as the one-row rebuild does
        with pytest.raises(FormatError, match=r"\(eventID bad\): .*" + message):
            record_texts(table_of(rows))


def test_record_texts_name_the_row_and_event_that_break_the_contract() -> None:
    good = {
        Col.EVENT_ID: "good",
        Col.EVENT_SOURCE: "aws:dynamodb",
        Col.SEQUENCE_NUMBER: pad_sequence("1"),
        Col.KEYS: KEYS,
        Col.NEW_IMAGE: IMAGE,
        Col.OLD_IMAGE: None,
        Col.ENVELOPE: ENVELOPE,
    }
    bad = dict(good, **{Col.EVENT_ID: "bad", Col.ENVELOPE: ENVELOPE.replace('"Keys":null,', "")})
    with pytest.raises(
        FormatError, match=r'^row 9000 \(eventID bad\): envelope holds no "Keys":null'
    ):
        record_texts(table_of([good] * 9000 + [bad]))
    kinesis = dict(good, **{Col.EVENT_SOURCE: KINESIS, Col.EVENT_ID: "k"})
    with pytest.raises(
        FormatError, match=r"^row 1 \(eventID k\): Kinesis envelope holds no kinesis.data"
    ):
        record_texts(table_of([good, kinesis]))


@pytest.mark.parametrize(
    ("envelope", "message"),
    [
        ('{"kinesis":{"data":7}}', "neither base64 text nor an object"),
        ('{"kinesis":{"data":', "not a JSON object"),
        ('{"kinesis":"x"}', "no kinesis.data"),
        ("[]", "no kinesis.data"),
    ],
)
def test_a_broken_kinesis_envelope_is_a_format_error(envelope: str, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        rebuild_record(envelope, KEYS, None, None, KINESIS)


# --- item identifiers --------------------------------------------------------------------------


def test_item_identifiers_are_the_sequence_numbers_as_they_arrived() -> None:
    records = TableHistory("orders", seed=4).changes(4)
    # DynamoDB Local writes 21-digit sequence numbers with leading zeros
    records[0]["dynamodb"]["SequenceNumber"] = "000000000000000000039"
    # a field before dynamodb holding a SequenceNumber of its own
    records[1] = {"meta": {"SequenceNumber": "12"}, **records[1]}
    records[2]["dynamodb"]["SequenceNumber"] = "0"
    raws = [*records, kinesis_record(records[3], 77)]
    table = table_of([row_of(raw) for raw in raws])

    spaced = table_of(
        [
            dict(
                row_of(records[0]),
                **{Col.ENVELOPE: row_of(records[0])[Col.ENVELOPE].replace('":"0', '" : "0')},
            )
        ]
    )
    assert item_identifiers(spaced) == ["000000000000000000039"]
    assert item_identifiers(table) == [
        "000000000000000000039",
        records[1]["dynamodb"]["SequenceNumber"],
        "0",
        records[3]["dynamodb"]["SequenceNumber"],
        raws[4]["kinesis"]["sequenceNumber"],
    ]
