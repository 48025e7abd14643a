"""The archive as an Athena table: schema and archive facts in, DDL and a Glue TableInput out.

Everything comes from :mod:`archiver.archive.schema` (columns, promoted
columns, partition columns) and from what the archive holds (its tables and
first day), so the table cannot drift from the files. Partition projection
mirrors :mod:`archiver.archive.layout`::

    {archive}/table_name={table}/dt={YYYY-MM-DD}/hour={HH}/{file}.parquet

``table_name`` is an ``enum`` of the archived tables (or ``injected``: every
query then names its table), ``dt`` a ``date`` range from the first archived
day to ``NOW``, ``hour`` an ``integer`` 0-23 of two digits. See
https://docs.aws.amazon.com/athena/latest/ug/partition-projection-supported-types.html
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from .errors import InvalidNameError
from .layout import table_prefix
from .reader import list_tables
from .schema import COLUMNS, PARTITION_COLUMNS, SCHEMA_VERSION, PromotedColumn
from .store import ArchiveStore, split_s3_uri

__all__ = [
    "DEFAULT_DATABASE",
    "DEFAULT_TABLE",
    "AthenaTable",
    "Column",
    "archive_extent",
    "athena_table",
    "athena_type",
    "validate_glue_name",
]

DEFAULT_DATABASE = "dynamodb_archive"
DEFAULT_TABLE = "changes"
TABLE_COMMENT = "DynamoDB Streams changes archived by dynamodb-stream-archive"

PARQUET_SERDE = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
PARQUET_INPUT_FORMAT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
PARQUET_OUTPUT_FORMAT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"

# layout.py writes dt with strftime("%Y-%m-%d") and hour with "%H": the same in
# Java's DateTimeFormatter terms and as a two-digit integer.
DT_FORMAT = "yyyy-MM-dd"
HOUR_RANGE = "0,23"
HOUR_DIGITS = "2"

_PARTITION_COMMENTS = {
    "table_name": "The DynamoDB table the change belongs to (from the path).",
    "dt": "UTC day of the change, yyyy-MM-dd (from the path).",
    "hour": "UTC hour of the change, 00-23 (from the path).",
}
_GLUE_NAME = re.compile(r"[a-z0-9_]{1,255}")
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]")
_PREFIX_PART = re.compile(r"[A-Za-z0-9._\-=]+")
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type: str
    comment: str


def athena_type(kind: pa.DataType) -> str:
    """The Athena (Hive DDL) type of an archive column's Arrow type.

    ``change_time`` is a Parquet INT64 timestamp adjusted to UTC; Athena reads
    it as ``timestamp`` (Hive tables have no ``timestamp with time zone``).
    """
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return "string"
    if pa.types.is_int64(kind):
        return "bigint"
    if pa.types.is_boolean(kind):
        return "boolean"
    if pa.types.is_float64(kind):
        return "double"
    if pa.types.is_timestamp(kind):
        return "timestamp"
    if pa.types.is_decimal(kind):
        return f"decimal({kind.precision},{kind.scale})"
    raise TypeError(f"no Athena type for Arrow type {kind}")


def validate_glue_name(name: str, what: str) -> str:
    """``name`` if Glue accepts it as a database or table name, else InvalidNameError."""
    if not isinstance(name, str) or _GLUE_NAME.fullmatch(name) is None:
        raise InvalidNameError(
            f"invalid {what} name {name!r}: "
            "Glue names are 1 to 255 lowercase letters, digits and '_'"
        )
    return name


def _s3_location(archive_uri: str) -> tuple[str, str]:
    """(``bucket``, ``prefix/``) of an ``s3://`` archive URI safe to put in DDL and templates."""
    if not archive_uri.startswith("s3://"):
        raise InvalidNameError(
            f"archive {archive_uri!r} is not on S3: Athena reads tables from S3 only, "
            "give s3://bucket/prefix"
        )
    bucket, prefix = split_s3_uri(archive_uri)
    if _BUCKET.fullmatch(bucket) is None:
        raise InvalidNameError(
            f"invalid archive URI {archive_uri!r}: {bucket!r} is not an S3 bucket name"
        )
    for part in filter(None, prefix.split("/")):
        if _PREFIX_PART.fullmatch(part) is None or part in (".", ".."):
            raise InvalidNameError(
                f"invalid archive URI {archive_uri!r}: prefix part {part!r} may only use letters, "
                "digits, '.', '_', '-' and '='"
            )
    return bucket, prefix


