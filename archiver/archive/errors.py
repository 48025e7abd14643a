"""The errors of the archive format and its stores.

::

    ArchiveError
    ├── RecordError            a stream record that cannot be archived: dead-letter it,
    │                          archive the rest of the batch (terminal for that record)
    ├── InvalidNameError       a table or key name that must not become an object key
    ├── FormatError            a file that is not an archive file, or is unreadable
    │   └── SchemaVersionError a file written by a newer format version: stop and upgrade
    ├── MissingRegionError     no AWS region is configured for a service that needs one: stop
    └── StoreError             the archive's store failed
        ├── StoreUnavailable   transient (network, throttling, 5xx): retry, then report
        └── StoreAccessDenied  terminal (credentials, permissions, missing bucket)

``transient`` on each class says whether trying again can help.
"""

from __future__ import annotations

__all__ = [
    "ArchiveError",
    "FormatError",
    "InvalidNameError",
    "MissingRegionError",
    "RecordError",
    "SchemaVersionError",
    "StoreAccessDenied",
    "StoreError",
    "StoreUnavailable",
]


class ArchiveError(Exception):
    """Base of every error raised by the archive package."""

    transient = False


class RecordError(ArchiveError):
    """A stream record that cannot be decoded or validated.

    ``where`` names the record (table/eventID/sequence, or its position in the
    batch) and the attribute path when one is known.
    """

    def __init__(self, reason: str, where: str = "") -> None:
        self.reason = reason
        self.where = where
        super().__init__(f"{where}: {reason}" if where else reason)


class InvalidNameError(ArchiveError, ValueError):
    """A table or object name that is not safe to use in an object key."""


class FormatError(ArchiveError):
    """A file that is not a readable archive file."""


class SchemaVersionError(FormatError):
    """A file written by a format version this code does not know."""


class MissingRegionError(ArchiveError):
    """No AWS region is set (``AWS_REGION``, ``AWS_DEFAULT_REGION`` or the profile's)."""


class StoreError(ArchiveError):
    """The archive's store failed."""


class StoreUnavailable(StoreError):
    """The store could not be reached or asked us to slow down."""

    transient = True


class StoreAccessDenied(StoreError):
    """The store refused the operation: credentials, permissions or a missing bucket."""
