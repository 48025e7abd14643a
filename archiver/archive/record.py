"""The archive's record model: one decoded stream change, ready to encode.

A :class:`ChangeRecord` keeps the typed images as the JSON text that arrived and
the rest of the original stream record as an *envelope* (the record's text with
its images set to ``null``), so the exact record that arrived can be rebuilt on
replay, field order and fields this code does not know about included. Only the
fields the archive keeps as columns are decoded.
"""

from __future__ import annotations

from enum import StrEnum

import msgspec

__all__ = [
    "DYNAMODB_SOURCE",
    "KINESIS_SOURCE",
    "TTL_PRINCIPAL",
    "ChangeRecord",
    "EventName",
    "ViewType",
    "pad_sequence",
]

DYNAMODB_SOURCE = "aws:dynamodb"
KINESIS_SOURCE = "aws:kinesis"
TTL_PRINCIPAL = "dynamodb.amazonaws.com"

# Sequence numbers are decimal strings of varying length (DynamoDB: 21 to 40
# digits; Kinesis: up to 128). Zero-padded to a fixed width, text order is
# numeric order, which Parquet statistics, Athena and DuckDB can all use.
SEQUENCE_WIDTH = {DYNAMODB_SOURCE: 40, KINESIS_SOURCE: 128}


class EventName(StrEnum):
    INSERT = "INSERT"
    MODIFY = "MODIFY"
    REMOVE = "REMOVE"


class ViewType(StrEnum):
    KEYS_ONLY = "KEYS_ONLY"
    NEW_IMAGE = "NEW_IMAGE"
    OLD_IMAGE = "OLD_IMAGE"
    NEW_AND_OLD_IMAGES = "NEW_AND_OLD_IMAGES"


def pad_sequence(sequence_number: str, source: str = DYNAMODB_SOURCE) -> str:
    """A sequence number zero-padded so that text order is numeric order."""
    return sequence_number.rjust(SEQUENCE_WIDTH[source], "0")


class ChangeRecord(msgspec.Struct, frozen=True, gc=False):
    """One change to one item, decoded and validated.

    ``sequence_number`` is the source's own (DynamoDB Streams, or Kinesis for
    Kinesis-delivered changes), unpadded, exactly as it arrived; it is also
    what Lambda expects back as a batch item failure's ``itemIdentifier``.
    ``change_time_us`` is ApproximateCreationDateTime in epoch microseconds.
    ``keys``, ``new_image``, ``old_image``, ``envelope`` and ``user_identity``
    are JSON text (UTF-8 bytes) as it arrived; ``item_key`` is the keys as
    canonical typed JSON (names sorted) and ``keys_plain`` the keys as plain
    JSON. A struct without cycles (``gc=False``): the cyclic GC never walks it.
    """

    table_name: str
    event_id: str
    event_name: EventName
    event_source: str
    sequence_number: str
    change_time_us: int
    keys: bytes
    new_image: bytes | None
    old_image: bytes | None
    envelope: bytes
    item_key: bytes
    keys_plain: bytes
    stream_arn: str | None = None
    view_type: str | None = None
    size_bytes: int | None = None
    aws_region: str | None = None
    user_identity: bytes | None = None
    ttl_delete: bool = False
    shard_id: str | None = None

    @property
    def ref(self) -> str:
        """How logs name this record without showing item data."""
        return f"{self.table_name}/{self.event_id}/{self.sequence_number}"

    @property
    def is_ttl_delete(self) -> bool:
        return self.ttl_delete
