"""``archiver athena-ddl`` against real listings and a Glue API: the table Athena would use.

The archive lives on SeaweedFS (S3), so the table names and first day come from
real listings; ``--apply`` talks to moto's Glue server through
``AWS_ENDPOINT_URL_GLUE``, as it would talk to AWS. The last tests write files
through the Lambda handler and check every object key against the
``storage.location.template`` Glue holds, which is all Athena uses to find them.
"""

from __future__ import annotations

import io
import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3
import pyarrow.parquet as pq
import pytest

from archiver import cli
from archiver.archive.store import open_store, split_s3_uri
from archiver.lambda_handler import handler
from archiver.write import archive_records
from devkit.traffic import TableHistory, lambda_events

LambdaEnv = Callable[..., None]
PARQUET = "org.apache.hadoop.hive.ql.io.parquet."


@dataclass
class Run:
    code: int
    out: str
    err: str  # stderr, plus log lines (which pytest captures instead of stderr in-process)


@pytest.fixture
def athena_ddl(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> Callable[..., Run]:
    def run(*args: str) -> Run:
        capsys.readouterr()
        caplog.clear()
        code = cli.main(["athena-ddl", *args], stdin=io.BytesIO())
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err + caplog.text)

    return run


@pytest.fixture
def database() -> str:
    return f"archive_{uuid.uuid4().hex[:12]}"


def glue() -> Any:
    return boto3.client("glue")


def histories() -> dict[str, list[dict[str, Any]]]:
    """Two tables' changes; customers starts two days before orders."""
    start = datetime(2026, 11, 16, 22, 0, tzinfo=UTC).timestamp()
    return {
        "orders": TableHistory(
            "orders", seed=11, start=start + 2 * 86_400, seconds_per_change=30
        ).changes(200),
        "customers": TableHistory(
            "customers", seed=12, start=start, key_names=("id",), seconds_per_change=600
        ).changes(60),
    }


