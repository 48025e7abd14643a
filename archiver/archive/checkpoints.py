"""Checkpoints: small versioned JSON documents, kept through the store port.

The poller's stream checkpoint (:class:`StreamCheckpoint`: per stream, the last
archived sequence number of each shard, the finished shards and the gaps) and
the replayer's run checkpoints are the same kind of thing: a document rewritten
whole, by one ``put``, after the work it records is durable (a local store
replaces the file by a rename, S3 replaces the object), and checked before it
is trusted. This module is their one format: a ``kind`` and a ``version`` on
every document, and an error naming the document when one is not what it
should be. Documents written before kinds and versions existed (the poller's
had neither, the replayer's a version) are read as version 1 of their kind.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from .errors import FormatError
from .store import ArchiveStore

__all__ = [
    "CHECKPOINT_PREFIX",
    "CheckpointFormatError",
    "StreamCheckpoint",
    "checkpoint_key",
    "read_document",
    "stream_checkpoints",
    "write_document",
]

CHECKPOINT_PREFIX = "_checkpoints/"
STREAM_KIND = "stream"
STREAM_VERSION = 1


class CheckpointFormatError(FormatError, ValueError):
    """A document that is not a checkpoint of the kind and version asked for."""


def read_document(store: ArchiveStore, key: str, kind: str, version: int) -> dict[str, Any] | None:
    """The checkpoint document at ``key`` (None when there is none), checked for its kind.

    Raises
    ------
    CheckpointFormatError
        When it is not JSON, not an object, another kind, or of a newer version.
    """
    where = f"{store.uri}/{key}"
    try:
        data = store.get(key)
    except FileNotFoundError:
        return None
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError as err:
        raise CheckpointFormatError(f"{where}: not a checkpoint (not JSON: {err})") from None
    if not isinstance(document, dict):
        raise CheckpointFormatError(f"{where}: not a checkpoint (not a JSON object)")
    found = document.get("kind", kind)
    if found != kind:
        raise CheckpointFormatError(f"{where}: a {found!r} checkpoint, not a {kind!r} one")
    written = document.get("version", 1)
    if not isinstance(written, int) or isinstance(written, bool) or written < 1:
        raise CheckpointFormatError(f"{where}: not a checkpoint (version {written!r})")
    if written > version:
        raise CheckpointFormatError(
            f"{where}: written by a newer version (checkpoint version {written}, this one "
            f"reads up to {version}): upgrade"
        )
    return document


def write_document(
    store: ArchiveStore, key: str, kind: str, version: int, body: dict[str, Any]
) -> None:
    """Write a checkpoint document whole, with its kind and version (raises StoreError)."""
    store.put(
        key,
        orjson.dumps({"kind": kind, "version": version, **body}, option=orjson.OPT_INDENT_2),
    )


# --- the poller's stream checkpoint -----------------------------------------------------------


def checkpoint_key(stream_arn: str) -> str:
    """Where a stream's checkpoint lives in the archive: one document per stream."""
    label = hashlib.blake2b(stream_arn.encode(), digest_size=8).hexdigest()
    return f"{CHECKPOINT_PREFIX}{label}.json"


@dataclass
class StreamCheckpoint:
    """Per shard of one stream: the last archived sequence number, and whether it is done."""

    stream_arn: str
    positions: dict[str, str] = field(default_factory=dict)
    finished: set[str] = field(default_factory=set)
    gaps: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def parse(cls, document: dict[str, Any], where: str) -> StreamCheckpoint:
        """A stream checkpoint from its document, every field checked for its shape."""
        arn, positions = document.get("stream_arn"), document.get("positions", {})
        finished, gaps = document.get("finished", []), document.get("gaps", [])
        problem = None
        if not isinstance(positions, dict) or not all(
            isinstance(p, str) and p.isascii() and p.isdigit() for p in positions.values()
        ):
            problem = "positions must be an object of sequence numbers"
        elif not isinstance(finished, list) or not all(isinstance(s, str) for s in finished):
            problem = "finished must be a list of shard ids"
        elif not isinstance(gaps, list) or not all(isinstance(g, dict) for g in gaps):
            problem = "gaps must be a list of objects"
        elif not isinstance(arn, str) or not arn:
            problem = "stream_arn must be the stream's ARN"
        if problem is not None or not isinstance(arn, str):
            raise CheckpointFormatError(f"{where}: not a stream checkpoint ({problem})")
        return cls(arn, dict(positions), set(finished), list(gaps))

    def document(self) -> dict[str, Any]:
        return {
            "stream_arn": self.stream_arn,
            "positions": dict(sorted(self.positions.items())),
            "finished": sorted(self.finished),
            "gaps": self.gaps,
        }

    @classmethod
    def load(cls, store: ArchiveStore, key: str) -> StreamCheckpoint | None:
        """The checkpoint at ``key``, or None (raises CheckpointFormatError)."""
        document = read_document(store, key, STREAM_KIND, STREAM_VERSION)
        return None if document is None else cls.parse(document, f"{store.uri}/{key}")

    def save(self, store: ArchiveStore, key: str) -> None:
        write_document(store, key, STREAM_KIND, STREAM_VERSION, self.document())


def stream_checkpoints(
    store: ArchiveStore,
) -> Iterator[tuple[str, StreamCheckpoint | CheckpointFormatError]]:
    """Every stream checkpoint kept in the archive, or why one cannot be read, by key."""
    for obj in store.list(CHECKPOINT_PREFIX):
        try:
            found = StreamCheckpoint.load(store, obj.key)
        except CheckpointFormatError as err:
            yield obj.key, err
            continue
        if found is not None:  # gone since the listing
            yield obj.key, found
