"""A lean S3 adapter of ArchiveStore over boto3, for the Lambda sink and the CLIs.

boto3 imports in ~0.2 s against ~0.4 s for s3fs, which matters on a Lambda
cold start. Retries follow botocore's own policy (``AWS_RETRY_MODE``,
``AWS_MAX_ATTEMPTS``; standard mode with 5 attempts unless configured), the one
retry policy for S3. SDK errors are sorted by :func:`archiver.archive.aws.classify`
and translated here, once.
"""

from __future__ import annotations

import builtins
import io
from collections.abc import Iterator, Sequence
from typing import IO, Any

from .aws import Failure, classify, describe, error_code
from .crt import FastPath, NativeGets, native_gets, wanted
from .errors import StoreAccessDenied, StoreError, StoreUnavailable
from .fetch import IN_FLIGHT
from .store import StoredObject, check_key, split_s3_uri

__all__ = ["S3Store"]

# Keys per DeleteObjects request, S3's most.
DELETE_BATCH = 1000


class S3Store:
    """An archive under ``s3://bucket/prefix`` written with ``put_object``.

    Its GETs take the fast path of :mod:`.crt` where ``awscrt`` is installed (the
    CLIs' ``archiver compact``; never in the Lambda package), made on the first one.
    """

    def __init__(self, uri: str, *, client: Any = None, sse: dict[str, str] | None = None) -> None:
        self.uri = uri.rstrip("/")
        self.bucket, self.prefix = split_s3_uri(uri)
        self.sse = dict(sse or {})
        if client is None:
            from botocore.config import Config

            from .aws import client as aws_client

            client = aws_client(
                "s3",
                config=Config(
                    retries={"mode": "standard"},
                    connect_timeout=5,
                    read_timeout=30,
                    # One client for every thread, a connection for each request the
                    # readers keep in flight (botocore keeps 10).
                    max_pool_connections=IN_FLIGHT,
                    # SigV4 for presigned URLs too (the fast path reads the signing region
                    # off one).
                    signature_version="s3v4",
                ),
            )
        self.client = client
        self._fast = FastPath(self._native_gets) if wanted() else None

    def _native_gets(self) -> NativeGets | None:
        def presign(key: str) -> str:
            url: str = self.client.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=60
            )
            return url

        return native_gets(self.bucket, presign, IN_FLIGHT)

    @property
    def native(self) -> NativeGets | None:
        """The fast path's GETs, once made and while on."""
        return self._fast.native if self._fast is not None else None

    def _key(self, key: str) -> str:
        return self.prefix + check_key(key)

    def _translate(self, action: str, key: str, err: Exception) -> Exception:
        """The store's error for an SDK error: FileNotFoundError for a missing object."""
        target = f"s3://{self.bucket}/{key}"
        kind = classify(err)
        # A missing bucket is no missing object: the archive cannot be written at all.
        if kind is Failure.NOT_FOUND and error_code(err) != "NoSuchBucket":
            return FileNotFoundError(target)
        if kind is Failure.DENIED or kind is Failure.NOT_FOUND:
            return StoreAccessDenied(f"{action} {target}: {describe(err)} (bucket {self.bucket})")
        if kind.transient:
            return StoreUnavailable(f"{action} {target}: {describe(err)}")
        return StoreError(f"{action} {target}: {describe(err)}")

    def _call(self, action: str, key: str, method: str, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self.client, method)(**kwargs)
        except (ClientError, BotoCoreError) as err:
            raise self._translate(action, key, err) from err

    def put(self, key: str, data: bytes) -> None:
        # S3 checks the CRC32 against the bytes it received and refuses the write if they
        # differ; it keeps the checksum with the object for every later read.
        full = self._key(key)
        self._call(
            "write",
            full,
            "put_object",
            Bucket=self.bucket,
            Key=full,
            Body=data,
            ChecksumAlgorithm="CRC32",
            **self.sse,
        )

    def get(self, key: str) -> bytes:
        full = self._key(key)
        if self._fast is None:
            return self._sdk_get(full)
        return self._fast.get(full, lambda: self._sdk_get(full), f"s3://{self.bucket}/{full}")

    def _sdk_get(self, full: str) -> bytes:
        from botocore.exceptions import BotoCoreError

        response = self._call(
            "read", full, "get_object", Bucket=self.bucket, Key=full, ChecksumMode="ENABLED"
        )
        try:
            # botocore checks the bytes against the object's checksum as the body is read.
            data: bytes = response["Body"].read()
        except BotoCoreError as err:  # FlexibleChecksumError, or the connection dropped
            raise self._translate("read", full, err) from err
        return data

    def open(self, key: str) -> IO[bytes]:
        return io.BytesIO(self.get(key))

    def list(self, prefix: str) -> Iterator[StoredObject]:
        full = self.prefix + prefix
        found: builtins.list[StoredObject] = []
        token: dict[str, str] = {}
        while True:
            page = self._call(
                "list", full, "list_objects_v2", Bucket=self.bucket, Prefix=full, **token
            )
            found += [
                StoredObject(item["Key"][len(self.prefix) :], int(item["Size"]))
                for item in page.get("Contents", [])
            ]
            if not page.get("IsTruncated"):
                break
            token = {"ContinuationToken": page["NextContinuationToken"]}
        # S3 lists in UTF-8 byte order, but not every S3-compatible server does
        # (SeaweedFS lists folder by folder: "a/1" before "a.bin"); the port promises key order.
        yield from sorted(found, key=lambda o: o.key)

    def list_dirs(self, prefix: str) -> builtins.list[str]:
        full = self.prefix + prefix
        names: builtins.list[str] = []
        token: dict[str, str] = {}
        while True:
            page = self._call(
                "list",
                full,
                "list_objects_v2",
                Bucket=self.bucket,
                Prefix=full,
                Delimiter="/",
                **token,
            )
            names += [p["Prefix"][len(full) :].rstrip("/") for p in page.get("CommonPrefixes", [])]
            if not page.get("IsTruncated"):
                return sorted(names)
            token = {"ContinuationToken": page["NextContinuationToken"]}

    def delete(self, key: str) -> None:
        full = self._key(key)
        self._call("delete", full, "delete_object", Bucket=self.bucket, Key=full)

    def delete_many(self, keys: Sequence[str]) -> None:
        """Remove ``keys`` with DeleteObjects, up to 1,000 a request.

        S3 answers such a request with 200 and lists the keys it could not delete,
        each with its error code: the first one is raised as :meth:`delete` would
        raise it. A key already gone counts as deleted, as for ``delete`` (S3 says
        nothing of it; a server that answers ``NoSuchKey`` for it is not an error).
        """
        from botocore.exceptions import ClientError

        fulls = [self._key(key) for key in keys]
        for start in range(0, len(fulls), DELETE_BATCH):
            batch = fulls[start : start + DELETE_BATCH]
            answer = self._call(
                "delete",
                batch[0],
                "delete_objects",
                Bucket=self.bucket,
                Delete={"Objects": [{"Key": full} for full in batch], "Quiet": True},
            )
            for failed in answer.get("Errors") or []:
                error = {"Code": failed.get("Code", ""), "Message": failed.get("Message", "")}
                err = ClientError({"Error": error}, "DeleteObjects")
                found = self._translate("delete", str(failed.get("Key", batch[0])), err)
                if not isinstance(found, FileNotFoundError):  # gone already is what was asked
                    raise found from err

    def exists(self) -> bool:
        try:
            self._call("check", "", "head_bucket", Bucket=self.bucket)
        except FileNotFoundError:
            return False
        return True
