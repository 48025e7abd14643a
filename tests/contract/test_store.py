"""The ArchiveStore port's contract, run against every adapter.

Adapters: ``LocalStore`` (a temporary folder), ``FsspecStore`` from
``open_store("s3://...")`` (s3fs, its GETs through AWS's Common Runtime, and with
``ARCHIVER_S3_READS=sdk`` all through s3fs) and ``archiver.archive.s3store.S3Store``
(boto3, the same two ways), the S3 ones on SeaweedFS through ``AWS_ENDPOINT_URL_S3``. Failure translation
(unreachable endpoint, wrong credentials) and server-side encryption are S3
matters and have their own class below.
"""

from __future__ import annotations

import io
import random
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from archiver.archive.errors import InvalidNameError, StoreAccessDenied, StoreUnavailable
from archiver.archive.s3store import S3Store
from archiver.archive.store import ArchiveStore, FsspecStore, LocalStore, StoredObject, open_store
from devkit.servers import SeaweedS3

ADAPTERS = ["local", "fsspec-s3", "fsspec-s3-sdk", "boto3-s3", "boto3-s3-sdk"]
BINARY = bytes(range(256)) + b"\x00\r\n\x1a\xff" + random.Random(7).randbytes(200_000)


@pytest.fixture(params=ADAPTERS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ArchiveStore:
    """One archive store per adapter, empty."""
    if request.param == "local":
        return LocalStore(tmp_path / "archive")
    uri = request.getfixturevalue("s3_archive")
    if request.param.endswith("-sdk"):
        request.getfixturevalue("monkeypatch").setenv("ARCHIVER_S3_READS", "sdk")
    if request.param.startswith("fsspec-s3"):
        fsspec_store = open_store(uri)
        assert isinstance(fsspec_store, FsspecStore)
        return fsspec_store
    return S3Store(uri)


def _keys(store: ArchiveStore, prefix: str) -> list[str]:
    return [obj.key for obj in store.list(prefix)]


def _parquet_bytes() -> bytes:
    table = pa.table({"n": list(range(1000)), "s": [f"row-{i}" for i in range(1000)]})
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, row_group_size=100)
    return sink.getvalue().to_pybytes()