def day(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d")


def first_day(changes: dict[str, list[dict[str, Any]]]) -> str:
    return day(
        min(
            r["dynamodb"]["ApproximateCreationDateTime"]
            for records in changes.values()
            for r in records
        )
    )


def write(uri: str, changes: dict[str, list[dict[str, Any]]], promoted: str = "") -> list[str]:
    from archiver.archive.schema import parse_promoted_columns
    from archiver.write import ArchiveOptions

    store = open_store(uri, s3="boto3")
    files = []
    for records in changes.values():
        report = archive_records(records, store, ArchiveOptions(parse_promoted_columns(promoted)))
        assert report.ok
        files += report.files
    return files


def parquet_columns(uri: str, key: str) -> list[tuple[str, str]]:
    with open_store(uri, s3="boto3").open(key) as handle:
        return [(f.name, str(f.type)) for f in pq.read_schema(handle)]


TYPES = {
    "string": "string",
    "int64": "bigint",
    "bool": "boolean",
    "timestamp[us, tz=UTC]": "timestamp",
    "decimal128(18, 2)": "decimal(18,2)",
}


def test_apply_creates_the_database_and_the_table(
    s3_archive: str, glue_endpoint: str, database: str, athena_ddl: Callable[..., Run]
) -> None:
    # Given an archive of two tables, and no database yet
    changes = histories()
    files = write(s3_archive, changes)
    with pytest.raises(glue().exceptions.EntityNotFoundException):
        glue().get_database(Name=database)
    # When the table is applied
    run = athena_ddl("--archive", s3_archive, "--database", database, "--apply")
    # Then it is created, and says so on stderr (stdout stays empty)
    assert run.code == 0, run.err
    assert run.out == ""
    assert f"created Glue table {database}.changes" in run.err
    glue().get_database(Name=database)
    table = glue().get_table(DatabaseName=database, Name="changes")["Table"]
    assert table["TableType"] == "EXTERNAL_TABLE"
    descriptor = table["StorageDescriptor"]
    # with the columns of the files the archiver wrote, in order, with Athena's types
    assert [(c["Name"], c["Type"]) for c in descriptor["Columns"]] == [
        (name, TYPES[kind]) for name, kind in parquet_columns(s3_archive, files[0])
    ]
    assert [(c["Name"], c["Type"]) for c in table["PartitionKeys"]] == [
        ("table_name", "string"),
        ("dt", "string"),
        ("hour", "string"),
    ]
    assert descriptor["Location"] == s3_archive + "/"
    assert descriptor["SerdeInfo"]["SerializationLibrary"] == PARQUET + "serde.ParquetHiveSerDe"
    assert descriptor["InputFormat"] == PARQUET + "MapredParquetInputFormat"
    assert descriptor["OutputFormat"] == PARQUET + "MapredParquetOutputFormat"
    # and the projection of what the archive holds
    parameters = table["Parameters"]
    assert parameters["projection.enabled"] == "true"
    assert parameters["projection.table_name.type"] == "enum"
    assert sorted(parameters["projection.table_name.values"].split(",")) == sorted(changes)
    assert parameters["projection.dt.range"] == f"{first_day(changes)},NOW"
    assert parameters["storage.location.template"] == (
        f"{s3_archive}/table_name=${{table_name}}/dt=${{dt}}/hour=${{hour}}"
    )
    assert parameters["EXTERNAL"] == "TRUE"


def test_a_second_apply_updates_the_table_in_place(
    s3_archive: str, glue_endpoint: str, database: str, athena_ddl: Callable[..., Run]
) -> None:
    # Given a table applied before the sink was given a promoted column
    changes = histories()
    write(s3_archive, {"customers": changes["customers"]})
    assert athena_ddl("--archive", s3_archive, "--database", database, "--apply").code == 0
    before = glue().get_table(DatabaseName=database, Name="changes")["Table"]
    assert before["Parameters"]["projection.table_name.values"] == "customers"
    # When orders are archived with customer_id and amount promoted, and the table re-applied
    promoted = "customer_id:string,amount:decimal(18,2)"
    files = write(s3_archive, {"orders": changes["orders"]}, promoted)
    run = athena_ddl(
        "--archive", s3_archive, "--database", database, "--apply", "--promoted-columns", promoted
    )
    # Then the same table is updated: new columns, the new table enumerated
    assert run.code == 0, run.err
    assert f"updated Glue table {database}.changes" in run.err
    [table] = glue().get_tables(DatabaseName=database)["TableList"]
    columns = [(c["Name"], c["Type"]) for c in table["StorageDescriptor"]["Columns"]]
    assert columns[-2:] == [("customer_id", "string"), ("amount", "decimal(18,2)")]
    assert columns == [(name, TYPES[kind]) for name, kind in parquet_columns(s3_archive, files[0])]
    assert table["Parameters"]["projection.table_name.values"].split(",") == ["customers", "orders"]
    # and the --glue-json output is exactly what Glue now holds
    printed = athena_ddl(
        "--archive",
        s3_archive,
        "--database",
        database,
        "--promoted-columns",
        promoted,
        "--glue-json",
    )
    assert printed.code == 0
    table_input = json.loads(printed.out)
    assert table_input["Parameters"] == table["Parameters"]
    assert table_input["StorageDescriptor"]["Columns"] == table["StorageDescriptor"]["Columns"]
    assert table_input["PartitionKeys"] == table["PartitionKeys"]


def test_printed_ddl_enumerates_the_archived_tables(
    s3_archive: str, athena_ddl: Callable[..., Run], monkeypatch: pytest.MonkeyPatch
) -> None:
    changes = histories()
    write(s3_archive, changes, "customer_id:string")
    # the archive and the promoted columns come from the sink's own settings
    monkeypatch.setenv("ARCHIVER_ARCHIVE_URI", s3_archive)
    monkeypatch.setenv("ARCHIVER_PROMOTED_COLUMNS", "customer_id:string")
    run = athena_ddl()
    assert run.code == 0, run.err
    assert run.out.startswith("CREATE EXTERNAL TABLE `dynamodb_archive`.`changes` (")
    assert "  `customer_id` string COMMENT" in run.out
    assert "'projection.table_name.values'='customers,orders'" in run.out
    assert f"'projection.dt.range'='{first_day(changes)},NOW'" in run.out
    assert f"LOCATION '{s3_archive}/'" in run.out
    # and a flag overrides the environment
    run = athena_ddl("--promoted-columns", "")
    assert run.code == 0, run.err
    assert "customer_id" not in run.out


def test_options_replace_only_what_they_name(
    s3_archive: str, athena_ddl: Callable[..., Run]
) -> None:
    changes = histories()
    write(s3_archive, changes)
    # --start-date: the tables still come from the archive
    run = athena_ddl("--archive", s3_archive, "--start-date", "2026-01-02")
    assert run.code == 0, run.err
    assert "'projection.table_name.values'='customers,orders'" in run.out
    assert "'projection.dt.range'='2026-01-02,NOW'" in run.out
    # --tables: the first day still comes from the archive
    run = athena_ddl("--archive", s3_archive, "--tables", "orders,invoices")
    assert run.code == 0, run.err
    assert "'projection.table_name.values'='orders,invoices'" in run.out
    assert f"'projection.dt.range'='{first_day(changes)},NOW'" in run.out


def test_table_names_injected_on_request_and_for_an_empty_archive(
    s3_archive: str, athena_ddl: Callable[..., Run]
) -> None:
    # An empty archive: nothing to enumerate, and the projection starts today
    before = datetime.now(UTC).date()
    run = athena_ddl("--archive", s3_archive)
    after = datetime.now(UTC).date()
    assert run.code == 0, run.err
    assert "'projection.table_name.type'='injected'" in run.out
    assert "projection.table_name.values" not in run.out
    assert "no table yet" in run.err
    assert any(f"'projection.dt.range'='{d.isoformat()},NOW'" in run.out for d in (before, after))
    # An archive with tables, injected on request
    write(s3_archive, histories())
    run = athena_ddl("--archive", s3_archive, "--table-names", "injected")
    assert "'projection.table_name.type'='injected'" in run.out
    assert "projection.table_name.values" not in run.out


def test_an_unreachable_glue_fails_with_a_message(
    s3_archive: str,
    closed_endpoint: str,
    monkeypatch: pytest.MonkeyPatch,
    athena_ddl: Callable[..., Run],
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_GLUE", closed_endpoint)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    run = athena_ddl("--archive", s3_archive, "--apply")
    assert run.code == 1
    assert "glue get_database dynamodb_archive" in run.err
    assert "Traceback" not in run.err


def test_a_missing_bucket_fails_naming_it(s3_endpoint: str, athena_ddl: Callable[..., Run]) -> None:
    run = athena_ddl("--archive", "s3://no-such-bucket-for-athena/changes")
    assert run.code == 1
    assert "no-such-bucket-for-athena" in run.err
    assert "Traceback" not in run.err


# --- the write path and the projection agree -------------------------------------------------


def template_pattern(template: str) -> re.Pattern[str]:
    """A regex with one named group per ``${column}`` of a storage.location.template."""
    parts = re.split(r"\$\{(\w+)\}", template)
    pattern = "".join(
        re.escape(part) if i % 2 == 0 else f"(?P<{part}>[^/]+)" for i, part in enumerate(parts)
    )
    return re.compile(pattern)


def projected(parameters: dict[str, str], column: str, value: str) -> bool:
    """Whether Athena's projection of ``column`` generates ``value``."""
    kind = parameters[f"projection.{column}.type"]
    if kind == "enum":
        return value in parameters[f"projection.{column}.values"].split(",")
    if kind == "integer":
        low, high = (int(v) for v in parameters[f"projection.{column}.range"].split(","))
        digits = int(parameters.get(f"projection.{column}.digits", "1"))
        return value in {str(n).zfill(digits) for n in range(low, high + 1)}
    if kind == "date":
        assert parameters[f"projection.{column}.format"] == "yyyy-MM-dd"
        assert parameters[f"projection.{column}.interval.unit"] == "DAYS"
        start, end = parameters[f"projection.{column}.range"].split(",")
        assert end == "NOW"
        try:
            moment = datetime.strptime(value, "%Y-%m-%d").date()
        except ValueError:
            return False
        today = datetime.now(UTC).date().isoformat()
        return moment.isoformat() == value and start <= value <= today
    raise AssertionError(f"unexpected projection type {kind}")


def test_every_written_file_is_where_the_projection_looks(
    s3_archive: str,
    glue_endpoint: str,
    database: str,
    lambda_env: LambdaEnv,
    athena_ddl: Callable[..., Run],
) -> None:
    # Given changes archived by the Lambda handler over three days, hours 00 to 23
    lambda_env(s3_archive)
    changes = histories()
    for records in changes.values():
        for event in lambda_events(records, batch_size=50):
            assert handler(event, None) == {"batchItemFailures": []}
    # (and a poison record, dead-lettered inside the archive)
    assert handler({"Records": [{"eventID": "x", "eventName": "UPSERT"}]}, None)
    # When the table is applied
    assert athena_ddl("--archive", s3_archive, "--database", database, "--apply").code == 0
    parameters = glue().get_table(DatabaseName=database, Name="changes")["Table"]["Parameters"]
    pattern = template_pattern(parameters["storage.location.template"])
    # Then every data file sits in a folder the template produces from projected values
    bucket, prefix = split_s3_uri(s3_archive)
    listing = boto3.client("s3").list_objects_v2(Bucket=bucket, Prefix=prefix)
    keys = [item["Key"] for item in listing["Contents"]]
    assert not listing["IsTruncated"]
    data = [k for k in keys if k.endswith(".parquet")]
    assert data and len(data) + 1 == len(keys)
    seen = set()
    for key in data:
        folder = f"s3://{bucket}/{key.rsplit('/', 1)[0]}"
        match = pattern.fullmatch(folder)
        assert match, f"{key} is not under storage.location.template"
        values = match.groupdict()
        for column, value in values.items():
            assert projected(parameters, column, value), f"{key}: {column}={value} not projected"
        rebuilt = parameters["storage.location.template"]
        for column, value in values.items():
            rebuilt = rebuilt.replace(f"${{{column}}}", value)
        assert rebuilt == folder
        seen.add((values["table_name"], values["dt"], values["hour"]))
    # and every change's own UTC hour is one of them
    expected = set()
    for table, records in changes.items():
        for record in records:
            moment = datetime.fromtimestamp(record["dynamodb"]["ApproximateCreationDateTime"], UTC)
            expected.add((table, moment.strftime("%Y-%m-%d"), moment.strftime("%H")))
    assert seen == expected
    assert {h for _, _, h in seen} >= {"22", "23", "00", "01"}  # across midnight, zero-padded
    assert len({dt for _, dt, _ in seen}) == 3
    # while the dead-letter area is not
    [dead] = [k for k in keys if not k.endswith(".parquet")]
    assert pattern.fullmatch(f"s3://{bucket}/{dead.rsplit('/', 1)[0]}") is None
