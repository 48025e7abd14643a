"""The archive's Iceberg tables in Athena: a namespace and table names in, a note and queries out.

``archiver iceberg-sync`` with pyiceberg's Glue catalog creates each table's Glue
entry itself (``table_type=ICEBERG``, ``metadata_location``: what Athena reads,
https://docs.aws.amazon.com/athena/latest/ug/querying-iceberg.html), so there is
no DDL to run. ``archiver athena-ddl --iceberg`` prints this module's text instead:
a comment saying so, then per table example queries that work on the Iceberg
table (the latest change per item, changes per hour, its snapshots, time and
version travel: https://docs.aws.amazon.com/athena/latest/ug/querying-iceberg-time-travel-and-version-travel-queries.html).
The Iceberg table has no ``table_name``, ``dt`` or ``hour`` columns (they are the
Hive layout's path); it is partitioned by ``hour(change_time)``, so a filter on
``change_time`` prunes files.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from .athena import _s3_location, validate_glue_name
from .layout import table_prefix
from .schema import Col

__all__ = ["SNAPSHOT_PLACEHOLDER", "iceberg_queries", "table_queries"]

SNAPSHOT_PLACEHOLDER = "<snapshot_id>"
_GLUE_NAME = re.compile(r"[a-z0-9_]{1,255}")

_HEADER = """\
-- The Apache Iceberg tables of the archive {archive}, for Athena.
--
-- Nothing to create: `archiver iceberg-sync --catalog NAME --namespace {namespace}`,
-- given a Glue catalog (type: glue), writes each table's entry in the AWS Glue Data
-- Catalog (table_type=ICEBERG, metadata_location), and that entry is all Athena needs:
-- the database is the namespace, {namespace}, and each table is named as its DynamoDB
-- table. Every sync's commit is queryable at once: no partitions to add.
-- Athena reads Iceberg tables from the Glue Data Catalog only: tables iceberg-sync
-- registered in a SQL or REST catalog are not visible to it (read those with pyiceberg,
-- Spark, Trino or DuckDB). Queries need s3:GetObject on the archive and on the tables'
-- metadata (the catalog's warehouse), and kms:Decrypt on their key.
-- Retried Lambda batches store some changes twice, in these tables too: count DISTINCT
-- {event_id}. {change_time} is a timestamp with time zone (UTC); filter on it to read only
-- the hours you need (the tables are partitioned by hour({change_time})).
"""

_TABLE = """
-- {namespace}.{name}: the changes of the DynamoDB table {name}, whose files are
-- {files}*{note}

-- {name}: the latest change of every item (a REMOVE: the item is gone)
SELECT {item_key}, {event_name}, {change_time}, {new_image}
FROM (
  SELECT {item_key}, {event_name}, {change_time}, {new_image},
         row_number() OVER (PARTITION BY {item_key} ORDER BY {sequence_number} DESC) AS latest
  FROM {table}
)
WHERE latest = 1;

-- {name}: changes per hour over the last day
SELECT date_trunc('hour', {change_time}) AS hour, count(DISTINCT {event_id}) AS changes
FROM {table}
WHERE {change_time} >= current_timestamp - INTERVAL '1' DAY
GROUP BY 1
ORDER BY 1;

-- {name}: the snapshots, one per sync that registered files; time travel goes back to them
SELECT committed_at, snapshot_id, summary['added-data-files'] AS files_added
FROM {snapshots}
ORDER BY committed_at DESC;

-- {name}: time travel, the table as the last sync before a moment left it (the moment
-- is when files were registered, not {change_time}: for the DynamoDB table at a moment,
-- filter on {change_time})
SELECT count(DISTINCT {event_id}) AS changes
FROM {table} FOR TIMESTAMP AS OF (current_timestamp - INTERVAL '1' HOUR);

-- {name}: version travel, the table at one snapshot (put a snapshot_id from the
-- snapshots query in place of {placeholder})
SELECT count(DISTINCT {event_id}) AS changes
FROM {table} FOR VERSION AS OF {placeholder};
"""

_COLUMNS = {
    "event_id": Col.EVENT_ID,
    "event_name": Col.EVENT_NAME,
    "sequence_number": Col.SEQUENCE_NUMBER,
    "change_time": Col.CHANGE_TIME,
    "item_key": Col.ITEM_KEY,
    "new_image": Col.NEW_IMAGE,
}


def _quoted(*names: str) -> str:
    """An Athena (Trino) DML identifier: each part in double quotes."""
    return ".".join(f'"{name}"' for name in names)


def table_queries(archive_uri: str, namespace: str, name: str) -> str:
    """The comment and the example queries for the Iceberg table of the DynamoDB table ``name``."""
    bucket, prefix = _s3_location(archive_uri)
    files = f"s3://{bucket}/{prefix}{table_prefix(name)}"
    note = (
        ""
        if _GLUE_NAME.fullmatch(name)
        else f"\n-- {name} is no Glue name (lowercase letters, digits and _): Glue may refuse "
        "the table,\n-- and iceberg-sync then reports it (exit 1)."
    )
    return _TABLE.format(
        namespace=namespace,
        name=name,
        files=files,
        note=note,
        table=_quoted(namespace, name),
        snapshots=_quoted(namespace, f"{name}$snapshots"),
        placeholder=SNAPSHOT_PLACEHOLDER,
        **_COLUMNS,
    )


def iceberg_queries(archive_uri: str, namespace: str, tables: Sequence[str]) -> str:
    """What Athena needs for the archive's Iceberg tables: a note, then each table's queries.

    Parameters
    ----------
    archive_uri
        ``s3://bucket/prefix`` of the archive (Athena reads only S3).
    namespace
        The namespace ``iceberg-sync`` registers the tables in: the Glue database.
    tables
        The DynamoDB tables (each is one Iceberg table of the same name).

    Raises
    ------
    InvalidNameError
        For a URI that is not on S3, a namespace that is no Glue database name, or a bad
        DynamoDB table name.
    """
    bucket, prefix = _s3_location(archive_uri)
    validate_glue_name(namespace, "namespace")
    text = _HEADER.format(
        archive=f"s3://{bucket}/{prefix}".rstrip("/"), namespace=namespace, **_COLUMNS
    )
    if not tables:
        text += "\n-- The archive holds no table yet: nothing to query.\n"
    return text + "".join(table_queries(archive_uri, namespace, name) for name in tables)