def _sql_string(text: str) -> str:
    """A Hive/Athena DDL string literal (backslash escapes)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _sql_name(name: str) -> str:
    return f"`{name}`"


@dataclass(frozen=True, slots=True)
class AthenaTable:
    """An Athena table over one archive; build it with :func:`athena_table`."""

    bucket: str
    prefix: str  # "" or "some/prefix/"
    database: str
    name: str
    promoted: tuple[PromotedColumn, ...] = ()
    table_names: tuple[str, ...] = ()  # empty: table_name is injected
    first_day: str = "1970-01-01"

    @property
    def location(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    @property
    def columns(self) -> list[Column]:
        out = [Column(name, athena_type(kind), comment) for name, kind, _, comment in COLUMNS]
        out += [
            Column(c.column, c.athena_type, f"Promoted from attribute {c.attribute}.")
            for c in self.promoted
        ]
        return out

    @property
    def partition_keys(self) -> list[Column]:
        return [Column(name, "string", _PARTITION_COMMENTS[name]) for name in PARTITION_COLUMNS]

    @property
    def location_template(self) -> str:
        return self.location + "/".join(f"{name}=${{{name}}}" for name in PARTITION_COLUMNS)

    @property
    def properties(self) -> dict[str, str]:
        """Table properties: partition projection, format, and the archive's schema version."""
        table_col, dt_col, hour_col = PARTITION_COLUMNS
        props = {"projection.enabled": "true"}
        if self.table_names:
            props[f"projection.{table_col}.type"] = "enum"
            props[f"projection.{table_col}.values"] = ",".join(self.table_names)
        else:
            props[f"projection.{table_col}.type"] = "injected"
        props.update(
            {
                f"projection.{dt_col}.type": "date",
                f"projection.{dt_col}.format": DT_FORMAT,
                f"projection.{dt_col}.range": f"{self.first_day},NOW",
                f"projection.{dt_col}.interval": "1",
                f"projection.{dt_col}.interval.unit": "DAYS",
                f"projection.{hour_col}.type": "integer",
                f"projection.{hour_col}.range": HOUR_RANGE,
                f"projection.{hour_col}.digits": HOUR_DIGITS,
                "storage.location.template": self.location_template,
                "classification": "parquet",
                "parquet.compression": "ZSTD",
                "dynamodb_archive.schema_version": str(SCHEMA_VERSION),
            }
        )
        return props

    def ddl(self) -> str:
        """The ``CREATE EXTERNAL TABLE`` statement (Athena's Hive DDL)."""

        def column_lines(columns: list[Column]) -> str:
            return ",\n".join(
                f"  {_sql_name(c.name)} {c.type} COMMENT {_sql_string(c.comment)}" for c in columns
            )

        properties = ",\n".join(
            f"  {_sql_string(k)}={_sql_string(v)}" for k, v in self.properties.items()
        )
        return (
            f"CREATE EXTERNAL TABLE {_sql_name(self.database)}.{_sql_name(self.name)} (\n"
            f"{column_lines(self.columns)}\n)\n"
            f"COMMENT {_sql_string(TABLE_COMMENT)}\n"
            f"PARTITIONED BY (\n{column_lines(self.partition_keys)}\n)\n"
            "STORED AS PARQUET\n"
            f"LOCATION {_sql_string(self.location)}\n"
            f"TBLPROPERTIES (\n{properties}\n)\n"
        )

    def glue_table_input(self) -> dict[str, Any]:
        """The same table as a Glue ``TableInput`` (for ``create_table``/``update_table``)."""

        def glue_columns(columns: list[Column]) -> list[dict[str, str]]:
            return [{"Name": c.name, "Type": c.type, "Comment": c.comment} for c in columns]

        return {
            "Name": self.name,
            "Description": TABLE_COMMENT,
            "TableType": "EXTERNAL_TABLE",
            "Parameters": {"EXTERNAL": "TRUE", **self.properties},
            "PartitionKeys": glue_columns(self.partition_keys),
            "StorageDescriptor": {
                "Columns": glue_columns(self.columns),
                "Location": self.location,
                "InputFormat": PARQUET_INPUT_FORMAT,
                "OutputFormat": PARQUET_OUTPUT_FORMAT,
                "SerdeInfo": {
                    "SerializationLibrary": PARQUET_SERDE,
                    "Parameters": {"serialization.format": "1"},
                },
            },
        }


def athena_table(
    archive_uri: str,
    *,
    database: str = DEFAULT_DATABASE,
    name: str = DEFAULT_TABLE,
    promoted: tuple[PromotedColumn, ...] = (),
    table_names: tuple[str, ...] = (),
    first_day: str,
) -> AthenaTable:
    """The Athena table over the archive at ``archive_uri``.

    Parameters
    ----------
    archive_uri
        ``s3://bucket/prefix`` of the archive (Athena reads only S3).
    database, name
        Glue database and table names: lowercase letters, digits and ``_``.
    promoted
        The promoted columns the archive is written with.
    table_names
        The DynamoDB tables to enumerate for ``table_name``; empty for ``injected``.
    first_day
        The first day (``YYYY-MM-DD``) to project ``dt`` from.

    Raises
    ------
    InvalidNameError
        For a URI that is not on S3 or not safe in DDL, a bad Glue name, a bad
        table name or day.
    """
    bucket, prefix = _s3_location(archive_uri)
    for table in table_names:
        table_prefix(table)  # validates the DynamoDB table name
    if _DAY.fullmatch(first_day) is None:
        raise InvalidNameError(f"invalid first day {first_day!r}: expected YYYY-MM-DD")
    return AthenaTable(
        bucket,
        prefix,
        validate_glue_name(database, "database"),
        validate_glue_name(name, "table"),
        tuple(promoted),
        tuple(table_names),
        first_day,
    )


def archive_extent(store: ArchiveStore) -> tuple[list[str], str | None]:
    """The tables an archive holds and its first day (``YYYY-MM-DD``, None when empty)."""
    tables = [table for table in list_tables(store) if _valid_table(table)]
    dt = f"{PARTITION_COLUMNS[1]}="
    days = [
        entry[len(dt) :]
        for table in tables
        for entry in store.list_dirs(table_prefix(table))
        if entry.startswith(dt) and _DAY.fullmatch(entry[len(dt) :])
    ]
    return tables, min(days) if days else None


def _valid_table(table: str) -> bool:
    try:
        table_prefix(table)
    except InvalidNameError:
        return False  # a stray folder, not something the archiver wrote
    return True
