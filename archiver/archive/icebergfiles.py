"""An Iceberg snapshot as a view of the archive: a catalog, a table and a snapshot in, a store out.

``archiver iceberg-sync`` registers the archive's own files, in place, in one Iceberg
table per DynamoDB table. :func:`snapshot_files` asks the catalog for the data files
of one snapshot of such a table (the current one, one named by id, or the one current
at a moment, per the table's snapshot log); :class:`SnapshotStore` turns their URIs
into the archive's keys and is the archive as that snapshot sees it: it lists only
those files, so every reader of the archive (:mod:`.reader`) reads exactly them, in
the order and with the dedupe it reads the Hive layout with.

pyiceberg (the optional extra ``iceberg``) is imported inside the functions that talk
to the catalog, never when this module is imported.

::

    IcebergError             the catalog or the table's metadata failed, or the table is not
    │                        one that replay can read (delete files; several DynamoDB tables)
    ├── IcebergUsageError    what was named is not there: pyiceberg, the catalog, the table;
    │   │                    or the table's files are not in this archive
    │   ├── CatalogConfigError  no catalog of that name, or one pyiceberg cannot load
    │   └── SnapshotNotFound    no such snapshot id, or none current at the moment asked for
    └── SnapshotFileMissing  the snapshot references a file the archive no longer has
"""

from __future__ import annotations

import bisect
import builtins
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, cast
from urllib.parse import unquote, urlsplit

from .errors import ArchiveError, FormatError, InvalidNameError, StoreAccessDenied
from .fetch import IN_FLIGHT
from .layout import US_PER_HOUR, parse_data_key
from .store import ArchiveStore, StoredObject, check_key, split_s3_uri
from .times import format_us

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog
    from pyiceberg.table import Table
    from pyiceberg.table.snapshots import Snapshot

__all__ = [
    "INSTALL_HINT",
    "CatalogConfigError",
    "IcebergError",
    "IcebergUsageError",
    "SnapshotFileMissing",
    "SnapshotFiles",
    "SnapshotNotFound",
    "SnapshotStore",
    "load_catalog",
    "one_line",
    "parse_identifier",
    "snapshot_files",
]

INSTALL_HINT = "pip install 'dynamodb-stream-archive[iceberg]'"
_S3_SCHEMES = ("s3", "s3a", "s3n")  # Spark and Hadoop write s3a:// for the same objects


class IcebergError(ArchiveError):
    """The catalog or an Iceberg table's metadata failed, or the table cannot be replayed."""


class IcebergUsageError(IcebergError):
    """What was named is not there (pyiceberg, the catalog, the table, the snapshot), or the
    table's files are not the archive's."""


class CatalogConfigError(IcebergUsageError):
    """No catalog of that name is configured, or its configuration cannot be loaded."""


class SnapshotNotFound(IcebergUsageError):
    """No snapshot of that id, or none was current at the moment asked for."""


class SnapshotFileMissing(IcebergError):
    """A file the snapshot references is no longer in the archive."""


@dataclass(frozen=True, slots=True)
class SnapshotFiles:
    """The live data files of one snapshot of an Iceberg table."""

    identifier: str  # namespace.table
    snapshot_id: int | None  # None: the table has no snapshot yet (and no files)
    uris: tuple[str, ...]  # as the table names them: s3://bucket/key, file:///path or /path


def parse_identifier(text: str) -> tuple[str, str, str]:
    """``CATALOG.NAMESPACE.TABLE`` -> (catalog, namespace, table); the table may hold dots.

    Raises
    ------
    IcebergUsageError
        When one of the three parts is missing.
    """
    catalog, _, rest = text.partition(".")
    namespace, _, table = rest.partition(".")
    if not (catalog and namespace and table):
        raise IcebergUsageError(
            "expected CATALOG.NAMESPACE.TABLE, e.g. glue.dynamodb_archive.orders"
        )
    return catalog, namespace, table


def load_catalog(name: str) -> Catalog:
    """The catalog ``name`` as pyiceberg's own configuration defines it.

    The configuration is read afresh (``.pyiceberg.yaml`` in ``$PYICEBERG_HOME``, the home
    folder or the working folder, and ``PYICEBERG_CATALOG__<NAME>__*`` variables):
    pyiceberg reads it once per process, when ``pyiceberg.catalog`` is first imported.

    Raises
    ------
    IcebergUsageError
        When pyiceberg is not installed.
    CatalogConfigError
        When no catalog ``name`` is configured, or pyiceberg cannot load it (a missing
        ``uri``, an unknown type, a SQL database that cannot be opened).
    """
    try:
        from pyiceberg.catalog import load_catalog as load
        from pyiceberg.utils.config import Config
    except ModuleNotFoundError as err:
        raise IcebergUsageError(f"Iceberg tables need {err.name}: {INSTALL_HINT}") from None
    config = Config().get_catalog_config(name)
    if config is None:
        raise CatalogConfigError(
            f"no catalog {name!r} is configured: define catalog.{name.lower()} in "
            f".pyiceberg.yaml or set PYICEBERG_CATALOG__{name.upper()}__TYPE and the rest"
        )
    try:
        return load(name, **cast(dict[str, str], config))
    except Exception as err:  # pyiceberg raises ValueError, ImportError, SQLAlchemy's errors...
        raise CatalogConfigError(f"catalog {name!r} cannot be loaded: {one_line(err)}") from err


