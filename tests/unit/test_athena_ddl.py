"""The Athena table generated from the archive format: DDL, Glue TableInput, projection, names.

The DDL is parsed back with sqlglot's Athena dialect and compared with the
Parquet schema of a file the archiver wrote; the partition projection is
compared with the partitions the layout module produces.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlglot
from sqlglot import exp

from archiver import cli
from archiver.archive.athena import (
    DEFAULT_DATABASE,
    DEFAULT_TABLE,
    AthenaTable,
    archive_extent,
    athena_table,
    athena_type,
    validate_glue_name,
)
from archiver.archive.errors import InvalidNameError
from archiver.archive.layout import partition_of
from archiver.archive.schema import COLUMNS, PARTITION_COLUMNS, arrow_schema, parse_promoted_columns
from archiver.archive.store import LocalStore
from archiver.write import ArchiveOptions, archive_records
from devkit.traffic import TableHistory

ROOT = Path(__file__).resolve().parents[2]
PROMOTED = parse_promoted_columns(
    "customer_id:string,total=amount:decimal(18,2),qty:bigint,gift:boolean,ratio:double"
)
# Arrow type of a Parquet column -> the type Athena must declare for it (written out here, not
# taken from the module under test).
EXPECTED_TYPE = {
    "string": "STRING",
    "int64": "BIGINT",
    "bool": "BOOLEAN",
    "double": "DOUBLE",
    "timestamp[us, tz=UTC]": "TIMESTAMP",
    "decimal128(18, 2)": "DECIMAL(18, 2)",
}


def table(**overrides: Any) -> AthenaTable:
    arguments: dict[str, Any] = {
        "promoted": PROMOTED,
        "table_names": ("orders", "customers"),
        "first_day": "2026-11-18",
    }
    arguments.update(overrides)
    return athena_table("s3://my-bucket/some/prefix", **arguments)


def parse(ddl: str) -> exp.Create:
    create = sqlglot.parse_one(ddl, read="athena")
    assert isinstance(create, exp.Create)
    return create


def columns_of(schema: exp.Schema) -> list[tuple[str, str]]:
    return [(c.name, c.kind.sql(dialect="hive")) for c in schema.expressions]


def properties_of(create: exp.Create) -> dict[str, str]:
    return {
        p.this.name: p.args["value"].name
        for p in create.args["properties"].expressions
        if type(p) is exp.Property
    }


def prop(create: exp.Create, kind: type[exp.Expression]) -> exp.Expression:
    [found] = [p for p in create.args["properties"].expressions if isinstance(p, kind)]
    return found


@pytest.fixture(scope="module")
def written_file(tmp_path_factory: pytest.TempPathFactory) -> pa.Schema:
    """The Parquet schema of a file the archiver wrote with the promoted columns."""
    store = LocalStore(tmp_path_factory.mktemp("ddl") / "archive")
    records = TableHistory("orders", seed=2).changes(20)
    report = archive_records(records, store, ArchiveOptions(PROMOTED, plain_images=True))
    assert report.ok and report.files
    with store.open(report.files[0]) as handle:
        return pq.read_schema(handle)


def test_ddl_columns_are_the_parquet_files_columns(written_file: pa.Schema) -> None:
    create = parse(table().ddl())
    expected = [(f.name, EXPECTED_TYPE[str(f.type)]) for f in written_file]
    assert columns_of(create.this) == expected
    assert [name for name, _ in expected][-len(PROMOTED) :] == [c.column for c in PROMOTED]


def test_ddl_is_an_external_parquet_table_partitioned_like_the_paths() -> None:
    create = parse(table().ddl())
    assert create.kind == "TABLE"
    assert prop(create, exp.ExternalProperty) is not None
    assert (create.this.this.db, create.this.this.name) == (DEFAULT_DATABASE, DEFAULT_TABLE)
    partitioned = prop(create, exp.PartitionedByProperty)
    assert columns_of(partitioned.this) == [(name, "STRING") for name in PARTITION_COLUMNS]
    assert prop(create, exp.FileFormatProperty).name.upper() == "PARQUET"
    assert prop(create, exp.LocationProperty).this.name == "s3://my-bucket/some/prefix/"


def test_ddl_comments_survive_quoting() -> None:
    # Descriptions hold apostrophes ("record's"): they must come back intact from the parser.
    create = parse(table().ddl())
    comments = {
        c.name: c.find(exp.CommentColumnConstraint).this.name for c in create.this.expressions
    }
    assert any("'" in description for *_, description in COLUMNS)
    for name, _, _, description in COLUMNS:
        assert comments[name] == description


def test_projection_properties_with_enumerated_tables() -> None:
    properties = properties_of(parse(table().ddl()))
    assert properties == {
        "projection.enabled": "true",
        "projection.table_name.type": "enum",
        "projection.table_name.values": "orders,customers",
        "projection.dt.type": "date",
        "projection.dt.format": "yyyy-MM-dd",
        "projection.dt.range": "2026-11-18,NOW",
        "projection.dt.interval": "1",
        "projection.dt.interval.unit": "DAYS",
        "projection.hour.type": "integer",
        "projection.hour.range": "0,23",
        "projection.hour.digits": "2",
        "storage.location.template": "s3://my-bucket/some/prefix/table_name=${table_name}/dt=${dt}/hour=${hour}",
        "classification": "parquet",
        "parquet.compression": "ZSTD",
        "dynamodb_archive.schema_version": "1",
    }


def test_injected_table_names_have_no_values() -> None:
    properties = properties_of(parse(table(table_names=()).ddl()))
    assert properties["projection.table_name.type"] == "injected"
    assert "projection.table_name.values" not in properties


def java_to_strftime(pattern: str) -> str:
    return pattern.replace("yyyy", "%Y").replace("MM", "%m").replace("dd", "%d")


@pytest.mark.parametrize("day", ["2026-11-18", "2024-02-29", "1999-12-31"])
def test_projection_produces_exactly_the_layouts_partitions(day: str) -> None:
    # Every hour of a day, as layout.py names it, is one the projection generates, at the
    # location the template gives.
    t = table(first_day="1999-01-01")
    properties = t.properties
    low, high = (int(v) for v in properties["projection.hour.range"].split(","))
    digits = int(properties["projection.hour.digits"])
    projected_hours = [str(h).zfill(digits) for h in range(low, high + 1)]
    start = datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=UTC)
    for table_name in t.table_names:
        partitions = [
            partition_of(table_name, int((start + timedelta(hours=h)).timestamp()) * 1_000_000)
            for h in range(24)
        ]
        assert [p.hour for p in partitions] == projected_hours
        for partition in partitions:
            day_format = java_to_strftime(properties["projection.dt.format"])
            assert partition.dt == start.strftime(day_format)
            location = properties["storage.location.template"]
            for name, value in zip(
                PARTITION_COLUMNS, (table_name, partition.dt, partition.hour), strict=True
            ):
                location = location.replace(f"${{{name}}}", value)
            assert location + "/" == t.location + partition.prefix


def test_glue_table_input_matches_the_ddl() -> None:
    t = table()
    create = parse(t.ddl())
    table_input = t.glue_table_input()
    descriptor = table_input["StorageDescriptor"]
    assert [(c["Name"], c["Type"]) for c in descriptor["Columns"]] == [
        (c.name, c.type) for c in t.columns
    ]
    assert [c["Name"] for c in descriptor["Columns"]] == [n for n, _ in columns_of(create.this)]
    assert [(c["Name"], c["Type"]) for c in table_input["PartitionKeys"]] == [
        (name, "string") for name in PARTITION_COLUMNS
    ]
    assert table_input["Parameters"] == {"EXTERNAL": "TRUE", **properties_of(create)}
    assert table_input["TableType"] == "EXTERNAL_TABLE"
    assert descriptor["Location"] == "s3://my-bucket/some/prefix/"
    assert descriptor["SerdeInfo"]["SerializationLibrary"] == (
        "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
    )
    parquet = "org.apache.hadoop.hive.ql.io.parquet."
    assert descriptor["InputFormat"] == parquet + "MapredParquetInputFormat"
    assert descriptor["OutputFormat"] == parquet + "MapredParquetOutputFormat"


def test_athena_types_of_every_schema_column() -> None:
    for f in arrow_schema(PROMOTED):
        assert athena_type(f.type).upper().replace(",", ", ") == EXPECTED_TYPE[str(f.type)]
    for column in PROMOTED:
        assert athena_type(column.arrow_type) == column.athena_type
    with pytest.raises(TypeError, match="list"):
        athena_type(pa.list_(pa.string()))


def test_archive_at_the_bucket_root() -> None:
    t = athena_table("s3://my-bucket", first_day="2026-01-01")
    assert t.location == "s3://my-bucket/"
    assert t.properties["storage.location.template"] == (
        "s3://my-bucket/table_name=${table_name}/dt=${dt}/hour=${hour}"
    )


@pytest.mark.parametrize("name", ["Orders", "my-db", "", "a b", "x`y", "a" * 256, "tbl;drop"])
def test_glue_names_are_validated(name: str) -> None:
    with pytest.raises(InvalidNameError, match="Glue names"):
        validate_glue_name(name, "table")
    with pytest.raises(InvalidNameError):
        table(name=name)
    with pytest.raises(InvalidNameError):
        table(database=name)


@pytest.mark.parametrize(
    "uri,reason",
    [
        ("/data/archive", "not on S3"),
        ("file:///data/archive", "not on S3"),
        ("archive", "not on S3"),
        ("s3://Bad_Bucket/x", "bucket"),
        ("s3://bucket/it's", "prefix part"),
        ("s3://bucket/a b/c", "prefix part"),
        ("s3://bucket/${x}", "prefix part"),
        ("s3://bucket/a/../b", "prefix part"),
    ],
)
def test_archive_uris_that_cannot_be_a_location(uri: str, reason: str) -> None:
    with pytest.raises(InvalidNameError, match=re.escape(reason)):
        athena_table(uri, first_day="2026-01-01")


def test_bad_table_names_and_days_are_refused() -> None:
    with pytest.raises(InvalidNameError, match="table name"):
        table(table_names=("ok_table", "x"))
    with pytest.raises(InvalidNameError, match="first day"):
        table(first_day="2026-1-1")


def test_archive_extent(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "archive")
    assert archive_extent(store) == ([], None)
    late = TableHistory("orders", seed=1, start=1_795_000_000.0).changes(5)
    early = TableHistory("customers", seed=2, start=1_790_000_000.0, key_names=("id",)).changes(5)
    for records in (late, early):
        assert archive_records(records, store).ok
    (tmp_path / "archive" / "table_name=x").mkdir()  # not a valid table name: not the archiver's
    tables, first_day = archive_extent(store)
    assert tables == ["customers", "orders"]
    first = min(r["dynamodb"]["ApproximateCreationDateTime"] for r in early)
    assert first_day == datetime.fromtimestamp(first, UTC).strftime("%Y-%m-%d")


# --- the CLI's refusals (nothing is listed or called before the arguments are valid) --------


def run(*args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    code = cli.main(["athena-ddl", *args], stdin=io.BytesIO())
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize(
    "args,flag",
    [
        (["--archive", "/tmp/archive"], "--archive"),
        (["--archive", "s3://bucket/it's"], "--archive"),
        (["--archive", "s3://bucket/p", "--database", "My-DB"], "--database"),
        (["--archive", "s3://bucket/p", "--table", "Changes"], "--table"),
        (
            ["--archive", "s3://bucket/p", "--promoted-columns", "amount:money"],
            "--promoted-columns",
        ),
        ([], "--archive"),
        (["--archive", "s3://bucket/p", "--start-date", "2026-1-1"], "--start-date"),
        (["--archive", "s3://bucket/p", "--start-date", "2026-02-30"], "--start-date"),
        (["--archive", "s3://bucket/p", "--start-date", "20261118"], "--start-date"),
        (["--archive", "s3://bucket/p", "--tables", "orders,x"], "--tables"),
        (["--archive", "s3://bucket/p", "--tables", ""], "--tables"),
        (
            ["--archive", "s3://bucket/p", "--tables", "orders", "--table-names", "injected"],
            "--tables",
        ),
    ],
)
def test_cli_bad_usage_names_the_option(
    args: list[str], flag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(*args, capsys=capsys)
    assert code == 2
    assert out == ""
    assert flag in err
    assert "Traceback" not in err


def test_cli_local_archive_is_refused_with_a_reason(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run("--archive", "/tmp/archive", capsys=capsys)
    assert code == 2
    assert "Athena reads tables from S3 only" in err


def test_cli_apply_and_glue_json_exclude_each_other(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["athena-ddl", "--archive", "s3://b/p", "--apply", "--glue-json"])
    assert exit_info.value.code == 2
    assert "--glue-json" in capsys.readouterr().err


# --- printing needs no AWS access when the options say what the archive would ---------------


def run_offline(*args: str) -> subprocess.CompletedProcess[str]:
    """``archiver athena-ddl`` in a process with no AWS credentials and no endpoint: any call to
    AWS fails there (no profile files, no instance metadata)."""
    env = {
        "PATH": os.environ["PATH"],
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "archiver",
            "athena-ddl",
            "--archive",
            "s3://my-bucket/changes",
            *args,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    "args,table_names",
    [
        (["--table-names", "injected"], None),
        (["--tables", "orders,customers.v2"], "orders,customers.v2"),
        (["--tables", "orders", "--glue-json"], "orders"),
    ],
)
def test_cli_prints_without_aws_when_told_what_it_would_read(
    args: list[str], table_names: str | None
) -> None:
    done = run_offline("--start-date", "2026-11-18", *args)
    assert done.returncode == 0, done.stderr
    if "--glue-json" in args:
        properties = json.loads(done.stdout)["Parameters"]
    else:
        properties = properties_of(parse(done.stdout))
    assert properties["projection.dt.range"] == "2026-11-18,NOW"
    if table_names is None:
        assert properties["projection.table_name.type"] == "injected"
        assert "projection.table_name.values" not in properties
    else:
        assert properties["projection.table_name.type"] == "enum"
        assert properties["projection.table_name.values"] == table_names


@pytest.mark.parametrize(
    "args",
    [[], ["--start-date", "2026-11-18"], ["--tables", "orders"]],
    ids=["nothing-given", "no-tables", "no-start-date"],
)
def test_cli_reads_the_archive_for_what_it_is_not_told(args: list[str]) -> None:
    # the same offline process fails as soon as it must list the archive: the check above holds
    done = run_offline(*args)
    assert done.returncode == 1
    assert "no AWS credentials" in done.stderr and "s3://my-bucket/changes" in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""


# --- athena-ddl --iceberg: no DDL, a note and queries for the Iceberg tables -----------------


@pytest.mark.parametrize(
    "args,says",
    [
        (["--apply"], "iceberg-sync"),
        (["--glue-json"], "iceberg-sync"),
        (["--database", "other"], "--database"),
        (["--table", "other"], "--table"),
        (["--table-names", "enum"], "--table-names"),
        (["--start-date", "2026-11-18"], "--start-date"),
        (["--promoted-columns", "customer_id:string"], "--promoted-columns"),
        (["--namespace", "My-NS"], "--namespace"),
        (["--tables", "orders,x"], "--tables"),
    ],
)
def test_cli_iceberg_bad_usage_names_the_option(
    args: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run("--iceberg", "--archive", "s3://bucket/p", *args, capsys=capsys)
    assert code == 2, err
    assert out == ""
    assert says in err
    assert "Traceback" not in err


def test_cli_iceberg_apply_is_refused_because_iceberg_sync_registers_the_tables(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = run("--iceberg", "--apply", "--archive", "s3://bucket/p", capsys=capsys)
    assert code == 2
    assert "--iceberg --apply" in err and "iceberg-sync" in err and "Glue" in err


def test_cli_namespace_needs_iceberg(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run("--namespace", "cdc", "--archive", "s3://bucket/p", capsys=capsys)
    assert code == 2
    assert "--namespace" in err and "--iceberg" in err


def test_cli_iceberg_local_archive_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(
        "--iceberg", "--archive", "/tmp/archive", "--tables", "orders", capsys=capsys
    )
    assert code == 2
    assert "Athena reads tables from S3 only" in err


def test_cli_iceberg_prints_without_aws_given_the_tables() -> None:
    done = run_offline("--iceberg", "--tables", "orders,customers.v2")
    assert done.returncode == 0, done.stderr
    text = done.stdout
    # the note: the Glue entry iceberg-sync writes is all Athena needs; Athena reads only Glue
    assert "Nothing to create" in text
    assert "table_type=ICEBERG" in text and "metadata_location" in text
    assert "SQL or REST catalog are not visible" in text
    # then each table's queries, every statement one Athena parses
    code = "\n".join(line for line in text.splitlines() if not line.startswith("--"))
    queries = [q for q in code.split(";") if q.strip()]
    assert len(queries) == 10
    clauses = []
    for query in queries:
        tree = sqlglot.parse_one(query.replace("<snapshot_id>", "1"), read="athena")
        version = tree.find(exp.Version)
        clauses += [version.name] if version is not None else []
        [table] = {t.name.removesuffix("$snapshots") for t in tree.find_all(exp.Table)}
        assert table in {"orders", "customers.v2"}
    assert clauses == ["TIMESTAMP", "VERSION"] * 2
    # a DynamoDB name that is no Glue name is flagged
    assert "customers.v2 is no Glue name" in text
    assert "orders is no Glue name" not in text


def test_cli_iceberg_lists_the_archive_when_not_given_the_tables() -> None:
    done = run_offline("--iceberg")
    assert done.returncode == 1
    assert "no AWS credentials" in done.stderr and "my-bucket" in done.stderr
    assert done.stdout == "" and "Traceback" not in done.stderr
