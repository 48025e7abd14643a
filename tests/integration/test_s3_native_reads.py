"""The readers' fast path on S3: whole-object GETs through AWS's Common Runtime.

Against SeaweedFS, with the SDK's configuration (``AWS_ENDPOINT_URL_S3``, the
credentials in the environment): the fast path serves the store's GETs, checks
what the SDK checks (the object's checksum, its length), and never decides an
error: a GET it cannot answer is made again through the SDK, and a failure the
SDK does not share switches it off.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import ssl
import threading
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import trustme
from awscrt import auth, checksums, s3

from archiver.archive import crt
from archiver.archive.crt import NativeGetError, NativeGets, check_body, native_gets
from archiver.archive.errors import InvalidNameError, StoreError, StoreUnavailable
from archiver.archive.s3store import S3Store
from archiver.archive.store import FsspecStore, open_store
from devkit.proxy import DelayProxy
from devkit.servers import SeaweedS3
from tests.proxies import FlippingProxy

DATA = bytes(range(256)) * 64  # 16 KiB


def _fsspec(uri: str) -> FsspecStore:
    store = open_store(uri)
    assert isinstance(store, FsspecStore)
    return store


def _client(secret: str = "devkitSecretKey") -> object:
    return s3.S3Client(
        region="us-east-1",
        credential_provider=auth.AwsCredentialsProvider.new_static("devkitAccessKey", secret),
        tls_mode=s3.S3RequestTlsMode.DISABLED,
        retry_config=s3.S3RetryConfig(retry_mode=s3.S3RetryMode.NONE),
    )


class TestTheFastPathServes:
    def test_gets_go_through_the_common_runtime(self, s3_archive: str) -> None:
        S3Store(s3_archive).put("t/dt=2026-01-01/a=b c.parquet", DATA)
        store = _fsspec(s3_archive)

        # A key with "=" and a space: signed and sent as botocore quotes it
        assert store.get("t/dt=2026-01-01/a=b c.parquet") == DATA
        assert store.get("t/dt=2026-01-01/a=b c.parquet") == DATA

        assert store.native is not None
        assert store.native.served == 2

    def test_the_boto3_stores_gets_go_through_the_common_runtime_too(self, s3_archive: str) -> None:
        # The store archiver compact reads with
        store = S3Store(s3_archive)
        store.put("t/dt=2026-01-01/a=b c.parquet", DATA)

        assert store.get("t/dt=2026-01-01/a=b c.parquet") == DATA
        with pytest.raises(FileNotFoundError, match=r"archive/no\.bin"):
            store.get("no.bin")

        assert store.native is not None
        assert store.native.served == 1

    def test_a_missing_key_is_the_stores_file_not_found_and_keeps_the_fast_path(
        self, s3_archive: str
    ) -> None:
        store = _fsspec(s3_archive)
        S3Store(s3_archive).put("a.bin", b"x")
        assert store.get("a.bin") == b"x"

        with pytest.raises(FileNotFoundError, match=r"archive/no\.bin"):
            store.get("no.bin")

        assert store.native is not None
        assert store.native.served == 1

    def test_ARCHIVER_S3_READS_sdk_keeps_every_get_on_the_sdk(
        self, s3_archive: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("ARCHIVER_S3_READS", "sdk")
        S3Store(s3_archive).put("a.bin", DATA)
        store = _fsspec(s3_archive)

        assert store.get("a.bin") == DATA
        assert store.native is None

    def test_an_unknown_ARCHIVER_S3_READS_is_refused_naming_the_variable(
        self, s3_archive: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("ARCHIVER_S3_READS", "fast")
        with pytest.raises(InvalidNameError, match=r"ARCHIVER_S3_READS must be auto or sdk"):
            open_store(s3_archive)

    @pytest.mark.parametrize("variable", ["HTTPS_PROXY", "http_proxy", "ALL_PROXY"])
    def test_a_proxy_keeps_every_get_on_the_sdk(
        self, monkeypatch: pytest.MonkeyPatch, variable: str
    ) -> None:
        for name in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY"):
            monkeypatch.delenv(name, raising=False)
            monkeypatch.delenv(name.lower(), raising=False)
        assert crt.wanted() is True
        monkeypatch.setenv(variable, "http://proxy.internal:3128")
        assert crt.wanted() is False

    @pytest.mark.parametrize(
        "url",
        [
            "http://127.0.0.1:1/b/k?AWSAccessKeyId=AKID&Signature=x&Expires=1",  # SigV2
            "http://127.0.0.1:1/b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256"
            "&X-Amz-Credential=AKID%2F20261202%2Fus-east-1%2Fs3-object-lambda%2Faws4_request",
            "http://127.0.0.1:1/b/other?X-Amz-Algorithm=AWS4-HMAC-SHA256"
            "&X-Amz-Credential=AKID%2F20261202%2Fus-east-1%2Fs3%2Faws4_request",
        ],
    )
    def test_a_presigned_url_it_cannot_read_keeps_gets_on_the_sdk(
        self, s3_endpoint: str, url: str
    ) -> None:
        assert native_gets("b", lambda key: url, 16) is None

    @pytest.mark.parametrize(
        "bucket", ["arn:aws:s3:us-east-1:1:accesspoint/ap", "logs--use1-az4--x-s3"]
    )
    def test_access_points_and_s3_express_buckets_stay_on_the_sdk(
        self, s3_endpoint: str, bucket: str
    ) -> None:
        assert native_gets(bucket, lambda key: "unused", 16) is None

    def test_the_signing_region_and_path_come_from_the_sdks_presigned_url(
        self, s3_archive: str, seaweed: object
    ) -> None:
        S3Store(s3_archive).put("a.bin", DATA)
        bucket = s3_archive.removeprefix("s3://").split("/")[0]
        store = _fsspec(s3_archive)
        native = native_gets(bucket, lambda key: store.fs.url(f"{bucket}/{key}", 60), 4)

        assert native is not None
        assert native.get("archive/a.bin") == DATA


@pytest.fixture
def https_endpoint(seaweed: SeaweedS3, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """SeaweedFS behind HTTPS, its certificate from a CA of the test's own; (endpoint, CA file)."""
    ca = trustme.CA()
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(tls)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    with DelayProxy(seaweed.endpoint, delay=0.0, tls=tls) as proxy:
        yield proxy.endpoint, ca_file