def snapshot_files(
    catalog: Catalog,
    namespace: str,
    table: str,
    *,
    snapshot_id: int | None = None,
    as_of_us: int | None = None,
) -> SnapshotFiles:
    """The data files of a snapshot of ``namespace.table``: the current one by default.

    Parameters
    ----------
    catalog
        From :func:`load_catalog`.
    namespace, table
        The Iceberg table.
    snapshot_id
        This snapshot instead of the current one.
    as_of_us
        The snapshot that was current at this moment (epoch microseconds), per the
        table's snapshot log: the last one made at or before it.

    Raises
    ------
    IcebergUsageError
        No such table.
    SnapshotNotFound
        No such snapshot; no snapshot was current at ``as_of_us``.
    IcebergError
        The catalog failed, a manifest cannot be read, or the snapshot has delete files
        (rows deleted in Iceberg, which reading the archive's files would not honour).
    """
    from pyiceberg.exceptions import NoSuchNamespaceError, NoSuchTableError

    identifier = f"{namespace}.{table}"
    try:
        loaded = catalog.load_table((namespace, table))
    except (NoSuchTableError, NoSuchNamespaceError):
        raise IcebergUsageError(f"no table {identifier} in catalog {catalog.name!r}") from None
    except Exception as err:  # the catalog's own errors (Glue, REST, SQLAlchemy)
        raise IcebergError(f"cannot load {identifier}: {one_line(err)}") from err
    snapshot = _snapshot(loaded, identifier, snapshot_id, as_of_us)
    if snapshot is None:
        return SnapshotFiles(identifier, None, ())
    try:
        uris = _data_files(loaded, snapshot, identifier)
    except IcebergError:
        raise
    except Exception as err:  # the FileIO's errors reading manifests
        raise IcebergError(
            f"cannot read the manifests of snapshot {snapshot.snapshot_id} of {identifier}: "
            f"{one_line(err)}"
        ) from err
    return SnapshotFiles(identifier, snapshot.snapshot_id, uris)


def _snapshot(
    table: Table, identifier: str, snapshot_id: int | None, as_of_us: int | None
) -> Snapshot | None:
    if snapshot_id is not None:
        found = table.snapshot_by_id(snapshot_id)
        if found is None:
            known = [str(s.snapshot_id) for s in table.snapshots()[-5:]]
            latest = f" (its latest: {', '.join(known)})" if known else " (it has none)"
            raise SnapshotNotFound(f"{identifier} has no snapshot {snapshot_id}{latest}")
        return found
    if as_of_us is None:
        return table.current_snapshot()
    log = table.history()
    at = format_us(as_of_us)
    if not log:
        raise SnapshotNotFound(f"{identifier} has no snapshot, so none was current at {at}")
    as_of_ms = as_of_us // 1000
    entries = [entry for entry in log if entry.timestamp_ms <= as_of_ms]
    if not entries:
        first = format_us(log[0].timestamp_ms * 1000)
        raise SnapshotNotFound(f"{at} is before the first snapshot of {identifier} ({first})")
    entry = entries[-1]
    found = table.snapshot_by_id(entry.snapshot_id)
    if found is None:
        raise SnapshotNotFound(
            f"snapshot {entry.snapshot_id} of {identifier}, current at {at}, has been expired"
        )
    return found


def _data_files(table: Table, snapshot: Snapshot, identifier: str) -> tuple[str, ...]:
    """The live data files' paths; the manifests are read side by side (one per commit)."""
    from pyiceberg.manifest import ManifestContent, ManifestEntry, ManifestFile

    io = table.io

    def entries(manifest: ManifestFile) -> list[ManifestEntry]:
        return manifest.fetch_manifest_entry(io, discard_deleted=True)

    manifests = snapshot.manifests(io)
    with ThreadPoolExecutor(max(1, min(IN_FLIGHT, len(manifests)))) as pool:
        read = list(pool.map(entries, manifests))
    paths: dict[str, None] = {}
    for manifest, found in zip(manifests, read, strict=True):
        if manifest.content == ManifestContent.DELETES and found:
            raise IcebergError(
                f"snapshot {snapshot.snapshot_id} of {identifier} has delete files (rows "
                "deleted in Iceberg), which reading the archive's files cannot honour"
            )
        for entry in found:
            paths.setdefault(entry.data_file.file_path, None)
    return tuple(paths)


