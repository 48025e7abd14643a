"""Shared hypothesis strategies: DynamoDB attribute values, items and stream records.

Everything is in the form Lambda delivers (typed DynamoDB JSON, binary as
base64 text), and valid for DynamoDB: numbers of at most 38 significant digits
within DynamoDB's range, non-empty sets with unique members, key attributes of
type S, N or B, images consistent with the event name and stream view type.
"""

from __future__ import annotations

import base64
from decimal import Decimal
from typing import Any

import orjson
from hypothesis import strategies as st

from devkit.traffic import kinesis_record

__all__ = [
    "ARN_LABEL",
    "EVENT_NAMES",
    "MAX_SECONDS",
    "MIN_SECONDS",
    "TTL_IDENTITY",
    "VIEW_TYPES",
    "attribute_names",
    "attribute_values",
    "binary_texts",
    "change_seconds",
    "deep_values",
    "dynamodb_records",
    "images",
    "items",
    "key_schemas",
    "kinesis_records",
    "number_texts",
    "record_batches",
    "scalar_values",
    "sequence_numbers",
    "stream_arn",
    "strings",
    "table_names",
]

ARN_LABEL = "2026-11-27T00:00:00.000"
EVENT_NAMES = ("INSERT", "MODIFY", "REMOVE")
VIEW_TYPES = ("KEYS_ONLY", "NEW_IMAGE", "OLD_IMAGE", "NEW_AND_OLD_IMAGES")
TTL_IDENTITY = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
MIN_SECONDS = 1_577_836_800  # 2020-01-01T00:00:00Z
MAX_SECONDS = 4_102_444_799  # 2099-12-31T23:59:59Z
MAX_DEPTH = 32  # DynamoDB's limit on nesting

# Any character JSON (and UTF-8) can carry: lone surrogates cannot be encoded.
_CHARACTERS = st.characters(exclude_categories=["Cs"])

strings = st.text(_CHARACTERS, max_size=40)
attribute_names = st.one_of(
    st.text("abcdefghijklmnopqrstuvwxyz_ABCXYZ0123456789", min_size=1, max_size=12),
    st.text(_CHARACTERS, min_size=1, max_size=12),
)
table_names = st.text(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-", min_size=3, max_size=255
).filter(lambda name: name != "...")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


binary_texts = st.binary(max_size=48).map(_b64)


# --- numbers -----------------------------------------------------------------

_NUMBER_EXAMPLES = (
    "0",
    "-0",
    "1",
    "1.50",
    "-0.001",
    "12345678901234567890123456789012345678",
    "-12345678901234567890123456789012345678",
    "1E+125",
    "1e-130",
    "-1E-130",
    "9.9999999999999999999999999999999999999E+125",
    "0.1",
    ".5",
    "5.",
    "007",
    "+7",
    "100",
    "1.0E+2",
    "3.14159265358979323846264338327950288",
    "0.0",
    "-0.000",
)


@st.composite
def _built_numbers(draw: st.DrawFn) -> str:
    """A number from (sign, significant digits, exponent), in one of many spellings."""
    sign = draw(st.sampled_from(["", "", "", "-", "-", "+"]))
    n = draw(st.integers(1, 38))
    first = draw(st.sampled_from("123456789"))
    digits = first + draw(st.text("0123456789", min_size=n - 1, max_size=n - 1))
    # adjusted exponent (of the first digit), within DynamoDB's 1E-130 .. 9.9E+125
    adjusted = draw(st.one_of(st.integers(-6, 40), st.integers(-130, 125)))
    # boto3's context (prec 38, Emin -128) can hold a last digit down to 1E-165
    adjusted = max(adjusted, n - 166)
    last = adjusted - (n - 1)  # exponent of the last digit
    style = draw(st.sampled_from(["positional", "positional", "scientific", "scientific-int"]))
    if style == "positional" and last >= 0 and n + last > 38:
        style = "scientific"  # a positional integer with more than 38 digits
    if style == "positional":
        if last >= 0:
            text = digits + "0" * last
        elif adjusted >= 0:
            text = digits[: adjusted + 1] + "." + digits[adjusted + 1 :]
        else:
            text = ("" if draw(st.booleans()) else "0") + "." + "0" * (-adjusted - 1) + digits
        used = n + max(last, 0)  # digits written so far, leading zeros aside
        room = min(38 - used, min(last, 0) + 165)
        if room > 0 and draw(st.booleans()):
            # trailing zeros ("5.", "1.50"), keeping at most 38 digits, none below 1E-165
            zeros = "0" * draw(st.integers(0, room))
            text += zeros if "." in text else "." + zeros
        if draw(st.integers(0, 5)) == 5:
            text = "00" + text  # leading zeros
        return sign + text
    marker = draw(st.sampled_from(["E", "e"]))
    if style == "scientific":
        mantissa = digits[0] + ("." + digits[1:] if n > 1 else "")
        exponent = adjusted
    else:
        mantissa, exponent = digits, last
    exp_sign = "-" if exponent < 0 else draw(st.sampled_from(["", "+"]))
    return f"{sign}{mantissa}{marker}{exp_sign}{abs(exponent)}"


