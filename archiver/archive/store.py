"""Archive stores: object keys and bytes in, durable objects out.

``ArchiveStore`` is the port; ``LocalStore`` (a folder) and ``FsspecStore``
(S3 through s3fs, or any fsspec filesystem) are adapters, and the archiver
adds a lean boto3 adapter for Lambda. Keys are relative to the archive root
and always use ``/``. ``put`` returns only once the object is durable and
replaces an object of the same key whole (readers never see a partial file).
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal, Protocol

from .aws import Failure, classify, describe
from .crt import FastPath, NativeGets
from .errors import InvalidNameError, StoreAccessDenied, StoreError, StoreUnavailable

__all__ = [
    "ArchiveStore",
    "FsspecStore",
    "LocalStore",
    "StoredObject",
    "check_key",
    "check_writable_folder",
    "open_store",
    "split_s3_uri",
    "sse_arguments",
]


@dataclass(frozen=True, slots=True)
class StoredObject:
    key: str
    size: int


class ArchiveStore(Protocol):
    """Where an archive lives."""

    uri: str

    def put(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key`` durably, replacing any object of that key."""

    def get(self, key: str) -> bytes:
        """The bytes of ``key``; FileNotFoundError when there is none."""

    def open(self, key: str) -> IO[bytes]:
        """A seekable binary file of ``key`` (Parquet readers fetch only what they need)."""

    def list(self, prefix: str) -> Iterator[StoredObject]:
        """Every object whose key starts with ``prefix``, in key order."""

    def list_dirs(self, prefix: str) -> builtins.list[str]:
        """The names of the immediate sub-folders of ``prefix`` (which ends in ``/``)."""

    def delete(self, key: str) -> None:
        """Remove ``key``; no error when it is already gone."""

    def delete_many(self, keys: Sequence[str]) -> None:
        """Remove every one of ``keys`` as :meth:`delete` does, in as few requests as the store
        allows; on an error, some may be gone and the others not."""

    def exists(self) -> bool:
        """Whether the archive is there: its folder, or its bucket.

        A bucket without objects under the prefix is an empty archive; a folder
        or bucket that does not exist is no archive at all (readers say so).
        """


def check_key(key: str) -> str:
    """Refuse keys that could escape the archive root or confuse a filesystem."""
    parts = key.split("/")
    if (
        not key
        or key.startswith("/")
        or any(p in ("", ".", "..") for p in parts[:-1])
        or parts[-1] in (".", "..")
    ):
        raise InvalidNameError(f"invalid object key {key!r}")
    if "\\" in key or "\x00" in key:
        raise InvalidNameError(f"invalid object key {key!r}")
    return key


def check_writable_folder(folder: str | os.PathLike[str]) -> None:
    """Raise OSError unless ``folder`` (created if need be) takes a new file; none is left there.

    For a file that is written later, say a checkpoint: fail before the work, not after it.
    """
    path = Path(folder)
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, f"{path} is not a folder")
    path.mkdir(parents=True, exist_ok=True)
    fd, probe = tempfile.mkstemp(prefix=".tmp-", dir=path)  # a name listings skip
    os.close(fd)
    os.unlink(probe)