class TestArchiveStoreContract:
    """What every ArchiveStore adapter promises."""

    def test_put_then_get_returns_the_same_binary_bytes(self, store: ArchiveStore) -> None:
        store.put("table_name=orders/dt=2026-11-18/hour=13/a.parquet", BINARY)

        assert store.get("table_name=orders/dt=2026-11-18/hour=13/a.parquet") == BINARY

    def test_put_of_empty_bytes_stores_an_empty_object(self, store: ArchiveStore) -> None:
        store.put("empty.bin", b"")

        assert store.get("empty.bin") == b""
        assert list(store.list("")) == [StoredObject("empty.bin", 0)]

    def test_put_replaces_the_whole_object(self, store: ArchiveStore) -> None:
        # Given a large object
        store.put("x/object.bin", BINARY)
        # When a shorter one is put under the same key
        store.put("x/object.bin", b"short")
        # Then nothing of the first one is left
        assert store.get("x/object.bin") == b"short"
        assert list(store.list("x/")) == [StoredObject("x/object.bin", 5)]

    def test_get_of_a_missing_key_raises_file_not_found(self, store: ArchiveStore) -> None:
        store.put("present/a.bin", b"a")

        with pytest.raises(FileNotFoundError):
            store.get("present/b.bin")
        with pytest.raises(FileNotFoundError):
            store.get("absent/a.bin")

    def test_open_of_a_missing_key_raises_file_not_found(self, store: ArchiveStore) -> None:
        with pytest.raises(FileNotFoundError):
            store.open("absent/a.parquet")

    def test_a_missing_key_is_named_by_get_and_by_open(self, store: ArchiveStore) -> None:
        # Readers report a file that went away by this message (replay, compaction, verify).
        store.put("present/a.bin", b"a")

        for read in (store.get, store.open):
            with pytest.raises(FileNotFoundError, match=r"present/gone\.parquet"):
                read("present/gone.parquet")

    def test_gets_from_many_threads_at_once_each_return_their_object(
        self, store: ArchiveStore
    ) -> None:
        # Readers fetch ahead through one store from a pool of threads (archiver.archive.fetch).
        objects = {f"t/{i:03d}.bin": random.Random(i).randbytes(1000 + i) for i in range(64)}
        for key, data in objects.items():
            store.put(key, data)

        keys = [*objects, "t/missing.bin"]
        with ThreadPoolExecutor(16) as pool:
            futures = [pool.submit(store.get, key) for key in keys]
        # Every object's own bytes, and the one missing key fails alone
        assert [f.result() for f in futures[:-1]] == list(objects.values())
        with pytest.raises(FileNotFoundError, match=r"t/missing\.bin"):
            futures[-1].result()

    def test_list_is_recursive_in_key_order_with_sizes(self, store: ArchiveStore) -> None:
        # Given objects at several depths, written out of key order
        written = {
            "t/dt=2026-11-19/hour=00/c.parquet": b"ccc",
            "t/dt=2026-11-18/hour=23/b.parquet": b"bb",
            "t/dt=2026-11-18/hour=05/z.parquet": b"z" * 10,
            "t/dt=2026-11-18/hour=05/a.parquet": b"",
            "t/top.json": b"{}",
        }
        for key, data in written.items():
            store.put(key, data)
        # When the prefix is listed
        listed = list(store.list("t/"))
        # Then every object below it comes back once, in key order, with its size
        assert listed == [StoredObject(key, len(written[key])) for key in sorted(written)]

    def test_list_returns_nothing_outside_the_prefix(self, store: ArchiveStore) -> None:
        for key in ("a/1.bin", "a/b/2.bin", "ab/3.bin", "a.bin", "b/a/4.bin", "_errors/a/5.jsonl"):
            store.put(key, b"x")

        assert _keys(store, "a/") == ["a/1.bin", "a/b/2.bin"]
        assert _keys(store, "a/b/") == ["a/b/2.bin"]
        assert _keys(store, "b/") == ["b/a/4.bin"]

    def test_a_prefix_may_stop_in_the_middle_of_a_name(self, store: ArchiveStore) -> None:
        for key in ("a/1.bin", "ab/2.bin", "a.bin", "b/3.bin", "a/bc/4.bin", "a/b/5.bin"):
            store.put(key, b"x")

        assert _keys(store, "a") == ["a.bin", "a/1.bin", "a/b/5.bin", "a/bc/4.bin", "ab/2.bin"]
        assert _keys(store, "a/b") == ["a/b/5.bin", "a/bc/4.bin"]

    def test_list_of_the_empty_prefix_lists_the_whole_archive(self, store: ArchiveStore) -> None:
        for key in ("z.bin", "a/1.bin", "m/n/o.bin"):
            store.put(key, b"12")

        assert list(store.list("")) == [
            StoredObject("a/1.bin", 2),
            StoredObject("m/n/o.bin", 2),
            StoredObject("z.bin", 2),
        ]

    def test_list_of_an_absent_prefix_is_empty(self, store: ArchiveStore) -> None:
        assert list(store.list("")) == []
        store.put("a/1.bin", b"x")

        assert list(store.list("nothing/")) == []
        assert list(store.list("a/nothing/")) == []
        assert list(store.list("zz")) == []

    def test_an_archive_exists_once_its_folder_or_bucket_does(
        self, store: ArchiveStore, request: pytest.FixtureRequest, tmp_path: Path
    ) -> None:
        # A folder is there once something is written into it; a bucket is there already,
        # whatever its prefix holds
        adapter = request.node.callspec.params["store"]
        assert store.exists() is (adapter != "local")
        store.put("a/1.bin", b"x")
        assert store.exists()
        # and an archive in a folder or bucket that does not exist is not there at all
        if adapter == "local":
            missing: ArchiveStore = LocalStore(tmp_path / "no" / "such" / "folder")
        else:
            uri = f"s3://no-such-bucket-{uuid.uuid4().hex[:12]}/archive"
            missing = open_store(uri) if adapter.startswith("fsspec-s3") else S3Store(uri)
        assert not missing.exists()

    def test_list_dirs_names_the_immediate_sub_folders(self, store: ArchiveStore) -> None:
        for key in (
            "table_name=orders/dt=2026-11-18/hour=01/a.parquet",
            "table_name=orders/dt=2026-11-19/hour=00/b.parquet",
            "table_name=customers/dt=2026-11-18/hour=02/c.parquet",
            "_errors/table_name=orders/dt=2026-11-18/d.jsonl",
            "loose.bin",
        ):
            store.put(key, b"x")

        assert store.list_dirs("") == ["_errors", "table_name=customers", "table_name=orders"]
        assert store.list_dirs("table_name=orders/") == ["dt=2026-11-18", "dt=2026-11-19"]
        assert store.list_dirs("table_name=orders/dt=2026-11-18/hour=01/") == []
        assert store.list_dirs("table_name=nobody/") == []

    def test_open_gives_a_seekable_file_that_pyarrow_reads(self, store: ArchiveStore) -> None:
        data = _parquet_bytes()
        store.put("t/file.parquet", data)

        with store.open("t/file.parquet") as handle:
            assert handle.seekable()
            handle.seek(-4, io.SEEK_END)
            assert handle.read() == b"PAR1"
            handle.seek(0)
            parquet = pq.ParquetFile(handle)
            assert parquet.metadata.num_row_groups == 10
            last_group = parquet.read_row_group(9)
        assert last_group.column("n").to_pylist() == list(range(900, 1000))

    def test_delete_removes_the_object_and_is_idempotent(self, store: ArchiveStore) -> None:
        store.put("d/keep.bin", b"keep")
        store.put("d/drop.bin", b"drop")

        store.delete("d/drop.bin")
        store.delete("d/drop.bin")
        store.delete("d/never-was.bin")

        assert _keys(store, "d/") == ["d/keep.bin"]
        with pytest.raises(FileNotFoundError):
            store.get("d/drop.bin")

    def test_delete_many_removes_every_key_and_ignores_those_already_gone(
        self, store: ArchiveStore
    ) -> None:
        for name in ("keep", "a", "b", "c"):
            store.put(f"d/{name}.bin", name.encode())

        store.delete_many(["d/a.bin", "d/b.bin", "d/never-was.bin", "d/c.bin"])
        store.delete_many(["d/a.bin"])
        store.delete_many([])

        assert _keys(store, "d/") == ["d/keep.bin"]

    def test_keys_that_could_escape_the_root_are_refused(self, store: ArchiveStore) -> None:
        for key in ("../x", "/abs", "a//b", "a/../b", "a/./b", "x/..", "", "a\\b", "a\x00b"):
            with pytest.raises(InvalidNameError, match="invalid object key"):
                store.put(key, b"x")
            with pytest.raises(InvalidNameError):
                store.get(key)
            with pytest.raises(InvalidNameError):
                store.open(key)
            with pytest.raises(InvalidNameError):
                store.delete(key)
            with pytest.raises(InvalidNameError):
                store.delete_many(["ok.bin", key])
        assert list(store.list("")) == []


