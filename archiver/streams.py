"""The DynamoDB Streams API, as the poller needs it: shards, iterators, pages of records.

``StreamSource`` wraps a boto3 ``dynamodbstreams`` client and turns its
answers and errors into plain values: a page of records, or a ``StreamEvent``
saying the iterator expired, data was trimmed, the stream was throttled or is
unavailable; ``StreamGone`` and ``StreamDenied`` when it is gone or refuses us
(errors sorted by :func:`archiver.archive.aws.classify`). DescribeStream and
GetShardIterator go through boto3 as usual (they are
rare). GetRecords is read as bytes: botocore signs and sends the call and
applies its retry rules, and :func:`get_records_reader` hands over the body of
a successful response unparsed, so a page's records are the raw JSON text of
each record (:func:`archiver.split.split_page`), exactly as DynamoDB sent it.
The tests' scripted streams give ``StreamSource`` a ``read_page`` serving such
bodies.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any

import msgspec

from archiver.archive.aws import Failure, classify, describe, error_code
from archiver.jsontext import JsonTextError, decode_members
from archiver.split import EventShapeError, split_page

__all__ = [
    "Page",
    "ReadPage",
    "Shard",
    "StreamBusy",
    "StreamDenied",
    "StreamEvent",
    "StreamGone",
    "StreamSource",
    "first_sequence",
    "get_records_reader",
    "last_position",
    "ready_shards",
]

log = logging.getLogger(__name__)

ReadPage = Callable[[str, int], bytes]
"""One GetRecords call: (shard iterator, limit) in, the response body out; SDK errors raised."""


class StreamEvent(StrEnum):
    EXPIRED = "expired"  # the shard iterator is older than 15 minutes
    TRIMMED = "trimmed"  # the position is older than the stream's 24-hour retention
    THROTTLED = "throttled"  # LimitExceededException and friends: back off and try again
    UNAVAILABLE = "unavailable"  # a 5xx, a network error or a garbled page: back off, try again


class StreamGone(Exception):
    """The stream no longer exists or is disabled: nothing more can be read."""


class StreamBusy(Exception):
    """DescribeStream or GetShardIterator was throttled or failed transiently: try again later."""


class StreamDenied(Exception):
    """The stream refused a call for good (credentials, permissions): nothing more can be read."""


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
    records: list[bytes]  # each record's JSON text, as GetRecords returned it
    next_iterator: str | None  # None: the shard is closed and fully read
    event: StreamEvent | None = None
    detail: str = ""


# -- GetRecords as bytes through botocore -------------------------------------------------------

# The member of botocore's parsed result that carries the body: botocore merges the
# ``customized_response_dict`` a before-parse handler fills into what the call returns.
_BODY = "ArchiverRawBody"


class _RawGetRecords:
    """GetRecords on one botocore client, the body of a 2xx response handed over unparsed.

    botocore emits ``before-parse.<service>.GetRecords`` after every HTTP
    attempt, before it parses the body. For a 2xx answer (and only while this
    reader's call runs on this thread) the handler moves the body into the
    call's own result and leaves botocore ``{}`` to parse. Everything else is
    botocore's as usual: signing with the SDK's credentials, region and
    endpoint, and for a non-2xx answer the error parsing, the retry decisions
    (they look at the status code and the parsed error code) and the
    ``ClientError`` raised once retries are spent.
    """

    def __init__(self, client: Any) -> None:
        self._client = client
        self._active = threading.local()
        service = client.meta.service_model.service_id.hyphenize()
        client.meta.events.register(f"before-parse.{service}.GetRecords", self._before_parse)

    def _before_parse(
        self, response_dict: dict[str, Any], customized_response_dict: dict[str, Any], **_: Any
    ) -> None:
        if not getattr(self._active, "on", False):
            return  # another caller's get_records on this client: botocore parses it
        if 200 <= response_dict.get("status_code", 0) < 300:
            customized_response_dict[_BODY] = response_dict["body"]
            response_dict["body"] = b"{}"

    def __call__(self, iterator: str, limit: int) -> bytes:
        self._active.on = True
        try:
            response = self._client.get_records(ShardIterator=iterator, Limit=limit)
        finally:
            self._active.on = False
        body = response.get(_BODY)
        if not isinstance(body, bytes):
            raise EventShapeError("GetRecords: the response body was not handed over")
        return body


def get_records_reader(client: Any) -> ReadPage:
    """GetRecords through ``client`` (a boto3 ``dynamodbstreams`` client), returning raw bodies.

    The client's other calls, and ``get_records`` called directly, are parsed
    by botocore as before.
    """
    return _RawGetRecords(client)


# -- positions in a page ---------------------------------------------------------------------


class _Position(msgspec.Struct):
    SequenceNumber: Annotated[str, msgspec.Meta(pattern="^[0-9]{1,40}$")]
    ApproximateCreationDateTime: float | None = None


class _Positioned(msgspec.Struct):
    dynamodb: _Position


_POSITION = msgspec.json.Decoder(_Positioned)


def _position(record: bytes) -> _Position | None:
    try:
        return _POSITION.decode(record).dynamodb
    except msgspec.DecodeError:  # dead-lettered by the flush; its neighbours say where we are
        return None


def last_position(records: list[bytes]) -> tuple[str | None, float | None]:
    """The sequence number and change time (epoch seconds) of the last record that has them."""
    for record in reversed(records):
        found = _position(record)
        if found is not None:
            return found.SequenceNumber, found.ApproximateCreationDateTime
    return None, None


def first_sequence(records: list[bytes]) -> str | None:
    """The sequence number of the first record that has one."""
    for record in records:
        found = _position(record)
        if found is not None:
            return found.SequenceNumber
    return None


def _check_end_of_shard(body: bytes) -> None:
    """EventShapeError unless ``body`` is a GetRecords response (it says the shard has ended)."""
    # split_page reads an object without "Records" as an empty page without a next iterator,
    # which would retire the shard: make sure the answer is one before believing it.
    try:
        members = decode_members(body)
    except JsonTextError:
        return  # split_page found the records by scanning: the member is there
    if "Records" not in members:
        raise EventShapeError(
            f"expected a GetRecords response, got an object with keys {sorted(members)[:10]}"
        )


# -- the source -------------------------------------------------------------------------------


class StreamSource:
    """Reads one stream through a ``dynamodbstreams`` client.

    ``read_page`` makes the GetRecords calls; by default
    :func:`get_records_reader` over ``client``, which must then be a botocore
    client of its own (one per poller).
    """

    def __init__(self, client: Any, stream_arn: str, read_page: ReadPage | None = None) -> None:
        self.client = client
        self.stream_arn = stream_arn
        self.read_page = read_page if read_page is not None else get_records_reader(client)

    def _refused(self, err: Exception, call: str, kind: Failure) -> None:
        """Raise StreamBusy for a failure the poller tries again later, StreamDenied for a refusal."""
        if kind.transient:
            raise StreamBusy(f"{call} on {self.stream_arn}: {describe(err)}") from err
        if kind is Failure.DENIED:
            raise StreamDenied(f"{call} on {self.stream_arn}: {describe(err)}") from err

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
                kind = classify(err)
                if kind is Failure.NOT_FOUND:
                    raise StreamGone(f"stream {self.stream_arn} does not exist") from err
                self._refused(err, "DescribeStream", kind)
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
            if error_code(err) == "TrimmedDataAccessException":
                return None
            kind = classify(err)
            if kind is Failure.NOT_FOUND:
                raise StreamGone(f"shard {shard_id} of {self.stream_arn} is gone") from err
            self._refused(err, "GetShardIterator", kind)
            raise
        return iterator

    def read(self, iterator: str, limit: int = 1000) -> Page:
        """One GetRecords call, its errors turned into a Page with an event."""
        try:
            body = self.read_page(iterator, limit)
            records, next_iterator = split_page(body)
            if next_iterator is None and not records:
                _check_end_of_shard(body)
        except EventShapeError as err:
            # A 2xx answer that is not a GetRecords response: a fault on the way (a proxy, a
            # cut-off body), not data. Read the same iterator again after a pause.
            log.warning("GetRecords on %s: %s; backing off", self.stream_arn, err)
            return Page([], iterator, StreamEvent.UNAVAILABLE, str(err))
        except Exception as err:
            code = error_code(err)
            if code in ("ExpiredIteratorException", "ValidationException"):
                # ValidationException: an iterator the service no longer accepts; open a new one.
                return Page([], iterator, StreamEvent.EXPIRED, str(err))
            if code == "TrimmedDataAccessException":
                return Page([], iterator, StreamEvent.TRIMMED, str(err))
            kind = classify(err)
            if kind is Failure.THROTTLED:
                return Page([], iterator, StreamEvent.THROTTLED, code)
            if kind is Failure.UNAVAILABLE:
                return Page([], iterator, StreamEvent.UNAVAILABLE, describe(err))
            if kind is Failure.NOT_FOUND:
                raise StreamGone(f"stream {self.stream_arn} is gone") from err
            if kind is Failure.DENIED:
                raise StreamDenied(f"GetRecords on {self.stream_arn}: {describe(err)}") from err
            raise
        return Page(records, next_iterator)


def ready_shards(shards: list[Shard], finished: set[str]) -> Iterator[Shard]:
    """Shards that may be read now: not finished, and their parent finished or no longer listed."""
    listed = {s.shard_id for s in shards}
    for shard in shards:
        if shard.shard_id in finished:
            continue
        if shard.parent_id is None or shard.parent_id not in listed or shard.parent_id in finished:
            yield shard
