"""Every S3 write carries a checksum that S3 checks, and every read is checked against it.

A proxy between boto3 and SeaweedFS flips one byte of an object on its way in
or out, as a bad network card or a broken middlebox would. The write is then
refused by the server, and the read by the archiver, naming the object; what
reaches the archive or a reader is never the changed bytes.
"""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import pytest

from archiver.archive.errors import StoreError
from archiver.archive.s3store import S3Store

_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection"}


class FlippingProxy:
    """A forward proxy on 127.0.0.1 that flips the middle byte of chosen request or response bodies."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.flip_puts = False
        self.flip_gets = False
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if self.command == "PUT" and proxy.flip_puts and len(body) > 1000:
                    body = _flipped(body)
                upstream = http.client.HTTPConnection(*proxy.upstream, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
                upstream.request(self.command, self.path, body=body, headers=headers)
                response = upstream.getresponse()
                data = response.read()
                if self.command == "GET" and proxy.flip_gets and len(data) > 1000:
                    data = _flipped(data)
                self.send_response(response.status)
                for name, value in response.getheaders():
                    if name.lower() not in _HOP and name.lower() != "content-length":
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                upstream.close()

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FlippingProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def _flipped(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0x01]) + data[middle + 1 :]


@pytest.fixture
def flipping(
    s3_archive: str, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[FlippingProxy, str]]:
    with FlippingProxy(s3_endpoint) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", proxy.endpoint)
        yield proxy, s3_archive


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