class SnapshotStore:
    """The archive as an Iceberg snapshot sees it: only the snapshot's files, read-only.

    Listings answer from the snapshot's keys (those of the hours that can hold changes
    in ``since_us``..``until_us``, inclusive, when a window is given: the hours readers
    read); each listed folder is checked against the archive itself, so a file the
    snapshot references and the archive no longer has is an error naming it, never
    skipped. Reads go to the archive's store.

    Raises
    ------
    IcebergUsageError
        (on construction) for a file that is not in the archive ``store``.
    FormatError
        (on construction) for a file in the archive that is not one of its data files.
    """

    def __init__(
        self,
        store: ArchiveStore,
        files: SnapshotFiles,
        since_us: int | None = None,
        until_us: int | None = None,
    ) -> None:
        self.store = store
        self.uri = store.uri
        self.files = files
        root = _location(store.uri)
        keys: set[str] = set()
        tables: set[str] = set()
        for uri in files.uris:
            key = _relative(root, _location(uri))
            parsed = None if key is None else parse_data_key(key)
            owner = _archive_of(uri)
            if key is None or (parsed is None and owner is not None):
                hint = f" (it is a file of the archive {owner})" if owner else ""
                raise IcebergUsageError(
                    f"snapshot {files.snapshot_id} of {files.identifier} references {uri}, "
                    f"which is not in the archive {store.uri}{hint}"
                )
            if parsed is None:
                raise FormatError(
                    f"{store.uri}/{key}: referenced by snapshot {files.snapshot_id} of "
                    f"{files.identifier}, but not a data file of the archive"
                )
            partition = parsed[0]
            tables.add(partition.table)
            if since_us is not None and partition.hour_start_us + US_PER_HOUR <= since_us:
                continue
            if until_us is not None and partition.hour_start_us > until_us:
                continue
            keys.add(key)
        self.keys = sorted(keys)
        self.tables = frozenset(tables)  # the DynamoDB tables whose changes the files hold

    def _under(self, prefix: str) -> builtins.list[str]:
        start = bisect.bisect_left(self.keys, prefix)
        end = start
        while end < len(self.keys) and self.keys[end].startswith(prefix):
            end += 1
        return self.keys[start:end]

    def list(self, prefix: str) -> Iterator[StoredObject]:
        wanted = self._under(prefix)
        if not wanted:
            return
        found = {obj.key: obj for obj in self.store.list(prefix)}
        for key in wanted:
            obj = found.get(key)
            if obj is None:
                raise self._missing(key)
            yield obj

    def _missing(self, key: str) -> SnapshotFileMissing:
        return SnapshotFileMissing(
            f"{self.uri}/{key}: referenced by snapshot {self.files.snapshot_id} of "
            f"{self.files.identifier}, but no longer in the archive"
        )

    def list_dirs(self, prefix: str) -> builtins.list[str]:
        names = {
            rest.split("/", 1)[0]
            for rest in (key[len(prefix) :] for key in self._under(prefix))
            if "/" in rest
        }
        return sorted(names)

    def get(self, key: str) -> bytes:
        try:
            return self.store.get(key)
        except FileNotFoundError:  # gone since it was listed
            raise self._missing(key) from None

    def open(self, key: str) -> IO[bytes]:
        try:
            return self.store.open(key)
        except FileNotFoundError:
            raise self._missing(key) from None

    def put(self, key: str, data: bytes) -> None:
        raise StoreAccessDenied(f"write {self.uri}/{key}: a snapshot's view is read-only")

    def delete(self, key: str) -> None:
        raise StoreAccessDenied(f"delete {self.uri}/{key}: a snapshot's view is read-only")

    def delete_many(self, keys: Sequence[str]) -> None:
        for key in keys:
            self.delete(key)

    def exists(self) -> bool:
        return self.store.exists()


def _location(uri: str) -> tuple[str, str]:
    """(``s3``, ``bucket/key``) or (``file``, ``/abs/path``) of a URI or an absolute path."""
    scheme, sep, rest = uri.partition("://")
    if sep and scheme.lower() in _S3_SCHEMES:
        return "s3", rest
    if uri.startswith("file:"):
        return "file", unquote(urlsplit(uri).path)
    if uri.startswith("/"):
        return "file", uri
    return scheme.lower() if sep else "", uri


def _archive_of(uri: str) -> str | None:
    """The root of the archive whose data file ``uri`` is, or None when it is none's."""
    head, sep, tail = uri.rpartition("/table_name=")
    if sep and head and parse_data_key(sep[1:] + tail) is not None:
        return head
    return None


def _relative(root: tuple[str, str], file: tuple[str, str]) -> str | None:
    """The archive key of ``file`` under the archive ``root``, or None when it is not under it."""
    kind, path = root
    if kind == "s3":
        bucket, prefix = split_s3_uri(f"s3://{path}")
        base = f"{bucket}/{prefix}"
    else:
        base = path.rstrip("/") + "/"
    if file[0] != kind or not file[1].startswith(base):
        return None
    try:
        return check_key(file[1][len(base) :])
    except InvalidNameError:
        return None


def one_line(err: BaseException) -> str:
    """An error's text on one line, at most 500 characters (catalog errors can be pages long)."""
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= 500 else text[:500] + "..."
