"""Checkpoint documents: versioned, of a kind, checked before they are trusted, on any store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from archiver.archive.checkpoints import (
    CHECKPOINT_PREFIX,
    CheckpointFormatError,
    StreamCheckpoint,
    checkpoint_key,
    read_document,
    stream_checkpoints,
    write_document,
)
from archiver.archive.store import LocalStore

ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/orders/stream/2026-11-27T00:00:00.000"


def test_a_stream_checkpoint_round_trips_with_its_kind_and_version(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    key = checkpoint_key(ARN)
    gap = {"shard": "s2", "after_sequence": "7", "reason": "trimmed"}
    StreamCheckpoint(ARN, {"s1": "100", "s0": "9"}, {"s2"}, [gap]).save(store, key)

    assert key.startswith(CHECKPOINT_PREFIX)
    assert orjson.loads(store.get(key)) == {
        "kind": "stream",
        "version": 1,
        "stream_arn": ARN,
        "positions": {"s0": "9", "s1": "100"},
        "finished": ["s2"],
        "gaps": [gap],
    }
    assert StreamCheckpoint.load(store, key) == StreamCheckpoint(
        ARN, {"s0": "9", "s1": "100"}, {"s2"}, [gap]
    )


def test_a_checkpoint_written_before_versions_is_read_as_version_1(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    legacy = {"stream_arn": ARN, "positions": {"s1": "5"}, "finished": [], "gaps": []}
    store.put("_checkpoints/old.json", orjson.dumps(legacy))
    assert StreamCheckpoint.load(store, "_checkpoints/old.json") == StreamCheckpoint(
        ARN, {"s1": "5"}
    )


def test_no_document_is_none(tmp_path: Path) -> None:
    assert StreamCheckpoint.load(LocalStore(tmp_path), "_checkpoints/none.json") is None


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (b"{not json", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (orjson.dumps({"kind": "replay", "version": 1}), "a 'replay' checkpoint, not a 'stream'"),
        (orjson.dumps({"kind": "stream", "version": 2, "stream_arn": ARN}), "newer version"),
        (orjson.dumps({"version": "1", "stream_arn": ARN}), "version '1'"),
        (orjson.dumps({"positions": {}}), "stream_arn"),
        (orjson.dumps({"stream_arn": ARN, "positions": {"s1": 5}}), "positions"),
        (orjson.dumps({"stream_arn": ARN, "positions": {"s1": "١٢"}}), "positions"),
        (orjson.dumps({"stream_arn": ARN, "finished": "s1"}), "finished"),
        (orjson.dumps({"stream_arn": ARN, "gaps": ["lost"]}), "gaps"),
    ],
    ids=[
        "not-json",
        "not-an-object",
        "another-kind",
        "newer",
        "odd-version",
        "no-arn",
        "number-position",
        "non-ascii-digits",
        "finished-not-a-list",
        "gaps-not-objects",
    ],
)
def test_a_document_that_is_not_a_stream_checkpoint_is_refused_by_name(
    tmp_path: Path, document: bytes, message: str
) -> None:
    store = LocalStore(tmp_path)
    store.put("_checkpoints/bad.json", document)
    with pytest.raises(CheckpointFormatError, match=message) as caught:
        StreamCheckpoint.load(store, "_checkpoints/bad.json")
    assert f"{store.uri}/_checkpoints/bad.json" in str(caught.value)
    assert isinstance(caught.value, ValueError)  # callers that took ValueError still do


def test_stream_checkpoints_lists_each_with_the_reason_a_bad_one_is_refused(
    tmp_path: Path,
) -> None:
    store = LocalStore(tmp_path)
    StreamCheckpoint(ARN, {"s1": "1"}).save(store, checkpoint_key(ARN))
    store.put("_checkpoints/bad.json", b"[]")

    found = dict(stream_checkpoints(store))

    assert found[checkpoint_key(ARN)] == StreamCheckpoint(ARN, {"s1": "1"})
    assert isinstance(found["_checkpoints/bad.json"], CheckpointFormatError)


def test_documents_of_other_kinds_keep_their_own_fields(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    body: dict[str, Any] = {"fingerprint": {"table": "orders"}, "lanes": {"0": 3}}
    write_document(store, "runs/replay.json", "replay", 1, body)
    assert read_document(store, "runs/replay.json", "replay", 1) == {
        "kind": "replay",
        "version": 1,
        **body,
    }
    with pytest.raises(CheckpointFormatError, match="not a 'stream'"):
        read_document(store, "runs/replay.json", "stream", 1)
