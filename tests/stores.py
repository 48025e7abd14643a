"""Stores around a real one, for tests that count, record or fail what goes through them."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import IO

from archiver.archive.store import ArchiveStore, StoredObject

__all__ = ["Passthrough"]


class Passthrough:
    """An ArchiveStore that hands every call to a real one; subclasses change what they test."""

    def __init__(self, inner: ArchiveStore) -> None:
        self.inner = inner
        self.uri = inner.uri

    def put(self, key: str, data: bytes) -> None:
        self.inner.put(key, data)

    def get(self, key: str) -> bytes:
        return self.inner.get(key)

    def open(self, key: str) -> IO[bytes]:
        return self.inner.open(key)

    def list(self, prefix: str) -> Iterator[StoredObject]:
        return self.inner.list(prefix)

    def list_dirs(self, prefix: str) -> list[str]:
        return self.inner.list_dirs(prefix)

    def delete(self, key: str) -> None:
        self.inner.delete(key)

    def delete_many(self, keys: Sequence[str]) -> None:
        for key in keys:  # through delete: subclasses that count or fail deletes see each one
            self.delete(key)

    def exists(self) -> bool:
        return self.inner.exists()
