"""Whole-object GETs through AWS's Common Runtime: the readers' fast path on S3.

Reading an archive before compaction means many small files, one GET each.
botocore spends 3 to 4 ms of Python on every GET (signing, endpoint rules,
event hooks, parsing) while it holds the GIL, so a reader with 16 requests in
flight is bound by the SDK's CPU, not by S3. The Common Runtime (``awscrt``,
the native core of the AWS SDKs, which boto3's CRT transfers use) signs and
sends on threads of its own, at about a fifth of that CPU.

Both paths reach the same object as the same principal, because what this
one needs comes from the SDK:

- the endpoint, addressing style and signing region: botocore presigns one
  GET for the bucket, and they are read off that URL (``AWS_ENDPOINT_URL_S3``,
  path or virtual-hosted style, FIPS and dual-stack settings are botocore's);
- the credentials: the session's own chain, asked at every signing, so they
  refresh as botocore refreshes them.

Each GET asks for the object's checksum (``x-amz-checksum-mode``) and checks
the body against it and against its length, as botocore does.

It is a fast path only and decides no error: a GET it cannot answer with the
object's bytes (an error answer, a dropped connection, a checksum that does
not match, no answer within the SDK's read timeout) raises
:class:`NativeGetError`, and the store makes the GET again through the SDK,
whose retries, error translation and messages are the store's
(:class:`~.store.FsspecStore`).

:func:`native_gets` builds one only where it reaches what the SDK reaches:
not with a proxy configured (the runtime reads no proxy settings), nor for
access points or S3 Express buckets (other signing). Over HTTPS it trusts the
certificates the SDK trusts: ``AWS_CA_BUNDLE`` or the profile's ``ca_bundle``,
else botocore's own bundle.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import threading
import zlib
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

__all__ = ["READS_VARIABLE", "FastPath", "NativeGetError", "NativeGets", "native_gets", "wanted"]

log = logging.getLogger(__name__)

READS_VARIABLE = "ARCHIVER_S3_READS"  # "auto" (the default) or "sdk"
_PROXY_VARIABLES = ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY")
# botocore's default read timeout: a GET with no answer by then is made again by the SDK.
_TIMEOUT_S = 60.0
_PROBE = "k"  # the key presigned to learn the bucket's endpoint and signing region


class NativeGetError(Exception):
    """A GET the runtime could not answer with the object's bytes; the SDK makes it again.

    ``lasting`` is True when trying again this way would fail the same way (a
    redirect, a refused signature, a TLS handshake refused): the store then stops
    using this path if the SDK's GET passes, and at once after a refused handshake.
    """

    def __init__(
        self, reason: str, *, status: int = 0, lasting: bool = False, handshake: bool = False
    ) -> None:
        super().__init__(reason)
        self.status = status
        self.lasting = lasting or handshake
        # The TLS handshake failed: most likely the endpoint's certificate, checked against
        # the certificates the SDK trusts, so the SDK's GET refuses it too. Each refusal here
        # costs s2n's timing-attack blinding, 10 to 30 s: the store stops using this path.
        self.handshake = handshake


def _crc(name: str, size: int) -> Callable[[bytes], bytes]:
    def digest(data: bytes) -> bytes:
        if name == "crc32":
            value = zlib.crc32(data)
        else:
            from awscrt import checksums

            value = checksums.crc32c(data) if name == "crc32c" else checksums.crc64nvme(data)
        return value.to_bytes(size, "big")

    return digest


# The checksums S3 gives back with x-amz-checksum-mode, by header.
_CHECKSUMS: dict[str, Callable[[bytes], bytes]] = {
    "x-amz-checksum-crc32": _crc("crc32", 4),
    "x-amz-checksum-crc32c": _crc("crc32c", 4),
    "x-amz-checksum-crc64nvme": _crc("crc64nvme", 8),
    "x-amz-checksum-sha1": lambda data: hashlib.sha1(data).digest(),
    "x-amz-checksum-sha256": lambda data: hashlib.sha256(data).digest(),
}


def check_body(headers: list[tuple[str, str]], body: bytes) -> None:
    """Raise :class:`NativeGetError` unless ``body`` has the length and checksum ``headers`` give.

    A checksum of a multipart object's parts (``"...-3"``) says nothing about the
    whole object's bytes and is skipped, as botocore skips it.
    """
    for name, value in headers:
        name = name.lower()
        try:
            if name == "content-length" and int(value) != len(body):
                raise NativeGetError(f"got {len(body)} bytes of {value}")
            digest = _CHECKSUMS.get(name)
            if digest is not None and "-" not in value and digest(body) != base64.b64decode(value):
                raise NativeGetError(f"the object's bytes do not match its {name[15:]} checksum")
        except ValueError:  # not a number, not base64
            raise NativeGetError(f"unreadable {name} header") from None


class NativeGets:
    """GETs of whole objects from one bucket through an ``awscrt`` S3 client.

    Parameters
    ----------
    client
        The ``awscrt.s3.S3Client``, signing for the bucket's region.
    host
        The ``Host`` header (with the port, if any) of the bucket's endpoint.
    prefix
        The path before every object key: ``"/bucket"`` in path style, ``""``
        in virtual-hosted style.
    """

    def __init__(self, client: Any, host: str, prefix: str) -> None:
        self._client = client
        self._host = host
        self._prefix = prefix
        self.served = 0  # GETs answered here (the tests check that this path is the one taken)

    def get(self, key: str) -> bytes:
        """The bytes of the object ``key`` (within the bucket), checked against its checksum.

        Raises
        ------
        NativeGetError
            For anything but the object's bytes.
        """
        from awscrt import http, s3

        received: list[tuple[str, str]] = []
        body: list[bytes] = []

        def on_headers(status_code: int, headers: list[tuple[str, str]], **kwargs: Any) -> None:
            received.extend(headers)

        def on_body(chunk: bytes, offset: int, **kwargs: Any) -> None:
            body.append(chunk)

        request = http.HttpRequest(
            "GET",
            quote(f"{self._prefix}/{key}", safe="/~"),  # as botocore quotes a key
            http.HttpHeaders([("Host", self._host), ("x-amz-checksum-mode", "ENABLED")]),
        )
        pending = self._client.make_request(
            type=s3.S3RequestType.DEFAULT,  # one GET: GET_OBJECT would first ask for the size
            operation_name="GetObject",
            request=request,
            on_headers=on_headers,
            on_body=on_body,
        )
        try:
            pending.finished_future.result(_TIMEOUT_S)
        except TimeoutError:
            pending.cancel()
            raise NativeGetError(f"no answer in {_TIMEOUT_S:.0f} s") from None
        except s3.S3ResponseError as err:
            status = int(err.status_code or 0)
            # A 404 is an answer: the SDK's GET says so with the store's own error. Other 4xx
            # and 3xx (a redirect to the bucket's region, a refused signature) would come back
            # on every try here; 5xx, 408 and 429 may pass.
            lasting = 300 <= status < 500 and status not in (404, 408, 429)
            reason = f"S3 answered {status}"
            for name, value in err.headers or ():
                if name.lower() == "x-amz-bucket-region":  # a redirect to the bucket's region
                    reason += f": the bucket is in {value} (set AWS_REGION to it)"
            raise NativeGetError(reason, status=status, lasting=lasting) from None
        except Exception as err:  # the connection: refused, dropped, TLS
            # A TLS handshake this runtime refuses would be refused again; a connection
            # refused or dropped, or a handshake that timed out, may come back.
            refused = getattr(err, "name", "") == "AWS_IO_TLS_ERROR_NEGOTIATION_FAILURE"
            raise NativeGetError(f"{type(err).__name__}: {err}", handshake=refused) from None
        data = b"".join(body)
        check_body(received, data)
        self.served += 1
        return data


class FastPath:
    """One store's fast path: made on its first GET, and switched off by a failure the SDK
    does not share.

    Parameters
    ----------
    make
        Makes the :class:`NativeGets` (None where the SDK must serve every GET).
        Anything it raises leaves every GET to the SDK, with one warning.
    """

    def __init__(self, make: Callable[[], NativeGets | None]) -> None:
        self._make: Callable[[], NativeGets | None] | None = make
        self._lock = threading.Lock()
        self.native: NativeGets | None = None

    def _native(self) -> NativeGets | None:
        if self._make is not None:
            with self._lock:
                make, self._make = self._make, None
                if make is not None:
                    try:
                        self.native = make()
                    except Exception as err:  # a fast path that cannot be made is none at all
                        log.warning(
                            "S3 reads go through the SDK: the Common Runtime's client could "
                            "not be made (%s: %s)",
                            type(err).__name__,
                            err,
                        )
        return self.native

    def get(self, key: str, sdk_get: Callable[[], bytes], name: str) -> bytes:
        """The object ``key`` of the bucket through the fast path, else ``sdk_get()``.

        ``sdk_get`` raises the store's own errors; ``name`` names the object in the
        warning that says the fast path is off.
        """
        native = self._native()
        missed = None
        if native is not None:
            try:
                return native.get(key)
            except NativeGetError as err:
                missed = err
                if err.handshake:
                    self._off(native, f"the Common Runtime's GET of {name} failed ({err})")
        data = sdk_get()
        if missed is not None and missed.lasting:
            self._off(
                native,
                f"the Common Runtime's GET of {name} failed ({missed}) where the SDK's passed",
            )
        return data

    def _off(self, native: NativeGets | None, why: str) -> None:
        with self._lock:
            if self.native is not native or native is None:
                return  # off already
            self.native = None
        log.warning("S3 reads go through the SDK from here on: %s", why)


def wanted() -> bool:
    """Whether the settings let S3 reads take the fast path: ``ARCHIVER_S3_READS`` is
    ``auto`` (or unset), and no proxy is configured in the environment.

    Raises
    ------
    InvalidNameError
        When ``ARCHIVER_S3_READS`` is neither ``auto`` nor ``sdk``.
    """
    choice = os.environ.get(READS_VARIABLE, "auto").strip().lower()
    if choice not in ("auto", "sdk"):
        from .errors import InvalidNameError

        raise InvalidNameError(f"{READS_VARIABLE} must be auto or sdk, not {choice!r}")
    if choice == "sdk":
        return False
    return not any(
        os.environ.get(name) or os.environ.get(name.lower()) for name in _PROXY_VARIABLES
    )


def native_gets(bucket: str, presign: Callable[[str], str], in_flight: int) -> NativeGets | None:
    """The fast path to ``bucket``, or None where the SDK must serve every GET.

    Parameters
    ----------
    bucket
        The bucket.
    presign
        A SigV4-presigned GET URL of an object of the bucket, by key, from the
        SDK client the store's other requests go through.
    in_flight
        Requests the readers keep in flight: a connection for each.

    None when ``awscrt`` is not installed, the bucket is an access point or an
    S3 Express bucket, the SDK finds no credentials (its own GET then says so),
    or it presigns other than with SigV4 for S3. The store asks :func:`wanted` first.

    Raises
    ------
    Exception
        Whatever ``awscrt`` raises for a CA bundle it cannot read; :class:`FastPath`
        then leaves every GET to the SDK, with one warning.
    """
    if bucket.startswith("arn:") or bucket.endswith("--x-s3"):
        return None
    try:
        from awscrt import auth, s3
    except ImportError:
        return None
    import botocore.session

    session = botocore.session.Session()  # the SDK's chain: variables, profile, SSO, IMDS...
    credentials = session.get_credentials()
    if credentials is None:
        return None
    url = urlsplit(presign(_PROBE))
    query = parse_qs(url.query)
    scope = query.get("X-Amz-Credential", [""])[0].split("/")  # key id/date/region/service/...
    if (
        query.get("X-Amz-Algorithm") != ["AWS4-HMAC-SHA256"]
        or len(scope) != 5
        or scope[3] != "s3"
        or not url.path.endswith(f"/{_PROBE}")
        or url.scheme not in ("http", "https")
    ):
        return None
    tls = None
    if url.scheme == "https":
        # The certificates the SDK trusts, not the system's: AWS_CA_BUNDLE or the profile's
        # ca_bundle, else the bundle botocore ships with (certifi's, where installed).
        from awscrt import io
        from botocore.httpsession import get_cert_path

        options = io.TlsContextOptions()
        options.override_default_trust_store_from_path(
            None, session.get_config_variable("ca_bundle") or get_cert_path(True)
        )
        tls = io.ClientTlsContext(options).new_connection_options()

    def credentials_now() -> Any:
        frozen = credentials.get_frozen_credentials()
        return auth.AwsCredentials(frozen.access_key, frozen.secret_key, frozen.token)

    client = s3.S3Client(
        region=scope[2],
        credential_provider=auth.AwsCredentialsProvider.new_delegate(credentials_now),
        tls_mode=s3.S3RequestTlsMode.DISABLED if tls is None else s3.S3RequestTlsMode.ENABLED,
        tls_connection_options=tls,
        # A connection for every request the readers keep in flight (the runtime sizes its
        # pool by the throughput target, 10 Gb/s being the least that gives 16).
        throughput_target_gbps=10.0,
        max_active_connections_override=in_flight,
        # No tries of its own: a GET that fails here is made again by the SDK, with its retries.
        retry_config=s3.S3RetryConfig(retry_mode=s3.S3RetryMode.NONE),
    )
    log.debug("S3 reads from %s go through the Common Runtime (%s)", bucket, url.netloc)
    return NativeGets(client, url.netloc, url.path[: -len(f"/{_PROBE}")])
