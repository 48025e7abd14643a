"""The DynamoDB Streams API, as the poller needs it: shards, iterators, pages of records.

``StreamSource`` wraps a boto3 ``dynamodbstreams`` client (or anything with
the same three methods, such as the tests' scripted fake) and turns its
answers and errors into plain values: a page of records in the Lambda event
shape, or a ``StreamEvent`` saying the iterator expired, data was trimmed,
the stream was throttled or is gone. ``to_lambda_record`` converts a record
as boto3 returns it (datetimes, bytes) to the shape Lambda delivers.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

__all__ = [
    "Page",
    "Shard",
    "StreamBusy",
    "StreamEvent",
    "StreamGone",
    "StreamSource",
    "to_lambda_record",
]


class StreamEvent(StrEnum):
    EXPIRED = "expired"  # the shard iterator is older than 15 minutes
    TRIMMED = "trimmed"  # the position is older than the stream's 24-hour retention
    THROTTLED = "throttled"  # LimitExceededException and friends: back off and try again
    UNAVAILABLE = "unavailable"  # a 5xx or network error: back off and try again


class StreamGone(Exception):
    """The stream no longer exists or is disabled: nothing more can be read."""


class StreamBusy(Exception):
    """DescribeStream or GetShardIterator was throttled or failed transiently: try again later."""


@dataclass(frozen=True, slots=True)
class Shard:
    shard_id: str
    parent_id: str | None
    starting_sequence: str | None
    ending_sequence: str | None  # set once the shard is closed

    @property
    def closed(self) -> bool:
        return self.ending_sequence is not None


@dataclass(frozen=True, slots=True)
class Page:
    records: list[dict[str, Any]]
    next_iterator: str | None  # None: the shard is closed and fully read
    event: StreamEvent | None = None
    detail: str = ""


_THROTTLED = {
    "LimitExceededException",
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
}
_UNAVAILABLE = {"InternalServerError", "ServiceUnavailable", "InternalFailure"}


def _convert(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode()
    if isinstance(value, dict):
        return {k: _convert(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_convert(v) for v in value]
    if isinstance(value, set):
        return [_convert(v) for v in value]
    return value


def to_lambda_record(record: dict[str, Any], stream_arn: str) -> dict[str, Any]:
    """A GetRecords record (as boto3 parses it) in the shape Lambda delivers, with eventSourceARN."""
    out = dict(record)
    ddb = dict(record.get("dynamodb") or {})
    stamp = ddb.get("ApproximateCreationDateTime")
    if isinstance(stamp, datetime):
        seconds = stamp.timestamp()
        ddb["ApproximateCreationDateTime"] = int(seconds) if seconds == int(seconds) else seconds
    for name in ("Keys", "NewImage", "OldImage"):
        if name in ddb:
            ddb[name] = _convert(ddb[name])
    out["dynamodb"] = ddb
    out.setdefault("eventSourceARN", stream_arn)
    return out


class StreamSource:
    """Reads one stream through a ``dynamodbstreams`` client."""

    def __init__(self, client: Any, stream_arn: str) -> None:
        self.client = client
        self.stream_arn = stream_arn

    def _code(self, err: Exception) -> str:
        response = getattr(err, "response", None) or {}
        return str(response.get("Error", {}).get("Code", type(err).__name__))

    def _busy(self, err: Exception, call: str) -> None:
        """Raise StreamBusy for throttling and transient failures (retried by the poller)."""
        code = self._code(err)
        # A botocore error without a response is a connection failure, also transient.
        connection = type(err).__module__.startswith(("botocore", "urllib3")) and not hasattr(
            err, "response"
        )
        if code in _THROTTLED or code in _UNAVAILABLE or connection:
            raise StreamBusy(f"{call}: {code}") from err

    def describe(self) -> tuple[str, list[Shard]]:
        """The stream's status and every shard it lists (DescribeStream, all pages)."""
        shards: list[Shard] = []
        start: dict[str, str] = {}
        status = "ENABLED"
        while True:
            try:
                description = self.client.describe_stream(StreamArn=self.stream_arn, **start)[
                    "StreamDescription"
                ]
            except Exception as err:
                if self._code(err) == "ResourceNotFoundException":
                    raise StreamGone(f"stream {self.stream_arn} does not exist") from err
                self._busy(err, "DescribeStream")
                raise
            status = description.get("StreamStatus", status)
            for raw in description.get("Shards", []):
                span = raw.get("SequenceNumberRange", {})
                shards.append(
                    Shard(
                        raw["ShardId"],
                        raw.get("ParentShardId"),
                        span.get("StartingSequenceNumber"),
                        span.get("EndingSequenceNumber"),
                    )
                )
            last = description.get("LastEvaluatedShardId")
            if not last:
                return status, shards
            start = {"ExclusiveStartShardId": last}

    def iterator(self, shard_id: str, after: str | None) -> str | None:
        """An iterator after ``after`` (a sequence number), or at the shard's oldest record."""
        kwargs: dict[str, Any] = {"StreamArn": self.stream_arn, "ShardId": shard_id}
        if after is None:
            kwargs["ShardIteratorType"] = "TRIM_HORIZON"
        else:
            kwargs.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", SequenceNumber=after)
        try:
            iterator: str | None = self.client.get_shard_iterator(**kwargs).get("ShardIterator")
        except Exception as err:
            code = self._code(err)
            if code == "TrimmedDataAccessException":
                return None
            if code == "ResourceNotFoundException":
                raise StreamGone(f"shard {shard_id} of {self.stream_arn} is gone") from err
            self._busy(err, "GetShardIterator")
            raise
        return iterator

    def read(self, iterator: str, limit: int = 1000) -> Page:
        """One GetRecords call, its errors turned into a Page with an event."""
        try:
            response = self.client.get_records(ShardIterator=iterator, Limit=limit)
        except Exception as err:
            code = self._code(err)
            if code in ("ExpiredIteratorException", "ValidationException"):
                # ValidationException: an iterator the service no longer accepts; open a new one.
                return Page([], iterator, StreamEvent.EXPIRED, str(err))
            if code == "TrimmedDataAccessException":
                return Page([], iterator, StreamEvent.TRIMMED, str(err))
            if code in _THROTTLED:
                return Page([], iterator, StreamEvent.THROTTLED, code)
            # Before the catch-all below: a ClientError's module is botocore's too.
            if code == "ResourceNotFoundException":
                raise StreamGone(f"stream {self.stream_arn} is gone") from err
            if code in _UNAVAILABLE or type(err).__module__.startswith(("botocore", "urllib3")):
                return Page([], iterator, StreamEvent.UNAVAILABLE, f"{code}: {err}")
            raise
        records = [to_lambda_record(r, self.stream_arn) for r in response.get("Records", [])]
        return Page(records, response.get("NextShardIterator"))


def ready_shards(shards: list[Shard], finished: set[str]) -> Iterator[Shard]:
    """Shards that may be read now: not finished, and their parent finished or no longer listed."""
    listed = {s.shard_id for s in shards}
    for shard in shards:
        if shard.shard_id in finished:
            continue
        if shard.parent_id is None or shard.parent_id not in listed or shard.parent_id in finished:
            yield shard
