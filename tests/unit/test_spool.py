"""The poller's buffer (archiver.spool): pages held compressed, flushed as the archive orders them.

The reference is the path every other sink takes (``Decoded`` then ``encode_decoded``): for
the same records, the spool must write the same files under the same names, covering the
same positions, with the same rows in the same order.
"""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archiver import spool as spool_module
from archiver.archive import codec
from archiver.archive.codec import order_rows, read_archive_file, stream_records
from archiver.archive.schema import parse_promoted_columns
from archiver.spool import Spool
from archiver.write import ArchiveOptions, Decoded, EncodedFile, encode_decoded
from tests.strategies import (
    dynamodb_records,
    insert_record,
    kinesis_records,
    record_batches,
    stream_arn,
)

PROPERTY = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
ROOT = Path(__file__).resolve().parents[2]
POISON = [{"eventID": "p1", "eventName": "INSERT"}, [1, 2], b"{not json"]


def read_back(data: bytes) -> list[dict[str, Any]]:
    table = order_rows(read_archive_file(io.BytesIO(data), "memory://batch.parquet"))
    return list(stream_records(table))


def row_group_sizes(data: bytes) -> list[int]:
    meta = pq.ParquetFile(io.BytesIO(data)).metadata
    return [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]


def spooled(pages: list[list[Any]], options: ArchiveOptions = ArchiveOptions()) -> Spool:
    spool = Spool(options)
    for page in pages:
        spool.add(page, ["shard-1"] * len(page))
    return spool


def reference(
    pages: list[list[Any]], options: ArchiveOptions = ArchiveOptions()
) -> list[EncodedFile]:
    decoded = Decoded()
    for page in pages:
        decoded.add(page, options, ["shard-1"] * len(page))
    return list(encode_decoded(decoded, options))


def cut(items: list[Any], sizes: list[int]) -> list[list[Any]]:
    """``items`` in pages of the given sizes (the last page takes what is left)."""
    pages, start = [], 0
    for size in sizes:
        if start >= len(items):
            break
        pages.append(items[start : start + size])
        start += size
    if start < len(items):
        pages.append(items[start:])
    return pages


@PROPERTY
@given(
    record_batches(dynamodb_records() | kinesis_records(), max_size=10),
    st.lists(st.sampled_from(POISON), max_size=2),
    st.booleans(),
    st.data(),
)
def test_the_spool_writes_what_every_other_sink_writes(
    records: list[dict[str, Any]], poison: list[Any], gathered: bool, data: st.DataObject
) -> None:
    # Given records of any tables, hours and sources, some of them delivered twice and a few
    # that cannot be archived, in pages of any sizes
    repeats = data.draw(st.lists(st.sampled_from(records), max_size=3))
    mixed = data.draw(st.permutations(records + repeats + poison))
    texts = [r if isinstance(r, bytes) else orjson.dumps(r) for r in mixed]
    pages = cut(texts, data.draw(st.lists(st.integers(1, 5), max_size=6)))
    # When they are spooled and drained (each row group made of slices of its pages, or
    # gathered from them as when several shards' pages interleave)
    spool = spooled(pages)
    assert spool.count == len(texts) and spool.rows == len(texts) - len(poison)
    with pytest.MonkeyPatch.context() as patch:
        if gathered:
            patch.setattr(spool_module, "_SLICED_RUNS", 0)
        files = list(spool.drain())
    # Then the files are those of the reference path: same names, positions and bytes (one
    # row group each here, so the Parquet is the same to the byte), dead letters included
    expected = reference(pages)
    assert [f.key for f in files] == [f.key for f in expected]
    assert [sorted(f.positions) for f in files] == [sorted(f.positions) for f in expected]
    assert [f.rows for f in files] == [f.rows for f in expected]
    assert [f.data for f in files] == [f.data for f in expected]
    assert [[(p, str(e)) for p, e in f.problems] for f in files] == [
        [(p, str(e)) for p, e in f.problems] for f in expected
    ]


@PROPERTY
@given(
    record_batches(dynamodb_records(table="orders"), max_size=12),
    st.integers(1, 4000),
    st.data(),
)
def test_row_groups_close_at_the_text_bound_and_read_back_as_the_same_rows(
    records: list[dict[str, Any]], bound: int, data: st.DataObject
) -> None:
    # Given pages of records, and row groups bound to a little text
    texts = [orjson.dumps(r) for r in records]
    pages = cut(texts, data.draw(st.lists(st.integers(1, 5), max_size=6)))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(codec, "SPOOLED_ROW_GROUP_TEXT", bound)
        files = list(spooled(pages).drain())
    # Then each file reads back as the reference's rows, in the same order, and each of its
    # row groups closed at the first row that took it to the bound
    expected = reference(pages)
    assert [f.key for f in files] == [f.key for f in expected]
    for file, want in zip(files, expected, strict=True):
        rows = read_back(file.data)
        assert rows == read_back(want.data)
        table = order_rows(read_archive_file(io.BytesIO(want.data), "memory://x.parquet"))
        lengths = [
            len(envelope) + len(new or "") + len(old or "")
            for envelope, new, old in zip(
                table["envelope"].to_pylist(),
                table["new_image"].to_pylist(),
                table["old_image"].to_pylist(),
                strict=True,
            )
        ]
        assert row_group_sizes(file.data) == _cuts(lengths, bound)


