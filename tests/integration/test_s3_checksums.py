"""Every S3 write carries a checksum that S3 checks, and every read is checked against it.

A proxy between boto3 and SeaweedFS flips one byte of an object on its way in
or out, as a bad network card or a broken middlebox would. The write is then
refused by the server, and the read by the archiver, naming the object; what
reaches the archive or a reader is never the changed bytes.
"""

from __future__ import annotations

import pytest

from archiver.archive.errors import StoreError
from archiver.archive.s3store import S3Store
from tests.proxies import FlippingProxy

DATA = bytes(range(256)) * 64  # 16 KiB


def test_a_write_changed_on_its_way_is_refused_and_nothing_is_stored(
    flipping: tuple[FlippingProxy, str],
) -> None:
    proxy, uri = flipping
    store = S3Store(uri)
    proxy.flip_puts = True
    with pytest.raises(StoreError, match=r"write s3://.*/archive/t/a\.parquet"):
        store.put("t/a.parquet", DATA)
    proxy.flip_puts = False
    with pytest.raises(FileNotFoundError):
        store.get("t/a.parquet")


def test_a_read_changed_on_its_way_is_refused_naming_the_object(
    flipping: tuple[FlippingProxy, str],
) -> None:
    proxy, uri = flipping
    store = S3Store(uri)
    store.put("t/b.parquet", DATA)
    assert store.get("t/b.parquet") == DATA  # the checksum S3 keeps matches
    proxy.flip_gets = True
    with pytest.raises(StoreError, match=r"read s3://.*/archive/t/b\.parquet: .*checksum"):
        store.get("t/b.parquet")


def test_the_replayers_reads_are_checked_too(flipping: tuple[FlippingProxy, str]) -> None:
    from archiver.archive.store import open_store

    proxy, uri = flipping
    S3Store(uri).put("t/c.parquet", DATA)
    store = open_store(uri)  # s3fs, as the replayer reads
    assert store.get("t/c.parquet") == DATA
    proxy.flip_gets = True
    with pytest.raises(StoreError, match=r"t/c\.parquet.*checksum"):
        store.get("t/c.parquet")
