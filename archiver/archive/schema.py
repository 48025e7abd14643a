"""The archive's Arrow schema (version 1) and promoted columns.

Column names here are the contract Athena users, the docs and the replayer rely
on; no other module spells them. Promoted columns are extra typed top-level
columns copied from one attribute of each change's image, chosen by the user
(``customer_id:string,amount:decimal(18,2)``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Context, Decimal, InvalidOperation
from typing import Any

import pyarrow as pa

from .errors import FormatError

__all__ = [
    "COLUMNS",
    "METADATA_SCHEMA_VERSION",
    "PARTITION_COLUMNS",
    "SCHEMA_VERSION",
    "Col",
    "PromotedColumn",
    "arrow_schema",
    "parse_promoted_columns",
]

SCHEMA_VERSION = 1
METADATA_SCHEMA_VERSION = b"dynamodb_archive.schema_version"
METADATA_PROMOTED = b"dynamodb_archive.promoted_columns"


class Col:
    """Column names of schema version 1."""

    EVENT_ID = "event_id"
    EVENT_NAME = "event_name"
    EVENT_SOURCE = "event_source"
    SEQUENCE_NUMBER = "sequence_number"
    CHANGE_TIME = "change_time"
    STREAM_ARN = "stream_arn"
    STREAM_VIEW_TYPE = "stream_view_type"
    SIZE_BYTES = "size_bytes"
    AWS_REGION = "aws_region"
    USER_IDENTITY = "user_identity"
    TTL_DELETE = "ttl_delete"
    SHARD_ID = "shard_id"
    KEYS = "keys"
    KEYS_PLAIN = "keys_plain"
    ITEM_KEY = "item_key"
    NEW_IMAGE = "new_image"
    OLD_IMAGE = "old_image"
    NEW_IMAGE_PLAIN = "new_image_plain"
    OLD_IMAGE_PLAIN = "old_image_plain"
    ENVELOPE = "envelope"


PARTITION_COLUMNS = ("table_name", "dt", "hour")

_STRING = pa.string()
COLUMNS: tuple[tuple[str, pa.DataType, bool, str], ...] = (
    (Col.EVENT_ID, _STRING, False, "The stream record's eventID; unique per change."),
    (Col.EVENT_NAME, _STRING, False, "INSERT, MODIFY or REMOVE."),
    (
        Col.EVENT_SOURCE,
        _STRING,
        False,
        "aws:dynamodb, or aws:kinesis for Kinesis-delivered changes.",
    ),
    (
        Col.SEQUENCE_NUMBER,
        _STRING,
        False,
        "The source's sequence number, zero-padded (40 digits for DynamoDB Streams, 128 for Kinesis)"
        " so that text order is numeric order.",
    ),
    (
        Col.CHANGE_TIME,
        pa.timestamp("us", tz="UTC"),
        False,
        "ApproximateCreationDateTime: when the change was made, UTC.",
    ),
    (Col.STREAM_ARN, _STRING, True, "eventSourceARN: the DynamoDB stream (or Kinesis stream) ARN."),
    (Col.STREAM_VIEW_TYPE, _STRING, True, "KEYS_ONLY, NEW_IMAGE, OLD_IMAGE or NEW_AND_OLD_IMAGES."),
    (Col.SIZE_BYTES, pa.int64(), True, "SizeBytes of the stream record."),
    (Col.AWS_REGION, _STRING, True, "awsRegion of the record."),
    (Col.USER_IDENTITY, _STRING, True, "userIdentity as JSON (present on TTL deletions)."),
    (Col.TTL_DELETE, pa.bool_(), False, "True when DynamoDB's TTL process removed the item."),
    (Col.SHARD_ID, _STRING, True, "Stream shard the record was read from, when known (poller)."),
    (Col.KEYS, _STRING, False, "Keys as DynamoDB JSON (typed)."),
    (Col.KEYS_PLAIN, _STRING, False, "Keys as plain JSON."),
    (
        Col.ITEM_KEY,
        _STRING,
        False,
        "The item's key as canonical DynamoDB JSON (attribute names sorted): equal for every change "
        "of one item, for grouping by item.",
    ),
    (Col.NEW_IMAGE, _STRING, True, "NewImage as DynamoDB JSON (typed); null when absent."),
    (Col.OLD_IMAGE, _STRING, True, "OldImage as DynamoDB JSON (typed); null when absent."),
    (Col.NEW_IMAGE_PLAIN, _STRING, True, "NewImage as plain JSON, when enabled."),
    (Col.OLD_IMAGE_PLAIN, _STRING, True, "OldImage as plain JSON, when enabled."),
    (
        Col.ENVELOPE,
        _STRING,
        False,
        "The stream record as it arrived, minus its images, as JSON; replay rebuilds the record from it.",
    ),
)
BASE_COLUMN_NAMES = frozenset(name for name, *_ in COLUMNS) | set(PARTITION_COLUMNS)

_SPEC = re.compile(
    r"^\s*(?:(?P<column>[a-z_][a-z0-9_]*)\s*=\s*)?(?P<attribute>[^:=,]+?)\s*:\s*"
    r"(?P<type>string|bigint|double|boolean|decimal\(\s*(?P<p>\d+)\s*,\s*(?P<s>\d+)\s*\))\s*$"
)
_COLUMN_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
_DECIMAL_CONTEXT = Context(prec=80)
_BIGINT_MIN, _BIGINT_MAX = -(2**63), 2**63 - 1


@dataclass(frozen=True, slots=True)
class PromotedColumn:
    """A typed top-level column copied from one attribute of each change.

    The value comes from NewImage, else OldImage, else Keys. ``string`` takes
    an S value, or an N value's text as written; ``bigint`` and ``decimal(p,s)``
    take an N value only when it fits exactly (never rounded); ``double`` takes
    the nearest binary float of an N value; ``boolean`` takes BOOL. Anything
    else is stored as null: the typed image keeps the truth.
    """

    column: str
    attribute: str
    type_name: str
    precision: int = 0
    scale: int = 0

    @property
    def arrow_type(self) -> pa.DataType:
        if self.type_name == "decimal":
            return pa.decimal128(self.precision, self.scale)
        return {
            "string": pa.string(),
            "bigint": pa.int64(),
            "double": pa.float64(),
            "boolean": pa.bool_(),
        }[self.type_name]

    @property
    def athena_type(self) -> str:
        if self.type_name == "decimal":
            return f"decimal({self.precision},{self.scale})"
        return self.type_name

    def value(self, av: dict[str, Any] | None) -> Any:
        """The column's value for one typed attribute value (or None)."""
        if av is None:
            return None
        tag, v = next(iter(av.items()))
        kind = self.type_name
        if kind == "string":
            return v if tag in ("S", "N") else None
        if kind == "boolean":
            return v if tag == "BOOL" else None
        if tag != "N":
            return None
        try:
            number = Decimal(v)
        except InvalidOperation:
            return None
        if kind == "double":
            return float(number)
        if kind == "bigint":
            if number != number.to_integral_value() or not _BIGINT_MIN <= number <= _BIGINT_MAX:
                return None
            return int(number)
        if number and number.adjusted() >= self.precision - self.scale:
            return None  # too many integer digits; quantize would also raise for huge numbers
        quantized = number.quantize(Decimal(1).scaleb(-self.scale), context=_DECIMAL_CONTEXT)
        if quantized != number or len(quantized.as_tuple().digits) > self.precision:
            return None
        return quantized