class TestOverHttps:
    """Over HTTPS the fast path trusts the certificates the SDK trusts, and no others."""

    @pytest.mark.parametrize("where", ["AWS_CA_BUNDLE", "profile"])
    def test_the_sdks_ca_bundle_is_the_fast_paths_too(
        self,
        s3_archive: str,
        https_endpoint: tuple[str, Path],
        monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path,
        where: str,
    ) -> None:
        endpoint, ca_file = https_endpoint
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", endpoint)
        if where == "AWS_CA_BUNDLE":
            monkeypatch.setenv("AWS_CA_BUNDLE", str(ca_file))
        else:
            config = tmp_path / "config"
            config.write_text(f"[default]\nca_bundle = {ca_file}\n")
            monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
        S3Store(s3_archive).put("t/a.parquet", DATA)

        for store in (_fsspec(s3_archive), S3Store(s3_archive)):
            assert store.get("t/a.parquet") == DATA
            assert store.native is not None and store.native.served == 1

    @pytest.mark.parametrize(
        ("bundle", "error", "warning"),
        [
            # Slow by design: the runtime's TLS library waits 10 to 30 s after refusing a
            # certificate (blinding against timing attacks), which is why one refusal is enough.
            pytest.param(
                None, r"a\.bin.*certificate verify failed", "from here on", id="untrusted"
            ),
            pytest.param("not a certificate\n", r"a\.bin", "could not be made", id="not-pem"),
        ],
    )
    def test_a_certificate_the_sdk_refuses_leaves_the_error_to_the_sdk_and_the_path_off(
        self,
        s3_archive: str,
        https_endpoint: tuple[str, Path],
        monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path,
        caplog: pytest.LogCaptureFixture,
        bundle: str | None,
        error: str,
        warning: str,
    ) -> None:
        endpoint, ca_file = https_endpoint
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", endpoint)
        monkeypatch.setenv("AWS_CA_BUNDLE", str(ca_file))
        S3Store(s3_archive).put("a.bin", DATA)
        if bundle is None:
            # The SDK then trusts its own (certifi's) certificates, not this CA
            monkeypatch.delenv("AWS_CA_BUNDLE")
        else:
            (tmp_path / "bundle.pem").write_text(bundle)
            monkeypatch.setenv("AWS_CA_BUNDLE", str(tmp_path / "bundle.pem"))
        monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
        store = _fsspec(s3_archive)

        # The error is the SDK's, in the store's words
        with (
            caplog.at_level(logging.WARNING, logger="archiver.archive.crt"),
            pytest.raises(StoreError, match=error),
        ):
            store.get("a.bin")
        assert store.native is None
        assert warning in caplog.text


