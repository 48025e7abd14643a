"""The scheduled ``iceberg-sync`` on Lambda: a schedule's invocation in, one sync of the archive out.

An EventBridge schedule invokes it (deploy/template.yaml, ``IcebergSyncSchedule``);
the event carries nothing it needs. ``ARCHIVER_ARCHIVE_URI``,
``ARCHIVER_ICEBERG_CATALOG`` and ``ARCHIVER_ICEBERG_NAMESPACE`` say what to register
where, and the catalog is pyiceberg's own configuration
(``PYICEBERG_CATALOG__<NAME>__TYPE=glue`` and the rest), as for ``archiver
iceberg-sync``. It returns what each table got; when a table could not be synced
(after the others were) or nothing can be synced (bad settings, no archive, a
catalog that cannot be loaded) the invocation fails, so Lambda's ``Errors`` metric
and the log say so. The next scheduled run registers whatever this one did not.

Runs on the managed Python runtime (``Handler: archiver.iceberg_handler.handler``)
with the ``iceberg`` extra installed; the archival sink never imports this module.
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["IcebergSyncFailed", "handler"]

log = logging.getLogger("archiver.iceberg_handler")


class IcebergSyncFailed(RuntimeError):
    """Nothing could be synced, or some table was not: the invocation fails."""


def _settings() -> Any:
    from archiver.settings import SettingsError, settings_from_environment

    try:
        settings = settings_from_environment()
    except SettingsError as err:
        raise IcebergSyncFailed(str(err)) from None
    if not settings.iceberg_catalog:
        raise IcebergSyncFailed(
            "ARCHIVER_ICEBERG_CATALOG is not set: name the pyiceberg catalog to sync into"
        )
    return settings


def handler(event: Any = None, context: Any = None) -> dict[str, Any]:
    """Register the archive's new files in its Iceberg tables; one commit per table.

    Returns
    -------
    dict
        ``{"files_registered": N, "tables": {"ns.table": {"files_registered": n,
        "snapshot_id": id}, ...}}``.

    Raises
    ------
    IcebergSyncFailed
        For invalid settings, an archive that does not exist, a catalog that is not
        configured or cannot be loaded, or a table that was not synced.
    """
    from archiver.archive.errors import ArchiveError
    from archiver.archive.store import open_store
    from archiver.logs import configure

    settings = _settings()
    configure(settings.log_level, json=True)
    from archiver import iceberg  # pyiceberg: only once the settings are known to be good

    # s3fs fetches just the footers; the registrations under _iceberg/ are written with the
    # archive's server-side encryption (ARCHIVER_SSE, as the sink's).
    store = open_store(settings.archive_uri, sse=settings.sse_arguments)
    if not store.exists():
        raise IcebergSyncFailed(f"ARCHIVER_ARCHIVE_URI {settings.archive_uri}: no such archive")
    try:
        catalog = iceberg.load_catalog(settings.iceberg_catalog)
        report = iceberg.sync(store, catalog, namespace=settings.iceberg_namespace)
    except ArchiveError as err:
        raise IcebergSyncFailed(str(err)) from err
    tables = {
        t.identifier: {"files_registered": t.files_registered, "snapshot_id": t.snapshot_id}
        for t in report.tables
        if not t.error
    }
    log.info(
        "sync summary",
        extra={
            "catalog": settings.iceberg_catalog,
            "tables": len(report.tables),
            "synced": len(tables),
            "files_registered": report.files_registered,
            "request_id": getattr(context, "aws_request_id", None),
        },
    )
    if report.errors:
        raise IcebergSyncFailed(
            f"{len(report.errors)} of {len(report.tables)} tables not synced: "
            + "; ".join(report.errors)
        )
    return {"files_registered": report.files_registered, "tables": tables}
