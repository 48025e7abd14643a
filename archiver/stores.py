"""The archiver's choice of store for an archive URI."""

from __future__ import annotations

from archiver.archive.store import ArchiveStore, open_store
from archiver.s3store import S3Store

__all__ = ["store_for"]


def store_for(uri: str, sse: dict[str, str] | None = None) -> ArchiveStore:
    """S3 through the lean boto3 adapter (with server-side encryption), else a local folder."""
    if uri.startswith("s3://"):
        return S3Store(uri, sse=sse)
    return open_store(uri)