number_texts = st.one_of(st.sampled_from(_NUMBER_EXAMPLES), _built_numbers())


# --- attribute values ----------------------------------------------------------


def _tagged(tag: str) -> Any:
    return lambda value: {tag: value}


scalar_values = st.one_of(
    strings.map(_tagged("S")),
    number_texts.map(_tagged("N")),
    binary_texts.map(_tagged("B")),
    st.booleans().map(_tagged("BOOL")),
    st.just({"NULL": True}),
    st.lists(
        st.text(_CHARACTERS, min_size=1, max_size=12), min_size=1, max_size=5, unique=True
    ).map(_tagged("SS")),
    st.lists(number_texts, min_size=1, max_size=5, unique_by=Decimal).map(_tagged("NS")),
    st.lists(st.binary(min_size=1, max_size=24), min_size=1, max_size=5, unique=True).map(
        lambda members: {"BS": [_b64(m) for m in members]}
    ),
    st.just({"S": ""}),
    st.just({"M": {}}),
    st.just({"L": []}),
)


def _containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.dictionaries(attribute_names, children, max_size=5).map(_tagged("M")),
        st.lists(children, max_size=5).map(_tagged("L")),
    )


_nested_values = st.recursive(scalar_values, _containers, max_leaves=16)


@st.composite
def deep_values(draw: st.DrawFn, max_depth: int = MAX_DEPTH) -> dict[str, Any]:
    """A chain of M and L up to ``max_depth`` levels deep around one leaf."""
    kinds = draw(st.lists(st.sampled_from("ML"), min_size=1, max_size=max_depth))
    value = draw(scalar_values)
    for kind in reversed(kinds):
        value = {"M": {draw(attribute_names): value}} if kind == "M" else {"L": [value]}
    return value


attribute_values = st.one_of(_nested_values, _nested_values, deep_values())

# --- items and keys ------------------------------------------------------------

_key_values = {
    "S": st.text(_CHARACTERS, min_size=1, max_size=24).map(_tagged("S")),
    "N": number_texts.map(_tagged("N")),
    "B": st.binary(min_size=1, max_size=24).map(lambda b: {"B": _b64(b)}),
}


def key_schemas() -> st.SearchStrategy[list[tuple[str, str]]]:
    """A partition key and maybe a sort key: [(name, type)] with type S, N or B."""
    return st.lists(
        st.tuples(attribute_names, st.sampled_from("SNB")),
        min_size=1,
        max_size=2,
        unique_by=lambda key: key[0],
    )


@st.composite
def _keys(draw: st.DrawFn, schema: list[tuple[str, str]]) -> dict[str, Any]:
    return {name: draw(_key_values[kind]) for name, kind in schema}


@st.composite
def images(
    draw: st.DrawFn, keys: dict[str, Any] | None = None, max_size: int = 8
) -> dict[str, Any]:
    """An item: its key attributes (when given) and other attributes, in any order."""
    keys = keys if keys is not None else draw(key_schemas().flatmap(_keys))
    others = draw(st.dictionaries(attribute_names, attribute_values, max_size=max_size))
    members = list(keys.items()) + [(k, v) for k, v in others.items() if k not in keys]
    return dict(draw(st.permutations(members)))


items = images


# --- stream records ------------------------------------------------------------


def stream_arn(table: str) -> str:
    return f"arn:aws:dynamodb:us-east-1:123456789012:table/{table}/stream/{ARN_LABEL}"