class TestS3Adapters:
    """Encryption and the translation of S3 failures into the archive's errors."""

    @pytest.mark.parametrize("adapter", ["fsspec-s3", "boto3-s3"])
    def test_reads_and_listings_parse_timestamps_without_dateutil(
        self, adapter: str, s3_archive: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # Each response's Last-Modified, and each listed object's, costs dateutil 90 to 150 us;
        # the stores' sessions read both forms S3 sends with archiver.archive.aws's parser.
        import dateutil.parser

        monkeypatch.setenv("ARCHIVER_S3_READS", "sdk")  # s3fs's GETs, not the Common Runtime's
        store: ArchiveStore = (
            open_store(s3_archive) if adapter == "fsspec-s3" else S3Store(s3_archive)
        )
        store.put("table_name=orders/dt=2026-12-02/hour=10/a.parquet", b"one")
        store.put("table_name=orders/dt=2026-12-02/hour=10/b.parquet", b"two")

        def refuse(*args: object, **kwargs: object) -> None:
            raise AssertionError(f"dateutil parsed {args[0]!r}")

        monkeypatch.setattr(dateutil.parser, "parse", refuse)

        assert _keys(store, "table_name=orders/") == [
            "table_name=orders/dt=2026-12-02/hour=10/a.parquet",
            "table_name=orders/dt=2026-12-02/hour=10/b.parquet",
        ]
        assert store.get("table_name=orders/dt=2026-12-02/hour=10/b.parquet") == b"two"

    def test_s3store_encrypts_every_object_it_writes(
        self, seaweed: SeaweedS3, s3_archive: str
    ) -> None:
        bucket = s3_archive.removeprefix("s3://").split("/")[0]
        S3Store(s3_archive).put("plain.bin", b"x")
        S3Store(s3_archive, sse={"ServerSideEncryption": "AES256"}).put("sealed.bin", b"x")

        client = seaweed.client()
        assert (
            client.head_object(Bucket=bucket, Key="archive/sealed.bin")["ServerSideEncryption"]
            == "AES256"
        )
        assert "ServerSideEncryption" not in client.head_object(
            Bucket=bucket, Key="archive/plain.bin"
        )

    def test_fsspec_store_passes_encryption_to_every_write(
        self, seaweed: SeaweedS3, s3_archive: str
    ) -> None:
        bucket = s3_archive.removeprefix("s3://").split("/")[0]
        store = open_store(s3_archive, sse={"ServerSideEncryption": "AES256"})

        store.put("sealed.bin", b"x")

        head = seaweed.client().head_object(Bucket=bucket, Key="archive/sealed.bin")
        assert head["ServerSideEncryption"] == "AES256"

    @pytest.mark.parametrize("adapter", ["fsspec-s3", "boto3-s3"])
    def test_objects_beside_the_archive_prefix_are_not_listed(
        self, seaweed: SeaweedS3, s3_archive: str, adapter: str
    ) -> None:
        # Given a bucket holding the archive and, beside it, keys that share its prefix's spelling
        bucket = s3_archive.removeprefix("s3://").split("/")[0]
        client = seaweed.client()
        for key in ("archive-old/a.bin", "archive.bin", "other/archive/b.bin"):
            client.put_object(Bucket=bucket, Key=key, Body=b"neighbour")
        store = open_store(s3_archive) if adapter == "fsspec-s3" else S3Store(s3_archive)
        store.put("a.bin", b"mine")
        # When the whole archive is listed
        listed = list(store.list(""))
        # Then only the archive's own objects come back, keyed relative to it
        assert listed == [StoredObject("a.bin", 4)]
        assert store.list_dirs("") == []

    def test_s3store_reports_an_unreachable_endpoint_as_store_unavailable(
        self, s3_archive: str, closed_endpoint: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", closed_endpoint)
        monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
        store = S3Store(s3_archive)

        with pytest.raises(StoreUnavailable) as caught:
            store.put("table_name=orders/a.parquet", b"x")

        assert caught.value.transient is True
        assert "archive/table_name=orders/a.parquet" in str(caught.value)

    def test_fsspec_store_reports_an_unreachable_endpoint_as_store_unavailable(
        self, s3_archive: str, closed_endpoint: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", closed_endpoint)
        monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")

        with pytest.raises(StoreUnavailable):
            open_store(s3_archive).put("a.bin", b"x")

    @pytest.mark.parametrize("operation", ["put", "get", "list"])
    def test_s3store_reports_wrong_credentials_as_access_denied_naming_the_bucket(
        self, s3_archive: str, monkeypatch: pytest.MonkeyPatch, operation: str
    ) -> None:
        # Given a bucket that holds an object, and a client whose secret key is wrong
        bucket = s3_archive.removeprefix("s3://").split("/")[0]
        S3Store(s3_archive).put("a.bin", b"x")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
        store = S3Store(s3_archive)
        # When the store is used, Then SeaweedFS's SigV4 check refuses it, terminally
        with pytest.raises(StoreAccessDenied) as caught:
            if operation == "put":
                store.put("b.bin", b"y")
            elif operation == "get":
                store.get("a.bin")
            else:
                list(store.list(""))
        assert caught.value.transient is False
        assert bucket in str(caught.value)

    def test_fsspec_store_reports_wrong_credentials_as_access_denied(
        self, s3_archive: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        bucket = s3_archive.removeprefix("s3://").split("/")[0]
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")

        with pytest.raises(StoreAccessDenied) as caught:
            open_store(s3_archive).put("a.bin", b"x")

        assert bucket in str(caught.value)

    def test_s3store_deletes_many_keys_a_batch_per_request(
        self, s3_archive: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from archiver.archive import s3store

        store = S3Store(s3_archive)
        keys = [f"t/{i}.bin" for i in range(7)]
        for key in [*keys, "t/keep.bin"]:
            store.put(key, b"x")
        requests: list[int] = []
        store.client.meta.events.register(
            "before-call.s3.DeleteObjects",
            lambda params, **kwargs: requests.append(params["body"].count(b"<Key>")),
        )
        monkeypatch.setattr(s3store, "DELETE_BATCH", 3)

        store.delete_many(keys)

        assert requests == [3, 3, 1]
        assert _keys(store, "t/") == ["t/keep.bin"]

    @pytest.mark.parametrize(
        ("code", "error"),
        [
            ("AccessDenied", StoreAccessDenied),
            ("InternalError", StoreUnavailable),
            ("NoSuchKey", None),
        ],
    )
    def test_s3store_raises_the_first_key_that_delete_objects_could_not_delete(
        self, monkeypatch: pytest.MonkeyPatch, code: str, error: type[Exception] | None
    ) -> None:
        # S3 answers 200 and lists, per key, what it could not delete
        answer = (
            '<?xml version="1.0" encoding="UTF-8"?>'
            '<DeleteResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
            f"<Error><Key>archive/t/b.bin</Key><Code>{code}</Code><Message>no</Message></Error>"
            "</DeleteResult>"
        ).encode()

        class DeleteResult(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.send_response(200)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        server = ThreadingHTTPServer(("127.0.0.1", 0), DeleteResult)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            monkeypatch.setenv(
                "AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{server.server_address[1]}"
            )
            monkeypatch.setenv("AWS_ACCESS_KEY_ID", "devkitAccessKey")
            monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "devkitSecretKey")
            monkeypatch.setenv("AWS_REGION", "us-east-1")
            store = S3Store("s3://bucket/archive")
            if error is None:  # a key already gone: deleted, as delete has it
                store.delete_many(["t/a.bin", "t/b.bin"])
            else:
                with pytest.raises(error, match=rf"delete s3://bucket/archive/t/b\.bin: {code}"):
                    store.delete_many(["t/a.bin", "t/b.bin"])
        finally:
            server.shutdown()
            server.server_close()
