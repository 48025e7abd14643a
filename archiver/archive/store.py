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
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

from .errors import InvalidNameError, StoreAccessDenied, StoreError, StoreUnavailable

__all__ = [
    "ArchiveStore",
    "FsspecStore",
    "LocalStore",
    "StoredObject",
    "check_key",
    "open_store",
    "split_s3_uri",
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


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> (``bucket``, ``some/prefix/``)."""
    rest = uri[len("s3://") :]
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise InvalidNameError(f"invalid archive URI {uri!r}: expected s3://bucket[/prefix]")
    prefix = prefix.strip("/")
    return bucket, f"{prefix}/" if prefix else ""


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
            raise StoreError(f"cannot write {path}: {err.strerror or err}") from err

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
        found: builtins.list[StoredObject] = []
        for dirpath, dirnames, filenames in os.walk(start):
            dirnames[:] = [d for d in dirnames if not d.startswith(".tmp-")]
            for filename in filenames:
                if filename.startswith(".tmp-"):
                    continue
                full = Path(dirpath, filename)
                key = full.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    found.append(StoredObject(key, full.stat().st_size))
        yield from sorted(found, key=lambda o: o.key)

    def list_dirs(self, prefix: str) -> builtins.list[str]:
        base = self.root / prefix
        if not base.is_dir():
            return []
        return sorted(entry.name for entry in base.iterdir() if entry.is_dir())

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)


_SDK_MODULES = frozenset({"botocore", "aiobotocore", "aiohttp", "urllib3"})


class FsspecStore:
    """An archive on any fsspec filesystem; ``open_store`` builds it for ``s3://`` URIs."""

    def __init__(self, fs: Any, root: str, uri: str) -> None:
        self.fs = fs
        self.root = root.rstrip("/")
        self.uri = uri

    def _path(self, key: str) -> str:
        return f"{self.root}/{check_key(key)}"

    def _call(self, action: str, target: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except FileNotFoundError:
            raise
        except PermissionError as err:
            raise StoreAccessDenied(f"{action} {target}: access denied ({err})") from err
        except (ConnectionError, TimeoutError) as err:
            raise StoreUnavailable(f"{action} {target}: {err}") from err
        except OSError as err:
            raise StoreUnavailable(f"{action} {target}: {err}") from err
        except Exception as err:
            # s3fs lets some SDK errors through untranslated (e.g. botocore's
            # EndpointConnectionError); recognise them by origin, without importing the SDK.
            if type(err).__module__.split(".")[0] in _SDK_MODULES:
                raise StoreUnavailable(f"{action} {target}: {err}") from err
            raise

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        self._call("write", path, self.fs.pipe_file, path, data)

    def get(self, key: str) -> bytes:
        path = self._path(key)
        data: bytes = self._call("read", path, self.fs.cat_file, path)
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


def open_store(uri: str, *, s3_additional_kwargs: dict[str, str] | None = None) -> ArchiveStore:
    """The store for an archive URI: ``s3://bucket/prefix`` or a local path (``file://`` allowed).

    S3 goes through s3fs, which honours the AWS SDK's configuration
    (profiles, ``AWS_REGION``, ``AWS_ENDPOINT_URL_S3``). ``s3_additional_kwargs``
    is passed to every S3 write, e.g. ``{"ServerSideEncryption": "aws:kms",
    "SSEKMSKeyId": "..."}``.
    """
    if uri.startswith("s3://"):
        bucket, prefix = split_s3_uri(uri)
        import s3fs  # deferred: costs ~0.4 s to import

        fs = s3fs.S3FileSystem(
            s3_additional_kwargs=s3_additional_kwargs or {},
            use_listings_cache=False,
            skip_instance_cache=True,
        )
        return FsspecStore(fs, f"{bucket}/{prefix}".rstrip("/"), uri)
    if "://" in uri and not uri.startswith("file://"):
        raise InvalidNameError(
            f"unsupported archive URI {uri!r}: use s3://bucket/prefix or a local path"
        )
    return LocalStore(uri.removeprefix("file://"))
