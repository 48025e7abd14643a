"""What tracks and what replaced an archive's files: the Iceberg registrations and compaction lineage.

Two small records, kept in the archive itself so that every command reading it sees them:

- **Registration** (``_iceberg/{table}.json``, a versioned document of
  :mod:`.checkpoints`): the Iceberg table that ``archiver iceberg-sync``
  registers a DynamoDB table's files in, by catalog name and namespace. Written
  before the first commit to that table, so that ``archiver compact`` never
  meets a table that references the archive's files without knowing it: it
  refuses to delete such files and commits its swap to the table instead.
  ``_iceberg/`` is no ``table_name=`` folder, so listings never take it for
  data (as ``_errors/`` and ``_checkpoints/``).
- **Compaction** (the Parquet key-value metadata
  ``dynamodb_archive.compaction`` of a file that a compaction under Iceberg
  wrote): the names of the files the compaction replaced and of all the files
  it wrote, in the same partition. A compaction that wrote its files but did
  not commit (a crash) is recognised by the next sync from this alone: when
  every file it wrote is there and every file it replaced is still current,
  the sync commits the swap; when it did not finish writing, or another
  compaction replaced those files since, its files are left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from .checkpoints import CheckpointFormatError, read_document, write_document
from .errors import FormatError
from .layout import validate_table_name
from .store import ArchiveStore

__all__ = [
    "ICEBERG_PREFIX",
    "METADATA_COMPACTION",
    "Compaction",
    "Registration",
    "registered_tables",
    "registration_key",
]

ICEBERG_PREFIX = "_iceberg/"
REGISTRATION_KIND = "iceberg-table"
REGISTRATION_VERSION = 1
METADATA_COMPACTION = b"dynamodb_archive.compaction"


def registration_key(table: str) -> str:
    """Where the registration of a DynamoDB table's Iceberg table lives in the archive."""
    return f"{ICEBERG_PREFIX}{validate_table_name(table)}.json"


def registered_tables(store: ArchiveStore) -> set[str]:
    """The tables that have a registration, from one listing of ``_iceberg/`` (no read)."""
    names = set()
    for obj in store.list(ICEBERG_PREFIX):
        name = obj.key[len(ICEBERG_PREFIX) :]
        if name.endswith(".json") and "/" not in name:
            names.add(name.removesuffix(".json"))
    return names


@dataclass(frozen=True, slots=True)
class Registration:
    """The Iceberg table ``{namespace}.{table}`` of catalog ``catalog`` tracks a DynamoDB table."""

    table: str  # the DynamoDB table
    catalog: str  # its name in pyiceberg's configuration
    namespace: str

    @property
    def identifier(self) -> str:
        return f"{self.namespace}.{self.table}"

    def same_table(self, other: Registration) -> bool:
        """Whether both name one Iceberg table (catalog names are case-insensitive in pyiceberg)."""
        return (self.table, self.catalog.lower(), self.namespace) == (
            other.table,
            other.catalog.lower(),
            other.namespace,
        )

    def describe(self) -> str:
        return f"{self.identifier} of catalog {self.catalog}"

    @classmethod
    def load(cls, store: ArchiveStore, table: str) -> Registration | None:
        """The table's registration, or None when no Iceberg table tracks it.

        Raises
        ------
        CheckpointFormatError
            When the document is not a registration of a version this code reads, or names
            another table.
        """
        key = registration_key(table)
        document = read_document(store, key, REGISTRATION_KIND, REGISTRATION_VERSION)
        if document is None:
            return None
        where = f"{store.uri}/{key}"
        fields = {name: document.get(name) for name in ("table", "catalog", "namespace")}
        if not all(isinstance(value, str) and value for value in fields.values()):
            raise CheckpointFormatError(
                f"{where}: not an Iceberg registration (table, catalog and namespace must be names)"
            )
        if fields["table"] != table:
            raise CheckpointFormatError(
                f"{where}: registers table {fields['table']!r}, not {table!r}"
            )
        return cls(table, str(fields["catalog"]), str(fields["namespace"]))

    def save(self, store: ArchiveStore) -> None:
        """Write the registration (raises StoreError)."""
        body = {"table": self.table, "catalog": self.catalog, "namespace": self.namespace}
        write_document(
            store, registration_key(self.table), REGISTRATION_KIND, REGISTRATION_VERSION, body
        )


@dataclass(frozen=True, slots=True)
class Compaction:
    """One compaction under Iceberg: the file names it replaced and wrote, in one partition."""

    replaces: tuple[str, ...]
    outputs: tuple[str, ...]

    def metadata(self) -> dict[bytes, bytes]:
        """The Parquet key-value metadata each of its outputs carries (sorted: same bytes)."""
        body = {"replaces": sorted(self.replaces), "outputs": sorted(self.outputs)}
        return {METADATA_COMPACTION: orjson.dumps(body)}

    @classmethod
    def of(cls, metadata: dict[bytes, bytes] | None, name: str) -> Compaction | None:
        """The compaction a file's metadata names, or None for a file no compaction wrote.

        Raises
        ------
        FormatError
            When the metadata is there but is not a list of file names of each kind.
        """
        raw = (metadata or {}).get(METADATA_COMPACTION)
        if raw is None:
            return None
        try:
            body: Any = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = None
        names: list[tuple[str, ...]] = []
        for part in ("replaces", "outputs"):
            found = body.get(part) if isinstance(body, dict) else None
            if (
                not isinstance(found, list)
                or not found
                or not all(isinstance(n, str) and n and "/" not in n for n in found)
            ):
                raise FormatError(
                    f"{name}: {METADATA_COMPACTION.decode()} metadata is not two lists of file "
                    "names"
                )
            names.append(tuple(found))
        return cls(names[0], names[1])