def _cuts(lengths: list[int], bound: int) -> list[int]:
    sizes, total, rows = [], 0, 0
    for length in lengths:
        rows += 1
        total += length
        if total >= bound or rows == codec.ROW_GROUP_ROWS:
            sizes.append(rows)
            total = rows = 0
    return sizes + ([rows] if rows else [])


def test_a_drain_empties_the_spool_at_once() -> None:
    # Given a spool holding records and a dead one
    spool = spooled([[orjson.dumps(insert_record(f"e{i}", i)) for i in range(3)], [b"[1]"]])
    assert (spool.count, spool.rows, len(spool.dead)) == (4, 3, 1)
    assert spool.oldest_change_us == 1_795_000_000 * 10**6
    # When it is drained, Then it is empty before a file is made, and can take records again
    files = spool.drain()
    assert (spool.count, spool.rows, spool.dead, spool.oldest_change_us) == (0, 0, [], None)
    assert spool.held_bytes == 0 and not list(spool.drain())
    assert [f.rows for f in files] == [3, 1]
    spool.add([orjson.dumps(insert_record("e9", 9))])
    assert (spool.count, spool.rows) == (1, 1)


def test_a_page_is_held_in_less_than_a_third_of_its_text() -> None:
    # Given a page of 1,000 records as GetRecords returns them (about 700 B of text each)
    image = {"pk": {"S": "x"}, "note": {"S": "a shipment of parts " * 20}, "n": {"N": "7"}}
    page = [
        orjson.dumps(
            {
                **insert_record(f"order-{i:04}", i, {**image, "pk": {"S": f"order-{i:04}"}}),
                "eventSourceARN": stream_arn("orders"),
            }
        )
        for i in range(1000)
    ]
    text = sum(map(len, page))
    # When it is spooled, Then its columns and ordering fields take less than a third of it
    spool = spooled([page])
    assert spool.rows == 1000
    assert spool.held_bytes < text / 3, (spool.held_bytes, text)


def test_a_flush_loads_none_of_arrows_compute_functions() -> None:
    # Given a fresh process that spools pages and drains them, as the poller does
    script = """
import sys, orjson
from archiver import spool as spool_module
from archiver.spool import Spool
from tests.strategies import insert_record
spool = Spool()
for page in range(3):
    spool.add([orjson.dumps(insert_record(f"e{page}-{i}", 10 * page - i)) for i in range(5)])
files = list(spool.drain())
assert [f.rows for f in files] == [15], files
print(sorted(m for m in sys.modules if m.startswith("pyarrow.") and "compute" in m))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=ROOT
    )
    # Then Arrow's compute module was never imported: it would stay in memory for good
    assert done.stdout.strip() == "[]", done.stderr


def test_a_page_that_cannot_be_held_leaves_the_spool_as_it_was(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a spool holding a page
    spool = spooled([[orjson.dumps(insert_record("e0", 0))]])
    before = (spool.count, spool.rows, list(spool.dead), spool.held_bytes, spool.oldest_change_us)
    page = [b"[1]", orjson.dumps(insert_record("e1", 1))]

    # When Arrow fails on the next page (memory, say)
    def failing(*args: Any) -> Any:
        raise MemoryError

    with monkeypatch.context() as patch:
        patch.setattr(spool_module, "records_table", failing)
        with pytest.raises(MemoryError):
            spool.add(page)
    # Then nothing of that page is held, its dead record included
    assert (spool.count, spool.rows, spool.dead, spool.held_bytes, spool.oldest_change_us) == before
    # and the page added again takes the positions after the first page's
    spool.add(page)
    files = list(spool.drain())
    assert [sorted(f.positions) for f in files] == [[0, 2], [1]]


def test_promoted_columns_and_plain_images_are_spooled_as_every_other_sink_writes_them() -> None:
    # Given a poller's options with promoted columns and plain images, and pages of changes
    options = ArchiveOptions(
        promoted=parse_promoted_columns("pk:string,total=n:decimal(18,2)"), plain_images=True
    )
    pages = [
        [orjson.dumps(insert_record(f"e{page}-{i}", 10 * page + i)) for i in range(4)]
        for page in range(3)
    ]
    # When they are spooled and drained, Then the files are the reference path's, to the byte
    files = list(spooled(pages, options).drain())
    expected = reference(pages, options)
    assert [(f.key, f.data) for f in files] == [(f.key, f.data) for f in expected]
    columns = pq.read_table(io.BytesIO(files[0].data)).column_names
    assert {"pk", "total", "new_image_plain"} <= set(columns)