class TestItDecidesNoError:
    def test_a_body_changed_on_its_way_is_refused_here_and_by_the_sdk(
        self, flipping: tuple[FlippingProxy, str]
    ) -> None:
        proxy, uri = flipping
        S3Store(uri).put("t/c.parquet", DATA)
        store = _fsspec(uri)
        assert store.get("t/c.parquet") == DATA
        assert store.native is not None and store.native.served == 1
        native = store.native

        proxy.flip_gets = True
        with pytest.raises(NativeGetError, match="crc32 checksum"):
            native.get(uri.removeprefix("s3://").split("/", 1)[1] + "/t/c.parquet")
        with pytest.raises(StoreError, match=r"t/c\.parquet.*checksum"):
            store.get("t/c.parquet")

        # A checksum that does not match may be the network's: the fast path stays on
        assert store.native is native and native.served == 1

    def test_an_unreachable_endpoint_is_the_sdks_store_unavailable(
        self, s3_archive: str, closed_endpoint: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        native = NativeGets(_client(), closed_endpoint.removeprefix("http://"), "/b")
        with pytest.raises(NativeGetError) as caught:
            native.get("a.bin")
        assert caught.value.lasting is False

        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", closed_endpoint)
        monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
        with pytest.raises(StoreUnavailable):
            _fsspec(s3_archive).get("a.bin")

    def test_a_refusal_the_sdk_does_not_share_switches_the_fast_path_off(
        self, s3_archive: str, s3_endpoint: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        # Given a store whose fast path signs with a secret S3 refuses, and the SDK's does not
        S3Store(s3_archive).put("a.bin", DATA)
        bucket = s3_archive.removeprefix("s3://").split("/")[0]
        host = s3_endpoint.removeprefix("http://")
        wrong = NativeGets(_client(secret="not-the-secret"), host, f"/{bucket}")
        sdk = _fsspec(s3_archive)
        store = FsspecStore(
            sdk.fs, sdk.root, sdk.uri, get_options=sdk.get_options, native=lambda: wrong
        )

        # When it reads, Then the SDK serves the GET and the fast path is off from then on
        with caplog.at_level(logging.WARNING, logger="archiver.archive.crt"):
            assert store.get("a.bin") == DATA
        assert store.native is None
        assert "go through the SDK from here on" in caplog.text
        assert "403" in caplog.text
        assert store.get("a.bin") == DATA
        assert wrong.served == 0


class _Redirecting(BaseHTTPRequestHandler):
    """Answers every GET as S3 answers one signed for the wrong region."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        body = b"<Error><Code>PermanentRedirect</Code></Error>"
        self.send_response(301)
        self.send_header("x-amz-bucket-region", "eu-west-1")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_a_redirect_to_the_buckets_region_says_which_region_to_set() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Redirecting)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        native = NativeGets(_client(), f"127.0.0.1:{server.server_address[1]}", "/b")
        with pytest.raises(NativeGetError) as caught:
            native.get("a.bin")
    finally:
        server.shutdown()
        server.server_close()
    assert caught.value.lasting is True
    assert str(caught.value) == "S3 answered 301: the bucket is in eu-west-1 (set AWS_REGION to it)"


def test_a_fast_path_that_cannot_be_made_leaves_every_get_to_the_sdk(
    s3_archive: str, caplog: pytest.LogCaptureFixture
) -> None:
    S3Store(s3_archive).put("a.bin", DATA)
    sdk = _fsspec(s3_archive)

    def broken() -> NativeGets:
        raise RuntimeError("no event loop for you")

    store = FsspecStore(sdk.fs, sdk.root, sdk.uri, get_options=sdk.get_options, native=broken)
    with caplog.at_level(logging.WARNING, logger="archiver.archive.crt"):
        assert store.get("a.bin") == DATA
        assert store.get("a.bin") == DATA
    assert store.native is None
    assert caplog.text.count("could not be made (RuntimeError: no event loop for you)") == 1


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class TestCheckBody:
    @pytest.mark.parametrize(
        ("header", "digest"),
        [
            ("x-amz-checksum-crc32", zlib.crc32(DATA).to_bytes(4, "big")),
            ("X-Amz-Checksum-Crc32C", checksums.crc32c(DATA).to_bytes(4, "big")),
            ("x-amz-checksum-crc64nvme", checksums.crc64nvme(DATA).to_bytes(8, "big")),
            ("x-amz-checksum-sha1", hashlib.sha1(DATA).digest()),
            ("x-amz-checksum-sha256", hashlib.sha256(DATA).digest()),
        ],
    )
    def test_each_algorithm_accepts_its_own_and_refuses_a_changed_body(
        self, header: str, digest: bytes
    ) -> None:
        headers = [(header, _b64(digest)), ("Content-Length", str(len(DATA)))]
        check_body(headers, DATA)
        changed = DATA[:100] + bytes([DATA[100] ^ 1]) + DATA[101:]
        with pytest.raises(NativeGetError, match="checksum"):
            check_body(headers, changed)

    def test_a_short_body_is_refused(self) -> None:
        with pytest.raises(NativeGetError, match=f"got 10 bytes of {len(DATA)}"):
            check_body([("content-length", str(len(DATA)))], DATA[:10])

    def test_a_multipart_checksum_is_skipped_as_botocore_skips_it(self) -> None:
        check_body([("x-amz-checksum-crc32", "AAAAAA==-3")], DATA)

    @pytest.mark.parametrize(
        "header", [("Content-Length", "many"), ("x-amz-checksum-crc32", "not base64!")]
    )
    def test_an_unreadable_header_is_refused_naming_it(self, header: tuple[str, str]) -> None:
        with pytest.raises(NativeGetError, match=f"unreadable {header[0].lower()} header"):
            check_body([header], DATA)

    def test_no_checksum_header_checks_the_length_only(self) -> None:
        check_body([("content-type", "application/octet-stream")], DATA)