sequence_numbers = st.integers(10**20, 10**40 - 1).map(str)  # 21 to 40 digits
change_seconds = st.one_of(
    st.integers(MIN_SECONDS, MAX_SECONDS),
    st.integers(MIN_SECONDS, MAX_SECONDS).map(float),
    st.floats(MIN_SECONDS, MAX_SECONDS, allow_nan=False, allow_infinity=False),
)


def _wants(event_name: str, view_type: str) -> tuple[bool, bool]:
    new = view_type in ("NEW_IMAGE", "NEW_AND_OLD_IMAGES") and event_name != "REMOVE"
    old = view_type in ("OLD_IMAGE", "NEW_AND_OLD_IMAGES") and event_name != "INSERT"
    return new, old


@st.composite
def dynamodb_records(
    draw: st.DrawFn,
    table: str | None = None,
    event_name: str | None = None,
    view_type: str | None = None,
    seconds: Any = None,
) -> dict[str, Any]:
    """One DynamoDB Streams record as Lambda delivers it, fields in any order."""
    table = table if table is not None else draw(table_names)
    event_name = event_name or draw(st.sampled_from(EVENT_NAMES))
    view_type = view_type or draw(st.sampled_from(VIEW_TYPES))
    keys = draw(key_schemas().flatmap(_keys))
    wants_new, wants_old = _wants(event_name, view_type)
    ddb: dict[str, Any] = {
        "ApproximateCreationDateTime": seconds if seconds is not None else draw(change_seconds),
        "Keys": keys,
    }
    if wants_new:
        ddb["NewImage"] = draw(images(keys))
    if wants_old:
        ddb["OldImage"] = draw(images(keys))
    ddb["SequenceNumber"] = draw(sequence_numbers)
    ddb["SizeBytes"] = draw(st.integers(1, 409_600))
    ddb["StreamViewType"] = view_type
    record: dict[str, Any] = {
        "eventID": draw(st.uuids()).hex,
        "eventName": event_name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": dict(draw(st.permutations(list(ddb.items())))),
        "eventSourceARN": stream_arn(table),
    }
    if event_name == "REMOVE" and draw(st.booleans()):
        record["userIdentity"] = dict(TTL_IDENTITY)
    return dict(draw(st.permutations(list(record.items()))))


@st.composite
def kinesis_records(draw: st.DrawFn, table: str | None = None) -> dict[str, Any]:
    """One DynamoDB change as Lambda delivers it from a Kinesis data stream."""
    seconds = draw(st.integers(MIN_SECONDS, MAX_SECONDS))
    change = draw(dynamodb_records(table=table, seconds=seconds))
    precision = draw(st.sampled_from(["MILLISECOND", "MICROSECOND"]))
    return kinesis_record(change, draw(st.integers(0, 10**9)), precision=precision)


def record_batches(
    records: st.SearchStrategy[dict[str, Any]] | None = None, max_size: int = 4
) -> st.SearchStrategy[list[dict[str, Any]]]:
    """Records with distinct event ids and sequence numbers (so their archive order is defined)."""
    return st.lists(
        records if records is not None else dynamodb_records(),
        min_size=1,
        max_size=max_size,
        unique_by=(_event_id, _sequence),
    )


def _event_id(record: dict[str, Any]) -> str:
    if "kinesis" in record:  # the change's own eventID is inside the data
        return str(orjson.loads(base64.b64decode(record["kinesis"]["data"]))["eventID"])
    return str(record["eventID"])


def _sequence(record: dict[str, Any]) -> str:
    if "kinesis" in record:
        return str(record["kinesis"]["sequenceNumber"])
    return str(record["dynamodb"]["SequenceNumber"])


def insert_record(
    event_id: str, sequence: int, new_image: dict[str, Any] | None = None
) -> dict[str, Any]:
    """One small INSERT of table ``orders`` as Lambda delivers it: key ``pk`` = ``event_id``."""
    keys = {"pk": {"S": event_id}}
    return {
        "eventID": event_id,
        "eventName": "INSERT",
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": {
            "ApproximateCreationDateTime": 1_795_000_000 + sequence,
            "Keys": keys,
            "NewImage": new_image if new_image is not None else {**keys, "n": {"N": "1"}},
            "SequenceNumber": str(10**20 + sequence),
            "SizeBytes": 30,
            "StreamViewType": "NEW_IMAGE",
        },
        "eventSourceARN": stream_arn("orders"),
    }