def parse_promoted_columns(spec: str) -> tuple[PromotedColumn, ...]:
    """Parse ``"customer_id:string,total=amount:decimal(18,2)"``.

    Each entry is ``[column=]attribute:type`` with type one of string, bigint,
    double, boolean, decimal(p,s). The column defaults to the attribute's name
    and must be a lowercase identifier that does not clash with the archive's
    own columns.

    Raises
    ------
    FormatError
        Naming the entry that could not be parsed and why.
    """
    columns: list[PromotedColumn] = []
    seen: set[str] = set()
    # Split on commas outside parentheses: decimal(p,s) holds one.
    for entry in filter(None, (part.strip() for part in re.split(r",(?![^()]*\))", spec))):
        columns.append(_parse_one(entry))
    for col in columns:
        if col.column in BASE_COLUMN_NAMES:
            raise FormatError(f"promoted column {col.column!r} clashes with an archive column")
        if col.column in seen:
            raise FormatError(f"promoted column {col.column!r} is named twice")
        seen.add(col.column)
    return tuple(columns)


def _parse_one(entry: str) -> PromotedColumn:
    match = _SPEC.match(entry)
    if match is None:
        raise FormatError(
            f"promoted column {entry!r}: expected [column=]attribute:type with type one of "
            "string, bigint, double, boolean, decimal(p,s)"
        )
    attribute = match["attribute"]
    column = match["column"] or attribute
    if not _COLUMN_NAME.match(column):
        raise FormatError(
            f"promoted column {entry!r}: {column!r} is not a valid column name; "
            "name it explicitly, e.g. customer_id=customerId:string"
        )
    type_name = match["type"].split("(")[0]
    precision = int(match["p"] or 0)
    scale = int(match["s"] or 0)
    if type_name == "decimal" and not (1 <= precision <= 38 and scale <= precision):
        raise FormatError(f"promoted column {entry!r}: decimal needs 1 <= p <= 38 and s <= p")
    return PromotedColumn(column, attribute, type_name, precision, scale)


def arrow_schema(promoted: tuple[PromotedColumn, ...] = ()) -> pa.Schema:
    """The Arrow schema of archive files with these promoted columns."""
    fields = [pa.field(name, kind, nullable=nullable) for name, kind, nullable, _ in COLUMNS]
    fields += [pa.field(col.column, col.arrow_type) for col in promoted]
    spec = ",".join(f"{c.column}={c.attribute}:{c.athena_type}" for c in promoted)
    metadata = {
        METADATA_SCHEMA_VERSION: str(SCHEMA_VERSION).encode(),
        METADATA_PROMOTED: spec.encode(),
    }
    return pa.schema(fields, metadata=metadata)
