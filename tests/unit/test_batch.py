"""Batching: one sorted, duplicate-free batch per table and hour, every position kept."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archiver.archive.layout import partition_of
from archiver.archive.record import ChangeRecord, pad_sequence
from archiver.batch import make_batches
from archiver.decode import decode_record
from devkit.traffic import kinesis_record
from tests.strategies import dynamodb_records, record_batches, stream_arn

PROPERTY = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
T0 = 1_795_000_000  # 2026-11-17T...; hours below are counted from here
HOUR = 3600


def record(table: str, seq: str, event_id: str, seconds: float) -> dict[str, Any]:
    keys = {"pk": {"S": event_id}}
    return {
        "eventID": event_id,
        "eventName": "INSERT",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": {
            "ApproximateCreationDateTime": seconds,
            "Keys": keys,
            "NewImage": keys,
            "SequenceNumber": seq,
            "StreamViewType": "NEW_IMAGE",
        },
        "eventSourceARN": stream_arn(table),
    }


def decoded(events: list[dict[str, Any]]) -> list[tuple[int, ChangeRecord]]:
    """Each record decoded from its JSON text, as every source hands it to the decoder."""
    return [(position, decode_record(orjson.dumps(raw))) for position, raw in enumerate(events)]


def test_groups_by_table_and_hour_sorts_and_keeps_positions() -> None:
    start = T0 - T0 % HOUR
    events = [
        record("orders", "100000000000000000030", "o3", start + 10),  # 0
        record("users", "100000000000000000005", "u1", start + 20),  # 1
        record("orders", "100000000000000000010", "o1", start + 5),  # 2
        record("orders", "100000000000000000040", "o4", start + HOUR + 1),  # 3: next hour
        record("orders", "100000000000000000030", "o3", start + 10),  # 4: duplicate of 0
        record("orders", "99999999999999999999", "o0", start + 7),  # 5: 20 digits, smallest
        record("orders", "100000000000000000020", "o2", start + HOUR - 1),  # 6: last second of hour
    ]
    batches = make_batches(decoded(events))
    assert [(b.partition.table, b.partition.hour_start_us) for b in batches] == [
        ("orders", start * 10**6),
        ("orders", (start + HOUR) * 10**6),
        ("users", start * 10**6),
    ]
    first, second, users = batches
    assert [r.event_id for r in first.records] == ["o0", "o1", "o2", "o3"]
    assert sorted(first.positions) == [0, 2, 4, 5, 6]  # the duplicate's position is kept
    assert [r.event_id for r in second.records] == ["o4"] and second.positions == (3,)
    assert [r.event_id for r in users.records] == ["u1"] and users.positions == (1,)


def test_kinesis_batches_sort_by_change_time_then_sequence() -> None:
    start = T0 - T0 % HOUR
    events = [
        kinesis_record(record("orders", "100000000000000000001", "late", start + 30), 1),
        kinesis_record(record("orders", "100000000000000000002", "b", start + 10), 9),
        kinesis_record(record("orders", "100000000000000000003", "a", start + 10), 5),
        kinesis_record(record("orders", "100000000000000000002", "b", start + 10), 9),  # again
    ]
    [batch] = make_batches(decoded(events))
    assert [r.event_id for r in batch.records] == ["a", "b", "late"]
    assert sorted(batch.positions) == [0, 1, 2, 3]


def test_nothing_in_nothing_out() -> None:
    assert make_batches([]) == []


_clustered = st.tuples(
    st.sampled_from(["orders", "users", "a.b-c"]), st.integers(T0, T0 + 3 * HOUR)
).flatmap(lambda ts: dynamodb_records(table=ts[0], seconds=ts[1]))


@PROPERTY
@given(record_batches(_clustered, max_size=8), st.data())
def test_batches_cover_every_position_once(raws: list[dict[str, Any]], data: st.DataObject) -> None:
    # Given an event with some records delivered twice, at any positions
    repeats = data.draw(st.lists(st.sampled_from(raws), max_size=5))
    events = data.draw(st.permutations(raws + repeats))
    pairs = decoded(events)
    # When it is batched
    batches = make_batches(pairs)
    # Then every position is in exactly one batch, the batch of its record's partition,
    positions = [p for batch in batches for p in batch.positions]
    assert sorted(positions) == list(range(len(events)))
    by_position = dict(pairs)
    for batch in batches:
        assert all(
            partition_of(by_position[p].table_name, by_position[p].change_time_us)
            == batch.partition
            for p in batch.positions
        )
        # each event once, in sequence order, all belonging to the partition
        ids = [r.event_id for r in batch.records]
        assert len(ids) == len(set(ids))
        assert {by_position[p].event_id for p in batch.positions} == set(ids)
        padded = [pad_sequence(r.sequence_number) for r in batch.records]
        assert padded == sorted(padded)
        assert all(
            partition_of(r.table_name, r.change_time_us) == batch.partition for r in batch.records
        )
    partitions = [b.partition for b in batches]
    assert partitions == sorted(set(partitions))
    assert sum(len(b.records) for b in batches) == len({r["eventID"] for r in raws})