def sse_arguments(sse: str, kms_key_id: str | None = None) -> dict[str, str]:
    """The S3 put arguments for server-side encryption, for every writer of an archive.

    ``sse`` is ``AES256`` (SSE-S3), ``aws:kms`` (SSE-KMS, with ``kms_key_id`` or the AWS
    managed key) or ``none`` (the bucket's default applies).
    """
    if sse == "none":
        return {}
    if sse not in ("AES256", "aws:kms"):
        raise ValueError(f"server-side encryption {sse!r}: expected AES256, aws:kms or none")
    arguments = {"ServerSideEncryption": sse}
    if kms_key_id:
        arguments["SSEKMSKeyId"] = kms_key_id
    return arguments


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> (``bucket``, ``some/prefix/``)."""
    rest = uri[len("s3://") :]
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise InvalidNameError(f"invalid archive URI {uri!r}: expected s3://bucket[/prefix]")
    prefix = prefix.strip("/")
    return bucket, f"{prefix}/" if prefix else ""


# Local write errors that may pass if tried again later.
_PASSING = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EAGAIN, errno.EINTR})


class LocalStore:
    """An archive in a local folder. Writes go to a temporary file, are fsynced, then renamed."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser().resolve()
        self.uri = str(self.root)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            dir_fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except PermissionError as err:
            raise StoreAccessDenied(f"cannot write {path}: {err.strerror}") from err
        except OSError as err:
            # A full disk or an I/O error may pass; a read-only disk or a file where a folder
            # should be will not.
            kind = StoreUnavailable if err.errno in _PASSING else StoreError
            raise kind(f"cannot write {path}: {err.strerror or err}") from err

    def get(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def open(self, key: str) -> IO[bytes]:
        return self._path(key).open("rb")

    def list(self, prefix: str) -> Iterator[StoredObject]:
        if prefix:
            check_key(prefix.rstrip("/") or ".")
        base = self.root / prefix if prefix else self.root
        # A prefix that does not end in "/" may stop mid-name ("a" matches "ab/x"):
        # walk from the folder that holds that name.
        start = base if not prefix or prefix.endswith("/") else base.parent
        if not start.is_dir():
            return
        # os.scandir, folder by folder, keys as strings: os.walk with a Path per file took
        # ten times as long over 10,000 files (an archive's year of hours is many more).
        cut = len(str(self.root).rstrip(os.sep)) + 1
        found: builtins.list[StoredObject] = []
        folders = [str(start)]
        while folders:
            try:
                entries = os.scandir(folders.pop())
            except (FileNotFoundError, NotADirectoryError):  # removed while listing
                continue
            with entries:
                for entry in entries:
                    if entry.name.startswith(".tmp-"):
                        continue
                    if entry.is_dir():
                        if not entry.is_symlink():  # as os.walk: links to folders not followed
                            folders.append(entry.path)
                        continue
                    key = entry.path[cut:].replace(os.sep, "/")
                    if key.startswith(prefix):
                        try:
                            size = entry.stat().st_size
                        except FileNotFoundError:  # deleted while listing (e.g. by a compaction)
                            continue
                        found.append(StoredObject(key, size))
        found.sort(key=lambda o: o.key)
        yield from found

    def list_dirs(self, prefix: str) -> builtins.list[str]:
        base = self.root / prefix
        if not base.is_dir():
            return []
        return sorted(entry.name for entry in base.iterdir() if entry.is_dir())

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def delete_many(self, keys: Sequence[str]) -> None:
        for key in keys:
            self.delete(key)

    def exists(self) -> bool:
        return self.root.is_dir()


_SDK_MODULES = frozenset({"botocore", "aiobotocore", "aiohttp", "urllib3"})


class FsspecStore:
    """An archive on any fsspec filesystem; ``open_store`` builds it for ``s3://`` URIs.

    ``native``, when given, makes the fast path for whole-object GETs on S3
    (:class:`.crt.FastPath`) on the first ``get``; a GET that fails there is made
    again through ``fs``, and a failure there that would recur switches it off.
    """

    def __init__(
        self,
        fs: Any,
        root: str,
        uri: str,
        *,
        get_options: dict[str, Any] | None = None,
        native: Callable[[], NativeGets | None] | None = None,
    ) -> None:
        self.fs = fs
        self.root = root.rstrip("/")
        self.uri = uri
        self.get_options = dict(get_options or {})  # passed to every ``cat_file``
        self._fast = FastPath(native) if native is not None else None

    @property
    def native(self) -> NativeGets | None:
        """The fast path's GETs, once made and while on."""
        return self._fast.native if self._fast is not None else None

    def _path(self, key: str) -> str:
        return f"{self.root}/{check_key(key)}"

    def _call(self, action: str, target: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except FileNotFoundError:
            raise
        except Exception as err:
            # s3fs turns SDK errors into OSErrors (keeping the SDK's as the cause, which
            # classify reads) and lets some through untranslated (e.g. botocore's
            # EndpointConnectionError); recognise those by origin, without importing the SDK.
            if (
                not isinstance(err, OSError)
                and type(err).__module__.split(".")[0] not in _SDK_MODULES
            ):
                raise
            kind = classify(err)
            if kind is Failure.DENIED:
                raise StoreAccessDenied(
                    f"{action} {target}: access denied ({describe(err)})"
                ) from err
            if kind is Failure.NOT_FOUND:
                raise FileNotFoundError(target) from err
            if kind.transient:
                raise StoreUnavailable(f"{action} {target}: {describe(err)}") from err
            raise StoreError(f"{action} {target}: {describe(err)}") from err

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        self._call("write", path, self.fs.pipe_file, path, data)

    def get(self, key: str) -> bytes:
        path = self._path(key)
        if self._fast is None:
            return self._sdk_get(path)
        return self._fast.get(path.split("/", 1)[1], lambda: self._sdk_get(path), path)

    def _sdk_get(self, path: str) -> bytes:
        try:
            data: bytes = self._call("read", path, self.fs.cat_file, path, **self.get_options)
        except FileNotFoundError as err:
            # s3fs's GET says only "The specified key does not exist.": name the object, as
            # its open (which asks for the object's size first) does.
            raise FileNotFoundError(path) from err
        return data

    def open(self, key: str) -> IO[bytes]:
        path = self._path(key)
        handle: IO[bytes] = self._call("read", path, self.fs.open, path, "rb")
        return handle

    def list(self, prefix: str) -> Iterator[StoredObject]:
        # Always from below the root: an empty prefix must not list the root's parent.
        base = f"{self.root}/{prefix}"
        folder = base if base.endswith("/") else base.rsplit("/", 1)[0]
        try:
            found = self._call("list", folder, self.fs.find, folder.rstrip("/"), detail=True)
        except FileNotFoundError:
            return
        cut = len(self.root) + 1
        for path, info in sorted(found.items()):
            key = path[cut:]
            if key.startswith(prefix) and info.get("type") != "directory":
                yield StoredObject(key, int(info.get("size") or 0))

    def list_dirs(self, prefix: str) -> builtins.list[str]:
        path = f"{self.root}/{prefix}".rstrip("/")
        try:
            entries = self._call("list", path, self.fs.ls, path, detail=True)
        except FileNotFoundError:
            return []
        return sorted(
            e["name"].rstrip("/").rsplit("/", 1)[-1] for e in entries if e["type"] == "directory"
        )

    def delete(self, key: str) -> None:
        path = self._path(key)
        with contextlib.suppress(FileNotFoundError):  # already gone is what was asked
            self._call("delete", path, self.fs.rm_file, path)

    def delete_many(self, keys: Sequence[str]) -> None:
        # One request each: s3fs's bulk delete drops the errors S3 reports per key.
        for key in keys:
            self.delete(key)

    def exists(self) -> bool:
        bucket = self.root.split("/", 1)[0]
        try:
            self._call("check", bucket, self.fs.info, bucket)
        except FileNotFoundError:
            return False
        return True


def open_store(
    uri: str,
    *,
    sse: dict[str, str] | None = None,
    s3: Literal["s3fs", "boto3"] = "s3fs",
) -> ArchiveStore:
    """The one way to a store: ``s3://bucket/prefix`` or a local path (``file://`` allowed).

    Parameters
    ----------
    uri
        The archive.
    sse
        Server-side encryption for every S3 write, from the settings' ``sse_arguments``
        (e.g. ``{"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": "..."}``).
    s3
        Which client serves S3: ``"s3fs"`` (the data ecosystem's S3 filesystem, what
        the replayer and pyiceberg read with) or ``"boto3"`` (lean: half s3fs's import
        time, for the Lambda sink's cold start and the archiver's writes).

    Both S3 adapters take the AWS SDK's configuration (profiles, ``AWS_ENDPOINT_URL_S3``)
    in the region :func:`archiver.archive.aws.region` finds, retry as botocore's standard
    mode does (``AWS_MAX_ATTEMPTS``), sort errors through :func:`archiver.archive.aws.classify`,
    and checksum every write and read; one contract test class holds them all to the
    same behaviour (tests/contract/test_store.py).
    """
    if uri.startswith("s3://"):
        if s3 == "boto3":
            from .s3store import S3Store

            return S3Store(uri, sse=sse)
        bucket, prefix = split_s3_uri(uri)
        import aiobotocore.session
        import s3fs  # deferred: costs ~0.4 s to import

        from .aws import region, tuned
        from .crt import native_gets, wanted
        from .fetch import IN_FLIGHT

        name = region()
        fs = s3fs.S3FileSystem(
            # The SDK's session, reading response timestamps without dateutil (.aws).
            session=tuned(aiobotocore.session.AioSession()),
            client_kwargs={"region_name": name} if name else {},
            # A connection for every request the readers keep in flight (aiobotocore keeps
            # 10), and botocore's standard retries, as the boto3 adapter has.
            # SigV4 for presigned URLs too (the fast path reads the signing region off one).
            config_kwargs={
                "max_pool_connections": IN_FLIGHT,
                "retries": {"mode": "standard"},
                "signature_version": "s3v4",
            },
            # Every read is checked against the checksum S3 keeps with the object (s3fs
            # passes each argument only to the calls that take it).
            s3_additional_kwargs={"ChecksumMode": "ENABLED", **(sse or {})},
            use_listings_cache=False,
            skip_instance_cache=True,
        )
        # One try of s3fs's own (a class attribute, 5 by default): its retries, on top of
        # botocore's, would multiply the attempts and the waits.
        fs.retries = 1
        # One GET per object: s3fs would first ask for its size (a HEAD, a second round trip)
        # to cut a large one into ranges; readers overlap whole objects instead (.fetch).
        return FsspecStore(
            fs,
            f"{bucket}/{prefix}".rstrip("/"),
            uri,
            get_options={"max_concurrency": 1},
            # Whole-object GETs through AWS's Common Runtime where it is installed (.crt).
            native=(
                (lambda: native_gets(bucket, lambda key: fs.url(f"{bucket}/{key}", 60), IN_FLIGHT))
                if wanted()
                else None
            ),
        )
    if "://" in uri and not uri.startswith("file://"):
        raise InvalidNameError(
            f"unsupported archive URI {uri!r}: use s3://bucket/prefix or a local path"
        )
    return LocalStore(uri.removeprefix("file://"))
